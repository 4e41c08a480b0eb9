"""The end-of-run summary: one row per model, the layers that changed most, unused entries."""
from __future__ import annotations

from pathlib import Path

from pytest_maccbudget.budget import Measurement, compare, parse_budget
from pytest_maccbudget.terminal_summary import budget_summary_lines

BUDGET = """\
version: 1
rules: 6
models:
  net:
    inputs: {x: [1, 3, 16, 16]}
    total: {macs: 1000000, flops: 2000000, params: 5000, param_bytes: 20000, peak_activation_bytes: 40000}
    layers:
      conv1: {macs: 900000}
      fc: {macs: 100000}
  small:
    inputs: {x: [1, 8]}
    total: {macs: 80, flops: 150, params: 90, param_bytes: 360, peak_activation_bytes: 64}
    layers:
      fc: {macs: 80}
  stale:
    total: {macs: 1, flops: 1, params: 1, param_bytes: 4, peak_activation_bytes: 4}
"""


def _measure(name: str, macs: dict[str, int], inputs: dict[str, list[int]], params: int, peak: int = 40000) -> Measurement:
    total = sum(macs.values())
    return Measurement(name=name, nodeid=f"test_m.py::test_{name}", inputs=inputs,
                       total={"macs": total, "flops": 2 * total, "params": params, "param_bytes": 4 * params,
                              "peak_activation_bytes": peak},
                       layers=macs)


def test_summary_rows_changes_and_unused_entries() -> None:
    budget = parse_budget(BUDGET, Path("macc_budget.yaml"))
    grown = _measure("net", {"conv1": 1_100_000, "fc": 100_000}, {"x": [1, 3, 16, 16]}, 5000)
    shrunk = _measure("small", {"fc": 40}, {"x": [1, 8]}, 90, peak=64)
    comparisons = [compare(budget, grown), compare(budget, shrunk)]
    lines = budget_summary_lines(comparisons, unused=["stale"], budget_path=Path("macc_budget.yaml"),
                                 update="", written=False, removed=[], messages=[])
    assert lines[:4] == [
        "model    MACs  vs budget  params  peak act. memory  status",
        "-----  ------  ---------  ------  ----------------  ----------------",
        "net    1.20 M     +20.0%  5.00 k           40.0 KB  REGRESSED",
        "small      40     -50.0%      90              64 B  can be tightened",
    ]
    assert "layers that changed most:" in lines
    assert "  net  conv1: 900 k -> 1.10 M MACs (+22.2%)" in lines
    assert "  small  fc: 80 -> 40 MACs (-50.0%)" in lines
    assert lines[-1] == ("1 budget entry not used by any test: stale "
                         "(run `pytest --macc-budget-update` on the whole suite to remove them)")


def test_update_summary_says_what_was_written_and_removed() -> None:
    budget = parse_budget(BUDGET, Path("macc_budget.yaml"))
    new = _measure("fresh", {"fc": 10}, {"x": [1, 2]}, 12)
    lines = budget_summary_lines([compare(budget, new)], unused=["stale"], budget_path=Path("b.yaml"),
                                 update="all", update_outcomes={"fresh": "recorded"}, written=True,
                                 removed=["stale"], messages=["a note"])
    assert lines[2].endswith("recorded")
    assert "removed 1 unused budget entry: stale" in lines
    assert "note: a note" in lines
    assert lines[-1] == "budget file b.yaml: written"


def test_nothing_checked() -> None:
    lines = budget_summary_lines([], unused=[], budget_path=Path("b.yaml"))
    assert lines == ["no model was checked (budget file: b.yaml)"]


def test_new_only_update_keeps_existing_entries_and_says_why_unused_ones_stay() -> None:
    budget = parse_budget(BUDGET, Path("macc_budget.yaml"))
    grown = _measure("net", {"conv1": 1_100_000, "fc": 100_000}, {"x": [1, 3, 16, 16]}, 5000)
    lines = budget_summary_lines([compare(budget, grown)], unused=["stale"], budget_path=Path("b.yaml"),
                                 update="new-only", update_outcomes={"net": "kept (new-only update)"},
                                 kept_because="a test was skipped")
    assert lines[2].endswith("kept (new-only update)")
    assert "1 budget entry not used by any test: stale (kept: a test was skipped)" in lines
    assert lines[-1] == "budget file b.yaml: not written (nothing recorded)"


def test_a_filtered_run_says_entries_were_not_checked_rather_than_unused() -> None:
    lines = budget_summary_lines([], unused=["a", "b"], budget_path=Path("b.yaml"),
                                 kept_because="this run did not select every test")
    assert lines[-1] == "2 budget entries not checked in this run: a, b (this run did not select every test)"


def test_a_model_the_update_did_not_record_says_so() -> None:
    budget = parse_budget(BUDGET, Path("macc_budget.yaml"))
    new = _measure("fresh", {"fc": 10}, {"x": [1, 2]}, 12)
    lines = budget_summary_lines([compare(budget, new)], unused=[], budget_path=Path("b.yaml"), update="all",
                                 update_outcomes={})
    assert lines[2].endswith("NOT RECORDED")


def test_interrupted_update_says_the_file_was_not_written() -> None:
    lines = budget_summary_lines([], unused=["stale"], budget_path=Path("b.yaml"), update="all", interrupted=True)
    assert lines[-1] == "budget file b.yaml: not written (the run was interrupted)"


def test_with_a_base_the_summary_compares_with_it_and_flags_the_branchs_budget_edits() -> None:
    base = parse_budget(BUDGET, Path("origin/main@abc:macc_budget.yaml"))
    # this branch raised net's budget by 10% and added "fresh"; "small" is unchanged; "stale" removed
    branch_text = BUDGET.replace("macs: 1000000, flops: 2000000", "macs: 1100000, flops: 2200000")
    branch_text = branch_text.replace("conv1: {macs: 900000}", "conv1: {macs: 1000000}")
    branch_text = branch_text.replace("  stale:\n    total: {macs: 1, flops: 1, params: 1, param_bytes: 4, peak_activation_bytes: 4}\n",
                                      "  fresh:\n    total: {macs: 10, flops: 20, params: 1, param_bytes: 4, peak_activation_bytes: 4}\n")
    budget = parse_budget(branch_text, Path("macc_budget.yaml"))
    net = _measure("net", {"conv1": 1_000_000, "fc": 100_000}, {"x": [1, 3, 16, 16]}, 5000)
    fresh = _measure("fresh", {"fc": 10}, {"x": [1, 2]}, 1, peak=4)
    small = Measurement(name="small", nodeid="test_m.py::test_small", inputs={"x": [1, 8]},
                        total={"macs": 80, "flops": 150, "params": 90, "param_bytes": 360, "peak_activation_bytes": 64},
                        layers={"fc": 80})
    comparisons = [compare(budget, m) for m in (fresh, net, small)]
    lines = budget_summary_lines(comparisons, unused=[], budget_path=Path("macc_budget.yaml"),
                                 base=("origin/main", base, budget))
    assert lines[:6] == [
        "model    MACs  vs budget  vs base  params  peak act. memory  status",
        "-----  ------  ---------  -------  ------  ----------------  ------",
        "fresh      10          =      new       1               4 B  ok",
        "net    1.10 M          =   +10.0%  5.00 k           40.0 KB  ok",
        "small      80          =        =      90              64 B  ok",
        "",
    ]
    assert lines[6:9] == [
        "budget raised in this branch (vs origin/main): net (MACs +10.0%)",
        "budget added in this branch (vs origin/main): fresh",
        "budget removed in this branch (vs origin/main): stale",
    ]


def test_without_budget_edits_the_base_adds_only_the_column() -> None:
    budget = parse_budget(BUDGET, Path("macc_budget.yaml"))
    net = _measure("net", {"conv1": 950_000, "fc": 100_000}, {"x": [1, 3, 16, 16]}, 5000)
    lines = budget_summary_lines([compare(budget, net)], unused=[], budget_path=Path("macc_budget.yaml"),
                                 base=("origin/main", budget, budget))
    assert lines == [
        "model    MACs  vs budget  vs base  params  peak act. memory  status",
        "-----  ------  ---------  -------  ------  ----------------  ---------",
        "net    1.05 M      +5.0%    +5.0%  5.00 k           40.0 KB  REGRESSED",
        "",
        "layers that changed most:",
        "  net  conv1: 900 k -> 950 k MACs (+5.6%)",
    ]


def test_a_long_list_of_unused_entries_is_capped() -> None:
    budget = parse_budget(BUDGET, Path("macc_budget.yaml"))
    unused = [f"old{i:02d}" for i in range(25)]
    lines = budget_summary_lines([compare(budget, _measure("small", {"fc": 80}, {"x": [1, 8]}, 90, peak=64))],
                                 unused=unused, budget_path=Path("macc_budget.yaml"))
    [line] = [text for text in lines if "not used by any test" in text]
    assert "old09, and 15 more" not in line and "old09 and 15 more" in line and "old10" not in line
