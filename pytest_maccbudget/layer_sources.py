"""Where in the user's code each layer of a torch model is built, so that an annotation about a
layer that grew lands on the line a pull request changed.

While a marked test builds its model, `ConstructionRecorder` wraps `torch.nn.Module.__init__`
and keeps, for every module created, the user-code frames of the call that created it, innermost
first: `self.conv = nn.Conv2d(...)` in a block's constructor, `self.stage1 = Block(64)` in the
model's, `return Net(width=96)` in the factory, the test's `return build()`. A layer's *chain* is
its own construction frames, then each ancestor module's, without repeats. Recording reads frame
objects only (no source file is opened), so it costs microseconds a module.

A model built before the recording started (at import time, in a fixture of a test that is not
marked) has no recorded frames: its layers fall back to the line of the nearest user-defined
ancestor class that creates the layer (`self.<attr> = ...`), found by parsing that class's
source once per class; library classes are rejected by their path before any parsing.

User code is what lives under the project root and not in an installed package (site-packages,
dist-packages). Paths in chains are relative to the project root (POSIX).
"""
from __future__ import annotations

import inspect
import os
import re
import sys
import weakref
from pathlib import Path
from types import CodeType, FrameType
from typing import Any, Iterable, Mapping, Optional, Sequence

Location = dict[str, Any]  # {"file": project-relative POSIX path, "line": first line, "end_line": last line}
Chain = list[Location]

_INSTALLED_DIRS = frozenset({"site-packages", "dist-packages"})
_PACKAGE_DIR = Path(__file__).resolve().parent


class UserCode:
    """Answers "is this file the user's?" once per file name."""

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.realpath(root))
        self._relative: dict[str, Optional[str]] = {}

    def relative(self, filename: str) -> Optional[str]:
        """The file's path relative to the root (POSIX) when it is user code, else None."""
        if filename not in self._relative:
            self._relative[filename] = self._classify(filename)
        return self._relative[filename]

    def _classify(self, filename: str) -> Optional[str]:
        if not filename or filename.startswith("<"):  # <string>, <frozen ...>, a REPL
            return None
        path = Path(os.path.realpath(filename))
        if path.is_relative_to(_PACKAGE_DIR):
            return None
        try:
            relative = path.relative_to(self.root)
        except ValueError:
            return None
        if _INSTALLED_DIRS & set(relative.parts):  # an in-project virtualenv (.venv)
            return None
        return relative.as_posix()


class ConstructionRecorder:
    """`with recorder:` records the user-code frames that create each torch module.

    Without torch imported there is nothing to record and the block runs untouched. Nested use
    is allowed (the outer recording stays in effect)."""

    def __init__(self, user_code: UserCode) -> None:
        self.user_code = user_code
        self.stacks: "weakref.WeakKeyDictionary[Any, tuple[Location, ...]]" = weakref.WeakKeyDictionary()
        self._spans: dict[CodeType, list[tuple[Optional[int], Optional[int]]]] = {}
        self._depth = 0
        self._original_init: Any = None

    def __enter__(self) -> "ConstructionRecorder":
        torch = sys.modules.get("torch")
        self._depth += 1
        if self._depth == 1 and torch is not None:
            self._install(torch.nn.Module)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self._original_init is not None:
            sys.modules["torch"].nn.Module.__init__ = self._original_init
            self._original_init = None

    def _install(self, module_class: Any) -> None:
        original = module_class.__init__
        recorder = self

        def recording_init(module: Any, *args: Any, **kwargs: Any) -> None:
            recorder._record(module, sys._getframe(1))
            original(module, *args, **kwargs)

        self._original_init = original
        module_class.__init__ = recording_init

    def _record(self, module: Any, frame: Optional[FrameType]) -> None:
        try:
            if module in self.stacks:  # __init__ reached twice (a subclass calling it again)
                return
            # skip the module's own constructors (`super().__init__()` in Block.__init__): the
            # call that built the module is the one below them
            while frame is not None and frame.f_code.co_name == "__init__" and frame.f_locals.get("self") is module:
                frame = frame.f_back
            self.stacks[module] = tuple(self._user_frames(frame))
        except Exception:  # noqa: BLE001  (an unhashable module, say: recording must never break the model)
            return

    def _user_frames(self, frame: Optional[FrameType]) -> Iterable[Location]:
        while frame is not None:
            file = self.user_code.relative(frame.f_code.co_filename)
            if file is not None:
                line, end_line = self._span(frame)
                yield {"file": file, "line": line, "end_line": end_line}
            frame = frame.f_back

    def _span(self, frame: FrameType) -> tuple[int, int]:
        """The lines of the expression running in `frame` (a call written over several lines
        spans all of them), from the code's positions table (Python 3.11+)."""
        line = frame.f_lineno or frame.f_code.co_firstlineno
        positions = getattr(frame.f_code, "co_positions", None)
        if positions is None:
            return line, line
        spans = self._spans.get(frame.f_code)
        if spans is None:
            spans = self._spans[frame.f_code] = [(start, end) for start, end, _, _ in positions()]
        index = frame.f_lasti // 2
        start, end = spans[index] if 0 <= index < len(spans) else (None, None)
        if start is None or end is None or not start <= line <= end:
            return line, line
        return start, end


def layer_chains(model: Any, keys: Iterable[str], recorder: Optional[ConstructionRecorder],
                 user_code: UserCode) -> dict[str, Chain]:
    """For each layer key that is a module path of `model`: the user-code locations that built
    it, innermost first (its own construction, then its ancestors'); the class-based fallback
    when nothing was recorded. Keys without a location are left out."""
    named = getattr(model, "named_modules", None)
    if named is None:
        return {}
    modules = dict(named())
    stacks = recorder.stacks if recorder is not None else {}
    fallback = _ClassLines(user_code)
    chains: dict[str, Chain] = {}
    for key in keys:
        if key not in modules:
            continue
        chain = _recorded_chain(key, modules, stacks) or fallback.chain(key, modules)
        if chain:
            chains[key] = chain
    return chains


def _recorded_chain(key: str, modules: Mapping[str, Any], stacks: Mapping[Any, Sequence[Location]]) -> Chain:
    parts = key.split(".")
    chain: Chain = []
    seen: set[tuple[str, int, int]] = set()
    for depth in range(len(parts), -1, -1):
        module = modules.get(".".join(parts[:depth]))
        for location in (stacks.get(module, ()) if module is not None else ()):
            identity = (location["file"], location["line"], location["end_line"])
            if identity not in seen:
                seen.add(identity)
                chain.append(dict(location))
    return chain


class _ClassLines:
    """The fallback: the line of `self.<attr> = ...` in the nearest user-defined ancestor class,
    else that class's own line. Each class is parsed at most once."""

    def __init__(self, user_code: UserCode) -> None:
        self.user_code = user_code
        self._classes: dict[type, Optional[tuple[str, int, list[str]]]] = {}

    def chain(self, key: str, modules: Mapping[str, Any]) -> Chain:
        parts = key.split(".")
        for depth in range(len(parts), -1, -1):
            module = modules.get(".".join(parts[:depth]))
            source = self._source(type(module)) if module is not None else None
            if source is None:
                continue
            file, first, lines = source
            line = _attribute_line(lines, first, parts[depth]) if depth < len(parts) else None
            line = line or first
            return [{"file": file, "line": line, "end_line": line}]
        return []

    def _source(self, cls: type) -> Optional[tuple[str, int, list[str]]]:
        if cls not in self._classes:
            self._classes[cls] = self._read(cls)
        return self._classes[cls]

    def _read(self, cls: type) -> Optional[tuple[str, int, list[str]]]:
        module = sys.modules.get(cls.__module__)
        filename = getattr(module, "__file__", None)
        file = self.user_code.relative(filename) if filename else None
        if file is None:  # a library or built-in class: rejected before any parsing
            return None
        try:
            lines, first = inspect.getsourcelines(cls)
        except (OSError, TypeError):  # a class defined in C, or in a REPL
            return None
        return file, first, lines


def _attribute_line(lines: Sequence[str], first: int, attribute: str) -> Optional[int]:
    """The line of `self.<attribute> = ...` in a class's source lines, if written that way."""
    pattern = re.compile(rf"\bself\.{re.escape(attribute)}\s*(?::[^=]*)?=[^=]")
    return next((first + offset for offset, text in enumerate(lines) if pattern.search(text)), None)


def choose_location(chain: Sequence[Location], changed: Mapping[str, set[int]]) -> Location:
    """Where to annotate a layer: the first location of its chain (innermost first) whose lines
    this pull request changed, on the first changed line; else the innermost location.
    `changed` maps project-relative files to their changed line numbers."""
    for location in chain:
        lines = changed.get(location["file"])
        if not lines:
            continue
        hit = next((line for line in range(location["line"], location["end_line"] + 1) if line in lines), None)
        if hit is not None:
            return {"file": location["file"], "line": hit, "changed": True}
    innermost = chain[0]
    return {"file": innermost["file"], "line": innermost["line"], "changed": False}
