"""A YAML document as nodes (each with its line), built without recursion and with bounded work.

PyYAML's composer recurses once per nesting level (a deeply nested file raises RecursionError,
and libyaml's C composer overflows the C stack and kills the process), and the aliases of a
file can expand into far more values than it holds. Here the events of the parser (libyaml's
when installed, several times faster, else PyYAML's own; both are state machines, not
recursive) are composed into PyYAML's node classes with an explicit stack, the nesting depth
and the values that aliases expand to are bounded, and characters YAML does not allow are
refused before parsing. A file libyaml refuses is parsed again by PyYAML, whose messages are
the ones shown.
"""
from __future__ import annotations

from typing import Any, Optional

import yaml
from yaml.events import (
    AliasEvent, MappingEndEvent, MappingStartEvent, ScalarEvent, SequenceEndEvent, SequenceStartEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_DEPTH = 100            # nesting levels (a budget file needs five)
MAX_EXPANDED = 1_000_000   # values the document holds with every alias expanded


class TooComplex(yaml.YAMLError):
    """The document nests too deep or its aliases expand into too many values."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


def loader_for(text: str) -> yaml.SafeLoader:
    """A safe loader for the constructor and resolver (it checks the characters of `text`)."""
    return yaml.SafeLoader(text)


def compose(text: str) -> Optional[Node]:
    """The single document of `text` as nodes, None for an empty one. Raises yaml.YAMLError
    (yaml.reader.ReaderError for a character YAML does not allow, TooComplex as above)."""
    resolver = loader_for(text)  # raises ReaderError for a NUL and the like, as PyYAML does
    try:
        if getattr(yaml, "__with_libyaml__", False):
            try:
                return _compose(yaml.CSafeLoader(text), resolver)
            except TooComplex:
                raise
            except yaml.YAMLError:
                pass  # parsed again below, for PyYAML's wording of the problem
        return _compose(yaml.SafeLoader(text), resolver)
    finally:
        resolver.dispose()


def _compose(parser: Any, resolver: yaml.SafeLoader) -> Optional[Node]:
    try:
        parser.get_event()  # StreamStart
        if parser.check_event(yaml.StreamEndEvent):
            return None
        parser.get_event()  # DocumentStart
        root = _Composer(parser, resolver).document()
        parser.get_event()  # DocumentEnd
        if not parser.check_event(yaml.StreamEndEvent):
            event = parser.get_event()
            raise yaml.composer.ComposerError("expected a single document in the stream", None,
                                              "but found another document", event.start_mark)
        return root
    finally:
        parser.dispose()


class _Composer:
    def __init__(self, parser: Any, resolver: yaml.SafeLoader) -> None:
        self.parser = parser
        self.resolver = resolver
        self.anchors: dict[str, Node] = {}
        self.sizes: dict[int, int] = {}  # id(node) -> values it holds with aliases expanded

    def document(self) -> Node:
        stack: list[tuple[Node, list[Any], Optional[str]]] = []  # (collection, its items, its anchor)
        while True:
            event = self.parser.get_event()
            if isinstance(event, (SequenceEndEvent, MappingEndEvent)):
                node = self._close(stack.pop(), event)
            elif isinstance(event, (SequenceStartEvent, MappingStartEvent)):
                if len(stack) >= MAX_DEPTH:
                    raise TooComplex(f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
                stack.append((self._open(event), [], event.anchor))
                continue
            else:
                node = self._leaf(event)
            if not stack:
                return node
            stack[-1][1].append(node)

    def _leaf(self, event: Any) -> Node:
        if isinstance(event, AliasEvent):
            if event.anchor not in self.anchors:
                raise yaml.composer.ComposerError(None, None, f"found undefined alias {event.anchor!r}",
                                                  event.start_mark)
            return self.anchors[event.anchor]
        if not isinstance(event, ScalarEvent):
            raise yaml.composer.ComposerError(None, None, f"unexpected {type(event).__name__}", event.start_mark)
        tag = event.tag if event.tag not in (None, "!") else self.resolver.resolve(ScalarNode, event.value, event.implicit)
        node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
        self._anchor(event.anchor, node)
        return node

    def _open(self, event: Any) -> Node:
        kind = SequenceNode if isinstance(event, SequenceStartEvent) else MappingNode
        tag = event.tag if event.tag not in (None, "!") else self.resolver.resolve(kind, None, event.implicit)
        return kind(tag, [], event.start_mark, None, flow_style=event.flow_style)

    def _close(self, opened: tuple[Node, list[Any], Optional[str]], event: Any) -> Node:
        node, items, anchor = opened
        if isinstance(node, MappingNode):
            node.value = list(zip(items[0::2], items[1::2]))
        else:
            node.value = items
        node.end_mark = event.end_mark
        size = 1 + sum(self.sizes.get(id(item), 1) for item in items)
        if size > MAX_EXPANDED:
            raise TooComplex(f"its aliases expand it to more than {MAX_EXPANDED:,} values", node.start_mark)
        self.sizes[id(node)] = size
        self._anchor(anchor, node)
        return node

    def _anchor(self, anchor: Optional[str], node: Node) -> None:
        if anchor is not None:
            self.anchors[anchor] = node
