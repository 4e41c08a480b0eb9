"""GitHub Actions workflow commands (``::notice::``, ``::warning::``, ``::error::``), escaped.

The runner reads these from a step's stdout. A message is escaped so that text from
outside (an API error, a file name) cannot end the command early or start another one, and
`neutralise` makes any other text we print (exception messages, model and layer names) unable
to be read as a command at all.
"""
from __future__ import annotations

import re
import sys
from typing import Optional, TextIO

TITLE = "pytest-maccbudget"
# The first line of the markdown report: how the action finds its sticky PR comment.
MARKER = "<!-- pytest-maccbudget report -->"


# The runner takes a line as a command when, after leading whitespace, it starts with "::"
# (::error::, ::add-mask::, ::stop-commands::) or when it holds "##[" anywhere (the older
# ##[error] form). A zero-width space breaks either without changing what a reader sees.
# The runner splits lines at CR as well as LF.
_COMMAND_START = re.compile(r"(^|[\r\n])([^\S\r\n]*):(?=:)")
_OLD_COMMAND = "##["
ZERO_WIDTH_SPACE = "\u200b"


def neutralise(text: str) -> str:
    """`text` for the log: no line of it can be read as a workflow command."""
    text = _COMMAND_START.sub(lambda match: match.group(1) + match.group(2) + ":" + ZERO_WIDTH_SPACE, text)
    return text.replace(_OLD_COMMAND, "##" + ZERO_WIDTH_SPACE + "[")


def escape_data(text: str) -> str:
    """Escape a command's message: ``%``, CR and LF (the runner's ``escapeData``)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a command property's value: as a message, plus ``:`` and ``,``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(kind: str, message: str, title: Optional[str] = TITLE) -> str:
    """The line for one workflow command, e.g. ``::notice title=pytest-maccbudget::...``."""
    properties = f" title={escape_property(title)}" if title else ""
    return f"::{kind}{properties}::{escape_data(message)}"


def notice(message: str, stream: Optional[TextIO] = None) -> None:
    _emit("notice", message, stream)


def warning(message: str, stream: Optional[TextIO] = None) -> None:
    _emit("warning", message, stream)


def error(message: str, stream: Optional[TextIO] = None) -> None:
    _emit("error", message, stream)


def _emit(kind: str, message: str, stream: Optional[TextIO]) -> None:
    out = stream if stream is not None else sys.stdout
    out.write(command(kind, message) + "\n")
    out.flush()
