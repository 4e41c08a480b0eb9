"""The budget file as it was at the base branch: the merge-base of HEAD and a ref.

``budget_at_base(repo_dir, "origin/main", Path("macc_budget.yaml"))`` finds the git
repository containing ``repo_dir``, resolves the ref, computes the merge-base of HEAD and
it (the commit this branch forked from, not the ref's tip, so commits that landed on the
base branch later do not show up as changes of this branch) and reads the budget file's
text there. Nothing is rebuilt or re-exported: only the file's text is read.

It reads git through GitPython (with the helpers of `gitrepo`), imported inside
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

from .gitrepo import first_line, git_stderr_line, import_git, is_shallow, open_repo, repo_relative_path, rev_parse

if TYPE_CHECKING:
    from git import Commit, Repo

__all__ = ["BaseBudget", "BaseRefError", "budget_at_base", "check_ref"]

PURPOSE = "the base budget"

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
    git = import_git(BaseRefError, PURPOSE)
    start = Path(os.path.abspath(repo_dir))
    repo = open_repo(git, start, BaseRefError, PURPOSE)
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
    rel_path = repo_relative_path(repo, start, budget_path, BaseRefError)
    head = _head_commit(git, repo)
    tip = _resolve_ref(git, repo, ref)
    base = _merge_base(git, repo, head, tip, ref)
    return BaseBudget(ref=ref, commit=base.hexsha, text=_text_at(base, rel_path, ref))


def _head_commit(git: Any, repo: Repo) -> Commit:
    # Asked of git itself (not GitPython's HEAD parsing), so that a git that refuses the
    # repository (e.g. dubious ownership) is reported as such, not as an unborn branch.
    sha = rev_parse(git, repo, "HEAD^{commit}")
    if sha is None:
        raise BaseRefError(
            f"HEAD of {repo.working_tree_dir} has no commits yet (unborn branch): commit first, "
            "then compare with the base branch"
        )
    return repo.commit(sha)


def _resolve_ref(git: Any, repo: Repo, ref: str) -> Commit:
    sha = rev_parse(git, repo, f"{ref}^{{commit}}")
    if sha is None:
        # ^{object} also checks that the object exists: a full SHA that is not in this
        # clone, or a ref to a missing object, is "unknown", not "not a commit".
        if rev_parse(git, repo, f"{ref}^{{object}}") is not None:
            raise BaseRefError(f"base ref `{ref}` does not name a commit: pass a branch, tag or commit")
        raise BaseRefError(_unknown_ref_message(git, repo, ref))
    return repo.commit(sha)


def _unknown_ref_message(git: Any, repo: Repo, ref: str) -> str:
    guess = _remote_guess(git, repo, ref)
    if guess is not None:
        return f"base ref `{ref}` is not known in this clone, but `{guess}` is: pass `{guess}`"
    if not is_shallow(repo):
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
    head = rev_parse(git, repo, "HEAD^{commit}")
    if not remotes or head is None or rev_parse(git, repo, "HEAD^1^{commit}") is not None:
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
        if rev_parse(git, repo, f"{candidate}^{{commit}}") is not None:
            return candidate
    return None


def _merge_base(git: Any, repo: Repo, head: Commit, tip: Commit, ref: str) -> Commit:
    # Commit objects, not names: git gets two object ids.
    bases = repo.merge_base(head, tip)
    if bases:
        return bases[0]
    if is_shallow(repo):
        raise BaseRefError(
            f"this clone is shallow and HEAD's history does not reach its merge-base with `{ref}`: {SHALLOW_HINT}"
            + _merge_checkout_advice(git, repo)
        )
    raise BaseRefError(
        f"HEAD and base ref `{ref}` have no common ancestor (unrelated histories): "
        "pass the branch this one was created from"
    )


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
    detail = git_stderr_line(err) or first_line(str(err))
    message = f"git failed while reading the base budget at `{ref}`: {detail}"
    if "dubious ownership" in detail:
        message += f"; mark the checkout safe with `git config --global --add safe.directory {workdir}`"
    return message


