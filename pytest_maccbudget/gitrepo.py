"""What every git reader of the package shares (gitbase, history, gitdiff): importing GitPython
lazily, opening the repository around a directory, naming a file as git trees do, resolving
a revision, telling a shallow clone, and one-line messages from git's errors.

Each reader raises its own error class with its own words for what it was reading
(`purpose`: "the base budget", "the history"); refs reach git only as argument-vector
elements, and a ref that could be read as an option is refused before that.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from git import Repo

def import_git(error: type[Exception], purpose: str) -> Any:
    try:
        import git
    except ImportError as err:  # GitPython missing, or it found no usable git executable
        raise error(f"cannot use git to read {purpose} ({first_line(str(err)) or type(err).__name__}): install git and "
                    "GitPython, or set GIT_PYTHON_GIT_EXECUTABLE to the git binary") from None
    return git


def open_repo(git: Any, start: Path, error: type[Exception], purpose: str) -> Repo:
    """The repository whose working tree holds `start`."""
    try:
        repo = git.Repo(str(start), search_parent_directories=True)
    except git.NoSuchPathError:
        raise error(f"cannot read {purpose}: directory {start} does not exist") from None
    except git.InvalidGitRepositoryError:
        raise error(f"cannot read {purpose}: {start} is not inside a git repository; run from a git checkout "
                    "(in GitHub Actions, run actions/checkout first)") from None
    if repo.working_tree_dir is None:
        repo.close()
        raise error(f"cannot read {purpose}: {repo.git_dir} is a bare repository without a working tree")
    return repo


def repo_relative_path(repo: Repo, start: Path, path: Path, error: type[Exception]) -> str:
    """The budget file's path inside the repository, POSIX style, as git trees name it."""
    root = Path(os.path.realpath(str(repo.working_tree_dir)))
    full = Path(os.path.abspath(path if path.is_absolute() else start / path))
    # Resolve symlinked directories (the repo may be reached through a link) but not the file
    # itself: git records the path, not where a link points.
    try:
        rel = (Path(os.path.realpath(full.parent)) / full.name).relative_to(root)
    except ValueError:
        raise error(f"the budget file {full} is outside the git repository {root}") from None
    if not rel.parts:
        raise error(f"the budget file path {full} names the repository root, not a file")
    return rel.as_posix()


def rev_parse(git: Any, repo: Repo, rev: str) -> Optional[str]:
    """The object name `rev` resolves to, or None when git does not know it."""
    try:
        return repo.git.rev_parse("--verify", "--quiet", rev).strip() or None
    except git.GitCommandError as err:
        if err.status == 1:  # --verify --quiet: not a valid object name
            return None
        raise


def is_shallow(repo: Repo) -> bool:
    from git import CommandError

    try:
        if repo.git.rev_parse("--is-shallow-repository").strip() == "true":
            return True
    except CommandError:  # git too old for the flag: fall back to the shallow file
        pass
    return Path(repo.common_dir, "shallow").exists()


def shallow_commits(repo: Repo) -> frozenset[str]:
    """The commits a shallow clone's history stops at (their parents were not fetched)."""
    try:
        return frozenset(Path(repo.common_dir, "shallow").read_text(encoding="ascii").split())
    except FileNotFoundError:
        return frozenset()


def git_stderr_line(err: Any) -> str:
    """The first line of git's stderr, without GitPython's "stderr: '...'" wrapping."""
    stderr = str(getattr(err, "stderr", "") or "").strip()
    if stderr.startswith("stderr:"):
        stderr = stderr[len("stderr:"):].strip()
        if len(stderr) >= 2 and stderr[0] == stderr[-1] == "'":
            stderr = stderr[1:-1]
    return first_line(stderr)


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""
