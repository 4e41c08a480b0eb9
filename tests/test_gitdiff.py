"""The lines a branch changed, read from a real git repository."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pytest_maccbudget.gitdiff import changed_lines

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    (repo / "pkg" / "models.py").write_text("".join(f"line {n}\n" for n in range(1, 11)))
    (repo / "pkg" / "weird name ü.py").write_text("a\nb\n")
    (repo / "other.py").write_text("x\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "base")
    return repo


def test_added_and_modified_lines_of_the_asked_files(repo: Path) -> None:
    base = _git(repo, "rev-parse", "HEAD")
    lines = (repo / "pkg" / "models.py").read_text().splitlines()
    lines[2] = "line 3 changed"           # modified: line 3
    del lines[5]                           # deleted line 6: no new-side line
    lines.insert(7, "inserted")            # added: new line 8
    lines.append("appended")               # added at the end
    (repo / "pkg" / "models.py").write_text("\n".join(lines) + "\n")
    (repo / "pkg" / "weird name ü.py").write_text("a\nB\n")
    (repo / "other.py").write_text("y\n")  # changed, but not asked about
    _git(repo, "commit", "-q", "-am", "change")
    (repo / "pkg" / "models.py").write_text((repo / "pkg" / "models.py").read_text() + "uncommitted\n")

    changed = changed_lines(repo / "pkg", base, ["models.py", "weird name ü.py", "unchanged.py"])

    # paths relative to the directory asked from; the working tree's uncommitted line counts too
    assert changed == {"models.py": {3, 8, 11, 12}, "weird name ü.py": {2}}


def test_paths_relative_to_a_subdirectory_root(repo: Path) -> None:
    base = _git(repo, "rev-parse", "HEAD")
    (repo / "pkg" / "models.py").write_text("new first line\n" + (repo / "pkg" / "models.py").read_text())
    assert changed_lines(repo / "pkg", base, ["models.py"]) == {"models.py": {1}}
    assert changed_lines(repo, base, ["pkg/models.py"]) == {"pkg/models.py": {1}}


def test_nothing_known_gives_an_empty_answer(repo: Path, tmp_path: Path) -> None:
    assert changed_lines(repo, "0" * 40, ["pkg/models.py"]) == {}          # a commit not in the clone
    assert changed_lines(repo, "--output=/tmp/x", ["pkg/models.py"]) == {}  # never an option
    assert changed_lines(repo, "HEAD", []) == {}
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    assert changed_lines(outside, "HEAD", ["a.py"]) == {}


def test_names_git_quotes(repo: Path) -> None:
    base = _git(repo, "rev-parse", "HEAD")
    names = ['q"uote.py', "tab\tname.py", "back\\slash.py"]
    for name in names:
        (repo / name).write_text("1\n")
    _git(repo, "add", "-A")  # new files are in the diff once git knows them (in CI: committed)
    assert changed_lines(repo, base, names) == {name: {1} for name in names}
