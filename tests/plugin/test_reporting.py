"""What the user sees outside the check itself: --help, JUnit XML, and a run without
--macc-budget."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree

import pytest

from .conftest import Project


def test_help_lists_every_flag_and_ini_key_with_its_default(project: Project,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # one line per option: no wrapping to match across

    result = project.run("--help")

    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([
        "model cost budgets (pytest-maccbudget):",
        "  --macc-budget *check every model marked with @pytest.mark.macc_budget*Default: off.",
        "  --macc-budget-update *record the costs of the models that ran*Default: off.",
        "  --macc-budget-update-new-only",
        "  *only add entries for models that have none. Default: off.",
        "  --macc-budget-file=PATH",
        "  *the budget file, relative to the rootdir. Default: ini macc_budget_file, else macc_budget.yaml.",
        "  --macc-budget-strict *also fail models that got cheaper than their budget*"
        "Default: ini macc_budget_strict, else off.",
    ])
    result.stdout.fnmatch_lines([
        "  macc_budget_file (string):",
        "  *(default: macc_budget.yaml)",
        "  macc_budget_exporter (string):",
        "  *torchscript*dynamo*(default: torchscript)",
        "  macc_budget_missing (string):",
        "  *fail or warn (default: fail)",
        "  macc_budget_unknown_ops (string):",
        "  *fail or warn (default: fail)",
        "  macc_budget_devices (linelist):",
        "  *devices to estimate latency and energy on*(default: none)",
        "  macc_budget_strict (bool):",
        "  *(default: false)",
    ])

    markers = project.run("--markers")
    assert markers.ret == pytest.ExitCode.OK
    markers.stdout.fnmatch_lines(["@pytest.mark.macc_budget(name, inputs=None, model=None, devices=None): *"])


def test_failure_text_reaches_junit_xml(project: Project) -> None:
    project.write_recorded(net=10)
    project.add_net_test(width=11)

    result = project.run("--macc-budget", "--junit-xml=report.xml")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    cases = ElementTree.parse(project.path / "report.xml").getroot().iter("testcase")
    failures = {case.get("name"): case.find("failure") for case in cases}
    assert set(failures) == {"test_net"}
    failure = failures["test_net"]
    assert failure is not None
    assert "model 'net': macs 9.73 k > budget 9.47 k" in failure.get("message", "")
    assert "fc: 2.56 k -> 2.82 k MACs" in failure.get("message", "")


HEAVY_MODULES_PROBE = """
import json
import os
import sys
from pathlib import Path


def pytest_sessionfinish(session):
    # each process (an xdist controller and each worker) says what it ended up importing
    heavy = sorted(name for name in ("torch", "onnx") if name in sys.modules)
    folder = Path(__file__).with_name("imported")
    folder.mkdir(exist_ok=True)
    (folder / f"{os.getpid()}.json").write_text(json.dumps(heavy))
"""

PLAIN_TESTS = """
import pytest


@pytest.mark.macc_budget("by_path", model="missing.onnx")
def test_marked_with_a_path():
    assert 1 + 1 == 2


@pytest.mark.macc_budget("returned")
def test_returns_its_model():
    return "returned.onnx"


def test_fixture(macc_budget):
    macc_budget.check("checked.onnx", name="checked")


@pytest.mark.macc_budget("failing", model="missing.onnx")
def test_marked_and_failing():
    assert 1 + 1 == 3
"""


def test_without_the_flag_marked_tests_are_plain_tests(project: Project, xdist_args: tuple[str, ...]) -> None:
    project.pytester.makeconftest(HEAVY_MODULES_PROBE)
    project.add_test("test_plain", PLAIN_TESTS)  # no onnx, no torch, no netlib

    result = project.run("-W", "error::pytest.PytestReturnNotNoneWarning")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*assert (1 + 1) == 3*"])
    result.stdout.no_fnmatch_line("*macc budget*")
    result.stdout.no_fnmatch_line("*ReturnNotNone*")
    reports = [json.loads(path.read_text()) for path in (project.path / "imported").glob("*.json")]
    assert len(reports) == (3 if xdist_args == ("-n", "2") else 1)  # controller + 2 workers
    assert reports == [[]] * len(reports), "torch or onnx was imported without --macc-budget"
    assert not (project.path / "macc_budget.yaml").exists()
