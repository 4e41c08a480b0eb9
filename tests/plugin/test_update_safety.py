"""An update removes entries only after a run of the whole suite, never records what breaks a
limit or what it could not count, and reports a file it cannot write."""
from __future__ import annotations

import os

import pytest

from .conftest import Project, net_totals

SKIPPED_MODULE = """
    import pytest

    pytest.importorskip("a_package_this_machine_does_not_have")


    @pytest.mark.macc_budget("other", model="other.onnx")
    def test_other():
        pass
"""


@pytest.mark.parametrize("how", ["module skipped", "--ignore", "--co", "subdirectory"])
def test_entries_are_kept_unless_the_whole_suite_ran(project: Project, how: str) -> None:
    project.write_recorded(net=10, other=20)
    project.add_net_test(width=10)
    args: tuple[str, ...] = ()
    if how == "module skipped":
        project.add_test("test_other", SKIPPED_MODULE)
    else:
        project.add_net_test("other", width=20)
        args = {"--ignore": ("--ignore=test_other.py",), "--co": ("--co",), "subdirectory": ()}[how]
    if how == "subdirectory":  # pytest run from sub/: testpaths don't apply, only sub/ is collected
        (project.path / "sub").mkdir()
        (project.path / "sub" / "test_sub.py").write_text("def test_sub():\n    pass\n", encoding="utf-8")
        os.chdir(project.path / "sub")
        try:
            result = project.run("--macc-budget-update")
        finally:
            os.chdir(project.path)
    else:
        result = project.run("--macc-budget-update", *args)

    assert set(project.budget()["models"]) == {"net", "other"}
    result.stdout.no_fnmatch_line("removed*")


def test_an_xfail_does_not_count_as_a_skip(project: Project) -> None:
    project.write_recorded(net=10)
    project.edit_budget("models:\n", "models:\n  ghost:\n    total: {macs: 1000}\n")
    project.add_net_test(width=10)
    project.add_test("test_known_bug", """
        import pytest


        @pytest.mark.xfail(reason="known")
        def test_known_bug():
            assert False
    """)

    result = project.run("--macc-budget-update")

    result.stdout.fnmatch_lines(["removed 1 unused budget entry: ghost"])
    assert set(project.budget()["models"]) == {"net"}


def test_a_limit_fails_an_update_even_when_the_inputs_changed(project: Project) -> None:
    project.write_recorded(net=10)
    project.edit_budget("inputs: {x: [1, 3, 8, 8]}", "inputs: {x: [2, 3, 8, 8]}\n    limit: {macs: 100}")
    before = project.budget_bytes()
    project.add_net_test(width=10)

    result = project.run("--macc-budget-update")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*macs 9.47 k > limit 100 (not recorded)*", "net *NOT RECORDED (over limit)"])
    assert project.budget_bytes() == before


def test_an_unwritable_budget_file_is_one_line_and_a_failed_run(project: Project) -> None:
    project.add_net_test(width=10)

    result = project.run("--macc-budget-update", "--macc-budget-file", "no/such/dir/budget.yaml")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["note: could not write the budget file *budget.yaml: No such file or directory"])
    result.stdout.no_fnmatch_line("*Traceback*")


def test_named_input_shapes_for_an_onnx_file(project: Project) -> None:
    project.add_test("test_batch", """
        from pathlib import Path

        import pytest
        from netlib import write_net


        @pytest.mark.macc_budget("net", model="net.onnx", inputs={"x": ((2, 3, 8, 8), "float32")})
        def test_net():
            write_net(Path(__file__).with_name("net.onnx"), width=10)
    """)

    result = project.run("--macc-budget-update")

    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    entry = project.budget()["models"]["net"]
    assert entry["inputs"] == {"x": [2, 3, 8, 8]}
    assert entry["total"]["macs"] == 2 * net_totals(width=10)["macs"]
