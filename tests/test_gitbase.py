"""budget_at_base: the budget file at the merge-base of HEAD and a ref, in throwaway repositories.

Every repository is built with GitPython in tmp_path; clones use file:// URLs (no network).
The user's and the system's git configuration are switched off so they cannot change results.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

git = pytest.importorskip("git")

from pytest_maccbudget.gitbase import BaseBudget, BaseRefError, budget_at_base  # noqa: E402

BUDGET = "macc_budget.yaml"
V1 = "version: 1\nmodels:\n  net:\n    total:\n      macs: 100\n"
V2 = "version: 1\nmodels:\n  net:\n    total:\n      macs: 200\n"
V3_BRANCH = "version: 1\nmodels:\n  net:\n    total:\n      macs: 300\n"
V4_MAIN_LATER = "version: 1\nmodels:\n  net:\n    total:\n      macs: 400\n"


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)


def _configure(repo: git.Repo) -> git.Repo:
    with repo.config_writer() as config:
        config.set_value("user", "name", "Test")
        config.set_value("user", "email", "test@example.com")
        config.set_value("commit", "gpgsign", "false")
    return repo


def _init(path: Path) -> git.Repo:
    path.mkdir(parents=True, exist_ok=True)
    repo = _configure(git.Repo.init(path))
    repo.git.symbolic_ref("HEAD", "refs/heads/main")
    return repo


def _commit(repo: git.Repo, files: dict[str, str], message: str) -> str:
    root = Path(repo.working_tree_dir)
    for name, text in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        repo.git.add("--", name)
    repo.git.commit("-q", "--allow-empty", "-m", message)
    return repo.head.commit.hexsha


def _forked_repo(path: Path, budget: str = BUDGET) -> tuple[git.Repo, dict[str, str]]:
    """main: A (V1) - B (V2) - D (V4); feature from B: C (V3). HEAD on feature.

    The fork point (merge-base of feature and main) is B, not main's tip D.
    """
    repo = _init(path)
    shas = {"A": _commit(repo, {budget: V1, "README.md": "x\n"}, "A")}
    shas["B"] = _commit(repo, {budget: V2}, "B: budget before the branch")
    repo.git.checkout("-q", "-b", "feature")
    shas["C"] = _commit(repo, {budget: V3_BRANCH, "model.py": "grown\n"}, "C: branch raises the budget")
    repo.git.checkout("-q", "main")
    shas["D"] = _commit(repo, {budget: V4_MAIN_LATER}, "D: main moves on after the fork")
    repo.git.checkout("-q", "feature")
    return repo, shas


def _message(excinfo: pytest.ExceptionInfo[BaseRefError]) -> str:
    message = str(excinfo.value)
    assert "\n" not in message, message  # one line, never git's raw output
    assert "Traceback" not in message and "cmdline:" not in message, message
    return message


# --- the merge-base and the file there ------------------------------------------------------


def test_base_is_the_fork_point_not_the_ref_tip(tmp_path: Path) -> None:
    repo, shas = _forked_repo(tmp_path / "repo")
    base = budget_at_base(tmp_path / "repo", "main", Path(BUDGET))
    assert base == BaseBudget(ref="main", commit=shas["B"], text=V2)
    assert base.commit != shas["D"]  # main's tip
    assert repo.heads.main.commit.hexsha == shas["D"]


def test_base_through_a_remote_tracking_ref_of_a_full_clone(tmp_path: Path) -> None:
    origin, shas = _forked_repo(tmp_path / "origin")
    origin.git.checkout("-q", "main")
    clone = _configure(git.Repo.clone_from(f"file://{tmp_path / 'origin'}", tmp_path / "clone"))
    clone.git.checkout("-q", "-b", "work", "origin/feature")
    base = budget_at_base(tmp_path / "clone", "origin/main", BUDGET)
    assert (base.ref, base.commit, base.text) == ("origin/main", shas["B"], V2)
    assert budget_at_base(tmp_path / "clone", "refs/remotes/origin/main", BUDGET).commit == shas["B"]


def test_head_on_the_ref_itself_gives_its_tip(tmp_path: Path) -> None:
    repo, shas = _forked_repo(tmp_path / "repo")
    repo.git.checkout("-q", "main")
    assert budget_at_base(tmp_path / "repo", "main", BUDGET) == BaseBudget("main", shas["D"], V4_MAIN_LATER)


def test_ref_given_as_commit_sha_or_tag(tmp_path: Path) -> None:
    repo, shas = _forked_repo(tmp_path / "repo")
    repo.git.tag("-a", "v1", "-m", "annotated tag", shas["D"])
    assert budget_at_base(tmp_path / "repo", "v1", BUDGET).commit == shas["B"]
    assert budget_at_base(tmp_path / "repo", shas["A"], BUDGET) == BaseBudget(shas["A"], shas["A"], V1)


def test_budget_file_absent_at_base_gives_none(tmp_path: Path) -> None:
    repo = _init(tmp_path / "repo")
    base_sha = _commit(repo, {"README.md": "no budget yet\n"}, "A")
    repo.git.checkout("-q", "-b", "feature")
    _commit(repo, {BUDGET: V1}, "add budget")
    base = budget_at_base(tmp_path / "repo", "main", BUDGET)
    assert base == BaseBudget(ref="main", commit=base_sha, text=None)


def test_budget_file_deleted_later_is_read_from_history(tmp_path: Path) -> None:
    repo, shas = _forked_repo(tmp_path / "repo")
    repo.git.rm("-q", BUDGET)
    repo.git.commit("-q", "-m", "drop budget on the branch")
    assert budget_at_base(tmp_path / "repo", "main", BUDGET).text == V2


# --- paths -----------------------------------------------------------------------------------


@pytest.fixture()
def nested(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Budget at ml/macc_budget.yaml of the repo; returns (repo root, shas)."""
    _, shas = _forked_repo(tmp_path / "repo", budget=f"ml/{BUDGET}")
    (tmp_path / "repo" / "ml" / "sub").mkdir()
    return tmp_path / "repo", shas


def test_budget_path_relative_to_a_subdirectory(nested: tuple[Path, dict[str, str]]) -> None:
    root, shas = nested
    base = budget_at_base(root / "ml", "main", Path(BUDGET))
    assert (base.commit, base.text) == (shas["B"], V2)
    assert budget_at_base(root / "ml" / "sub", "main", Path("..") / BUDGET).text == V2
    assert budget_at_base(root, "main", Path("ml") / BUDGET).text == V2
    assert budget_at_base(str(root / "ml"), "main", BUDGET).text == V2


def test_budget_path_absolute(nested: tuple[Path, dict[str, str]]) -> None:
    root, shas = nested
    base = budget_at_base(root / "ml" / "sub", "main", root / "ml" / BUDGET)
    assert (base.commit, base.text) == (shas["B"], V2)


def test_repo_reached_through_a_symlink(nested: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root, _ = nested
    link = tmp_path / "link"
    try:
        link.symlink_to(root, target_is_directory=True)
    except (OSError, NotImplementedError):
        pytest.skip("symlinks not available")
    assert budget_at_base(link / "ml", "main", BUDGET).text == V2
    assert budget_at_base(link / "ml", "main", root / "ml" / BUDGET).text == V2


def test_budget_path_outside_the_repository(nested: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root, _ = nested
    with pytest.raises(BaseRefError) as excinfo:
        budget_at_base(root / "ml", "main", tmp_path / BUDGET)
    assert "outside the git repository" in _message(excinfo)


def test_budget_path_that_is_a_directory_at_base(nested: tuple[Path, dict[str, str]]) -> None:
    root, _ = nested
    with pytest.raises(BaseRefError) as excinfo:
        budget_at_base(root, "main", "ml")
    assert "`ml` is a tree" in _message(excinfo)


# --- refs --------------------------------------------------------------------------------------


def test_unknown_remote_ref_says_what_to_fetch(tmp_path: Path) -> None:
    _forked_repo(tmp_path / "origin")
    clone = _configure(git.Repo.clone_from(f"file://{tmp_path / 'origin'}", tmp_path / "clone"))
    assert clone.head.is_valid()
    with pytest.raises(BaseRefError) as excinfo:
        budget_at_base(tmp_path / "clone", "origin/release", BUDGET)
    message = _message(excinfo)
    assert "`origin/release` is not known" in message
    assert "git fetch origin release:refs/remotes/origin/release" in message
    assert "fetch-depth: 0" in message


def test_unknown_branch_name_points_at_the_remote_tracking_ref(tmp_path: Path) -> None:
    _forked_repo(tmp_path / "origin")
    clone = _configure(git.Repo.clone_from(f"file://{tmp_path / 'origin'}", tmp_path / "clone"))
    clone.git.checkout("-q", "-b", "work", "origin/feature")
    clone.git.branch("-q", "-D", "feature")
    with pytest.raises(BaseRefError) as excinfo:
        budget_at_base(tmp_path / "clone", "feature", BUDGET)
    assert "`feature` is not known in this clone, but `origin/feature` is: pass `origin/feature`" in _message(
        excinfo
    )


def test_unknown_plain_branch_name_says_what_to_fetch(tmp_path: Path) -> None:
    _forked_repo(tmp_path / "origin")
    _configure(git.Repo.clone_from(f"file://{tmp_path / 'origin'}", tmp_path / "clone"))
    for ref in ("release", "refs/heads/release"):
        with pytest.raises(BaseRefError) as excinfo:
            budget_at_base(tmp_path / "clone", ref, BUDGET)
        message = _message(excinfo)
        assert "git fetch origin release:refs/remotes/origin/release` and pass `origin/release`" in message
        assert "fetch-depth: 0" in message


def test_unknown_commit_sha_says_what_to_fetch(tmp_path: Path) -> None:
    _forked_repo(tmp_path / "origin")
    _configure(git.Repo.clone_from(f"file://{tmp_path / 'origin'}", tmp_path / "clone"))
    sha = "0123456789abcdef0123456789abcdef01234567"
    with pytest.raises(BaseRefError) as excinfo:
        budget_at_base(tmp_path / "clone", sha, BUDGET)
    assert f"git fetch origin {sha}" in _message(excinfo)


def test_unknown_ref_without_remote(tmp_path: Path) -> None:
    _forked_repo(tmp_path / "repo")
    with pytest.raises(BaseRefError) as excinfo:
        budget_at_base(tmp_path / "repo", "nope", BUDGET)
    message = _message(excinfo)
    assert "`nope` is not known" in message and "no remote" in message


def test_ref_that_is_not_a_commit(tmp_path: Path) -> None:
    _forked_repo(tmp_path / "repo")
    with pytest.raises(BaseRefError) as excinfo:
        budget_at_base(tmp_path / "repo", "main^{tree}", BUDGET)
    assert "does not name a commit" in _message(excinfo)


@pytest.mark.parametrize("ref", ["-", "--output=owned.txt", "-h", "--all"])
def test_ref_starting_with_dash_is_rejected(tmp_path: Path, ref: str) -> None:
    _forked_repo(tmp_path / "repo")
    with pytest.raises(BaseRefError) as excinfo:
        budget_at_base(tmp_path / "repo", ref, BUDGET)
    assert "cannot start with '-'" in _message(excinfo)


@pytest.mark.parametrize("ref", ["", "   ", "main\nother", "ma\x00in"])
def test_empty_or_control_character_refs_are_rejected(tmp_path: Path, ref: str) -> None:
    _forked_repo(tmp_path / "repo")
    with pytest.raises(BaseRefError) as excinfo:
        budget_at_base(tmp_path / "repo", ref, BUDGET)
    _message(excinfo)


def test_shell_metacharacters_are_just_an_unknown_ref(tmp_path: Path) -> None:
    _forked_repo(tmp_path / "repo")
    marker = tmp_path / "pwned"
    with pytest.raises(BaseRefError) as excinfo:
        budget_at_base(tmp_path / "repo", f"main;touch {marker}$(touch {marker})", BUDGET)
    assert "is not known" in _message(excinfo)
    assert not marker.exists()


# --- shallow clones, unrelated histories, unborn HEAD, no repository --------------------------


def _shallow_clone(tmp_path: Path) -> tuple[git.Repo, dict[str, str]]:
    """A --depth 1 clone of the feature branch only (what actions/checkout does by default)."""
    _, shas = _forked_repo(tmp_path / "origin")
    clone = git.Repo.clone_from(f"file://{tmp_path / 'origin'}", tmp_path / "clone", depth=1, branch="feature")
    return _configure(clone), shas


def _suggested_commands(message: str) -> list[str]:
    """The git commands a message suggests, in order (each in backticks)."""
    return re.findall(r"`(git [^`]+)`", message)


def _follow(clone: Path, command: str, copy: Path) -> Path:
    """Run a suggested command, as a user would paste it, in a copy of the clone."""
    shutil.copytree(clone, copy, symlinks=True)
    subprocess.run(shlex.split(command), cwd=copy, check=True, capture_output=True)
    return copy


def test_shallow_clone_without_the_ref(tmp_path: Path) -> None:
    _, shas = _shallow_clone(tmp_path)
    with pytest.raises(BaseRefError) as excinfo:
        budget_at_base(tmp_path / "clone", "origin/main", BUDGET)
    message = _message(excinfo)
    assert "is not known in this clone, which is shallow" in message and "fetch-depth: 0" in message
    assert _suggested_commands(message) == ["git fetch --unshallow origin main:refs/remotes/origin/main"]
    assert "HEAD^1" not in message  # HEAD is no merge commit here

    # Following the advice fixes it.
    fixed = _follow(tmp_path / "clone", _suggested_commands(message)[0], tmp_path / "fixed")
    assert budget_at_base(fixed, "origin/main", BUDGET) == BaseBudget("origin/main", shas["B"], V2)


def test_shallow_clone_without_a_commit_ref(tmp_path: Path) -> None:
    _, shas = _shallow_clone(tmp_path)
    with pytest.raises(BaseRefError) as excinfo:
        budget_at_base(tmp_path / "clone", shas["D"], BUDGET)
    [command] = _suggested_commands(_message(excinfo))
    assert command == f"git fetch --unshallow origin {shas['D']}"
    fixed = _follow(tmp_path / "clone", command, tmp_path / "fixed")
    assert budget_at_base(fixed, shas["D"], BUDGET) == BaseBudget(shas["D"], shas["B"], V2)


def test_shallow_clone_whose_history_does_not_reach_the_merge_base(tmp_path: Path) -> None:
    clone, shas = _shallow_clone(tmp_path)
    clone.git.fetch("-q", "--depth=1", "origin", "main:refs/remotes/origin/main")
    assert clone.git.rev_parse("origin/main") == shas["D"]  # the ref resolves, its history does not
    with pytest.raises(BaseRefError) as excinfo:
        budget_at_base(tmp_path / "clone", "origin/main", BUDGET)
    message = _message(excinfo)
    assert "shallow" in message and "fetch-depth: 0" in message
    assert _suggested_commands(message) == ["git fetch --unshallow"]

    # Following the advice fixes it.
    fixed = _follow(tmp_path / "clone", "git fetch --unshallow", tmp_path / "fixed")
    assert budget_at_base(fixed, "origin/main", BUDGET) == BaseBudget("origin/main", shas["B"], V2)


def _pull_request_checkout(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """A pull_request run's checkout as actions/checkout makes it by default: GitHub's merge of
    feature into main (published as refs/pull/7/merge) fetched one commit deep into a new
    repository. Returns the merge commit and the origin's commits."""
    origin, shas = _forked_repo(tmp_path / "origin")
    origin.git.checkout("-q", "--detach", "main")
    origin.git.merge("-q", "--no-ff", "-X", "ours", "-m", "Merge pull request #7", "feature")  # both edit the budget
    merge = origin.head.commit.hexsha
    origin.git.update_ref("refs/pull/7/merge", merge)
    origin.git.checkout("-q", "main")
    clone = _init(tmp_path / "clone")
    clone.git.remote("add", "origin", f"file://{tmp_path / 'origin'}")
    clone.git.config("--local", "gc.auto", "0")
    clone.git.fetch("-q", "--no-tags", "--prune", "--no-recurse-submodules", "--depth=1", "origin",
                    f"+{merge}:refs/remotes/pull/7/merge")
    clone.git.checkout("-q", "--force", "refs/remotes/pull/7/merge")
    return merge, shas


def test_pull_request_merge_checkout_without_the_base_branch(tmp_path: Path) -> None:
    """Both suggested fixes work: the full history of the base branch, or one more commit of
    depth and the merge's first parent."""
    merge, shas = _pull_request_checkout(tmp_path)
    with pytest.raises(BaseRefError) as excinfo:
        budget_at_base(tmp_path / "clone", "origin/main", BUDGET)
    message = _message(excinfo)
    unshallow, deepen = _suggested_commands(message)
    assert unshallow == "git fetch --unshallow origin main:refs/remotes/origin/main"
    assert deepen == f"git fetch --no-tags --depth=2 origin {merge}"
    assert "and pass `HEAD^1`" in message

    whole = _follow(tmp_path / "clone", unshallow, tmp_path / "whole")
    assert budget_at_base(whole, "origin/main", BUDGET) == BaseBudget("origin/main", shas["D"], V4_MAIN_LATER)
    deeper = _follow(tmp_path / "clone", deepen, tmp_path / "deeper")
    assert budget_at_base(deeper, "HEAD^1", BUDGET) == BaseBudget("HEAD^1", shas["D"], V4_MAIN_LATER)
    assert Path(deeper, ".git", "shallow").exists()  # still shallow: two commits were enough


def test_pull_request_merge_checkout_after_the_old_advice(tmp_path: Path) -> None:
    """`git fetch origin main:refs/remotes/origin/main` (the advice before) leaves the merge-base
    out of reach; the new advice names two fixes that work."""
    merge, shas = _pull_request_checkout(tmp_path)
    subprocess.run(["git", "fetch", "-q", "origin", "main:refs/remotes/origin/main"], cwd=tmp_path / "clone",
                   check=True)
    with pytest.raises(BaseRefError) as excinfo:
        budget_at_base(tmp_path / "clone", "origin/main", BUDGET)
    unshallow, deepen = _suggested_commands(_message(excinfo))
    assert (unshallow, deepen) == ("git fetch --unshallow", f"git fetch --no-tags --depth=2 origin {merge}")
    whole = _follow(tmp_path / "clone", unshallow, tmp_path / "whole")
    assert budget_at_base(whole, "origin/main", BUDGET).commit == shas["D"]
    deeper = _follow(tmp_path / "clone", deepen, tmp_path / "deeper")
    assert budget_at_base(deeper, "HEAD^1", BUDGET).commit == shas["D"]


def test_unrelated_histories(tmp_path: Path) -> None:
    repo, _ = _forked_repo(tmp_path / "repo")
    repo.git.checkout("-q", "--orphan", "other")
    _commit(repo, {BUDGET: V1}, "unrelated root")
    with pytest.raises(BaseRefError) as excinfo:
        budget_at_base(tmp_path / "repo", "main", BUDGET)
    message = _message(excinfo)
    assert "no common ancestor" in message and "shallow" not in message


def test_unborn_head(tmp_path: Path) -> None:
    _init(tmp_path / "repo")
    with pytest.raises(BaseRefError) as excinfo:
        budget_at_base(tmp_path / "repo", "main", BUDGET)
    assert "no commits yet" in _message(excinfo)


def test_not_a_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(BaseRefError) as excinfo:
        budget_at_base(plain, "origin/main", BUDGET)
    assert "not inside a git repository" in _message(excinfo)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(BaseRefError) as excinfo:
        budget_at_base(tmp_path / "nowhere", "origin/main", BUDGET)
    assert "does not exist" in _message(excinfo)


def test_ref_to_a_missing_object(tmp_path: Path) -> None:
    repo, _ = _forked_repo(tmp_path / "repo")
    Path(repo.git_dir, "refs", "heads", "broken").write_text("1" * 40 + "\n")
    with pytest.raises(BaseRefError) as excinfo:
        budget_at_base(tmp_path / "repo", "broken", BUDGET)
    assert "`broken` is not known in this clone" in _message(excinfo)


def test_unexpected_git_failure_is_one_line(tmp_path: Path) -> None:
    _forked_repo(tmp_path / "repo")
    # git exits 128 (not "unknown name"): the branch has no upstream configured.
    with pytest.raises(BaseRefError) as excinfo:
        budget_at_base(tmp_path / "repo", "@{upstream}", BUDGET)
    message = _message(excinfo)
    assert message.startswith("git failed while reading the base budget at `@{upstream}`: fatal: ")
    assert message.endswith("no upstream configured for branch 'feature'")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_dubious_ownership_says_how_to_mark_it_safe(tmp_path: Path) -> None:
    _forked_repo(tmp_path / "repo")
    for path in [tmp_path / "repo", *(tmp_path / "repo").rglob("*")]:
        os.lchown(path, 65534, 65534)
    with pytest.raises(BaseRefError) as excinfo:
        budget_at_base(tmp_path / "repo", "main", BUDGET)
    message = _message(excinfo)
    repo_path = tmp_path / "repo"
    assert f"dubious ownership in repository at '{repo_path}';" in message
    assert message.endswith(f"`git config --global --add safe.directory {repo_path}`")


def test_non_utf8_budget_at_base(tmp_path: Path) -> None:
    repo = _init(tmp_path / "repo")
    (tmp_path / "repo" / BUDGET).write_bytes(b"models: \xff\n")
    repo.git.add(BUDGET)
    repo.git.commit("-q", "-m", "latin-1")
    with pytest.raises(BaseRefError) as excinfo:
        budget_at_base(tmp_path / "repo", "main", BUDGET)
    assert "not UTF-8" in _message(excinfo)


# --- import cost ---------------------------------------------------------------------------


def test_import_does_not_import_git() -> None:
    code = "import sys, pytest_maccbudget.gitbase; print('git' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_linked_worktree(tmp_path: Path) -> None:
    repo, shas = _forked_repo(tmp_path / "repo")
    repo.git.checkout("-q", "main")
    repo.git.worktree("add", "-q", str(tmp_path / "wt"), "feature")
    assert budget_at_base(tmp_path / "wt", "main", BUDGET) == BaseBudget("main", shas["B"], V2)
