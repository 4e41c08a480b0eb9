"""The budget file as it was at the base branch: the merge-base of HEAD and a ref.

``budget_at_base(repo_dir, "origin/main", Path("macc_budget.yaml"))`` finds the git
repository containing ``repo_dir``, resolves the ref, computes the merge-base of HEAD and
it (the commit this branch forked from, not the ref's tip, so commits that landed on the
base branch later do not show up as changes of this branch) and reads the budget file's
text there. Nothing is rebuilt or re-exported: only the file's text is read.

This is the only module of the package that imports git (GitPython), and it does so inside
functions: ``import pytest_maccbudget.gitbase`` stays cheap and works without git.

Ref names usually come from a CI event payload. They reach git only as elements of an
argument vector (GitPython runs git without a shell), and refs starting with "-" are
rejected so that git cannot read them as options. Every failure is a ``BaseRefError``
whose message is one line saying what is wrong and what to do.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

if TYPE_CHECKING:
    from git import Commit, Repo

__all__ = ["BaseBudget", "BaseRefError", "budget_at_base", "check_ref"]

CHECKOUT_HINT = "in GitHub Actions, use `fetch-depth: 0` in actions/checkout"
SHALLOW_HINT = "run `git fetch --unshallow` (in GitHub Actions, use `fetch-depth: 0` in actions/checkout)"
_HEX_SHA = re.compile(r"[0-9a-fA-F]{7,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SYMLINK_MODE = 0o120000


class BaseRefError(Exception):
    """The budget file at the base ref cannot be read; the message says what to do."""


@dataclass(frozen=True)
class BaseBudget:
    """The budget file at the merge-base of HEAD and ``ref``."""

    ref: str  # as given, e.g. "origin/main"
    commit: str  # the merge-base of HEAD and ref (40 hex digits)
    text: Optional[str]  # the budget file's text at that commit; None when it did not exist there


def budget_at_base(repo_dir: Union[Path, str], ref: str, budget_path: Union[Path, str]) -> BaseBudget:
    """Read ``budget_path`` as it was at the merge-base of HEAD and ``ref``.

    ``repo_dir`` may be any directory inside the working tree; ``budget_path`` is absolute or
    relative to ``repo_dir``. Raises BaseRefError with a one-line, actionable message.
    """
    check_ref(ref)
    git = _import_git()
    start = Path(os.path.abspath(repo_dir))
    repo = _open_repo(git, start)
    try:
        return _read_base(git, repo, start, ref, Path(budget_path))
    except git.CommandError as err:
        raise BaseRefError(_git_failure(err, ref, str(repo.working_tree_dir))) from None
    finally:
        repo.close()


def check_ref(ref: str) -> None:
    """Reject refs that are empty, could be read as git options, or hold control characters."""
    if not isinstance(ref, str) or not ref.strip():
        raise BaseRefError("the base ref is empty: pass a branch, tag or commit, e.g. `origin/main`")
    if ref.startswith("-"):
        raise BaseRefError(f"invalid base ref {ref!r}: a ref cannot start with '-'; pass a branch, tag or commit")
    if _CONTROL.search(ref):
        raise BaseRefError(f"invalid base ref {ref!r}: it contains control characters")


def _read_base(git: Any, repo: Repo, start: Path, ref: str, budget_path: Path) -> BaseBudget:
    rel_path = _repo_relative_path(repo, start, budget_path)
    head = _head_commit(git, repo)
    tip = _resolve_ref(git, repo, ref)
    base = _merge_base(git, repo, head, tip, ref)
    return BaseBudget(ref=ref, commit=base.hexsha, text=_text_at(base, rel_path, ref))


def _import_git() -> Any:
    try:
        import git
    except ImportError as err:  # GitPython missing, or it found no usable git executable
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BaseRefError(
            f"cannot use git to read the base budget ({reason}): install git and GitPython, "
            "or set GIT_PYTHON_GIT_EXECUTABLE to the git binary"
        ) from None
    return git


def _open_repo(git: Any, start: Path) -> Repo:
    try:
        repo = git.Repo(str(start), search_parent_directories=True)
    except git.NoSuchPathError:
        raise BaseRefError(f"cannot read the base budget: directory {start} does not exist") from None
    except git.InvalidGitRepositoryError:
        raise BaseRefError(
            f"cannot read the base budget: {start} is not inside a git repository; "
            "run from a git checkout (in GitHub Actions, run actions/checkout first)"
        ) from None
    if repo.working_tree_dir is None:
        repo.close()
        raise BaseRefError(f"cannot read the base budget: {repo.git_dir} is a bare repository without a working tree")
    return repo


def _repo_relative_path(repo: Repo, start: Path, budget_path: Path) -> str:
    """The budget file's path inside the repository, POSIX style, as git trees name it."""
    root = Path(os.path.realpath(str(repo.working_tree_dir)))
    full = Path(os.path.abspath(budget_path if budget_path.is_absolute() else start / budget_path))
    # Resolve symlinked directories (the repo may be reached through a link) but not the file
    # itself: git records the path, not where a link points.
    real = Path(os.path.realpath(full.parent)) / full.name
    try:
        rel = real.relative_to(root)
    except ValueError:
        raise BaseRefError(f"the budget file {full} is outside the git repository {root}") from None
    if not rel.parts:
        raise BaseRefError(f"the budget file path {full} names the repository root, not a file")
    return rel.as_posix()


def _head_commit(git: Any, repo: Repo) -> Commit:
    # Asked of git itself (not GitPython's HEAD parsing), so that a git that refuses the
    # repository (e.g. dubious ownership) is reported as such, not as an unborn branch.
    sha = _rev_parse(git, repo, "HEAD^{commit}")
    if sha is None:
        raise BaseRefError(
            f"HEAD of {repo.working_tree_dir} has no commits yet (unborn branch): commit first, "
            "then compare with the base branch"
        )
    return repo.commit(sha)


def _resolve_ref(git: Any, repo: Repo, ref: str) -> Commit:
    sha = _rev_parse(git, repo, f"{ref}^{{commit}}")
    if sha is None:
        # ^{object} also checks that the object exists: a full SHA that is not in this
        # clone, or a ref to a missing object, is "unknown", not "not a commit".
        if _rev_parse(git, repo, f"{ref}^{{object}}") is not None:
            raise BaseRefError(f"base ref `{ref}` does not name a commit: pass a branch, tag or commit")
        raise BaseRefError(_unknown_ref_message(git, repo, ref))
    return repo.commit(sha)


def _rev_parse(git: Any, repo: Repo, rev: str) -> Optional[str]:
    """The object name ``rev`` resolves to, or None when git does not know it."""
    try:
        return repo.git.rev_parse("--verify", "--quiet", rev).strip() or None
    except git.GitCommandError as err:
        if err.status == 1:  # --verify --quiet: not a valid object name
            return None
        raise


def _unknown_ref_message(git: Any, repo: Repo, ref: str) -> str:
    guess = _remote_guess(git, repo, ref)
    if guess is not None:
        return f"base ref `{ref}` is not known in this clone, but `{guess}` is: pass `{guess}`"
    if not _is_shallow(repo):
        return f"base ref `{ref}` is not known in this clone: {_fetch_advice(repo, ref, 'git fetch')}"
    # A plain fetch of the ref into a shallow clone does not help: HEAD's history stays cut off
    # above the merge-base. --unshallow fetches the ref and the history both need.
    message = (f"base ref `{ref}` is not known in this clone, which is shallow: "
               f"{_fetch_advice(repo, ref, 'git fetch --unshallow')}")
    return message + _merge_checkout_advice(git, repo)


def _fetch_advice(repo: Repo, ref: str, fetch: str) -> str:
    remotes = [remote.name for remote in repo.remotes]
    if not remotes:
        return "this repository has no remote; pass a branch, tag or commit that exists here"
    if _HEX_SHA.fullmatch(ref):
        return f"fetch its history, e.g. `{fetch} {_default_remote(remotes)} {ref}` ({CHECKOUT_HINT})"
    remote, branch = _split_remote_ref(ref, remotes)
    if remote is not None:
        return f"fetch it, e.g. `{fetch} {remote} {branch}:refs/remotes/{remote}/{branch}` ({CHECKOUT_HINT})"
    remote = _default_remote(remotes)
    branch = ref[len("refs/heads/"):] if ref.startswith("refs/heads/") else ref
    return (
        f"fetch it, e.g. `{fetch} {remote} {branch}:refs/remotes/{remote}/{branch}` and pass "
        f"`{remote}/{branch}` ({CHECKOUT_HINT})"
    )


def _merge_checkout_advice(git: Any, repo: Repo) -> str:
    """The shorter way for a pull request's merge checkout (actions/checkout's default in a
    pull_request run): HEAD is a merge commit whose parents the shallow clone cut off; one more
    commit of depth brings its first parent, the base branch's tip. Empty otherwise."""
    remotes = [remote.name for remote in repo.remotes]
    head = _rev_parse(git, repo, "HEAD^{commit}")
    if not remotes or head is None or _rev_parse(git, repo, "HEAD^1^{commit}") is not None:
        return ""
    raw = repo.git.cat_file("commit", head)  # lists the parents even where the clone cuts them off
    parents = [line for line in raw.split("\n\n", 1)[0].splitlines() if line.startswith("parent ")]
    if len(parents) != 2:
        return ""
    return (f"; or, as HEAD is a merge commit (a pull request checkout), fetch its parents with "
            f"`git fetch --no-tags --depth=2 {_default_remote(remotes)} {head}` and pass `HEAD^1`, "
            "the tip of the branch it merges into")


def _split_remote_ref(ref: str, remotes: list[str]) -> tuple[Optional[str], str]:
    """("origin", "main") for "origin/main" or "refs/remotes/origin/main"; (None, ref) otherwise."""
    name = ref[len("refs/remotes/"):] if ref.startswith("refs/remotes/") else ref
    # Longest remote name first: a remote may be called "up" and another "up/stream".
    for remote in sorted(remotes, key=len, reverse=True):
        if name.startswith(remote + "/") and len(name) > len(remote) + 1:
            return remote, name[len(remote) + 1:]
    return None, ref


def _default_remote(remotes: list[str]) -> str:
    return "origin" if "origin" in remotes else remotes[0]


def _remote_guess(git: Any, repo: Repo, ref: str) -> Optional[str]:
    """"origin/main" when ``ref`` is "main" and only the remote-tracking branch exists."""
    if ref.startswith("refs/") or _HEX_SHA.fullmatch(ref):
        return None
    for remote in repo.remotes:
        candidate = f"{remote.name}/{ref}"
        if _rev_parse(git, repo, f"{candidate}^{{commit}}") is not None:
            return candidate
    return None


def _merge_base(git: Any, repo: Repo, head: Commit, tip: Commit, ref: str) -> Commit:
    # Commit objects, not names: git gets two object ids.
    bases = repo.merge_base(head, tip)
    if bases:
        return bases[0]
    if _is_shallow(repo):
        raise BaseRefError(
            f"this clone is shallow and HEAD's history does not reach its merge-base with `{ref}`: {SHALLOW_HINT}"
            + _merge_checkout_advice(git, repo)
        )
    raise BaseRefError(
        f"HEAD and base ref `{ref}` have no common ancestor (unrelated histories): "
        "pass the branch this one was created from"
    )


def _is_shallow(repo: Repo) -> bool:
    from git import CommandError

    try:
        if repo.git.rev_parse("--is-shallow-repository").strip() == "true":
            return True
    except CommandError:  # git too old for the flag: fall back to the shallow file
        pass
    return Path(repo.common_dir, "shallow").exists()


def _text_at(commit: Commit, rel_path: str, ref: str) -> Optional[str]:
    """The file's text at ``commit``, or None when the file did not exist there."""
    where = f"the merge-base {commit.hexsha[:12]} of HEAD and `{ref}`"
    try:
        obj = commit.tree / rel_path
    except KeyError:
        return None
    if obj.type != "blob":
        raise BaseRefError(f"`{rel_path}` is a {obj.type} at {where}, not a budget file")
    if obj.mode == _SYMLINK_MODE:
        raise BaseRefError(f"`{rel_path}` is a symbolic link at {where}: make the budget file a regular file")
    try:
        data = obj.data_stream.read()
    except ValueError as err:  # the object is missing from the object database
        raise BaseRefError(f"cannot read `{rel_path}` at {where} ({err}): fetch the full history") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BaseRefError(f"`{rel_path}` at {where} is not UTF-8 text ({err.reason} at byte {err.start})") from None


def _git_failure(err: Any, ref: str, workdir: str) -> str:
    """One line for a git command that failed unexpectedly (never its traceback)."""
    detail = _git_stderr_line(err) or _first_line(str(err))
    message = f"git failed while reading the base budget at `{ref}`: {detail}"
    if "dubious ownership" in detail:
        message += f"; mark the checkout safe with `git config --global --add safe.directory {workdir}`"
    return message


def _git_stderr_line(err: Any) -> str:
    """The first line of git's stderr, without GitPython's "stderr: '...'" wrapping."""
    stderr = str(getattr(err, "stderr", "") or "").strip()
    if stderr.startswith("stderr:"):
        stderr = stderr[len("stderr:"):].strip()
        if len(stderr) >= 2 and stderr[0] == stderr[-1] == "'":
            stderr = stderr[1:-1]
    return _first_line(stderr)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""
