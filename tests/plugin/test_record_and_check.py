"""Record a budget, check against it: pass, grow, shrink, hard limits, missing entries,
update-new-only, tolerances, and where the budget file is."""
from __future__ import annotations

import pytest

from pytest_maccbudget.rules import RULES_VERSION

from .conftest import BUDGET_FILE, UPDATE_COMMAND, Project, net_entry, net_totals, recorded_budget


def test_update_records_exact_costs(project: Project) -> None:
    project.add_net_test(width=10)
    assert not project.file().exists()

    result = project.record()

    result.assert_outcomes(passed=1)
    assert project.budget() == {"version": 1, "rules": RULES_VERSION, "models": {"net": net_entry(width=10)}}
    assert project.file().read_text(encoding="utf-8") == recorded_budget(net=10)
    result.stdout.fnmatch_lines([
        "*-- macc budget --*",
        "net *9.47 k*2.68 k*recorded",
        f"budget file *{BUDGET_FILE}: written",
    ])


def test_check_passes_against_recorded_budget(project: Project) -> None:
    project.add_net_test(width=10)
    project.record()
    recorded = project.budget_bytes()

    result = project.run("--macc-budget")

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*-- macc budget --*", "net *9.47 k *= *ok"])
    assert project.budget_bytes() == recorded

    again = project.record()
    again.stdout.fnmatch_lines(["net *unchanged", f"budget file *{BUDGET_FILE}: unchanged"])
    assert project.budget_bytes() == recorded


def test_grown_layer_fails_with_model_layer_and_numbers(project: Project) -> None:
    project.write_recorded(net=10)
    recorded = project.budget_bytes()
    project.add_net_test(width=11)  # fc: 2560 -> 2816 MACs, total 9472 -> 9728

    result = project.run("--macc-budget")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*model 'net': macs 9.73 k > budget 9.47 k (+2.7%, tolerance 0%); "
        "most grown layer fc: 2.56 k -> 2.82 k MACs*",
        "*Captured macc budget call*",
        "macs 9.73 k > budget 9.47 k (+2.7%, tolerance 0%)",
        "flops 19.5 k > budget 18.9 k (+2.7%, tolerance 0%)",
        "layers that changed, largest change first:",
        "layer *budget *measured *change *%",
        "fc *2.56 k *2.82 k *+256 *+10.0%",
    ])
    result.stdout.fnmatch_lines(["*-- macc budget --*", "net *9.73 k *+2.7%*REGRESSED"])
    result.stdout.no_fnmatch_line("conv *6.91 k*")  # unchanged layers are not in the table
    result.stdout.no_fnmatch_line("layer fc: macs*")  # the layer is in the table, not repeated as a line
    assert project.budget_bytes() == recorded, "a check run must never write the budget file"


@pytest.mark.parametrize("strictness", ["none", "flag", "ini"])
def test_cheaper_model_passes_as_tightenable_unless_strict(project: Project, strictness: str) -> None:
    project.write_recorded(net=10)
    project.add_net_test(width=9)  # fc: 2560 -> 2304 MACs
    args = ["--macc-budget"]
    if strictness == "flag":
        args.append("--macc-budget-strict")
    if strictness == "ini":
        project.ini("macc_budget_strict = true")

    result = project.run(*args)

    if strictness == "none":
        assert result.ret == pytest.ExitCode.OK
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(["*-- macc budget --*", "net *9.22 k *-2.7%*can be tightened"])
    else:
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines([
            "*model 'net'* is cheaper than its budget (macs 9.22 k < budget 9.47 k (-2.7%)*"
            f"run `{UPDATE_COMMAND}*` to tighten the budget*",
        ])


def test_hard_limit_fails_check_and_is_not_recorded(project: Project) -> None:
    project.write_recorded(net=10)
    # a hand-written ceiling between the recorded 9472 and the 9728 that width 11 measures
    project.edit_budget("    total:", "    limit: {macs: 9.5k}\n    total:")
    with_limit = project.budget_bytes()
    project.add_net_test(width=11)

    checked = project.run("--macc-budget")

    assert checked.ret == pytest.ExitCode.TESTS_FAILED
    checked.assert_outcomes(failed=1)
    checked.stdout.fnmatch_lines(["*model 'net': macs 9.73 k > limit 9.50 k*", "net *OVER LIMIT"])

    updated = project.run("--macc-budget-update")

    assert updated.ret == pytest.ExitCode.TESTS_FAILED
    updated.assert_outcomes(failed=1)
    updated.stdout.fnmatch_lines(["*model 'net': macs 9.73 k > limit 9.50 k (not recorded)*"])
    assert project.budget_bytes() == with_limit
    assert "limit: {macs: 9.5k}" in project.file().read_text(encoding="utf-8")
    assert project.budget()["models"]["net"]["total"] == net_totals(width=10)


@pytest.mark.parametrize("missing", ["default", "warn"])
def test_missing_entry(project: Project, missing: str) -> None:
    project.add_net_test(width=10)
    project.write_budget("version: 1\nmodels: {}\n")
    if missing != "default":
        project.ini(f"macc_budget_missing = {missing}")

    result = project.run("--macc-budget")

    message = f"*no budget entry for model 'net' in {BUDGET_FILE}; run `{UPDATE_COMMAND}*` to record it*"
    if missing == "warn":
        assert result.ret == pytest.ExitCode.OK
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(["*warnings summary*", f"*macc budget: {message[1:]}"])
    else:
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines([message])
        result.stdout.no_fnmatch_line("*model 'net': no budget entry*")
    result.stdout.fnmatch_lines(["net *no budget entry"])
    assert project.budget() == {"version": 1, "models": {}}


def test_update_new_only_adds_missing_and_keeps_existing(project: Project) -> None:
    project.write_recorded(net=10)
    project.add_net_test(width=11)  # changed: must stay as recorded
    project.add_net_test("other", width=20)  # new: must be added

    result = project.run("--macc-budget-update-new-only")

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=2)
    assert project.budget()["models"] == {"net": net_entry(width=10), "other": net_entry(width=20)}
    result.stdout.fnmatch_lines(["other *recorded", f"budget file *{BUDGET_FILE}: written"])


def test_update_new_only_summary_does_not_claim_existing_entry_updated(project: Project) -> None:
    project.write_recorded(net=10)
    project.add_net_test(width=11)

    result = project.run("--macc-budget-update-new-only")

    assert project.budget()["models"]["net"] == net_entry(width=10)
    result.stdout.no_fnmatch_line("net *updated")


def test_update_new_only_never_removes_unused_entries(project: Project) -> None:
    project.write_recorded(net=10)
    project.edit_budget("models:\n", "models:\n  ghost:\n    total: {macs: 1000}\n")
    project.add_net_test(width=10)

    result = project.run("--macc-budget-update-new-only")

    assert result.ret == pytest.ExitCode.OK
    assert set(project.budget()["models"]) == {"ghost", "net"}
    result.stdout.no_fnmatch_line("removed*")


def test_shapes_listed_for_an_onnx_file_apply_to_its_inputs_in_order(project: Project) -> None:
    project.add_test("test_batch", """
        from pathlib import Path

        import pytest
        from netlib import write_net


        @pytest.mark.macc_budget("net", model="net.onnx", inputs=[(2, 3, 8, 8)])
        def test_net():
            write_net(Path(__file__).with_name("net.onnx"), width=10)
    """)

    result = project.run("--macc-budget-update")

    assert result.ret == pytest.ExitCode.OK
    entry = project.budget()["models"]["net"]
    assert entry["inputs"] == {"x": [2, 3, 8, 8]}
    assert entry["total"]["macs"] == 2 * net_totals(width=10)["macs"]


def test_relative_tolerance_lets_small_growth_pass(project: Project) -> None:
    project.write_recorded(net=100)  # 6912 + 25600 = 32512 MACs
    # only macs is tight here: growing fc also grows flops and params, which get room
    project.edit_budget("version: 1\n", "version: 1\ndefaults:\n"
                        "  tolerance: {macs: 5%, flops: 10%, params: 10%, param_bytes: 10%}\n")
    project.add_net_test(width=104)  # total +1024 MACs = +3.1%, fc +4.0%

    passed = project.run("--macc-budget")

    assert passed.ret == pytest.ExitCode.OK
    passed.assert_outcomes(passed=1)
    passed.stdout.fnmatch_lines(["net *33.5 k *+3.1%*ok"])

    project.edit_budget("{macs: 5%,", "{macs: 2%,")
    failed = project.run("--macc-budget")

    assert failed.ret == pytest.ExitCode.TESTS_FAILED
    failed.stdout.fnmatch_lines(["*model 'net': macs 33.5 k > budget 32.5 k (+3.1%, tolerance 2%)*"])


@pytest.mark.parametrize(
    ("tolerance", "passes"),
    [
        ("2% and 1M", True),     # +2.7% is over 2%, but +256 MACs is not over 1 M: passes
        ("2% and 100", False),   # over 2% and over 100: fails
        ("20% and 100", True),   # over 100, but not over 20% (fc grows 10%): passes
    ],
)
def test_combined_tolerance_needs_both_to_fail(project: Project, tolerance: str, passes: bool) -> None:
    project.write_recorded(net=10)
    metrics = ", ".join(f"{metric}: {tolerance}" for metric in ("macs", "flops", "params", "param_bytes"))
    project.edit_budget("    total:", f"    tolerance: {{{metrics}}}\n    total:")
    project.add_net_test(width=11)  # +256 MACs: total +2.7%, fc +10.0%

    result = project.run("--macc-budget")

    if passes:
        assert result.ret == pytest.ExitCode.OK, result.stdout.str()
        result.stdout.fnmatch_lines(["net *9.73 k *+2.7%*ok"])
    else:
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines([f"*model 'net': macs 9.73 k > budget 9.47 k (+2.7%, tolerance {tolerance})*"])


def test_budget_file_flag_and_ini(project: Project) -> None:
    project.add_net_test(width=10)
    project.ini("macc_budget_file = ini.yaml")

    project.record("--macc-budget-file", "flag.yaml")  # the flag beats the ini
    assert project.file("flag.yaml").read_text(encoding="utf-8") == recorded_budget(net=10)
    assert not project.file("ini.yaml").exists()
    assert not project.file().exists()

    project.record()
    assert project.file("ini.yaml").read_text(encoding="utf-8") == recorded_budget(net=10)
    assert not project.file().exists()

    project.add_net_test(width=11)
    from_ini = project.run("--macc-budget")  # reads ini.yaml
    assert from_ini.ret == pytest.ExitCode.TESTS_FAILED
    from_ini.stdout.fnmatch_lines(["*model 'net': macs 9.73 k > budget 9.47 k*"])

    # a budget file the user named that does not exist is a typo until an update creates it
    from_flag = project.run("--macc-budget", "--macc-budget-file", "nothing.yaml", "-k", "net")
    assert from_flag.ret == pytest.ExitCode.USAGE_ERROR
    from_flag.stderr.fnmatch_lines([f"*pytest-maccbudget: the budget file {project.file('nothing.yaml')} does not exist: "
                                    "check the name, or run `pytest --macc-budget-update * --macc-budget-file nothing.yaml "
                                    "-k net` to create it*"])
    assert not project.file("nothing.yaml").exists()


@pytest.mark.parametrize("xdist_args", [pytest.param(("-p", "no:xdist"), id="no-xdist")])
def test_record_check_and_regress_without_xdist(project: Project) -> None:
    project.add_net_test(width=10)
    project.add_test("test_fixture", """
        from pathlib import Path

        from netlib import write_net


        def test_fixture(macc_budget, tmp_path):
            write_net(tmp_path / "wide.onnx", width=30)
            macc_budget.check(str(tmp_path / "wide.onnx"), name="wide")
    """)

    recorded = project.record()
    recorded.assert_outcomes(passed=2)
    assert project.budget()["models"] == {"net": net_entry(width=10), "wide": net_entry(width=30)}

    checked = project.run("--macc-budget")
    assert checked.ret == pytest.ExitCode.OK
    checked.stdout.fnmatch_lines(["net *ok", "wide *ok"])

    project.add_net_test(width=11)
    regressed = project.run("--macc-budget")
    assert regressed.ret == pytest.ExitCode.TESTS_FAILED
    regressed.assert_outcomes(passed=1, failed=1)
    regressed.stdout.fnmatch_lines(["*model 'net': macs 9.73 k > budget 9.47 k*"])
