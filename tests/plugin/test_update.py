"""What an update writes: unused entries, an interrupted run, and the same file whichever
xdist mode recorded it."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from .conftest import BUDGET_FILE, UPDATE_COMMAND, Project, net_entry, recorded_budget, run_pytest


def _project_files(root: Path) -> set[str]:
    """Every file and directory below the project, without pytester's own: its run directories
    and the captured output of the last run."""
    def pytesters(relative: Path) -> bool:
        return relative.parts[0].startswith("runpytest-") or str(relative) in ("stdout", "stderr")

    return {str(path.relative_to(root)) for path in root.rglob("*") if not pytesters(path.relative_to(root))}


def test_unused_entry_is_reported_and_removed_only_by_a_full_update(project: Project) -> None:
    project.add_net_test(width=10)
    project.add_net_test("other", width=20)
    project.write_recorded(net=10, other=20)
    project.edit_budget("models:\n", "models:\n  ghost:\n    total: {macs: 1000}\n")

    checked = project.run("--macc-budget")
    assert checked.ret == pytest.ExitCode.OK
    checked.stdout.fnmatch_lines([
        f"1 budget entry not used by any test: ghost (run `{UPDATE_COMMAND}*` on the whole suite to remove them)",
    ])

    not_checked = "not checked in this run"
    not_all = "this run did not select every test"
    by_keyword = project.run("--macc-budget-update", "-k", "test_net")
    assert by_keyword.ret == pytest.ExitCode.OK
    by_keyword.assert_outcomes(passed=1)  # xdist's controller does not count deselected items
    # the deselected test's marker still declares "other": only ghost is unused
    by_keyword.stdout.fnmatch_lines([f"1 budget entry {not_checked}: ghost ({not_all})"])
    assert set(project.budget()["models"]) == {"ghost", "net", "other"}

    by_path = project.run("--macc-budget-update", "test_net.py")
    assert by_path.ret == pytest.ExitCode.OK
    by_path.stdout.fnmatch_lines([f"2 budget entries {not_checked}: ghost, other ({not_all})"])
    assert set(project.budget()["models"]) == {"ghost", "net", "other"}

    project.add_test("test_broken", "def test_broken():\n    assert False\n")
    with_failure = project.run("--macc-budget-update")
    assert with_failure.ret == pytest.ExitCode.TESTS_FAILED
    with_failure.assert_outcomes(passed=2, failed=1)
    with_failure.stdout.fnmatch_lines(["1 budget entry not used by any test: ghost (kept: a test failed)"])
    assert set(project.budget()["models"]) == {"ghost", "net", "other"}
    (project.path / "test_broken.py").unlink()

    full = project.record()
    full.stdout.fnmatch_lines(["removed 1 unused budget entry: ghost", f"budget file *{BUDGET_FILE}: written"])
    assert project.file().read_text(encoding="utf-8") == recorded_budget(net=10, other=20)


def test_full_update_keeps_the_entry_of_a_skipped_model_test(project: Project) -> None:
    # e.g. a model that needs a GPU or an optional package: skipped here, budgeted elsewhere
    project.add_net_test(width=10)
    project.add_test("test_gpu_only", """
        import pytest


        @pytest.mark.macc_budget("gpu_only", model="gpu_only.onnx")
        def test_gpu_only():
            pytest.skip("needs a GPU")
    """)
    project.write_recorded(gpu_only=40, net=10)

    result = project.record()

    result.assert_outcomes(passed=1, skipped=1)
    assert project.file().read_text(encoding="utf-8") == recorded_budget(gpu_only=40, net=10)


def test_interrupted_update_leaves_the_file_untouched(project: Project) -> None:
    project.write_recorded(net=10)
    recorded = project.budget_bytes()
    project.add_net_test(width=11)  # an update that got to the end would rewrite the entry
    project.add_test("test_zz_interrupt", """
        import time
        from pathlib import Path


        def test_zz_interrupt():
            # under xdist the net may run on the other worker: let it be measured first
            deadline = time.monotonic() + 60
            while not Path(__file__).with_name("net.onnx").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)
            raise KeyboardInterrupt  # what Ctrl-C raises
    """)
    files_before = _project_files(project.path)

    result = project.run("--macc-budget-update")

    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert result.parseoutcomes()["passed"] == 1, "the net was measured before the interrupt"
    assert project.budget_bytes() == recorded
    # net.onnx is written by the test; anything else new would be a left-over temporary file
    assert _project_files(project.path) - files_before <= {"net.onnx"}
    assert not list(project.path.glob(f".{BUDGET_FILE}*"))


# A budget written by hand (units, a limit, tolerances, unsorted models, a comment) and
# models checked every way a test can: marker with model=, returned path, fixture.
HAND_WRITTEN = """\
version: 1
defaults:
  tolerance: {macs: 2% and 1M, params: 0}
models:
  other:
    total: {macs: 1k}   # stale
  net:
    limit: {macs: 1.2M, peak_activation_bytes: 24MB}
    tolerance: {layer_macs: "5%"}
"""

RETURNED_AND_FIXTURE = """
import pytest
from netlib import write_net


@pytest.mark.macc_budget("returned")
def test_returned(tmp_path):
    path = tmp_path / "returned.onnx"
    write_net(path, width=12)
    return str(path)


def test_fixture(macc_budget, tmp_path):
    for name, width in (("fixture_b", 14), ("fixture_a", 13)):
        write_net(tmp_path / f"{name}.onnx", width=width)
        macc_budget.check(str(tmp_path / f"{name}.onnx"), name=name)
"""

RECORDING_MODES = {
    "no-xdist-args": (),
    "n0": ("-n", "0"),
    "n2": ("-n", "2"),
    "no-xdist": ("-p", "no:xdist"),
}


def test_every_xdist_mode_writes_the_same_file(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                               subprocess_env: None) -> None:
    template = Project(pytester, ())
    template.add_net_test(width=10)
    template.add_net_test("other", width=20)
    template.add_net_test("third", width=30)
    template.add_test("test_more", RETURNED_AND_FIXTURE)
    template.write_budget(HAND_WRITTEN)
    written: dict[str, bytes] = {}

    for mode, args in RECORDING_MODES.items():
        copy = pytester.path / f"copy-{mode}"
        shutil.copytree(pytester.path, copy, ignore=shutil.ignore_patterns("copy-*", "runpytest-*"))
        monkeypatch.chdir(copy)
        result = run_pytest(pytester, *args, "--macc-budget-update")
        assert result.ret == pytest.ExitCode.OK, result.stdout.str()
        result.assert_outcomes(passed=5)
        written[mode] = (copy / BUDGET_FILE).read_bytes()

    reference = written["no-xdist-args"]
    assert {mode: text == reference for mode, text in written.items()} == dict.fromkeys(RECORDING_MODES, True)
    text = reference.decode("utf-8")
    assert "  tolerance: {macs: 2% and 1M, params: 0}\n" in text
    assert "    limit: {macs: 1.2M, peak_activation_bytes: 24MB}\n" in text
    assert template.file().read_text(encoding="utf-8") == HAND_WRITTEN  # the template was not touched
    models = yaml.safe_load(text)["models"]
    assert list(models) == ["fixture_a", "fixture_b", "net", "other", "returned", "third"]
    assert models["other"] == net_entry(width=20)
    assert models["fixture_a"] == net_entry(width=13)
