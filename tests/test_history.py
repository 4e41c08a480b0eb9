"""`budget_history` and `maccbudget history`, on throwaway git repositories built here.

The main repository's first-parent line (dates are fixed, so commits and output are stable):

    1 Record budgets             net 1.00 M, tiny 500
    2 Grow net's conv1           net 1.20 M
    3 Docs only                  (README only)
    4 Shrink tiny                tiny 400
      feature: 5 Widen net head (net 1.50 M), 6 Widen net head more (net 1.60 M)
    7 Unrelated main work        (other.txt only)
    8 Merge feature              net 1.20 M -> 1.60 M in one step: 5 and 6 are not on the line
    9 Broken budget              conflict markers: skipped
   10 Fix budget: add <img...>   adds the hostile model
   11 Remove tiny; grow hostile  tiny removed, hostile 2.00 k -> 3.00 k

The user's and the system's git configuration are switched off so they cannot change results.
"""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Optional

import pytest

from pytest_maccbudget.cli import main
from pytest_maccbudget.history import (
    ADDED, CHANGED, REMOVED, START, HistoryError, HistoryPoint, budget_history, trend_phrase,
)

BUDGET = "macc_budget.yaml"
HOSTILE = "<img src=x> | `tick` @someone"
HOSTILE_SUBJECT = "Fix budget: add <img src=x> | `tick` @someone"
NET1 = {"macs": 1_000_000, "flops": 2_000_000, "params": 5_000, "param_bytes": 20_000, "peak_activation_bytes": 40_000}
NET2 = {**NET1, "macs": 1_200_000, "flops": 2_400_000, "peak_activation_bytes": 48_000}
NET_FEATURE = {**NET2, "macs": 1_500_000, "flops": 3_000_000, "params": 6_000, "param_bytes": 24_000}
NET3 = {**NET_FEATURE, "macs": 1_600_000, "flops": 3_200_000}
TINY1 = {"macs": 500, "flops": 1_000, "params": 50, "param_bytes": 200, "peak_activation_bytes": 1_000}
TINY2 = {**TINY1, "macs": 400, "flops": 800}
HOSTILE1 = {"macs": 2_000, "flops": 4_000, "params": 10, "param_bytes": 40, "peak_activation_bytes": 100}
HOSTILE2 = {**HOSTILE1, "macs": 3_000, "flops": 6_000}
CONFLICT = """\
version: 1
models:
<<<<<<< HEAD
  net:
    total: {macs: 1600000}
=======
  net:
    total: {macs: 1700000}
>>>>>>> other
"""
CLEAN_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0"}


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in CLEAN_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)


# --- building repositories ---------------------------------------------------------------


def git(repo: Path, *args: str, day: int = 1) -> str:
    """Run git in repo as user t, with author and committer date 2026-11-<day> 10:00 UTC."""
    date = f"2026-11-{day:02d}T10:00:00+00:00"
    env = {**os.environ, **CLEAN_ENV, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date,
           "GIT_LITERAL_PATHSPECS": "1"}  # a test path may hold glob characters
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false",
               "-c", "init.defaultBranch=main", "-C", str(repo), *args]
    return subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout.strip()


def budget_yaml(models: Mapping[str, Mapping[str, int]]) -> str:
    lines = ["version: 1", "models:"]
    for name, totals in models.items():
        lines.append(f"  {json.dumps(name)}:")  # a JSON string is a YAML double-quoted scalar
        lines.append("    total: {" + ", ".join(f"{metric}: {value}" for metric, value in totals.items()) + "}")
    return "\n".join(lines) + "\n"


def commit(repo: Path, day: int, message: str, files: Mapping[str, Optional[str]]) -> str:
    """Write (or, for None, delete) files and commit them; returns the commit's SHA."""
    for name, text in files.items():
        if text is None:
            git(repo, "rm", "-q", "--", name)
        else:
            (repo / name).write_text(text, encoding="utf-8")
            git(repo, "add", "--", name)
    git(repo, "commit", "-q", "--allow-empty", "-m", message, day=day)
    return git(repo, "rev-parse", "HEAD")


def init(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q")
    return path


def build_main_repo(path: Path) -> dict[int, str]:
    """The repository of the module docstring; returns the SHA of each numbered commit."""
    repo = init(path)
    shas = {1: commit(repo, 1, "Record budgets", {BUDGET: budget_yaml({"net": NET1, "tiny": TINY1})})}
    shas[2] = commit(repo, 2, "Grow net's conv1", {BUDGET: budget_yaml({"net": NET2, "tiny": TINY1})})
    shas[3] = commit(repo, 3, "Docs only", {"README.md": "docs\n"})
    shas[4] = commit(repo, 4, "Shrink tiny", {BUDGET: budget_yaml({"net": NET2, "tiny": TINY2})})
    git(repo, "checkout", "-q", "-b", "feature")
    shas[5] = commit(repo, 5, "Widen net head", {BUDGET: budget_yaml({"net": NET_FEATURE, "tiny": TINY2})})
    shas[6] = commit(repo, 6, "Widen net head more", {BUDGET: budget_yaml({"net": NET3, "tiny": TINY2})})
    git(repo, "checkout", "-q", "main")
    shas[7] = commit(repo, 7, "Unrelated main work", {"other.txt": "work\n"})
    git(repo, "merge", "-q", "--no-ff", "feature", "-m", "Merge feature: widen net head", day=8)
    shas[8] = git(repo, "rev-parse", "HEAD")
    shas[9] = commit(repo, 9, "Broken budget", {BUDGET: CONFLICT})
    shas[10] = commit(repo, 10, HOSTILE_SUBJECT, {BUDGET: budget_yaml({"net": NET3, "tiny": TINY2, HOSTILE: HOSTILE1})})
    shas[11] = commit(repo, 11, "Remove tiny; grow the hostile model",
                      {BUDGET: budget_yaml({"net": NET3, HOSTILE: HOSTILE2})})
    return shas


@pytest.fixture(scope="module")
def main_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, str]]:
    path = tmp_path_factory.mktemp("history") / "repo"
    return path, build_main_repo(path)


@pytest.fixture(scope="module")
def shallow_repo(main_repo: tuple[Path, dict[int, str]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    origin, _ = main_repo
    clone = tmp_path_factory.mktemp("shallow") / "clone"
    git(origin, "clone", "-q", "--depth=2", origin.as_uri(), str(clone))
    return clone


def short(repo: Path, sha: str) -> str:
    return git(repo, "rev-parse", "--short", sha)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["history", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def date(day: int) -> str:
    return f"2026-11-{day:02d}T10:00:00+00:00"


def totals(values: Optional[Mapping[str, int]]) -> dict[str, Optional[int]]:
    return {metric: None if values is None else values[metric] for metric in NET1}


def point(repo: Path, shas: dict[int, str], day: int, subject: str, kind: str, now: Optional[Mapping[str, int]],
          before: Optional[Mapping[str, int]] = None) -> HistoryPoint:
    return HistoryPoint(commit=shas[day], short=short(repo, shas[day]), date=date(day), subject=subject, kind=kind,
                        totals=totals(now), previous=None if before is None else totals(before))


def net_points(repo: Path, shas: dict[int, str]) -> list[HistoryPoint]:
    return [point(repo, shas, 1, "Record budgets", ADDED, NET1),
            point(repo, shas, 2, "Grow net's conv1", CHANGED, NET2, NET1),
            point(repo, shas, 8, "Merge feature: widen net head", CHANGED, NET3, NET2)]


def tiny_points(repo: Path, shas: dict[int, str]) -> list[HistoryPoint]:
    return [point(repo, shas, 1, "Record budgets", ADDED, TINY1),
            point(repo, shas, 4, "Shrink tiny", CHANGED, TINY2, TINY1),
            point(repo, shas, 11, "Remove tiny; grow the hostile model", REMOVED, None, TINY2)]


def skipped_note(repo: Path, shas: dict[int, str]) -> str:
    return (f"skipped commit {short(repo, shas[9])} (2026-11-09): macc_budget.yaml:4: invalid YAML: "
            "could not find expected ':' (while scanning a simple key)")


# --- the API -----------------------------------------------------------------------------


def test_each_model_lists_the_first_parent_commits_that_changed_its_totals(main_repo) -> None:
    repo, shas = main_repo
    history = budget_history(repo, BUDGET)
    assert list(history.models) == [HOSTILE, "net", "tiny"]
    assert list(history.models["net"].points) == net_points(repo, shas)
    assert list(history.models["tiny"].points) == tiny_points(repo, shas)
    assert list(history.models[HOSTILE].points) == [
        point(repo, shas, 10, HOSTILE_SUBJECT, ADDED, HOSTILE1),
        point(repo, shas, 11, "Remove tiny; grow the hostile model", CHANGED, HOSTILE2, HOSTILE1),
    ]
    assert [model.earlier for model in history.models.values()] == [0, 0, 0]
    assert (history.budget_path, history.rev, history.commit, history.file_commits) == (BUDGET, "HEAD", shas[11], 7)
    assert history.shallow_boundary is None


def test_a_merged_branch_is_one_step_and_commits_off_the_file_are_not_points(main_repo) -> None:
    repo, shas = main_repo
    history = budget_history(repo, BUDGET)
    commits = {p.commit for model in history.models.values() for p in model.points}
    assert commits == {shas[day] for day in (1, 2, 4, 8, 10, 11)}  # not 3, 7 (other files), 5, 6 (the branch)
    merge = history.models["net"].points[-1]
    assert (merge.commit, merge.previous["macs"], merge.totals["macs"]) == (shas[8], 1_200_000, 1_600_000)
    assert all(p.totals["macs"] != NET_FEATURE["macs"] for p in history.models["net"].points)
    assert [merge.change(metric) for metric in NET1] == [400_000, 800_000, 1_000, 4_000, 0]


def test_a_version_that_does_not_parse_is_skipped_with_a_note_naming_the_commit(main_repo) -> None:
    repo, shas = main_repo
    history = budget_history(repo, BUDGET)
    assert [(skip.commit, skip.subject) for skip in history.skipped] == [(shas[9], "Broken budget")]
    assert history.notes == (skipped_note(repo, shas),)
    # the fixed file changed no number of net's or tiny's: no point at the fix for them
    assert shas[10] not in {p.commit for p in history.models["net"].points + history.models["tiny"].points}


def test_last_keeps_the_most_recent_points_and_their_change_from_the_one_before(main_repo) -> None:
    repo, shas = main_repo
    net = budget_history(repo, BUDGET, last=2).models["net"]
    assert list(net.points) == net_points(repo, shas)[1:]
    assert net.earlier == 1
    assert net.points[0].change("macs") == 200_000  # against commit 1, which is not listed
    with pytest.raises(ValueError, match="positive"):
        budget_history(repo, BUDGET, last=0)


def test_models_filter_and_rev(main_repo) -> None:
    repo, shas = main_repo
    assert list(budget_history(repo, BUDGET, models=["tiny", "never-recorded"]).models) == ["tiny"]
    assert list(budget_history(repo, BUDGET, models="net").models) == ["net"]  # one name, not its letters
    at_four = budget_history(repo, BUDGET, rev=shas[4])
    assert list(at_four.models) == ["net", "tiny"]
    assert list(at_four.models["net"].points) == net_points(repo, shas)[:2]
    assert list(at_four.models["tiny"].points) == tiny_points(repo, shas)[:2]
    assert (at_four.commit, at_four.file_commits, at_four.skipped) == (shas[4], 3, ())
    assert budget_history(repo / "sub-does-not-matter" / "..", BUDGET, rev="feature").models["net"].points[-1] == \
        point(repo, shas, 6, "Widen net head more", CHANGED, NET3, NET_FEATURE)


def test_shallow_clone_history_stops_at_the_boundary_and_says_so(main_repo, shallow_repo) -> None:
    repo, shas = main_repo
    history = budget_history(shallow_repo, BUDGET)
    assert history.shallow_boundary == shas[10]
    assert history.file_commits == 2
    assert history.notes == (f"history ends at a shallow clone boundary at {shas[10][:12]}: "
                             "fetch more with `git fetch --deepen=N`",)
    assert list(history.models["net"].points) == [point(repo, shas, 10, HOSTILE_SUBJECT, START, NET3)]
    assert list(history.models["tiny"].points) == [
        point(repo, shas, 10, HOSTILE_SUBJECT, START, TINY2),
        point(repo, shas, 11, "Remove tiny; grow the hostile model", REMOVED, None, TINY2),
    ]
    assert [p.kind for p in history.models[HOSTILE].points] == [START, CHANGED]


def test_trend_phrase(main_repo) -> None:
    repo, shas = main_repo
    history = budget_history(repo, BUDGET)
    net, tiny = history.models["net"].points, history.models["tiny"].points
    first = short(repo, shas[1])
    assert trend_phrase(net) == f"MACs 1.00 M → 1.20 M → 1.60 M over the last 3 changes (since {first}, 2026-11-01)"
    assert trend_phrase(net, "peak_activation_bytes") == (
        f"peak activation memory 40.0 KB → 48.0 KB → 48.0 KB over the last 3 changes (since {first}, 2026-11-01)")
    assert trend_phrase(tiny, "params") == f"params 50 → 50 → removed over the last 3 changes (since {first}, 2026-11-01)"
    assert trend_phrase(net[-1:]) == f"MACs 1.60 M since {short(repo, shas[8])} (2026-11-08)"
    assert trend_phrase([]) == "MACs: no recorded changes"
    with pytest.raises(ValueError, match="unknown metric 'layer_macs'"):
        trend_phrase(net, "layer_macs")


def test_older_formats_deleted_files_and_literal_paths(tmp_path: Path) -> None:
    """1 an older format (skipped), 2 recorded, 3 file deleted, 4 back, 5 an unsupported version
    (skipped). The path holds glob characters: `budget[1].yaml` must not match `budget1.yaml`."""
    repo = init(tmp_path / "repo")
    path = "ci/budget[1].yaml"
    (repo / "ci").mkdir()
    shas = {1: commit(repo, 1, "Old format", {path: "models:\n  net:\n    totals: {macs: 1}\n"})}
    shas[2] = commit(repo, 2, "Record net", {path: budget_yaml({"net": NET1})})
    commit(repo, 3, "A look-alike file", {"ci/budget1.yaml": budget_yaml({"impostor": NET1})})
    shas[3] = commit(repo, 4, "Delete the budget", {path: None})
    shas[4] = commit(repo, 5, "Bring it back", {path: budget_yaml({"net": NET1})})
    shas[5] = commit(repo, 6, "Version 2", {path: "version: 2\nmodels: {}\n"})
    history = budget_history(repo / "ci", "budget[1].yaml")
    assert history.budget_path == path and history.file_commits == 5
    assert list(history.models) == ["net"]
    assert [(p.commit, p.kind) for p in history.models["net"].points] == [
        (shas[2], ADDED), (shas[3], REMOVED), (shas[4], ADDED)]
    # the reason is parse_budget's one line: file, line and key (the rest is the reader's wording)
    assert [skip.commit for skip in history.skipped] == [shas[1], shas[5]]
    assert history.skipped[0].reason.startswith("ci/budget[1].yaml:3: models.net.totals: unknown key 'totals'; ")
    assert history.skipped[1].reason.startswith("ci/budget[1].yaml:1: version: unsupported budget file version '2'")
    # A clone cut where the file did not exist loses nothing that can be told: no boundary note.
    clone = tmp_path / "clone"
    git(repo, "clone", "-q", "--depth=3", repo.as_uri(), str(clone))
    cut = budget_history(clone, path)
    assert cut.shallow_boundary is None and cut.file_commits == 2
    assert [(p.commit, p.kind) for p in cut.models["net"].points] == [(shas[4], ADDED)]


@pytest.mark.parametrize("rev, message", [
    ("nope", "unknown revision `nope`: pass a branch, tag or commit of this repository"),
    ("-x", "invalid revision '-x': a revision cannot start with '-'"),
    ("HEAD^{tree}", "revision `HEAD^{tree}` does not name a commit: pass a branch, tag or commit"),
    ("", "the revision is empty: pass a branch, tag or commit, e.g. `HEAD`"),
])
def test_bad_revisions(main_repo, rev: str, message: str) -> None:
    repo, _ = main_repo
    with pytest.raises(HistoryError) as excinfo:
        budget_history(repo, BUDGET, rev=rev)
    assert str(excinfo.value) == message


def test_not_a_repository_no_commits_and_a_file_never_committed(main_repo, tmp_path: Path) -> None:
    repo, shas = main_repo
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(HistoryError, match=r"^cannot read the history: .*plain is not inside a git repository; "
                                           r"run from a git checkout \(in GitHub Actions, run actions/checkout first\)$"):
        budget_history(plain, BUDGET)
    empty = init(tmp_path / "empty")
    with pytest.raises(HistoryError, match=r"^HEAD of .*empty has no commits yet: commit the budget file first$"):
        budget_history(empty, BUDGET)
    with pytest.raises(HistoryError) as excinfo:
        budget_history(repo, "README.md.yaml")
    assert str(excinfo.value) == (f"`README.md.yaml` is not in the first-parent history of `HEAD` ({shas[11][:12]}): "
                                  "commit the budget file first, or give the path of a committed one")
    with pytest.raises(HistoryError, match=r"^the budget file .*plain/b.yaml is outside the git repository "):
        budget_history(repo, plain / "b.yaml")


def test_importing_the_modules_imports_neither_git_nor_pytest_torch_onnx() -> None:
    code = ("import sys, pytest_maccbudget.history, pytest_maccbudget.history_report; "
            "print(sorted(m for m in ('git', 'pytest', 'torch', 'onnx') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- the command: table ------------------------------------------------------------------


def test_cli_table(main_repo, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, shas = main_repo
    monkeypatch.chdir(repo)
    s = {day: short(repo, sha) for day, sha in shas.items()}
    code, out, err = run(capsys, "--model", "net", "--model", "tiny")
    assert (code, err) == (0, "")
    change1 = "MACs +200 k (+20.0%); peak activation memory +8.00 KB (+20.0%)"
    change2 = "MACs +400 k (+33.3%); params +1.00 k (+20.0%)"
    assert out == f"""\
macc_budget.yaml: first-parent history of HEAD ({shas[11][:12]}): 7 commits changed the file, 2 models

net: 3 changes, oldest first
commit   date          MACs  params  peak act. memory  change{' ' * (len(change1) - 6)}  subject
-------  ----------  ------  ------  ----------------  {'-' * len(change1)}  -----------------------------
{s[1]}  2026-11-01  1.00 M  5.00 k           40.0 KB  added{' ' * (len(change1) - 5)}  Record budgets
{s[2]}  2026-11-02  1.20 M  5.00 k           48.0 KB  {change1}  Grow net's conv1
{s[8]}  2026-11-08  1.60 M  6.00 k           48.0 KB  {change2.ljust(len(change1))}  Merge feature: widen net head
MACs 1.00 M → 1.20 M → 1.60 M over the last 3 changes (since {s[1]}, 2026-11-01)

tiny: 3 changes, oldest first
commit   date        MACs  params  peak act. memory  change              subject
-------  ----------  ----  ------  ----------------  ------------------  -----------------------------------
{s[1]}  2026-11-01   500      50           1.00 KB  added               Record budgets
{s[4]}  2026-11-04   400      50           1.00 KB  MACs -100 (-20.0%)  Shrink tiny
{s[11]}  2026-11-11     -       -                 -  removed             Remove tiny; grow the hostile model
MACs 500 → 400 → removed over the last 3 changes (since {s[1]}, 2026-11-01)

note: {skipped_note(repo, shas)}
"""


def test_cli_last_and_shallow_note(main_repo, shallow_repo, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, shas = main_repo
    monkeypatch.chdir(repo)
    code, out, _ = run(capsys, "--model", "net", "--last", "1")
    assert code == 0
    assert "net: 1 change, oldest first; 2 earlier changes not shown\n" in out
    assert f"\n{short(repo, shas[8])}  2026-11-08  1.60 M  6.00 k           48.0 KB  MACs +400 k (+33.3%); " \
           "params +1.00 k (+20.0%)  Merge feature: widen net head\n" in out
    monkeypatch.chdir(shallow_repo)
    code, out, _ = run(capsys)
    assert code == 0
    assert out.endswith(f"\nnote: history ends at a shallow clone boundary at {shas[10][:12]}: "
                        "fetch more with `git fetch --deepen=N`\n")
    assert f"{short(repo, shas[10])}  2026-11-10   400      50           1.00 KB  oldest commit in this clone" in out


def test_cli_table_shows_control_characters_as_question_marks(tmp_path: Path, capsys,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    repo = init(tmp_path / "repo")
    commit(repo, 1, "Record \x1b[31mred\x1b[0m net", {BUDGET: budget_yaml({"n\x1bet": NET1})})
    monkeypatch.chdir(repo)
    code, out, _ = run(capsys)
    assert code == 0 and "\x1b" not in out
    assert "Record ?[31mred?[0m net" in out and "\nn?et: 1 change, oldest first\n" in out
    code, out, _ = run(capsys, "--format", "json")
    assert json.loads(out)["models"][0]["points"][0]["subject"] == "Record \x1b[31mred\x1b[0m net"


def test_change_text_names_the_shown_metrics_else_the_others() -> None:
    from pytest_maccbudget.history_report import change_text

    def changed(before: Mapping[str, int], now: Mapping[str, int]) -> HistoryPoint:
        return HistoryPoint(commit="0" * 40, short="0000000", date=date(1), subject="s", kind=CHANGED,
                            totals={**totals(None), **now}, previous={**totals(None), **before})

    assert change_text(changed(NET1, {**NET1, "param_bytes": 5_000})) == "parameter bytes -15.0 KB (-75.0%)"
    assert change_text(changed(NET1, {**NET1, "params": 0, "param_bytes": 0})) == "params -5.00 k (-100.0%)"
    assert change_text(changed({"macs": 0}, {"macs": 7})) == "MACs +7"  # no percentage of 0
    assert change_text(changed({"macs": 5}, {"params": 9})) == "MACs no longer recorded; params 9 recorded"


# --- the command: markdown, csv, json ----------------------------------------------------


def parse_markdown(text: str) -> list[Any]:
    markdown_it = pytest.importorskip("markdown_it", reason="the markdown checks need markdown-it-py (test extra)")
    return markdown_it.MarkdownIt("commonmark").enable("table").parse(text)


def table_cells(tokens: list[Any]) -> list[list[list[str]]]:
    """Per table, per row, the inline source of each cell (header row first)."""
    tables: list[list[list[str]]] = []
    in_cell = False
    for token in tokens:
        if token.type == "table_open":
            tables.append([])
        elif token.type == "tr_open":
            tables[-1].append([])
        elif token.type in ("th_open", "td_open"):
            in_cell = True
            tables[-1][-1].append("")
        elif token.type in ("th_close", "td_close"):
            in_cell = False
        elif token.type == "inline" and in_cell:
            tables[-1][-1][-1] = token.content
    return tables


def all_tokens(tokens: list[Any]) -> list[Any]:
    return tokens + [child for token in tokens for child in (token.children or [])]


def test_cli_markdown_tables_charts_and_escaping(main_repo, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, shas = main_repo
    monkeypatch.chdir(repo)
    s = {day: short(repo, sha) for day, sha in shas.items()}
    code, out, err = run(capsys, "--format", "markdown")
    assert (code, err) == (0, "")
    tokens = parse_markdown(out)
    assert not [t for t in all_tokens(tokens) if t.type in ("html_inline", "html_block")]
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert headings == ["Cost history of `macc_budget.yaml`", "`<img src=x> | 'tick' @someone`", "`net`", "`tiny`"]
    header = ["commit", "date", "MACs", "params", "peak activation memory", "change", "subject"]
    hostile, net, tiny = table_cells(tokens)
    assert hostile == [header,
                       [f"`{s[10]}`", "2026-11-10", "2.00 k", "10", "100 B", "added",
                        "Fix budget: add \\<img src=x> | `tick` @\u200bsomeone"],  # \| kept the | in its cell
                       [f"`{s[11]}`", "2026-11-11", "3.00 k", "10", "100 B", "MACs +1.00 k (+50.0%)",
                        "Remove tiny; grow the hostile model"]]
    assert net[1:] == [
        [f"`{s[1]}`", "2026-11-01", "1.00 M", "5.00 k", "40.0 KB", "added", "Record budgets"],
        [f"`{s[2]}`", "2026-11-02", "1.20 M", "5.00 k", "48.0 KB",
         "MACs +200 k (+20.0%); peak activation memory +8.00 KB (+20.0%)", "Grow net's conv1"],
        [f"`{s[8]}`", "2026-11-08", "1.60 M", "6.00 k", "48.0 KB", "MACs +400 k (+33.3%); params +1.00 k (+20.0%)",
         "Merge feature: widen net head"]]
    assert [row[5] for row in tiny[1:]] == ["added", "MACs -100 (-20.0%)", "removed"]
    charts = [t.content for t in tokens if t.type == "fence"]
    assert [t.info for t in tokens if t.type == "fence"] == ["mermaid"] * 3
    assert charts[1] == f"""\
xychart-beta
    title "net: MACs per change"
    x-axis ["{s[1]}", "{s[2]}", "{s[8]}"]
    y-axis "MACs (M)" 0 --> 2
    line [1, 1.2, 1.6]
"""
    assert charts[2].splitlines()[2:5] == [f'    x-axis ["{s[1]}", "{s[4]}"]', '    y-axis "MACs" 0 --> 500',
                                           "    line [500, 400]"]  # the removal is not drawn
    title = charts[0].splitlines()[1]
    assert title == "    title \"‹img src=x› | 'tick' @someone: MACs per change\""
    assert title.count('"') == 2 and "`" not in charts[0]
    assert f"_MACs 1.00 M → 1.20 M → 1.60 M over the last 3 changes (since {s[1]}, 2026-11-01)_" in out
    assert out.endswith(f"- note: skipped commit {s[9]} (2026-11-09): macc\\_budget.yaml:4: invalid YAML: "
                        "could not find expected ':' (while scanning a simple key)\n")


def test_cli_markdown_of_a_single_point_has_no_chart(main_repo, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, _ = main_repo
    monkeypatch.chdir(repo)
    code, out, _ = run(capsys, "--format", "markdown", "--model", "net", "--last", "1")
    assert code == 0
    assert "1 change, oldest first; 2 earlier changes not shown:" in out
    assert "```" not in out


def test_cli_csv_one_row_per_model_and_commit(main_repo, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, shas = main_repo
    monkeypatch.chdir(repo)
    code, out, err = run(capsys, "--format", "csv", "--model", "tiny", "--model", "net")
    assert code == 0
    assert err == f"maccbudget: note: {skipped_note(repo, shas)}\n"
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["model", "commit", "short", "date", "subject", "kind", "macs", "flops", "params", "param_bytes",
                       "peak_activation_bytes", "macs_change", "flops_change", "params_change",
                       "param_bytes_change", "peak_activation_bytes_change"]

    def row(name: str, day: int, subject: str, kind: str, values: list[str], changes: list[str]) -> list[str]:
        return [name, shas[day], short(repo, shas[day]), date(day), subject, kind, *values, *changes]

    assert rows[1:] == [
        row("net", 1, "Record budgets", "added", ["1000000", "2000000", "5000", "20000", "40000"], [""] * 5),
        row("net", 2, "Grow net's conv1", "changed", ["1200000", "2400000", "5000", "20000", "48000"],
            ["200000", "400000", "0", "0", "8000"]),
        row("net", 8, "Merge feature: widen net head", "changed", ["1600000", "3200000", "6000", "24000", "48000"],
            ["400000", "800000", "1000", "4000", "0"]),
        row("tiny", 1, "Record budgets", "added", ["500", "1000", "50", "200", "1000"], [""] * 5),
        row("tiny", 4, "Shrink tiny", "changed", ["400", "800", "50", "200", "1000"], ["-100", "-200", "0", "0", "0"]),
        row("tiny", 11, "Remove tiny; grow the hostile model", "removed", [""] * 5, [""] * 5),
    ]


def test_cli_json_compact_by_default(main_repo, shallow_repo, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, shas = main_repo
    monkeypatch.chdir(repo)
    code, out, _ = run(capsys, "--format", "json", "--model", "tiny", "--last", "2")
    assert code == 0 and out.count("\n") == 1 and ", " not in out.replace(HOSTILE, "")
    data = json.loads(out)
    assert list(data) == ["schema", "version", "budget_file", "rev", "commit", "file_commits", "models", "skipped",
                          "shallow_boundary", "notes"]
    assert {key: data[key] for key in ("schema", "version", "budget_file", "rev", "commit", "file_commits",
                                       "shallow_boundary")} == {
        "schema": "pytest-maccbudget-history", "version": 1, "budget_file": BUDGET, "rev": "HEAD",
        "commit": shas[11], "file_commits": 7, "shallow_boundary": None}
    assert data["skipped"] == [{"commit": shas[9], "short": short(repo, shas[9]), "date": date(9),
                                "subject": "Broken budget", "reason": skipped_note(repo, shas).split(": ", 1)[1]}]
    assert data["notes"] == [skipped_note(repo, shas)]
    assert data["models"] == [{"name": "tiny", "earlier": 1, "points": [
        {"commit": shas[4], "short": short(repo, shas[4]), "date": date(4), "subject": "Shrink tiny",
         "kind": "changed", "totals": TINY2, "previous": TINY1,
         "change": {"macs": -100, "flops": -200, "params": 0, "param_bytes": 0, "peak_activation_bytes": 0}},
        {"commit": shas[11], "short": short(repo, shas[11]), "date": date(11),
         "subject": "Remove tiny; grow the hostile model", "kind": "removed", "totals": totals(None),
         "previous": TINY2, "change": None},
    ]}]
    code, indented, _ = run(capsys, "--format", "json", "--model", "tiny", "--last", "2", "--indent", "2")
    assert code == 0 and indented.startswith('{\n  "schema": "pytest-maccbudget-history",\n')
    assert json.loads(indented) == data
    monkeypatch.chdir(shallow_repo)
    shallow = json.loads(run(capsys, "--format", "json")[1])
    assert shallow["shallow_boundary"] == shas[10]
    assert [p["kind"] for p in shallow["models"][1]["points"]] == ["start"]


# --- the command: errors -----------------------------------------------------------------


def test_cli_errors_are_one_line_and_exit_2(main_repo, tmp_path: Path, capsys,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    repo, shas = main_repo
    monkeypatch.chdir(repo)
    cases = {
        ("--rev", "nope"): "unknown revision `nope`: pass a branch, tag or commit of this repository",
        ("--rev=-x",): "invalid revision '-x': a revision cannot start with '-'",
        ("--budget", "other.yaml"): f"`other.yaml` is not in the first-parent history of `HEAD` ({shas[11][:12]}): "
                                    "commit the budget file first, or give the path of a committed one",
        ("--model", "net", "--model", "nope"): "no model 'nope' in the first-parent history of macc_budget.yaml at HEAD",
        ("--indent", "2"): "--indent applies to --format json only",
    }
    for argv, message in cases.items():
        assert run(capsys, *argv) == (2, "", f"maccbudget: error: {message}\n"), argv
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.chdir(plain)
    assert run(capsys) == (2, "", f"maccbudget: error: cannot read the history: {plain} is not inside a git "
                                  "repository; run from a git checkout (in GitHub Actions, run actions/checkout first)\n")
    monkeypatch.chdir(init(tmp_path / "empty"))
    assert run(capsys) == (2, "", f"maccbudget: error: HEAD of {tmp_path / 'empty'} has no commits yet: "
                                  "commit the budget file first\n")


def test_cli_help_lists_the_options(capsys) -> None:
    assert main(["history", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--model NAME", "--last N", "--format {table,markdown,csv,json}", "--budget PATH", "--rev REV",
                   "--indent N"):
        assert option in out
    assert main(["--help"]) == 0
    assert "history" in capsys.readouterr().out


def test_mermaid_reads_the_history_charts_as_meant(main_repo, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_mermaid import fence_bodies, mermaid_parse, node_with_mermaid

    node = node_with_mermaid()
    repo, shas = main_repo
    monkeypatch.chdir(repo)
    code, out, _ = run(capsys, "--format", "markdown")
    assert code == 0
    hostile, net, tiny = mermaid_parse(node, fence_bodies(out))
    s = {day: short(repo, sha) for day, sha in shas.items()}
    assert net == {"ok": True, "diagramType": "xychart", "config": {}, "title": "net: MACs per change",
                   "orientation": "vertical", "categories": [s[1], s[2], s[8]],
                   "yAxis": {"title": "MACs (M)", "min": 0, "max": 2},
                   "plots": [{"type": "line", "title": "", "values": [1, 1.2, 1.6]}]}
    assert (tiny["categories"], tiny["yAxis"], tiny["plots"][0]["values"]) == (
        [s[1], s[4]], {"title": "MACs", "min": 0, "max": 500}, [500, 400])
    assert (hostile["ok"], hostile["title"], hostile["categories"], hostile["config"]) == (
        True, "‹img src=x› | 'tick' @someone: MACs per change", [s[10], s[11]], {})


def test_max_commits_reads_only_the_newest_versions(tmp_path: Path) -> None:
    repo = tmp_path / "bounded"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    for macs in (1000, 2000, 3000, 4000):
        (repo / "macc_budget.yaml").write_text(f"version: 1\nmodels:\n  net:\n    total: {{macs: {macs}}}\n")
        subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", f"{macs}"],
                       cwd=repo, check=True)
    whole = budget_history(repo, "macc_budget.yaml")
    bounded = budget_history(repo, "macc_budget.yaml", max_commits=2)
    assert [p.kind for p in whole.models["net"].points] == ["added", "changed", "changed", "changed"]
    # the oldest version read has an unknown past, as at a shallow boundary
    assert [(p.kind, p.totals["macs"]) for p in bounded.models["net"].points] == [("start", 3000), ("changed", 4000)]
