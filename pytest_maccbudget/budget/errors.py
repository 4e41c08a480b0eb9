"""The one error of the budget file: "file:line: dotted.key: what is wrong"."""
from __future__ import annotations

from pathlib import Path
from typing import Optional


def display_path(path: Path) -> str:
    """The path as a user would type it: relative to the working directory when inside it."""
    if not path.is_absolute():
        return str(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


class BudgetError(Exception):
    """A budget file or tolerance that cannot be read: "file:line: dotted.key: what is wrong"."""

    def __init__(self, message: str, *, path: Optional[Path] = None, line: Optional[int] = None,
                 key: Optional[str] = None) -> None:
        self.message = message
        self.path = path
        self.line = line
        self.key = key
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.path is not None:
            where = display_path(self.path) + (f":{self.line}" if self.line is not None else "") + ": "
        key = f"{self.key}: " if self.key else ""
        return f"{where}{key}{self.message}"

    def __str__(self) -> str:
        return self._render()
