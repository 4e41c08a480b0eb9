"""No graph can take down the CLI or the pytest session: a crash or a hang in onnx's C++ fails
that one model, in the profiling child process."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_maccbudget.cli import main
from tests.plugin.conftest import Project

from .hostile_graphs import write_crashing_graph, write_hanging_graph


def test_the_cli_survives_a_graph_that_aborts_onnx(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "crash.onnx"
    write_crashing_graph(path)
    assert main(["profile", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"maccbudget: error: {path}: the ONNX library crashed (SIGABRT: Assertion")
    assert "the graph is not valid ONNX" in err and len(err.strip().splitlines()) == 1


def test_the_cli_stops_a_graph_that_makes_onnx_hang(tmp_path: Path) -> None:
    path = tmp_path / "hang.onnx"
    write_hanging_graph(path)
    done = subprocess.run([sys.executable, "-m", "pytest_maccbudget", "profile", str(path), "--timeout", "2"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr == (f"maccbudget: error: {path}: profiling did not finish within 2 s and was stopped (a graph "
                           "that makes the ONNX library run without end, or raise the time limit)\n")


SESSION = textwrap.dedent('''
    from pathlib import Path

    import pytest
    from netlib import write_net
    from tests_hostile import write_crashing_graph, write_hanging_graph

    HERE = Path(__file__).parent


    @pytest.mark.macc_budget("before", model="before.onnx")
    def test_before():
        write_net(HERE / "before.onnx")


    @pytest.mark.macc_budget("crash", model="crash.onnx")
    def test_crash():
        write_crashing_graph(HERE / "crash.onnx")


    @pytest.mark.macc_budget("hang", model="hang.onnx")
    def test_hang():
        write_hanging_graph(HERE / "hang.onnx")


    @pytest.mark.macc_budget("after", model="after.onnx")
    def test_after():
        write_net(HERE / "after.onnx")
''')


@pytest.mark.slow
@pytest.mark.parametrize("xdist_args", [(), ("-n", "2")], ids=["no-xdist-args", "n2"])
def test_a_session_with_a_crashing_and_a_hanging_model_goes_on(project: Project) -> None:
    project.pytester.makepyfile(tests_hostile=(Path(__file__).parent / "hostile_graphs.py").read_text())
    project.add_test("test_session", SESSION)
    project.ini("macc_budget_profile_timeout = 4")
    project.write_recorded(before=10, after=10)
    budget = project.file().read_text()

    result = project.run("--macc-budget", "--macc-budget-report=report.md", "--macc-budget-json=report.json",
                         "--junit-xml=junit.xml")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*model 'crash': * the ONNX library crashed (SIGABRT*",
                                 "*model 'hang': * did not finish within 4 s*"])
    result.stdout.fnmatch_lines(["*--- macc budget ---*"])  # the summary is written
    report = json.loads((project.path / "report.json").read_text())
    assert sorted(error["name"] for error in report["errors"]) == ["crash", "hang"]
    assert [model["name"] for model in report["models"]] == ["after", "before"]
    assert "2 models could not be checked" in (project.path / "report.md").read_text()
    assert (project.path / "junit.xml").exists() and project.file().read_text() == budget


def test_the_memory_limit_is_on_what_profiling_adds_not_on_what_the_parent_mapped(tmp_path: Path) -> None:
    """A user's test process has torch imported: gigabytes of address space mapped and never
    touched, which a forked profiling child inherits. 1 GiB for profiling must still profile a
    small graph there."""
    script = textwrap.dedent(f"""
        import mmap
        import numpy as np
        from onnx import TensorProto, helper, numpy_helper, save
        from pytest_maccbudget.engine.errors import ModelError
        from pytest_maccbudget.isolation import IsolatedProfiler, Limits

        mapped = mmap.mmap(-1, 3 * 2**30)  # 3 GiB of address space in the parent, never touched
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")], "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
            [numpy_helper.from_array(np.ones((8, 4), np.float32), "w")])
        save(helper.make_model(graph), {str(tmp_path / "fc.onnx")!r})
        profiler = IsolatedProfiler(Limits(timeout_s=60, memory_bytes=2**30), start_method="fork")
        print("macs", profiler.profile({str(tmp_path / "fc.onnx")!r}).totals.macs)
        profiler.close()
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["macs", "32"]  # 1 x 8 x 4
