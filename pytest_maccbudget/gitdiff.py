"""The lines a branch changed: `git diff --unified=0 <base>` against the working tree, read with
GitPython (imported inside the function), so annotations can land on the diff of a pull request.

Only the files asked about are diffed. Anything git cannot answer (no repository, the base
commit missing from a shallow clone) gives an empty answer: annotations then fall back to the
innermost line that builds the layer, and the budget check itself is never affected.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Union

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")
_C_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


def changed_lines(root: Union[Path, str], base_commit: str, files: Iterable[str]) -> dict[str, set[int]]:
    """Lines of `files` (relative to `root`, POSIX) added or modified since `base_commit`, by
    file relative to `root`; {} when git cannot tell."""
    wanted = sorted(set(files))
    if not wanted or base_commit.startswith("-"):
        return {}
    try:
        import git

        repo = git.Repo(os.fspath(root), search_parent_directories=True)
    except Exception:  # noqa: BLE001  (no git, no repository: nothing to match)
        return {}
    try:
        top = Path(os.path.realpath(str(repo.working_tree_dir)))
        here = Path(os.path.realpath(root))
        paths = [(here / file).as_posix() for file in wanted]
        # quotePath off: a non-ASCII file name comes back as itself, not as octal escapes
        diff = repo.git.execute(["git", "-c", "core.quotePath=false", "diff", base_commit, "--unified=0",
                                 "--no-color", "--no-ext-diff", "--no-renames", "--src-prefix=a/",
                                 "--dst-prefix=b/", "--", *paths])
    except Exception:  # noqa: BLE001  (the base missing from a shallow clone, a git error)
        return {}
    finally:
        repo.close()
    return _relative_to(_parse_diff(diff), top, here)


def _parse_diff(diff: str) -> dict[str, set[int]]:
    """{path in the repository: new-side line numbers of added or modified lines}."""
    lines: dict[str, set[int]] = {}
    current: set[int] = set()
    for text in diff.splitlines():
        if text.startswith("+++ "):
            path = _unquote(text[4:].rstrip("\t"))  # git ends a name holding spaces with a tab
            current = lines.setdefault(path[2:], set()) if path.startswith("b/") else set()
            continue
        hunk = _HUNK.match(text)
        if hunk is not None:
            start, count = int(hunk.group(1)), int(hunk.group(2) or "1")
            current.update(range(start, start + count))  # count 0: a pure deletion, no new line
    return {path: numbers for path, numbers in lines.items() if numbers}


def _unquote(path: str) -> str:
    """git's C-style quoting of unusual file names ("a\\tb.py")."""
    if not (len(path) >= 2 and path[0] == path[-1] == '"'):
        return path
    body, out, index = path[1:-1], bytearray(), 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            follow = body[index + 1]
            if follow in "01234567" and index + 4 <= len(body):
                out.append(int(body[index + 1:index + 4], 8))
                index += 4
                continue
            out += _C_ESCAPES.get(follow, follow).encode()
            index += 2
            continue
        out += char.encode()
        index += 1
    return out.decode("utf-8", "replace")


def _relative_to(by_repo_path: dict[str, set[int]], top: Path, here: Path) -> dict[str, set[int]]:
    changed: dict[str, set[int]] = {}
    for path, numbers in by_repo_path.items():
        try:
            changed[(top / path).relative_to(here).as_posix()] = numbers
        except ValueError:  # outside the project root: not a file a chain can name
            continue
    return changed
