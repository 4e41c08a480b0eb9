"""Split the action's ``pytest-args`` input into words, for bash, without a shell.

``python -m pytest_maccbudget.action.pytest_args "$INPUT_PYTEST_ARGS" > words`` prints each
word followed by a NUL byte, which ``while IFS= read -r -d '' w; do extra+=("$w"); done < words``
reads back into a bash array. Quotes group words as in a POSIX shell (``-k "net and not slow"``); nothing is
expanded or run (no ``$VAR``, globs or command substitution), so the input, which may come
from an event payload, never reaches a shell as code.
"""
from __future__ import annotations

import shlex
import sys
from typing import Optional, Sequence

from .commands import error

USAGE = "usage: python -m pytest_maccbudget.action.pytest_args ARGS"


def split_args(text: str) -> list[str]:
    """The words of ``text`` as a POSIX shell would split them, with no expansion."""
    return shlex.split(text, comments=False, posix=True)


def encode_words(words: Sequence[str]) -> bytes:
    """Each word followed by NUL, as ``read -d ''`` expects (an empty list is empty)."""
    for word in words:
        if "\0" in word:
            raise ValueError("an argument contains a NUL byte")
    return b"".join(word.encode("utf-8", "surrogateescape") + b"\0" for word in words)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        data = encode_words(split_args(args[0]))
    except ValueError as err:
        # stderr: stdout is the word list. The runner reads workflow commands from both.
        error(f"cannot split the pytest-args input ({err}): quote it as you would in a shell", sys.stderr)
        return 2
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
