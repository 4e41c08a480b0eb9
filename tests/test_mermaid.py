"""Mermaid's own parser (the pinned `mermaid` npm package, under node) reads every shape of chart
the pull-request report produces as it was meant: horizontal bars from 0, the three series, the
layer names as written, and the init directive's colours.

`bash scripts/test.sh` installs the package into tests/node/node_modules (`npm ci`). Without
node the test skips; with node but without the package it fails, naming the command to run."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pytest_maccbudget.pr_report import render_markdown
from pytest_maccbudget.pr_report.chart import CHART_LAYERS, SERIES
from tests.test_chart import chart_shapes, labels, report

NODE_DIR = Path(__file__).resolve().parent / "node"
PARSE_SCRIPT = NODE_DIR / "parse_charts.mjs"
INSTALL_COMMAND = "npm ci --prefix tests/node --no-audit --no-fund  (or: bash scripts/test.sh)"
PINNED = ("mermaid", "jsdom")

# Names the chart module rewrites, written raw: mermaid rejects the first two, and takes a
# directive out of the third (it recolours the chart), so this test would catch any that slipped through.
RAW_HOSTILE = {
    "double quote": 'xychart-beta horizontal\n    x-axis ["a"b", "c"]\n    bar [1, 2]\n',
    "leading %%": 'xychart-beta horizontal\n    x-axis ["%%x", "c"]\n    bar [1, 2]\n',
    "directive": ("xychart-beta horizontal\n    x-axis [\"a %%{init: {'themeVariables': {'xyChart': "
                  "{'plotColorPalette': '#000000'}}}}%%\", \"c\"]\n    bar [1, 2]\n"),
}


def _installed_version(package: str) -> str | None:
    manifest = NODE_DIR / "node_modules" / package / "package.json"
    return json.loads(manifest.read_text(encoding="utf-8"))["version"] if manifest.is_file() else None


def _pinned_version(package: str) -> str:
    lock = json.loads((NODE_DIR / "package-lock.json").read_text(encoding="utf-8"))
    return lock["packages"][f"node_modules/{package}"]["version"]


def node_with_mermaid() -> str:
    """The node executable; skips without node, fails when the pinned packages are not installed."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: mermaid's parser runs under node")
    for package in PINNED:
        installed, pinned = _installed_version(package), _pinned_version(package)
        if installed != pinned:
            state = "is not installed" if installed is None else f"is {installed}, not the pinned {pinned}"
            pytest.fail(f"{package} for node {state} in {NODE_DIR / 'node_modules'}; run: {INSTALL_COMMAND}",
                        pytrace=False)
    return node


def mermaid_parse(node: str, charts: list[str]) -> list[dict[str, Any]]:
    """One node process parses every chart."""
    done = subprocess.run([node, str(PARSE_SCRIPT)], input=json.dumps(charts), capture_output=True, text=True,
                          cwd=NODE_DIR, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def fence_bodies(markdown: str) -> list[str]:
    """The content of every ```mermaid fence, as GitHub hands it to mermaid."""
    bodies, body = [], None
    for line in markdown.splitlines():
        if body is None and line == "```mermaid":
            body = []
        elif body is not None and line == "```":
            bodies.append("\n".join(body) + "\n")
            body = None
        elif body is not None:
            body.append(line)
    return bodies


def chart_problems(body: str, parsed: dict[str, Any]) -> list[str]:
    """How mermaid's reading of one chart differs from what the chart module meant."""
    if not parsed["ok"]:
        return [f"mermaid rejected it: {parsed['error']}"]
    lines = body.splitlines()
    written_labels = labels(lines)
    values = [plot["values"] for plot in parsed["plots"]]
    checks = {
        "an xychart": parsed["diagramType"] == "xychart",
        "horizontal": parsed["orientation"] == "horizontal",
        "the title as written": f'    title "{parsed["title"]}"' in lines,
        "the layer names as written": parsed["categories"] == written_labels,
        "distinct layer names": len(set(parsed["categories"])) == len(parsed["categories"]),
        f"at most {CHART_LAYERS} layers": 0 < len(parsed["categories"]) <= CHART_LAYERS,
        "three bar series, named": [(plot["type"], plot["title"]) for plot in parsed["plots"]]
                                   == [("bar", name) for name, _ in SERIES],
        "a value per layer": all(len(row) == len(written_labels) for row in values),
        "max, now, min in that order": all(big >= now >= small for big, now, small in zip(*values)),
        "a value axis from 0 holding every bar": parsed["yAxis"]["min"] == 0
                                                 and parsed["yAxis"]["max"] >= max(max(row) for row in values),
        "a value axis naming MACs": parsed["yAxis"]["title"].startswith("MACs"),
        "the colours of the series": parsed["config"].get("themeVariables", {}).get("xyChart", {})
                                     .get("plotColorPalette") == ", ".join(colour for _, colour in SERIES),
        "its height": parsed["config"].get("xyChart", {}).get("height", 0) > 0,
    }
    return [f"not {what}" for what, ok in checks.items() if not ok]


def test_mermaid_reads_every_chart_of_the_report_as_meant() -> None:
    node = node_with_mermaid()
    shapes = chart_shapes()
    bodies = {name: fence_bodies(render_markdown(report(model))) for name, model in shapes.items()}
    assert all(len(found) == 1 for found in bodies.values()), {name: len(found) for name, found in bodies.items()}
    charts = {name: found[0] for name, found in bodies.items()}
    results = mermaid_parse(node, list(charts.values()) + list(RAW_HOSTILE.values()))
    parsed = dict(zip(list(charts) + [f"raw {name}" for name in RAW_HOSTILE], results))

    problems = {name: chart_problems(charts[name], parsed[name]) for name in charts}
    assert {name: found for name, found in problems.items() if found} == {}
    assert parsed["hostile names"]["categories"][-4:] == ["1,", "‹img›", "x'y", "a'b"]
    assert parsed["12+ layers"]["categories"][0] == "blocks.14.conv"
    assert [parsed[f"raw {name}"]["ok"] for name in RAW_HOSTILE] == [False, False, True]
    assert parsed["raw directive"]["config"] == {"themeVariables": {"xyChart": {"plotColorPalette": "#000000"}}}
    assert parsed["raw directive"]["categories"] == ["a", "c"]
