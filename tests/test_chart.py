"""The per-model mermaid chart of the pull-request report (pytest_maccbudget.pr_report.chart):
which layers get a bar, the three overlapping series, the value axis, the caption, and names
made safe for mermaid. tests/test_mermaid.py runs mermaid's own parser on the same charts."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Optional

import pytest

from pytest_maccbudget.pr_report import render_markdown
from pytest_maccbudget.pr_report.chart import (
    CHART_LAYERS,
    LABEL_WIDTH,
    SERIES,
    axis_labels,
    chart_lines,
    mermaid_text,
    nice_top,
)

HOSTILE_NAMES = ('a"b', "x`y", "<img>", "#1;", "line\nbreak", "%%{init: {}}%%", "a&b",
                 "encoder.layers.11.self_attention.output_projection",
                 "decoder.layers.11.self_attention.output_projection")


def entry(layers: dict[str, int]) -> dict[str, Any]:
    return {"inputs": {"x": [1, 8]}, "total": {"macs": sum(layers.values())}, "layers": layers,
            "limit": {}, "tolerance": {}}


def model(reference: dict[str, int], measured: dict[str, Optional[int]], name: str = "net",
          with_base: bool = True) -> dict[str, Any]:
    """A model of the report JSON with just what the chart reads: the reference layers are the
    base's (the budget's too), or only the budget's when `with_base` is false."""
    known = sum(value for value in measured.values() if value is not None)
    return {"name": name, "test": f"t.py::test_{name}", "status": "regressed", "failed": True, "failures": [],
            "budget_change": None, "budget": entry(reference), "base": entry(reference) if with_base else None,
            "measurement": {"name": name, "nodeid": f"t.py::test_{name}", "inputs": {"x": [1, 8]},
                            "total": {"macs": known}, "layers": measured, "unknown_ops": []}}


def report(*models: dict[str, Any]) -> dict[str, Any]:
    return {"schema": "pytest-maccbudget-report", "version": 1, "budget_file": "macc_budget.yaml",
            "base": {"ref": "origin/main", "commit": "0" * 40}, "unused": [], "errors": [], "models": list(models)}


def many_layers() -> dict[str, Any]:
    """30 layers; the first 15 changed by 0.5 k, 1.5 k, ... 14.5 k MACs, alternately down and up."""
    reference = {f"blocks.{index:02d}.conv": 100_000 + 10_000 * index for index in range(30)}
    measured: dict[str, Optional[int]] = {
        key: value + (500 + 1_000 * index) * (1 if index % 2 else -1) if index < 15 else value
        for index, (key, value) in enumerate(reference.items())}
    return model(reference, measured, name="zoo")


def chart_shapes() -> dict[str, dict[str, Any]]:
    """A model of every shape a chart meets, by name."""
    hostile = {name: 1_000 * (index + 1) for index, name in enumerate(HOSTILE_NAMES)}
    return {
        "growth": model({"conv1": 900_000, "fc": 100_000}, {"conv1": 1_100_000, "fc": 100_000}),
        "shrink": model({"conv1": 900_000, "fc": 100_000}, {"conv1": 600_000, "fc": 100_000}),
        "new layer": model({"conv1": 900_000}, {"conv1": 900_000, "extra": 250_000}),
        "removed layer": model({"conv1": 900_000, "gone": 250_000}, {"conv1": 900_000}),
        "unknown layer": model({"conv1": 900_000, "odd": 40_000, "fc": 100_000},
                               {"conv1": 950_000, "odd": None, "fc": 100_000}),
        "budget only": model({"conv1": 900_000, "fc": 100_000}, {"conv1": 1_100_000, "fc": 100_000},
                             with_base=False),
        "small numbers": model({"fc": 80}, {"fc": 96}),
        "giga": model({"backbone": 4_089_184_256, "head": 2_000_000}, {"backbone": 4_089_184_256, "head": 6_000_000}),
        "12+ layers": many_layers(),
        "hostile names": model(hostile, {name: value * 2 for name, value in hostile.items()},
                               name="x" * 60 + 'm"odel`<img>#1;'),
    }


def chart_of(shape: str) -> list[str]:
    shapes = chart_shapes()
    return chart_lines(report(shapes[shape]), shapes[shape])


def fence(lines: list[str]) -> list[str]:
    """The chart's lines between the ``` fences."""
    return lines[1:lines.index("```", 1)]


def series(lines: list[str]) -> list[list[float]]:
    return [[float(value) for value in line.split("[", 1)[1].rstrip("]").split(", ")]
            for line in lines if line.startswith("    bar ")]


def labels(lines: list[str]) -> list[str]:
    (axis,) = [line for line in lines if line.startswith("    x-axis [")]
    return axis[len('    x-axis ["'):-len('"]')].split('", "')


# --- the whole chart, pinned ------------------------------------------------------------------

GROWTH_CHART = """\
```mermaid
%%{init: {"xyChart": {"width": 800, "height": 260}, "themeVariables": {"xyChart": {"plotColorPalette": "#0969da, #cf222e, #afb8c1"}}}}%%
xychart-beta horizontal
    title "net: MACs per layer"
    x-axis ["conv1", "fc"]
    y-axis "MACs (M)" 0 --> 1.2
    bar "removed" [1.1, 0.1]
    bar "added" [1.1, 0.1]
    bar "in both" [0.9, 0.1]
```

_MACs per layer from 0, this commit against the base: grey in both, red added, blue removed. All 2 layers, \
largest change first, then the biggest unchanged._
"""


def test_chart_of_a_hand_built_report_pinned() -> None:
    assert "\n".join(chart_of("growth")) == GROWTH_CHART


def test_render_markdown_puts_the_chart_after_the_layer_table() -> None:
    text = render_markdown(report(chart_shapes()["growth"]))
    assert "| `conv1` | 900 k | 900 k | 1.10 M | +200 k (+22.2%) | +200 k (+22.2%) |\n\n" + GROWTH_CHART in text


# --- the three series ---------------------------------------------------------------------------


def test_series_are_drawn_largest_first_so_each_bar_shows_kept_added_removed() -> None:
    """Mermaid draws later series in front: max(reference, now), now, min(reference, now)."""
    assert [name for name, _ in SERIES] == ["removed", "added", "in both"]
    assert series(chart_of("growth")) == [[1.1, 0.1], [1.1, 0.1], [0.9, 0.1]]   # grey 0.9, red to 1.1
    assert series(chart_of("shrink")) == [[900, 100], [600, 100], [600, 100]]   # grey 600 k, blue to 900 k


def test_a_new_layer_is_all_added_and_a_removed_layer_all_removed() -> None:
    new = chart_of("new layer")
    assert labels(new) == ["extra", "conv1"]
    assert series(new) == [[250, 900], [250, 900], [0, 900]]
    gone = chart_of("removed layer")
    assert labels(gone) == ["gone", "conv1"]
    assert series(gone) == [[250, 900], [0, 900], [0, 900]]
    assert gone[5] == '    y-axis "MACs (k)" 0 --> 1000'


def test_an_uncounted_layer_has_no_bar_and_the_caption_says_so() -> None:
    lines = chart_of("unknown layer")
    assert labels(lines) == ["conv1", "fc"]
    assert lines[-2].endswith(" All 2 layers, largest change first, then the biggest unchanged; "
                              "1 layer not counted (no bar)._")


def test_without_a_base_the_chart_compares_with_the_budget() -> None:
    lines = chart_of("budget only")
    assert series(lines) == [[1.1, 0.1], [1.1, 0.1], [0.9, 0.1]]
    assert lines[-2].startswith("_MACs per layer from 0, this commit against the budget: ")


# --- which layers ----------------------------------------------------------------------------------


def test_at_most_twelve_layers_those_that_changed_most_first() -> None:
    lines = chart_of("12+ layers")
    shown = labels(lines)
    assert len(shown) == CHART_LAYERS == 12
    assert shown == [f"blocks.{index:02d}.conv" for index in range(14, 2, -1)]   # +-14.5 k down to +-3.5 k
    assert lines[1].startswith('%%{init: {"xyChart": {"width": 800, "height": 538}')
    assert lines[-2].endswith(" 12 of 30 layers (15 changed), largest change first._")


def test_unchanged_layers_fill_the_chart_biggest_first() -> None:
    reference = {f"l{index:02d}": 1000 * index for index in range(1, 20)}
    measured: dict[str, Optional[int]] = {**reference, "l03": 9000}
    lines = chart_lines(report(model(reference, measured)), model(reference, measured))
    assert labels(lines) == ["l03"] + [f"l{index:02d}" for index in range(19, 8, -1)]
    assert lines[-2].endswith(" 12 of 19 layers, largest change first, then the biggest unchanged._")
    assert chart_of("small numbers")[-2].endswith(" blue removed. The only layer._")


@pytest.mark.parametrize("measured", [{"conv1": 900_000, "fc": 100_000}, {"conv1": None, "fc": 100_000}])
def test_no_chart_when_no_counted_layer_changed(measured: dict[str, Optional[int]]) -> None:
    unchanged = model({"conv1": 900_000, "fc": 100_000}, measured)
    assert chart_lines(report(unchanged), unchanged) == []


def test_no_chart_without_recorded_layers_to_compare_with() -> None:
    no_layers = model({}, {"conv1": 900_000})
    assert chart_lines(report(no_layers), no_layers) == []
    no_entries = {**no_layers, "budget": None, "base": None}
    assert chart_lines(report(no_entries), no_entries) == []


# --- the value axis -------------------------------------------------------------------------------


@pytest.mark.parametrize("biggest, top", [("1", "1"), ("1.1", "1.2"), ("3.28", "4"), ("4.1", "5"), ("7", "8"),
                                          ("9.5", "10"), ("12.5", "20"), ("25", "30"), ("96", "100"), ("982", "1000")])
def test_value_axis_ends_at_a_round_number(biggest: str, top: str) -> None:
    assert nice_top(Decimal(biggest)) == Decimal(top)


def test_value_axis_unit_follows_the_biggest_bar() -> None:
    assert chart_of("small numbers")[5] == '    y-axis "MACs" 0 --> 100'
    giga = chart_of("giga")
    assert giga[5] == '    y-axis "MACs (G)" 0 --> 5'
    assert series(giga) == [[0.006, 4.089], [0.006, 4.089], [0.002, 4.089]]


# --- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, safe", [
    ('a"b', "a'b"), ("x`y", "x'y"), ("<img>", "‹img›"), ("#1;", "1,"), ("line\nbreak", "line break"),
    ("%%{init: {}}%%", "%(init: ())%"), ("a&b", "a+b"), ("#", "?"),
    ("backbone.stage3.block12.attention.proj", "…stage3.block12.attention.proj"),
])
def test_names_are_safe_inside_mermaid_strings_and_keep_their_end(name: str, safe: str) -> None:
    assert mermaid_text(name, LABEL_WIDTH) == safe


def test_labels_stay_distinct_after_shortening() -> None:
    keys = ["encoder.layers.11.self_attention.output_projection", "decoder.layers.11.self_attention.output_projection",
            "backbone.stage3.block12.attention.proj", 'a"b', "a'b", "a`b"]
    assert axis_labels(keys) == ["encoder.la…n.output_projection", "decoder.la…n.output_projection",
                                 "…stage3.block12.attention.proj", "a'b", "a'b (2)", "a'b (3)"]


def test_hostile_names_leave_no_mermaid_syntax_in_the_chart() -> None:
    lines = fence(chart_of("hostile names"))
    assert lines[2] == '    title "…' + "x" * 25 + "m'odel'‹img›1,: MACs per layer\""
    assert lines[3] == ('    x-axis ["decoder.la…n.output_projection", "encoder.la…n.output_projection", "a+b", '
                        '"%(init: ())%", "line break", "1,", "‹img›", "x\'y", "a\'b"]')
    for line in lines[2:]:
        assert line.count('"') % 2 == 0, line
        for text in line.split('"')[1::2]:
            assert not set(text) & set('"`#;{}<>&\n') and not text.startswith("%%"), text
            assert len(text) <= LABEL_WIDTH or line.startswith("    title"), text
