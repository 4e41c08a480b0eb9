"""A short fuzzing run in the suite (benchmarks/fuzz.py runs 10,000 cases and more): random valid
graphs against their closed forms (hypothesis, derandomized), mutated ONNX files, budget files and
shard reports through the real entry points. No internal error, crash or hang, and every closed
form holds; what tests/robustness/findings.py already records (xfail in test_findings.py) is told
apart, and anything else fails with its reproducer."""
from __future__ import annotations

import json
import os
import random
import signal
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_maccbudget.budget import parse_budget

from .findings import known_finding
from .fuzz_cases import (
    CLEAN, CRASH, HANG, MODEL_FILE, OK, PROFILE, VALID_GENERATORS, WRONG, Case, CaseRunner, ExpectedLayer,
    ExpectedProfile, HypothesisDraw, Limits, RandomDraw, Result, SEED_BUDGETS, closed_form_problems, conv_case, is_finding,
    make_case, profile_invariant_problems, use_budget, valid_graph_case,
)
from .hostile_graphs import write_crashing_graph, write_hanging_graph

SEED = 20240611  # the mutation cases of this run: make_case(family, SEED, index)
VALID_EXAMPLES = 12  # per op family: 12 families, about 40 ms each
# cases per mutation family (about 45 ms an ONNX case, 160 ms a wire-level one, 10 ms a budget file)
MUTATION_CASES = {"onnx-bytes": 50, "onnx-wire": 25, "onnx-fields": 60, "onnx-large": 12, "budget": 200, "report-json": 80}

VALID = settings(
    max_examples=VALID_EXAMPLES,
    deadline=None,
    derandomize=True,   # the same examples on every run (CI reproducibility)
    database=None,      # no .hypothesis/ directory in the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    print_blob=True,
)


@pytest.fixture(scope="module")
def runner() -> Iterator[CaseRunner]:
    # 1 GB: onnx's data propagation over a huge 1-D input (a known finding) gives up in a second, not six
    case_runner = CaseRunner(Limits(profile_timeout_s=20, memory="1GB", case_timeout_s=60))
    yield case_runner
    case_runner.close()


def explain(case: Case, result: Result) -> str:
    files = ", ".join(f"{name} ({len(data):,} bytes)" for name, data in case.files)
    return f"{case.label}\n{result.outcome}: {result.detail}\nfiles: {files}; args: {' '.join(case.args)}"


def unexplained(case: Case, result: Result) -> bool:
    """A finding no entry of findings.py accounts for."""
    return is_finding(result.outcome) and known_finding(case, result) is None


# --- valid graphs against their closed forms ------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(VALID_GENERATORS))
@VALID
@given(data=st.data())
def test_a_valid_graph_costs_its_closed_form(runner: CaseRunner, kind: str, data: st.DataObject) -> None:
    case = valid_graph_case(kind, HypothesisDraw(data.draw))
    result = runner.run(case)
    if result.outcome == OK or not unexplained(case, result):
        return
    pytest.fail(explain(case, result))


def test_the_closed_form_check_catches_a_count_one_off(runner: CaseRunner) -> None:
    """The closed-form check can fail: the same conv with any expected number one off is reported."""
    case = conv_case(RandomDraw(random.Random(3)))
    result = runner.run(case)
    assert result.outcome == OK and result.profile is not None, explain(case, result)
    assert case.expected is not None
    op = case.expected.layers[-1]
    for field_name in ("macs", "flops", "output_bytes", "params"):
        wrong = replace(op, **{field_name: (getattr(op, field_name) or 0) + 1})
        perturbed = ExpectedProfile((*case.expected.layers[:-1], wrong), case.expected.peak)
        assert any(field_name in problem for problem in closed_form_problems(result.profile, perturbed)), field_name
    off_peak = replace(case.expected, peak=(case.expected.peak or 0) + 4)
    assert any("peak" in problem for problem in closed_form_problems(result.profile, off_peak))


def test_the_invariants_catch_negative_counts_wrong_totals_and_unknowns_as_numbers(runner: CaseRunner) -> None:
    case = conv_case(RandomDraw(random.Random(3)))
    profile = runner.run(case).profile
    assert profile is not None and profile_invariant_problems(profile) == []
    broken = json.loads(json.dumps(profile))
    broken["layers"][-1]["params"] = -1
    broken["total"]["macs"] += 1
    broken["layers"][-1]["status"] = "unresolved"
    problems = " | ".join(profile_invariant_problems(broken))
    assert "negative count" in problems and "total macs" in problems and "is unresolved but has counts" in problems


def test_an_unknown_expected_as_such_is_told_from_a_zero() -> None:
    expected = ExpectedProfile((ExpectedLayer("op", "Conv", "unresolved", None, None, None),), None)
    profile = {"layers": [{"name": "op", "status": "costed", "macs": 0, "flops": 0, "output_bytes": 0, "params": 0,
                           "note": ""}], "total": {"peak_activation_bytes": 0}}
    assert any("unknown reported as 0" in problem for problem in closed_form_problems(profile, expected))


def test_the_seed_budget_files_load_and_go_through_a_session() -> None:
    """The budget family mutates these: each must be valid to begin with (use_budget compares,
    updates, writes and reads it back), so that what the fuzzing finds comes from the edits."""
    for text in SEED_BUDGETS:
        budget = parse_budget(text, Path("/project/macc_budget.yaml"))
        assert budget.models or text.startswith("version: 1\nmodels: {}")
        assert use_budget(budget) == []


# --- mutated inputs through the entry points ---------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(MUTATION_CASES))
def test_mutated_inputs_give_a_result_or_one_clean_line(runner: CaseRunner, family: str) -> None:
    results = [(case, runner.run(case)) for case in (make_case(family, SEED, index) for index in range(MUTATION_CASES[family]))]
    new = [explain(case, result) for case, result in results if unexplained(case, result)]
    assert not new, f"{len(new)} new finding(s) (add them to findings.py):\n\n" + "\n\n".join(new[:5])
    assert sum(result.outcome in (OK, CLEAN) for _, result in results) >= len(results) // 2  # the cases reach the code


# --- the findings of the earlier campaign stay gone ------------------------------------------------------------


def _case_from_file(path: Path, *args: str) -> Case:
    return Case("earlier", path.name, PROFILE, ((MODEL_FILE, path.read_bytes()),), args)


def test_a_graph_that_aborts_onnx_is_a_clean_error(runner: CaseRunner, tmp_path: Path) -> None:
    write_crashing_graph(tmp_path / "crash.onnx")
    result = runner.run(_case_from_file(tmp_path / "crash.onnx"))
    assert result.outcome == CLEAN and "the ONNX library crashed (SIGABRT" in result.detail, result


def test_a_graph_that_makes_onnx_hang_is_a_clean_error(tmp_path: Path) -> None:
    write_hanging_graph(tmp_path / "hang.onnx")
    quick = CaseRunner(Limits(profile_timeout_s=1, case_timeout_s=30))
    try:
        result = quick.run(_case_from_file(tmp_path / "hang.onnx"))
    finally:
        quick.close()
    assert result.outcome == CLEAN and "did not finish within 1 s" in result.detail, result


def test_a_deeply_nested_shard_report_is_a_clean_error(runner: CaseRunner) -> None:
    case = make_case("report-json", SEED, 0)
    nested = tuple((name, b"[" * 100_000 + b"]" * 100_000 if name == "shard-1.json" else data) for name, data in case.files)
    result = runner.run(replace(case, files=nested))
    assert result.outcome == CLEAN and "nested too deep" in result.detail, result


# --- the harness tells a hang and a crash ----------------------------------------------------------------------


def test_the_harness_reports_a_hang_and_a_crash(tmp_path: Path) -> None:
    """A worker that does not answer in time is a hang; one that dies is a crash (found by the
    harness itself, whatever the product does)."""
    write_hanging_graph(tmp_path / "hang.onnx")
    case = _case_from_file(tmp_path / "hang.onnx")
    slow = CaseRunner(Limits(profile_timeout_s=600, case_timeout_s=1))
    try:
        assert slow.run(case).outcome == HANG
        slow.submit(case)
        os.kill(slow.process.pid, signal.SIGKILL)
        result = slow.result()
    finally:
        slow.close()
    assert result.outcome == CRASH and "SIGKILL" in result.detail


def test_a_valid_graph_refused_is_a_wrong_output(runner: CaseRunner) -> None:
    case = conv_case(RandomDraw(random.Random(3)))
    broken = replace(case, files=((MODEL_FILE, case.files[0][1][:-7]),))  # cut: no longer a valid graph
    assert runner.run(broken).outcome == WRONG
