"""Issue 4 through the plugin: the JSON and markdown reports, sharded runs merged by
`maccbudget merge`, and a pull request against a base branch in a simulated GitHub Actions run."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from .conftest import BUDGET_FILE, Project


def _three_nets(project: Project, grown: int = 10) -> None:
    project.write_recorded(alpha=10, beta=20, gamma=30)
    project.add_net_test("alpha", width=grown)
    project.add_net_test("beta", width=20)
    project.add_net_test("gamma", width=30)


def test_sharded_runs_merge_to_the_single_run_report_byte_for_byte(project: Project) -> None:
    _three_nets(project, grown=11)
    single = project.run("--macc-budget", "--macc-budget-json", "single.json", "--macc-budget-report", "single.md")
    assert single.ret == pytest.ExitCode.TESTS_FAILED  # alpha grew
    for index in (1, 2):
        project.run("--macc-budget", "--macc-budget-shard", f"{index}/2", "--macc-budget-json", f"shard{index}.json")
    shards = [json.loads((project.path / f"shard{i}.json").read_text()) for i in (1, 2)]
    assert sorted(m["name"] for shard in shards for m in shard["models"]) == ["alpha", "beta", "gamma"]

    merged = subprocess.run(
        [sys.executable, "-m", "pytest_maccbudget", "merge", "shard1.json", "shard2.json", "--budget", BUDGET_FILE,
         "--json", "merged.json", "--report", "merged.md"],
        cwd=project.path, capture_output=True, text=True)

    assert merged.returncode == 1, merged.stderr  # the same verdict: alpha failed
    assert "failed: alpha" in merged.stdout
    assert (project.path / "merged.json").read_bytes() == (project.path / "single.json").read_bytes()
    assert (project.path / "merged.md").read_bytes() == (project.path / "single.md").read_bytes()
    assert [shard["shard"] for shard in shards] == [{"index": 1, "count": 2}, {"index": 2, "count": 2}]

    alone = subprocess.run([sys.executable, "-m", "pytest_maccbudget", "merge", "shard1.json", "--budget", BUDGET_FILE],
                           cwd=project.path, capture_output=True, text=True)
    assert alone.returncode == 2  # one of two shards: never "all within budget"
    assert "shard 2/2 missing: give the reports of all 2 shards" in alone.stderr


def test_shard_option_is_validated(project: Project) -> None:
    result = project.run("--macc-budget", "--macc-budget-shard", "3/2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--macc-budget-shard: expected I/N with 1 <= I <= N, e.g. 2/4; got '3/2'*"])


@pytest.mark.parametrize("xdist_args", [()], ids=["no-xdist-args"])
def test_pull_request_against_the_base_branch_in_github_actions(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    git = pytest.importorskip("git")
    repo = git.Repo.init(project.path, initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "test").set_value("user", "email", "test@example.com")
    project.write_recorded(alpha=10, beta=20)
    repo.index.add([BUDGET_FILE])
    base_commit = repo.index.commit("budget on main").hexsha
    repo.create_head("feature").checkout()
    # the branch grows alpha's fc (10 -> 12 outputs) and raises beta's budget by hand (20 -> 22)
    project.write_recorded(alpha=10, beta=22)
    repo.index.add([BUDGET_FILE])
    repo.index.commit("raise beta's budget")
    project.add_net_test("alpha", width=12)
    project.add_net_test("beta", width=22)
    summary = project.path / "step_summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    result = project.run("--macc-budget", "--macc-budget-base", "main", "--macc-budget-json", "report.json")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=1)
    budget_lines = (project.path / BUDGET_FILE).read_text().splitlines()
    alpha_line = budget_lines.index("  alpha:") + 1
    errors = [line for line in result.stdout.lines if line.startswith("::error ")]
    assert len(errors) == 1
    assert errors[0].startswith(f"::error file={BUDGET_FILE},line={alpha_line},")
    report = json.loads((project.path / "report.json").read_text())
    assert report["base"] == {"ref": "main", "commit": base_commit}
    models = {m["name"]: m for m in report["models"]}
    assert (models["alpha"]["status"], models["alpha"]["budget_change"]) == ("regressed", "unchanged")
    assert (models["beta"]["status"], models["beta"]["budget_change"]) == ("ok", "raised")
    text = summary.read_text()
    assert text.startswith("<!-- pytest-maccbudget report -->")
    assert re.search(r"budget raised \+\d+(\.\d+)?% in this PR", text), text
    # the terminal says it too: a "vs base" column, and the budget this branch raised
    result.stdout.fnmatch_lines([
        "model * MACs * vs budget * vs base * params * peak act. memory * status",
        "alpha * +5.4% * +5.4% *REGRESSED",
        "beta * = * +4.3% *ok",
        "budget raised in this branch (vs main): beta (MACs +*%)",
    ])


def test_junit_xml_carries_per_test_figures(project: Project) -> None:
    project.write_recorded(alpha=10)
    project.add_net_test("alpha", width=10)

    project.run("--macc-budget", "--junit-xml", "junit.xml")

    xml = (project.path / "junit.xml").read_text()
    assert '<property name="macc_budget.model" value="alpha"' in xml
    assert '<property name="macc_budget.status" value="ok"' in xml
    assert re.search(r'<property name="macc_budget.macs" value="\d+"', xml)


TORCH_NET = """
    import pytest
    import torch
    from torch import nn


    class Block(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.conv = nn.Conv2d(3, width, 3, padding=1)

        def forward(self, x):
            return self.conv(x)


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = Block({width})
            self.head = nn.Linear({width}, 2)

        def forward(self, x):
            return self.head(self.block(x).mean((2, 3)))


    @pytest.mark.macc_budget("torchnet", inputs=[(1, 3, 8, 8)])
    def test_torchnet():
        torch.manual_seed(0)
        return Net()
"""


@pytest.mark.slow
@pytest.mark.parametrize("xdist_args", [(), ("-n", "2")], ids=["no-xdist-args", "n2"])
def test_annotation_points_at_the_code_that_defines_the_grown_layer(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project.add_test("test_torchnet", TORCH_NET.format(width=4))
    project.record()
    project.add_test("test_torchnet", TORCH_NET.format(width=6))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(project.path / "summary.md"))

    result = project.run("--macc-budget")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    source = (project.path / "test_torchnet.py").read_text().splitlines()
    # block.conv is an nn.Conv2d: the annotation lands where Block creates it
    conv_line = next(n for n, line in enumerate(source, 1) if "self.conv = nn.Conv2d" in line)
    errors = [line for line in result.stdout.lines if line.startswith("::error ")]
    assert len(errors) == 1
    assert errors[0].startswith(f"::error file=test_torchnet.py,line={conv_line},")
    assert "block.conv" in errors[0]


def test_a_model_that_could_not_be_checked_is_in_the_report_and_fails_the_merge(project: Project) -> None:
    project.write_recorded(alpha=10)
    project.add_net_test("alpha", width=10)
    project.add_test("test_beta", """
        import pytest


        @pytest.mark.macc_budget("beta", model="no_such_file.onnx")
        def test_beta():
            pass
    """)

    single = project.run("--macc-budget", "--macc-budget-json", "single.json", "--macc-budget-report", "single.md")

    assert single.ret == pytest.ExitCode.TESTS_FAILED
    report = json.loads((project.path / "single.json").read_text())
    assert [(e["name"], e["test"]) for e in report["errors"]] == [("beta", "test_beta.py::test_beta")]
    assert "ONNX file not found" in report["errors"][0]["message"]
    markdown = (project.path / "single.md").read_text()
    assert "1 model could not be checked" in markdown.splitlines()[1]
    for index in (1, 2):
        project.run("--macc-budget", "--macc-budget-shard", f"{index}/2", "--macc-budget-json", f"shard{index}.json")
    merged = subprocess.run(
        [sys.executable, "-m", "pytest_maccbudget", "merge", "shard1.json", "shard2.json", "--budget", BUDGET_FILE,
         "--json", "merged.json"], cwd=project.path, capture_output=True, text=True)
    assert merged.returncode == 1, merged.stdout + merged.stderr
    assert (project.path / "merged.json").read_bytes() == (project.path / "single.json").read_bytes()


@pytest.mark.parametrize("xdist_args", [(), ("-n", "2")], ids=["no-xdist-args", "n2"])
def test_no_report_when_pytest_did_not_complete_the_checks(project: Project) -> None:
    project.add_net_test("alpha")
    project.write_recorded(alpha=10)
    missing = project.run("--macc-budget", "--macc-budget-json=r.json", "--macc-budget-report=r.md", "no_such_test.py")
    # pytest: a usage error; under xdist the workers fail to collect it and the run collects nothing
    assert missing.ret in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.NO_TESTS_COLLECTED)
    missing.stdout.fnmatch_lines(["note: no report written: pytest did not complete the checks (*)"])
    assert not (project.path / "r.json").exists() and not (project.path / "r.md").exists()
    if project.xdist_args:
        return  # under xdist a collection error does not stop the other tests: their report is complete
    project.add_test("test_broken", "import no_such_module\n")
    collection = project.run("--macc-budget", "--macc-budget-json=r.json", "--macc-budget-report=r.md")
    assert collection.ret == pytest.ExitCode.INTERRUPTED  # "1 error during collection": nothing was checked
    collection.stdout.fnmatch_lines(["note: no report written: pytest did not complete the checks "
                                     "(interrupted, or a collection error)"])
    assert not (project.path / "r.json").exists() and not (project.path / "r.md").exists()


@pytest.mark.parametrize("xdist_args", [()], ids=["no-xdist-args"])
def test_the_report_tells_how_a_model_moved_on_the_base_branch(project: Project) -> None:
    git = pytest.importorskip("git")
    repo = git.Repo.init(project.path, initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "test").set_value("user", "email", "test@example.com")
    project.add_net_test("alpha", width=10)
    for width in (10, 11, 12):  # three merges on main, each recording alpha a little bigger
        project.write_recorded(alpha=width)
        repo.index.add([BUDGET_FILE])
        repo.index.commit(f"alpha at {width}")
    first = repo.commit("HEAD~2").hexsha[:7]
    repo.create_head("feature").checkout()
    project.add_net_test("alpha", width=13)

    result = project.run("--macc-budget", "--macc-budget-base", "main", "--macc-budget-json=r.json",
                         "--macc-budget-report=r.md")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    [model] = json.loads((project.path / "r.json").read_text())["models"]
    assert re.fullmatch(rf"MACs 9\.47 k → 9\.73 k → 9\.98 k over the last 3 changes \(since {first}, \d{{4}}-\d\d-\d\d\)",
                        model["trend"]), model["trend"]
    assert f"- trend on `main`: MACs 9.47 k → 9.73 k → 9.98 k over the last 3 changes (since {first}" in (
        project.path / "r.md").read_text()
