r"""Render a markdown report the way a reviewer sees it, check its charts, and screenshot it.

The markdown becomes one HTML page (markdown-it-py, GitHub-like styles); every ```mermaid fence
becomes a `<pre class="mermaid">` drawn by the pinned mermaid bundle in tests/node/node_modules
(`npm ci --prefix tests/node`, which `bash scripts/test.sh` runs). Headless chromium draws the
page twice: once to dump the DOM, in which every chart must be an SVG drawn without a mermaid
error and is checked (bars horizontal from one baseline, a value axis that starts at 0 and
names its unit, series in distinct colours, category labels that do not overlap); once to take
the screenshot, cut to the page's content (or to the end of the caption of chart N, with
--through-chart N).

docs/images/pr-report.png is the example project's report after a change that widens
MobileNetV2's last conv (1280 -> 1600 channels) and pays for it with expansion 4 instead of 6 in
the 160-channel stage. Regenerate it from the repository root (pytest exits 1: the change is a
regression) with:

    rm -rf /tmp/pr-report-example && cp -r examples /tmp/pr-report-example \
      && sed -i 's/^LAST_CHANNELS = 1280$/LAST_CHANNELS = 1600/; s/^    (6, 160, 3, 2),$/    (4, 160, 3, 2),/' \
           /tmp/pr-report-example/models/mobilenet_v2.py \
      && (cd /tmp/pr-report-example \
          && python -m pytest -q --macc-budget --macc-budget-report=report.md -p no:cacheprovider; true) \
      && python scripts/render_report.py /tmp/pr-report-example/report.md docs/images/pr-report.png --through-chart 1

Other uses: `python scripts/render_report.py report.md out.png` screenshots a whole report;
`--html out.html` also keeps the page; `--width` sets the page width in CSS pixels (1000).
"""
from __future__ import annotations

import argparse
import html
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Optional, Sequence

from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
MERMAID_BUNDLE = ROOT / "tests" / "node" / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--force-device-scale-factor=1",
    # mermaid draws after the load event; virtual time lets it finish before the dump or screenshot
    "--virtual-time-budget=20000",
)
CHROMIUM_TIMEOUT = 120  # seconds of real time for one chromium run

# GitHub's light theme, roughly: its fonts, tables and code spans, on a page as wide as a comment.
STYLE = """
body { margin: 0; background: #ffffff; color: #1f2328;
       font: 14px/1.5 -apple-system, "Segoe UI", "Liberation Sans", "DejaVu Sans", Arial, sans-serif,
             "Noto Color Emoji"; }
main { box-sizing: border-box; width: %(width)dpx; padding: 16px 24px; }
h2 { font-size: 1.5em; border-bottom: 1px solid #d1d9e0; padding-bottom: .3em; margin: 0 0 16px; }
h3 { font-size: 1.25em; margin: 24px 0 16px; }
p, ul, table, pre { margin: 0 0 16px; }
table { border-collapse: collapse; display: block; max-width: 100%%; overflow: auto; }
th, td { border: 1px solid #d1d9e0; padding: 6px 13px; }
th { font-weight: 600; }
tr:nth-child(2n) { background: #f6f8fa; }
code { background: rgba(129, 139, 152, .12); border-radius: 6px; padding: .2em .4em; font-size: 85%%;
       font-family: "Liberation Mono", "DejaVu Sans Mono", monospace; }
pre.mermaid { background: none; text-align: center; }
"""

# The page's height goes into a body attribute for the first run's DOM dump: the whole page,
# or down to the paragraph after chart N (its caption) when data-through-chart is N.
SCRIPT = """
function contentHeight() {
  const through = Number(document.body.dataset.throughChart || 0);
  const charts = document.querySelectorAll("pre.mermaid");
  if (through < 1 || through > charts.length) return document.querySelector("main").scrollHeight;
  const chart = charts[through - 1];
  const next = chart.nextElementSibling;
  const caption = next && next.tagName === "P" ? next : chart;
  return caption.getBoundingClientRect().bottom + window.scrollY + 16;
}
mermaid.initialize({ startOnLoad: false, securityLevel: "strict" });
mermaid.run({ querySelector: "pre.mermaid" })
  .then(() => { document.body.dataset.rendered = "yes"; })
  .catch((error) => { document.body.dataset.error = String(error && error.message || error); })
  .finally(() => { document.body.dataset.height = String(Math.ceil(contentHeight())); });
"""


def _fence(renderer: Any, tokens: Sequence[Any], index: int, options: Any, env: Any) -> str:
    token = tokens[index]
    if token.info.strip() == "mermaid":
        return f'<pre class="mermaid">{html.escape(token.content)}</pre>\n'
    return f"<pre><code>{html.escape(token.content)}</code></pre>\n"


def report_html(markdown: str, width: int, through_chart: int = 0) -> str:
    """The report as a stand-alone page that draws its mermaid charts with the local bundle."""
    # html on, as on GitHub: the report's only HTML is its marker comment, which must not show
    parser = MarkdownIt("commonmark", {"html": True}).enable("table").enable("strikethrough")
    parser.add_render_rule("fence", _fence)
    body = parser.render(markdown)
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><style>{STYLE % {"width": width}}</style></head>\n'
            f'<body data-through-chart="{through_chart}"><main>\n{body}</main>\n'
            f'<script src="{MERMAID_BUNDLE.as_uri()}"></script>\n<script>{SCRIPT}</script>\n</body></html>\n')


# --- what the browser drew ------------------------------------------------------------------


@dataclass
class DrawnChart:
    """The parts of one drawn xychart SVG that the checks read."""

    title: str = ""
    bar_x: dict[str, set[float]] = field(default_factory=dict)   # bar series -> left edges of its rects
    bar_fill: dict[str, set[str]] = field(default_factory=dict)  # bar series -> its fill colours
    category_y: list[float] = field(default_factory=list)        # left-axis labels, top to bottom
    category_font: float = 0.0
    value_ticks: list[str] = field(default_factory=list)         # top-axis labels, left to right
    value_title: str = ""


class _ChartParser(HTMLParser):
    """Collects the DrawnChart of every xychart SVG in a dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: list[DrawnChart] = []
        self._groups: list[str] = []   # class names of the open <g> elements inside a chart
        self._text: Optional[tuple[str, dict[str, str]]] = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, Optional[str]]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "svg" and attributes.get("aria-roledescription") == "xychart":
            self.charts.append(DrawnChart())
            self._groups = []
        elif not self.charts:
            return
        elif tag == "g":
            self._groups.append(attributes.get("class", ""))
        elif tag == "rect" and self._groups and self._groups[-1].startswith("bar-plot-"):
            series = self._groups[-1]
            self.charts[-1].bar_x.setdefault(series, set()).add(round(float(attributes["x"]), 1))
            self.charts[-1].bar_fill.setdefault(series, set()).add(attributes.get("fill", ""))
        elif tag == "text":
            self._text = ("/".join(self._groups[-2:]), attributes)

    def handle_endtag(self, tag: str) -> None:
        if tag == "g" and self._groups:
            self._groups.pop()
        elif tag == "text":
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._text is None or not self.charts:
            return
        where, attributes = self._text
        chart = self.charts[-1]
        if where.endswith("chart-title"):
            chart.title += data
        elif where == "left-axis/label":
            chart.category_y.append(_translate_y(attributes.get("transform", "")))
            chart.category_font = float(attributes.get("font-size", "0"))
        elif where == "top-axis/label":
            chart.value_ticks.append(data)
        elif where == "top-axis/title":
            chart.value_title += data


def _translate_y(transform: str) -> float:
    match = re.search(r"translate\(\s*[-\d.e]+\s*,\s*([-\d.e]+)", transform)
    return float(match.group(1)) if match else 0.0


def drawn_charts(dom: str) -> list[DrawnChart]:
    parser = _ChartParser()
    parser.feed(dom)
    return parser.charts


def chart_problems(chart: DrawnChart) -> list[str]:
    """What keeps a reviewer from reading the chart at a glance; [] when nothing does."""
    problems = []
    baselines = set().union(*chart.bar_x.values()) if chart.bar_x else set()
    if len(baselines) != 1:
        problems.append(f"bars do not share one baseline (left edges {sorted(baselines)}): not horizontal bars")
    if chart.value_ticks[:1] != ["0"]:
        problems.append(f"the value axis starts at {chart.value_ticks[:1]}, not 0")
    if not chart.value_title:
        problems.append("the value axis has no title (the unit); mermaid drops it when the chart is too low")
    fills = [frozenset(colours) for colours in chart.bar_fill.values()]
    if len(set(fills)) != len(fills) or any(len(colours) != 1 for colours in fills):
        problems.append(f"bar series are not one distinct colour each: {[sorted(colours) for colours in fills]}")
    gaps = [lower - upper for upper, lower in zip(chart.category_y, chart.category_y[1:])]
    if gaps and min(gaps) < chart.category_font:
        problems.append(f"category labels overlap: {min(gaps):.1f} px apart, font {chart.category_font:g} px")
    return problems


def chart_summary(chart: DrawnChart) -> str:
    colours = ", ".join(min(colours) for colours in chart.bar_fill.values())
    gap = min((lower - upper for upper, lower in zip(chart.category_y, chart.category_y[1:])), default=0.0)
    return (f"{chart.title!r}: {len(chart.category_y)} horizontal bars from 0 ({chart.value_title}), "
            f"{len(chart.bar_fill)} series ({colours}), labels {gap:.0f} px apart")


# --- chromium -----------------------------------------------------------------------------


def _chromium() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    sys.exit("render_report: no chromium found (apt-get install -y chromium)")


def _run_chromium(profile: Path, *arguments: str) -> str:
    command = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT, check=False)
    if done.returncode != 0:
        sys.exit(f"render_report: chromium failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


def _body_attribute(dom: str, name: str) -> Optional[str]:
    match = re.search(rf'<body[^>]*\bdata-{name}="([^"]*)"', dom)
    return html.unescape(match.group(1)) if match else None


def rendered_dom(page: Path, profile: Path) -> str:
    """The page's DOM once mermaid has drawn; exits when a chart did not render."""
    dom = _run_chromium(profile, "--dump-dom", page.as_uri())
    error = _body_attribute(dom, "error")
    if error is not None:
        sys.exit(f"render_report: mermaid failed: {error}")
    if _body_attribute(dom, "rendered") != "yes":
        sys.exit("render_report: mermaid did not finish within the virtual-time budget")
    return dom


def check_charts(page: Path, dom: str) -> list[str]:
    """One summary line per chart; exits listing the problems when a chart is missing or hard to read."""
    expected = page.read_text(encoding="utf-8").count('<pre class="mermaid">')
    charts = drawn_charts(dom)
    problems = [] if len(charts) == expected else [f"{len(charts)} of {expected} charts were drawn as xycharts"]
    problems += [f"chart {number} {chart.title!r}: {problem}"
                 for number, chart in enumerate(charts, 1) for problem in chart_problems(chart)]
    if problems:
        sys.exit("render_report: " + "\n  ".join(problems))
    return [chart_summary(chart) for chart in charts]


def screenshot(page: Path, png: Path, width: int, height: int, profile: Path) -> None:
    png.parent.mkdir(parents=True, exist_ok=True)
    _run_chromium(profile, f"--screenshot={png.resolve()}", f"--window-size={width},{height}", page.as_uri())


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("report", type=Path, help="the markdown report (--macc-budget-report)")
    parser.add_argument("png", type=Path, help="where to write the screenshot")
    parser.add_argument("--width", type=int, default=1000, help="page width in CSS pixels (default 1000)")
    parser.add_argument("--through-chart", type=int, default=0, metavar="N",
                        help="cut the screenshot after the caption of chart N (default: the whole page)")
    parser.add_argument("--html", type=Path, help="also keep the HTML page here")
    arguments = parser.parse_args(argv)
    if not MERMAID_BUNDLE.is_file():
        sys.exit(f"render_report: {MERMAID_BUNDLE} is missing; run: npm ci --prefix tests/node")
    page_html = report_html(arguments.report.read_text(encoding="utf-8"), arguments.width, arguments.through_chart)
    with tempfile.TemporaryDirectory(prefix="render-report-") as scratch:
        page = Path(scratch) / "report.html"
        page.write_text(page_html, encoding="utf-8")
        dom = rendered_dom(page, Path(scratch) / "profile")
        for line in check_charts(page, dom):
            print(f"chart {line}")
        height = int(_body_attribute(dom, "height") or "0")
        screenshot(page, arguments.png, arguments.width, height, Path(scratch) / "profile")
    if arguments.html is not None:
        arguments.html.write_text(page_html, encoding="utf-8")
    print(f"{arguments.png}: {arguments.width}x{height} px, {arguments.png.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
