#!/usr/bin/env python3
"""What the pytest plugin costs: at start-up when `--macc-budget` is off, and per model when it is on.

(a) Start-up, flag off. The plugin is loaded in every pytest run of a repository that has the
    package installed, so it must cost next to nothing there. Measured two ways:
      * `python -m pytest --co -q` on a tiny generated test project (three tests, one of them
        marked with @pytest.mark.macc_budget), the plugin loaded vs `-p no:maccbudget`, and the
        same with PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 (no other plugin) and `-p
        pytest_maccbudget.plugin` vs nothing. CPU time (user + system) of --repeat fresh
        processes each, median and best, and the median wall time; the runs are interleaved so
        machine load hits all alike. Goal: under 20 ms CPU time over pytest without the plugin,
        judged on the best CPU times of the autoload-off pair: other processes only ever add
        time, so the best is the least disturbed figure, and that pair's base run is the
        shortest (the noise of the pair with every plugin loaded is larger than the effect).
      * `python -X importtime`: the plugin module's own cumulative import time (pytest already
        imported), and that of pytest_maccbudget.export, which collection imports to check a
        marker's inputs= even with the flag off; the median of --repeat processes; and whether
        torch, onnx, yaml or numpy got imported (they must not).
(b) Per model, flag on: the time of each step the plugin runs for a marked model, on the models
    of examples/ (MobileNetV2 0.5 at 128x128, the transformer token tagger, the ONNX keyword
    spotter), with each torch exporter:
      export   export_model(...) (torch.onnx.export + renaming nodes to module paths); "first" is
               the model's first export in the process (the first model of an exporter also
               pays that exporter's one-time set-up: about 2.5 s for dynamo)
      profile  profile_model(path) on the exported file
      compare  budget.compare(...) against examples/macc_budget.yaml
    Times are medians of --repeat calls in one process (export: of the calls after the first).
    On a machine whose cores are busy with other processes, torch's intra-op threads slow the
    export down several times; --torch-threads 1 shows the export without that.

(c) A suite of six models built in code (benchmarks/models.py) run by pytest, with each torch
    exporter: plain pytest, the first `--macc-budget` run (measurement cache empty), and a second
    run with nothing changed; per model the CPU of export, profile and the rest; and the goals
    (first run's overhead at most 1.25x the exports + 1 s, the unchanged rerun's at most a fifth
    of the first's). See benchmarks/suite_overhead.py.

Usage: python benchmarks/plugin_overhead.py [--repeat N] [--skip-startup] [--skip-models] [--skip-suite]
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
STARTUP_GOAL_MS = 20.0
PYCACHE_DIR = "pycache"  # beside the temporary project: PYTHONPYCACHEPREFIX of the measured processes
HEAVY_MODULES = ("torch", "onnx", "yaml", "numpy")
# arm -> (extra pytest arguments, autoload of installed plugins disabled)
ARMS = {
    "pytest --co -q": ([], False),
    "pytest --co -q -p no:maccbudget": (["-p", "no:maccbudget"], False),
    "autoload off: pytest --co -q -p pytest_maccbudget.plugin": (["-p", "pytest_maccbudget.plugin"], True),
    "autoload off: pytest --co -q": ([], True),
}
PAIRS = (  # (plugin on, plugin off, what the difference is)
    ("pytest --co -q", "pytest --co -q -p no:maccbudget", "every installed plugin loaded"),
    ("autoload off: pytest --co -q -p pytest_maccbudget.plugin", "autoload off: pytest --co -q", "only this plugin"),
)
# The goal is judged on the run without the other plugins: the same difference, measured on a
# base run a quarter as long, so the machine's noise is a quarter as large.
JUDGED = "only this plugin"
IMPORTS_MEASURED = {
    "pytest_maccbudget.plugin": "import pytest_maccbudget.plugin (at start-up)",
    "pytest_maccbudget.export": "import pytest_maccbudget.export (at collection, to check inputs=)",
}

TINY_PROJECT = {
    "pytest.ini": "[pytest]\n",  # its own rootdir, no addopts from the repository
    "test_tiny.py": textwrap.dedent('''\
        import pytest

        def test_one():
            assert 1 + 1 == 2

        @pytest.mark.parametrize("x", [1, 2])
        def test_two(x):
            assert x > 0

        @pytest.mark.macc_budget("tiny", inputs=[(1, 3, 32, 32)])
        def test_marked():
            pass
        '''),
}


# --- helpers ------------------------------------------------------------------------------


def median_ms(samples: Sequence[float]) -> float:
    return statistics.median(samples) * 1000.0


def fmt_ms(value: Optional[float], signed: bool = False) -> str:
    if value is None:
        return "-"
    sign = "+" if signed and value >= 0 else ""
    return f"{sign}{value:,.1f} ms" if abs(value) >= 1.0 else f"{sign}{value * 1000:,.0f} µs"


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> None:
    """Aligned columns: the first `left` columns left-aligned, the rest right-aligned."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c).ljust(w) if i < left else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    print(line(header))
    print(line(["-" * w for w in widths]))
    for row in rows:
        print(line(row))


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


# --- (a) start-up with the flag off --------------------------------------------------------


def write_tiny_project(directory: Path) -> None:
    for name, text in TINY_PROJECT.items():
        (directory / name).write_text(text, encoding="utf-8")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def child_environment(pycache: Path, isolated: bool = False) -> dict[str, str]:
    """The environment of a measured process: bytecode is cached (in `pycache`, outside the
    source tree) as on a user's machine, even where PYTHONDONTWRITEBYTECODE is set; otherwise
    every process would compile the plugin's modules from source and that would be measured."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    if isolated:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return env


def pytest_collect_seconds(project: Path, extra: Sequence[str], isolated: bool = False) -> tuple[float, float]:
    """(wall, CPU) seconds of one `pytest --co -q` process. CPU time (user + system) is what the
    goal is judged on: on a shared machine the wall time also measures the other processes."""
    command = [sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", *extra]
    env = child_environment(project.parent / PYCACHE_DIR, isolated)
    cpu_before = children_cpu_seconds()
    start = time.perf_counter()
    done = subprocess.run(command, cwd=project, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    cpu = children_cpu_seconds() - cpu_before
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed in {project}:\n{done.stdout}\n{done.stderr}")
    return elapsed, cpu


def plugin_is_loaded(project: Path) -> bool:
    """`-p no:maccbudget` must really switch the plugin off, or the comparison means nothing."""
    command = [sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", "--help"]
    env = child_environment(project.parent / PYCACHE_DIR)
    with_plugin = subprocess.run(command, cwd=project, capture_output=True, text=True, env=env).stdout
    without = subprocess.run(command + ["-p", "no:maccbudget"], cwd=project, capture_output=True, text=True,
                             env=env).stdout
    return "--macc-budget" in with_plugin and "--macc-budget" not in without


def import_times_us(pycache: Path) -> tuple[dict[str, int], list[str]]:
    """Cumulative import time (µs) of the plugin module, and of the export module that marker
    validation imports at collection, each on top of what was imported before it (pytest first);
    and which heavy modules got imported."""
    code = ("import sys, pytest; import pytest_maccbudget.plugin; import pytest_maccbudget.export; "
            f"print(','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                          check=True, env=child_environment(pycache))
    cumulative: dict[str, int] = {}
    for line in done.stderr.splitlines():
        # import time: self [us] | cumulative | imported package
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip() in IMPORTS_MEASURED:
            cumulative[parts[2].strip()] = int(parts[1].strip())
    missing = [m for m in IMPORTS_MEASURED if m not in cumulative]
    if missing:
        raise SystemExit(f"{', '.join(missing)} not found in -X importtime output")
    heavy = [m for m in done.stdout.strip().split(",") if m]
    return cumulative, heavy


def startup(repeat: int) -> bool:
    print(f"(a) start-up with --macc-budget off: {repeat} fresh processes each, bytecode cached "
          "(PYTHONPYCACHEPREFIX in a temporary directory)")
    print()
    with tempfile.TemporaryDirectory(prefix="maccbudget-overhead-") as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        write_tiny_project(project)
        if not plugin_is_loaded(project):
            raise SystemExit("the plugin is not loaded by pytest here, or -p no:maccbudget does not disable it")
        runs: dict[str, list[tuple[float, float]]] = {arm: [] for arm in ARMS}
        for arm, (extra, isolated) in ARMS.items():  # warm the file system cache and .pyc files
            pytest_collect_seconds(project, extra, isolated)
        for _ in range(repeat):
            for arm, (extra, isolated) in ARMS.items():
                runs[arm].append(pytest_collect_seconds(project, extra, isolated))
        import_times_us(project.parent / PYCACHE_DIR)  # warm: write the bytecode
        imports = [import_times_us(project.parent / PYCACHE_DIR) for _ in range(repeat)]
    heavy = sorted({m for _, modules in imports for m in modules})

    def figures(arm: str) -> tuple[float, float, float]:
        """(median CPU, best CPU, median wall) in ms."""
        cpu = [c for _, c in runs[arm]]
        return median_ms(cpu), min(cpu) * 1000.0, median_ms([wall for wall, _ in runs[arm]])

    rows = []
    differences = {}
    for on_arm, off_arm, label in PAIRS:
        on, off = figures(on_arm), figures(off_arm)
        differences[label] = on[1] - off[1]
        rows += [
            [on_arm, *(fmt_ms(v) for v in on)],
            [off_arm, *(fmt_ms(v) for v in off)],
            [f"  difference: the plugin's cost, {label}", *(fmt_ms(a - b, True) for a, b in zip(on, off))],
        ]
    for module, label in IMPORTS_MEASURED.items():
        samples = [times[module] / 1e6 for times, _ in imports]
        rows.append([f"{label}, -X importtime cumulative", "-", "-", fmt_ms(median_ms(samples))])
    print_table(["measurement", "CPU median", "CPU best", "wall median"], rows)
    print()
    print(f"heavy modules imported by the plugin: {', '.join(heavy) if heavy else 'none'} "
          f"(checked: {', '.join(HEAVY_MODULES)})")
    over_ms = differences[JUDGED]
    passed = over_ms < STARTUP_GOAL_MS and not heavy
    verdict = "PASS" if passed else "MISS"
    print(f"goal: under {STARTUP_GOAL_MS:.0f} ms CPU time over pytest without the plugin ({JUDGED}, best of "
          f"{repeat}), no heavy imports: {verdict} ({over_ms:+.1f} ms)")
    return passed


# --- (b) per model, flag on ----------------------------------------------------------------


def example_models() -> list[tuple[str, Callable[[], Any], Any]]:
    """(budget name, factory, inputs) for the models of examples/, as its tests mark them."""
    sys.path.insert(0, str(EXAMPLES))
    import torch

    from models import TokenTagger, mobilenet_v2
    from models.keyword_spotter import EXPORT_PATH

    torch.manual_seed(0)
    return [
        ("mobilenet_v2-0.5", lambda: mobilenet_v2(width_mult=0.5, num_classes=10), [(1, 3, 128, 128)]),
        ("token-tagger", TokenTagger, {"tokens": ((1, 64), "int64")}),
        ("keyword-spotter", lambda: EXPORT_PATH, {"mfcc": [1, 1, 49, 10]}),
    ]


def measurement_of(name: str, exported: Any, inputs: Any) -> tuple[Any, Any]:
    """Profile the exported file and build the plugin's Measurement from it, as the plugin does."""
    from pytest_maccbudget import profile_model
    from pytest_maccbudget.budget import Measurement
    from pytest_maccbudget.layers import layer_macs

    onnx_inputs = {k: list(v) for k, v in inputs.items()} if exported.exporter == "onnx" else None
    profile = profile_model(exported.path, onnx_inputs, name=name)
    totals = profile.totals
    measurement = Measurement(
        name=name,
        nodeid=f"benchmarks/plugin_overhead.py::{name}",
        inputs=exported.inputs or {k: list(v) for k, v in profile.inputs.items()},
        total={
            "macs": None if profile.partial else totals.macs,
            "flops": None if profile.partial else totals.flops,
            "params": totals.params,
            "param_bytes": totals.param_bytes,
            "peak_activation_bytes": totals.peak_activation_bytes,
        },
        layers=layer_macs((layer.name, layer.macs) for layer in profile.layers),
    )
    return profile, measurement


def per_model(repeat: int) -> None:
    from pytest_maccbudget.budget import compare, load_budget
    from pytest_maccbudget.export import EXPORTERS, export_model

    print(f"(b) per model with --macc-budget on: median of {repeat} calls in one process")
    print()
    budget_path = EXAMPLES / "macc_budget.yaml"
    load_seconds = []
    for _ in range(repeat):
        seconds, budget = timed(lambda: load_budget(budget_path))
        load_seconds.append(seconds)
    print(f"load_budget(examples/macc_budget.yaml), once per session: {fmt_ms(median_ms(load_seconds))}")
    print()

    models = example_models()
    rows = []
    notes = []
    with tempfile.TemporaryDirectory(prefix="maccbudget-overhead-") as tmp:
        workdir = Path(tmp)
        for exporter in EXPORTERS:
            for name, factory, inputs in models:
                model = factory()
                is_file = isinstance(model, (str, os.PathLike))
                if is_file and exporter != EXPORTERS[0]:
                    continue  # an ONNX file is not exported: one row is enough
                export_times = []
                for index in range(repeat + 1):
                    seconds, exported = timed(lambda: export_model(
                        model, inputs, name=f"{name}-{exporter}-{index}", workdir=workdir, exporter=exporter))
                    export_times.append(seconds)
                profile_times = []
                for _ in range(repeat):
                    seconds, (profile, measurement) = timed(lambda: measurement_of(name, exported, inputs))
                    profile_times.append(seconds)
                compare_times = []
                for _ in range(repeat):
                    seconds, comparison = timed(lambda: compare(budget, measurement))
                    compare_times.append(seconds)
                rows.append([
                    name, "onnx file" if is_file else exporter,
                    fmt_ms(export_times[0] * 1000), fmt_ms(median_ms(export_times[1:])),
                    fmt_ms(median_ms(profile_times)), fmt_ms(median_ms(compare_times)),
                    f"{len(profile.layers)}", comparison.status,
                ])
                if profile.totals.peak_activation_bytes is None:
                    notes.append(f"{name} ({exporter}): {profile.notes[0] if profile.notes else 'peak activation memory unknown'}")
    print_table(["model", "exporter", "export (first)", "export", "profile", "compare", "layers", "vs budget"],
                rows, left=2)
    print()
    print("vs budget: compare's result against examples/macc_budget.yaml (recorded with that project's "
          "exporter, dynamo); untrained models' FLOPs and params can differ by exporter.")
    for note in notes:
        print(f"note: {note}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=15, help="processes or calls per figure (default 15)")
    parser.add_argument("--skip-startup", action="store_true", help="skip (a), the start-up measurement")
    parser.add_argument("--skip-models", action="store_true", help="skip (b), the per-model measurement")
    parser.add_argument("--skip-suite", action="store_true", help="skip (c), the suite of six models run by pytest")
    parser.add_argument("--suite-repeat", type=int, default=3, metavar="N",
                        help="pytest runs per figure of (c), the least kept (default 3)")
    parser.add_argument("--torch-threads", type=int, default=None, metavar="N",
                        help="torch.set_num_threads(N) before (b) (default: torch's own default, as the plugin runs)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    import platform

    import pytest

    print(f"python {platform.python_version()}, pytest {pytest.__version__}, {os.cpu_count()} cpus, "
          f"load average {os.getloadavg()[0]:.2f} at start")
    print()
    if not args.skip_startup:
        startup(args.repeat)
        print()
    if not args.skip_models:
        import onnx
        import torch

        if args.torch_threads is not None:
            torch.set_num_threads(args.torch_threads)
        print(f"torch {torch.__version__} ({torch.get_num_threads()} intra-op threads), onnx {onnx.__version__}")
        per_model(args.repeat)
        print()
    if not args.skip_suite:
        sys.path.insert(0, str(REPO))
        from benchmarks.suite_overhead import suite

        suite(args.suite_repeat)
        print()
    print(f"load average {os.getloadavg()[0]:.2f} at the end (a shared machine: expect 10-20% spread)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
