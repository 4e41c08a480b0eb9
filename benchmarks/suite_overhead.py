"""What `pytest --macc-budget` adds to a test suite of real models, first run and unchanged rerun.

A generated project checks the six models of benchmarks/models.py (CNNs, a depthwise CNN with
BatchNorm, a residual net, a transformer encoder, an LSTM, a ConvTranspose UNet), each a
marked test that builds its model. For one exporter it runs, in fresh processes:

  plain     `pytest`                      the suite as a user runs it without the plugin's flag
  first     `pytest --macc-budget`        measurement cache empty: every model exported
  second    `pytest --macc-budget`        nothing changed: the cache answers for every model

(after an unmeasured `--macc-budget-update` has recorded the budget). Each figure is the CPU
time (user + system) of the pytest process, the least of --repeat runs: other processes only
ever add time. A conftest in the project times, per model, the plugin's export and profile
calls (the profile runs in a child process: its wall time as the parent waits) and the test's whole call; "rest" is what the plugin adds to a test besides those two
(the cache's fingerprint and code record, the comparison, where layers are built).

Goals (issue 8): the first run's overhead over plain at most 1.25 x the exports alone + 1 s;
the unchanged second run's overhead at most a fifth of the first's.

Run by benchmarks/plugin_overhead.py (section c); alone: python benchmarks/suite_overhead.py
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parent.parent
EXPORTERS = ("torchscript", "dynamo")
FIRST_RUN_FACTOR, FIRST_RUN_SLACK_S, SECOND_RUN_SHARE = 1.25, 1.0, 0.2

CONFTEST = '''
"""Times the plugin's export and profile calls and each test's call, per model."""
import json
import os
import time

import pytest

import pytest_maccbudget.export as export_module
import pytest_maccbudget.layer_sources as sources_module
from pytest_maccbudget.isolation import IsolatedProfiler

TIMES = {}
CURRENT = {"test": None}


def _timed(module, attribute, phase):
    original = getattr(module, attribute)

    def timed(*args, **kwargs):
        start = time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            slot = TIMES.setdefault(CURRENT["test"], {})
            slot[phase] = slot.get(phase, 0.0) + time.process_time() - start

    setattr(module, attribute, timed)


_timed(export_module, "export_model", "export")
_timed(IsolatedProfiler, "profile", "profile")  # the parent's wait for the profiling process
_timed(sources_module, "layer_chains", "sources")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    CURRENT["test"] = item.name
    start = time.process_time()
    try:
        return (yield)
    finally:
        TIMES.setdefault(item.name, {})["call"] = time.process_time() - start


def pytest_sessionfinish(session):
    Path = __import__("pathlib").Path
    Path(os.environ["SUITE_TIMES"]).write_text(json.dumps(TIMES))
'''

TEST_FILE = '''
import sys

import pytest

sys.path.insert(0, {repo!r})
from benchmarks.models import BENCHMARK_MODELS, build  # noqa: E402

{tests}
'''

TEST = '''
@pytest.mark.macc_budget({name!r}, inputs=BENCHMARK_MODELS[{name!r}].inputs)
def test_{name}():
    return build({name!r})
'''


@dataclass(frozen=True)
class Run:
    cpu_s: float
    times: dict[str, dict[str, float]]  # test name -> {"call", "export", "profile"} CPU seconds


def write_project(directory: Path, exporter: str, models: Sequence[str]) -> None:
    (directory / "pytest.ini").write_text(f"[pytest]\nmacc_budget_exporter = {exporter}\n", encoding="utf-8")
    (directory / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    tests = "".join(TEST.format(name=name) for name in models)
    (directory / "test_models.py").write_text(TEST_FILE.format(repo=str(REPO), tests=tests), encoding="utf-8")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_pytest(project: Path, *args: str) -> Run:
    times_file = project / "times.json"
    env = {**os.environ, "SUITE_TIMES": str(times_file), "PYTHONDONTWRITEBYTECODE": "1"}
    before = children_cpu_seconds()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:xdist", *args],
                          cwd=project, env=env, capture_output=True, text=True)
    cpu = children_cpu_seconds() - before
    if done.returncode not in (0, 1):
        raise SystemExit(f"pytest {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    return Run(cpu, json.loads(times_file.read_text()) if times_file.exists() else {})


def least(runs: Sequence[Run]) -> Run:
    return min(runs, key=lambda run: run.cpu_s)


def measure(exporter: str, models: Sequence[str], repeat: int) -> dict[str, Run]:
    with tempfile.TemporaryDirectory(prefix="maccbudget-suite-") as temp:
        project = Path(temp)
        write_project(project, exporter, models)
        plain = least([run_pytest(project, "-p", "no:cacheprovider") for _ in range(repeat)])
        run_pytest(project, "-p", "no:cacheprovider", "--macc-budget-update")  # records the budget, not measured
        first = least([run_pytest(project, "--cache-clear", "--macc-budget") for _ in range(repeat)])
        second = least([run_pytest(project, "--macc-budget") for _ in range(repeat)])
        reported = least([run_pytest(project, "--cache-clear", "--macc-budget", "--macc-budget-report=r.md")
                          for _ in range(repeat)])
    return {"plain": plain, "first": first, "second": second, "reported": reported}


def report(exporter: str, runs: dict[str, Run], models: Sequence[str]) -> bool:
    plain, first, second = runs["plain"], runs["first"], runs["second"]
    exports = sum(times.get("export", 0.0) for times in first.times.values())
    first_over, second_over = first.cpu_s - plain.cpu_s, second.cpu_s - plain.cpu_s
    first_goal = FIRST_RUN_FACTOR * exports + FIRST_RUN_SLACK_S
    print(f"\n({exporter} exporter, {len(models)} models; CPU seconds, the least of the runs)")
    print_rows(["run", "CPU s", "over plain"], [
        ["plain pytest", f"{plain.cpu_s:.2f}", ""],
        ["first --macc-budget run (cache empty)", f"{first.cpu_s:.2f}", f"{first_over:+.2f}"],
        ["second run, nothing changed", f"{second.cpu_s:.2f}", f"{second_over:+.2f}"],
        ["the exports alone (first run)", f"{exports:.2f}", ""],
        ["first run writing a report", f"{runs['reported'].cpu_s:.2f}", f"{runs['reported'].cpu_s - plain.cpu_s:+.2f}"],
    ])
    sources = sum(times.get("sources", 0.0) for times in runs["reported"].times.values())
    reported_over = runs["reported"].cpu_s - plain.cpu_s
    share = sources / reported_over if reported_over > 0 else 0.0
    print(f"where layers are built (for annotations), with a report: {sources:.3f} s, "
          f"{share:.1%} of the plugin's time (goal: at most 5%)")
    print_rows(["model", "export", "profile", "rest", "second run"],
               [model_row(name, plain, first, second) for name in models])
    first_ok, second_ok = first_over <= first_goal, second_over <= SECOND_RUN_SHARE * first_over
    print(f"goal: first run's overhead {first_over:.2f} s <= 1.25 x exports + 1 s = {first_goal:.2f} s: "
          f"{'PASS' if first_ok else 'MISSED'}")
    print(f"goal: unchanged second run's overhead {second_over:.2f} s <= a fifth of the first's "
          f"({SECOND_RUN_SHARE * first_over:.2f} s): {'PASS' if second_ok else 'MISSED'}")
    return first_ok and second_ok


def model_row(name: str, plain: Run, first: Run, second: Run) -> list[str]:
    test = f"test_{name}"
    with_plugin, without = first.times.get(test, {}), plain.times.get(test, {})
    export, profile = with_plugin.get("export", 0.0), with_plugin.get("profile", 0.0)
    rest = with_plugin.get("call", 0.0) - without.get("call", 0.0) - export - profile
    added = second.times.get(test, {}).get("call", 0.0) - without.get("call", 0.0)
    return [name, f"{export:.3f}", f"{profile:.3f}", f"{rest:.3f}", f"{added:.3f}"]


def print_rows(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * width for width in widths], *rows]:
        print("  ".join(str(cell).ljust(width) if index == 0 else str(cell).rjust(width)
                        for index, (cell, width) in enumerate(zip(row, widths))).rstrip())


def suite(repeat: int, exporters: Sequence[str] = EXPORTERS, models: Optional[Sequence[str]] = None) -> bool:
    sys.path.insert(0, str(REPO))
    from benchmarks.models import BENCHMARK_MODELS

    names = list(models or BENCHMARK_MODELS)
    print(textwrap.dedent("""
        (c) A suite of real models: plain pytest, the first --macc-budget run, and an unchanged rerun.
        per model, first run: export and profile are the plugin's calls; rest is what else the plugin
        adds to the test (fingerprint, code record, comparison, layer sources); second run: what the
        plugin adds to the test when the cache answers."""))
    return all([report(exporter, measure(exporter, names, repeat), names) for exporter in exporters])


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure, the least is kept (default 1)")
    parser.add_argument("--exporter", choices=EXPORTERS, action="append", help="default: both")
    args = parser.parse_args(argv)
    return 0 if suite(args.repeat, args.exporter or EXPORTERS) else 1


if __name__ == "__main__":
    sys.exit(main())
