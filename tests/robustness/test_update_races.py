"""Concurrent updates lose nothing; what a killed update leaves is cleaned; a read-only budget
file is not replaced; nothing negative is ever recorded."""
from __future__ import annotations

import stat
import subprocess
import sys
import textwrap

import pytest

from tests.plugin.conftest import BASE_ARGS, BUDGET_FILE, Project, fc_macs

pytestmark = pytest.mark.parametrize("xdist_args", [()], ids=["no-xdist-args"])


def _start_update(project: Project, keyword: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pytest", *BASE_ARGS, "--macc-budget-update", "-k", keyword],
                            cwd=project.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_concurrent_updates_of_different_subsets_keep_both_refreshes(project: Project) -> None:
    project.add_net_test("alpha", width=10)
    project.add_net_test("beta", width=20)
    project.write_recorded(alpha=10, beta=20)
    for trial, (alpha, beta) in enumerate([(11, 21), (12, 22), (13, 23), (14, 24)]):
        project.add_net_test("alpha", width=alpha)
        project.add_net_test("beta", width=beta)
        runs = [_start_update(project, "alpha"), _start_update(project, "beta")]
        outputs = [run.communicate(timeout=300)[0] for run in runs]
        assert [run.returncode for run in runs] == [0, 0], outputs
        layers = project.budget()["models"]
        assert (layers["alpha"]["layers"]["fc"]["macs"], layers["beta"]["layers"]["fc"]["macs"]) == (
            fc_macs(alpha), fc_macs(beta)), f"trial {trial}: a refresh was lost"


def test_an_update_removes_what_a_killed_update_left_and_nothing_else(project: Project) -> None:
    project.add_net_test("alpha", width=10)
    leftover = project.path / f".{BUDGET_FILE}.k2j4q9.tmp"  # as atomic.write_atomically names its temporary
    leftover.write_text("half a budget")
    unrelated = project.path / ".other.yaml.x.tmp"
    unrelated.write_text("not ours")
    project.record()
    assert not leftover.exists() and unrelated.exists()


def test_a_read_only_budget_file_is_not_replaced(project: Project) -> None:
    project.add_net_test("alpha", width=11)
    project.write_recorded(alpha=10)
    path = project.file()
    before = path.read_bytes()
    path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    try:
        result = project.run("--macc-budget-update")
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([f"note: the budget file {path} is read-only: not replaced*"])
    assert path.read_bytes() == before


NEGATIVE_DIM = textwrap.dedent('''
    from pathlib import Path

    import pytest


    def write(path):
        import onnx
        from onnx import TensorProto, helper

        weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, -3])  # a size no tensor has
        graph = helper.make_graph(
            [helper.make_node("Relu", ["x"], ["r"], name="act"), helper.make_node("MatMul", ["r", "w"], ["y"], name="fc")],
            "neg", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [weight])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


    @pytest.mark.macc_budget("neg", model="neg.onnx")
    def test_neg():
        write(Path(__file__).with_name("neg.onnx"))
''')


def test_a_negative_declared_dim_is_never_recorded(project: Project) -> None:
    project.ini("macc_budget_unknown_ops = warn")  # even where a partial entry would be recorded
    project.add_test("test_neg", NEGATIVE_DIM)
    result = project.run("--macc-budget-update")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*model 'neg': *negative*"])
    assert not project.file().exists() or "neg" not in (project.budget().get("models") or {})


def test_an_update_merges_into_the_file_as_it_is_when_it_writes(project: Project) -> None:
    """Deterministic form of the race: another update rewrites the file while this run's tests run."""
    project.add_net_test("alpha", width=11)
    project.write_recorded(alpha=10, beta=20)
    changed_meanwhile = project.file().read_text().replace(f"fc: {{macs: {fc_macs(20)}}}", f"fc: {{macs: {fc_macs(21)}}}")
    project.add_test("test_zz_other_writer", f'''
        from pathlib import Path

        def test_another_update_writes_meanwhile():
            Path({str(project.file())!r}).write_text({changed_meanwhile!r})
    ''')
    project.record("-p", "no:randomly", "-k", "alpha or other_writer")  # a subset: beta is kept, not removed
    models = project.budget()["models"]
    assert models["alpha"]["layers"]["fc"]["macs"] == fc_macs(11)  # this run's refresh
    assert models["beta"]["layers"]["fc"]["macs"] == fc_macs(21)   # and the other writer's, kept
