"""Bad input: a broken budget file, a misused marker, two tests with one model name, and a
model the engine cannot fully count."""
from __future__ import annotations

import pytest

from .conftest import BUDGET_FILE, XDIST_MODES, Project, net_entry, net_totals

YAML_SYNTAX_ERROR = "version: 1\nmodels:\n  net:\n    total: {macs: 9472, flops: 18944\n    layers: {}\n"
BAD_BUDGETS = [
    pytest.param(YAML_SYNTAX_ERROR, f"{BUDGET_FILE}:5: invalid YAML: *", "--macc-budget", id="yaml-syntax-check"),
    pytest.param(YAML_SYNTAX_ERROR, f"{BUDGET_FILE}:5: invalid YAML: *", "--macc-budget-update",
                 id="yaml-syntax-update"),
    pytest.param(
        "version: 1\nmodels:\n  net:\n    totals: {macs: 9472}\n",
        f"{BUDGET_FILE}:4: models.net.totals: unknown key 'totals'; allowed: inputs, rules, partial, upper_bounds, limit, tolerance, total, devices, layers",
        "--macc-budget-update",
        id="unknown-key",
    ),
    pytest.param(
        "version: 1\nmodels:\n  net:\n    total:\n      params: 2682\n      macs: 12 parsecs\n",
        f"{BUDGET_FILE}:6: models.net.total.macs: *parsecs*",
        "--macc-budget-update",
        id="bad-unit",
    ),
]


@pytest.mark.parametrize(("text", "message", "option"), BAD_BUDGETS)
def test_broken_budget_file_is_a_usage_error(project: Project, text: str, message: str, option: str) -> None:
    project.add_net_test(width=10)
    project.write_budget(text)
    before = project.budget_bytes()

    result = project.run(option)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-maccbudget: {message}"])
    result.stdout.no_fnmatch_line("*passed*")
    assert project.budget_bytes() == before


BAD_MARKERS = [
    pytest.param('@pytest.mark.macc_budget(model="net.onnx")',
                 "*test_bad.py::test_bad: @pytest.mark.macc_budget needs exactly one positional argument, "
                 "the model's name*", id="no-name"),
    pytest.param('@pytest.mark.macc_budget(42, model="net.onnx")',
                 "*test_bad.py::test_bad: @pytest.mark.macc_budget needs exactly one positional argument, "
                 "the model's name*", id="name-not-str"),
    pytest.param('@pytest.mark.macc_budget("net", input=[(1, 3, 8, 8)])',
                 "*test_bad.py::test_bad: @pytest.mark.macc_budget: unknown keyword argument(s) input; "
                 "allowed: inputs, model*", id="unknown-kwarg"),
    pytest.param('@pytest.mark.macc_budget("net", inputs=[(1, -3, 8, 8)])',
                 "*test_bad.py::test_bad: @pytest.mark.macc_budget: *dimension -3 is not a positive int*",
                 id="bad-inputs"),
    pytest.param('@pytest.mark.macc_budget("net", model=42)',
                 "*test_bad.py::test_bad: @pytest.mark.macc_budget: model= must be a path to an .onnx file "
                 "or a zero-argument factory, got 42*", id="bad-model"),
]


@pytest.mark.parametrize("xdist_args", XDIST_MODES)
@pytest.mark.parametrize(("marker", "message"), BAD_MARKERS)
def test_misused_marker_is_a_usage_error(project: Project, marker: str, message: str) -> None:
    project.add_test("test_bad", f"""
        import pytest


        {marker}
        def test_bad():
            pass
    """)

    result = project.run("--macc-budget")

    _assert_collection_refused(result, message)


@pytest.mark.parametrize("xdist_args", XDIST_MODES)
def test_one_model_name_marked_on_two_tests_is_an_error(project: Project) -> None:
    project.add_net_test(width=10)
    project.add_test("test_again", """
        import pytest


        @pytest.mark.macc_budget("net", model="net.onnx")
        def test_again():
            pass
    """)

    result = project.run("--macc-budget")

    # both tests error at setup, each naming the two tests; neither runs
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        ["*model name 'net' is used by two tests: test_again.py::test_again and test_net.py::test_net*"])
    result.stdout.no_fnmatch_line("*passed*")


def _assert_collection_refused(result: pytest.RunResult, message: str) -> None:
    """No test ran: the module is a collection error that says what is wrong (pytest exits
    with 2, "interrupted: 1 error during collection"; under xdist with 1)."""
    assert result.ret in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.TESTS_FAILED), result.stdout.str()
    result.stdout.fnmatch_lines(["*ERROR collecting test_bad.py*", message])
    result.stdout.no_fnmatch_line("*passed*")


def test_one_model_name_checked_by_two_tests_is_an_error(project: Project) -> None:
    for test in ("test_a", "test_b"):
        project.add_test(test, f"""
            from netlib import write_net


            def {test}(macc_budget, tmp_path):
                write_net(tmp_path / "net.onnx", width=10)
                macc_budget.check(str(tmp_path / "net.onnx"), name="net")
        """)

    result = project.run("--macc-budget-update")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    lines = [line for line in result.stdout.lines if "'net' is checked by two tests" in line]
    assert any("test_a.py::test_a" in line and "test_b.py::test_b" in line for line in lines), result.stdout.str()


@pytest.mark.parametrize("unknown_ops", ["default", "warn"])
def test_model_with_an_uncountable_op(project: Project, unknown_ops: str) -> None:
    project.write_recorded(net=10)
    recorded = project.budget_bytes()
    project.add_net_test(width=10, custom_op=True)  # fc -> com.example::Frobnicate
    if unknown_ops != "default":
        project.ini(f"macc_budget_unknown_ops = {unknown_ops}")

    checked = project.run("--macc-budget")

    if unknown_ops == "warn":
        assert checked.ret == pytest.ExitCode.OK
        checked.assert_outcomes(passed=1)
        checked.stdout.fnmatch_lines(["*warnings summary*",
                                      "*macc budget: lower bounds: 1 op could not be counted: com.example::Frobnicate (frob)*"])
    else:
        assert checked.ret == pytest.ExitCode.TESTS_FAILED
        checked.assert_outcomes(failed=1)
        checked.stdout.fnmatch_lines(["*model 'net': macs could not be counted (ops not counted: com.example::Frobnicate (frob): *"])
    checked.stdout.fnmatch_lines(["net *NOT COUNTED"])

    updated = project.run("--macc-budget-update")

    if unknown_ops == "warn":  # the counted part is recorded, marked as lower bounds
        updated.stdout.fnmatch_lines(["*recorded as a partial entry (lower bounds): 1 op could not be counted*"])
        entry = project.budget()["models"]["net"]
        # the Frobnicate after fc adds nothing the engine can count: the lower bound is the net's
        assert entry["partial"] is True and entry["total"]["macs"] == net_totals(10)["macs"]
        assert set(entry["layers"]) == {"conv", "fc"}  # the uncounted op has no layer entry
        assert project.run("--macc-budget").ret == pytest.ExitCode.OK  # lower bounds against lower bounds
    else:  # nothing recorded, and the message says how to record a partial entry or count the op
        updated.stdout.fnmatch_lines(["*not recorded: 1 op could not be counted: com.example::Frobnicate (frob)*"
                                      "set the ini key `macc_budget_unknown_ops = warn`*add a cost rule*"])
        assert project.budget_bytes() == recorded
        assert project.budget()["models"]["net"] == net_entry(width=10)


@pytest.mark.parametrize("xdist_args", [()], ids=["no-xdist-args"])
def test_a_partial_entry_ends_once_every_op_is_counted(project: Project) -> None:
    project.ini("macc_budget_unknown_ops = warn")
    project.add_net_test(width=10, custom_op=True)
    first = project.run("--macc-budget")  # no entry yet: record one
    first.stdout.fnmatch_lines(["*no budget entry for model 'net'*run `pytest --macc-budget-update*` to record it*"])
    project.record()
    assert project.budget()["models"]["net"]["partial"] is True
    project.add_net_test(width=10)  # the op is gone, as if a cost rule counted it now: the entry must be re-recorded
    result = project.run("--macc-budget")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*model 'net': every op is counted now, its budget entry holds lower bounds "
                                 "(partial: true) and is not comparable: run `pytest --macc-budget-update*` to re-record it*"])
    project.record()
    assert "partial" not in project.budget()["models"]["net"]

MANY_UNKNOWN_OPS = '''
from pathlib import Path

import pytest


def write_chain(path, count):
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Frobnicate", [f"t{i}"], [f"t{i + 1}"], name=f"frob{i}", domain="com.example")
             for i in range(count)]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info(f"t{count}", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    onnx.save(model, str(path))


@pytest.mark.macc_budget("chain", model="chain.onnx")
def test_chain():
    write_chain(Path(__file__).with_name("chain.onnx"), 14)
'''


@pytest.mark.parametrize("xdist_args", [()], ids=["no-xdist-args"])
def test_a_long_list_of_uncounted_ops_is_capped_and_listed_whole_in_the_section(project: Project) -> None:
    project.add_test("test_chain", MANY_UNKNOWN_OPS)
    result = project.run("--macc-budget-update")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    headline = next(line for line in result.stdout.lines if line.startswith("model 'chain': not recorded: 14 ops"))
    assert headline.count("(frob") == 10 and "and 4 more" in headline
    result.stdout.fnmatch_lines(["all 14 ops that could not be counted:"]
                                + [f"  com.example::Frobnicate (frob{i}): *" for i in range(14)])
