"""Text for GitHub-flavoured markdown: one escaping rule for every markdown the package writes
(the pull-request report, `maccbudget profile --format markdown`, `maccbudget history`).

Text that comes from outside (model, layer and test names, exception messages, branch names)
goes through `escape` (plain text, `code spans` kept) or `code` (a code span), so it can neither
open HTML (`<img>`), links, emphasis or table cells, nor start a heading, quote or list.
"""
from __future__ import annotations

import re
from typing import Optional, Sequence

_MARKDOWN_SPECIAL = "\\*_[]<|~&`"
_MENTION = re.compile(r"@(?=[A-Za-z0-9])")  # @user, @org/team: GitHub would notify them
_BLOCK_STARTS = "#>+-="  # would open a heading, quote or list at the start of a line
_ORDERED_ITEM = re.compile(r"^(\d+)[.)]")


def one_line(text: object) -> str:
    """`text` with every run of whitespace (newlines included) as one space."""
    return " ".join(str(text).split())


def code(text: object, in_table: bool = False) -> str:
    """A code span; a backtick inside becomes a quote, and in a table | is escaped."""
    clean = one_line(text).replace("`", "'")
    if in_table:
        clean = clean.replace("|", "\\|")
    return f"`{clean}`"


def escape_plain(text: str) -> str:
    """Every markdown-special character backslash-escaped, and @mentions broken with a zero-width
    space (a backslash does not stop GitHub from notifying the person)."""
    escaped = "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in text)
    return _MENTION.sub("@\u200b", escaped)


def _escape_start(text: str) -> str:
    """A backslash before what would open a heading, quote, list or setext rule at the start."""
    if text[:1] and text[0] in _BLOCK_STARTS:
        return "\\" + text
    match = _ORDERED_ITEM.match(text)
    return f"{match.group(1)}\\{text[match.end(1):]}" if match else text


def escape(text: object, in_table: bool = False) -> str:
    """Plain text for markdown, on one line: `code spans` are kept (| escaped in tables), the
    rest escaped. Outside a table the text may start a line, so what would open a block there
    is escaped too."""
    flat = one_line(text)
    parts = flat.split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: no code spans at all
        escaped = escape_plain(flat.replace("`", "'"))
    else:
        escaped = "".join(code(part, in_table) if index % 2 == 1 and part else escape_plain(part)
                          for index, part in enumerate(parts))
    return escaped if in_table else _escape_start(escaped)


def row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int,
          text_after: Optional[int] = None) -> list[str]:
    """A GitHub table with a blank line after it; the columns from numeric_from up to text_after
    (exclusive; None: to the end) hold numbers and are right-aligned. Cells are markdown already."""
    end = len(header) if text_after is None else text_after
    rule = ["--:" if numeric_from <= index < end else ":--" for index in range(len(header))]
    return [row(header), row(rule)] + [row(cells) for cells in rows] + [""]
