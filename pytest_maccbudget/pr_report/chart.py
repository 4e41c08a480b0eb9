"""The mermaid chart of a model's layers in the pull-request report.

One horizontal bar per layer, from 0 MACs, comparing this commit with the base (the budget when
there is no base). Mermaid's xychart draws bar series on top of each other, later ones in front,
so three series drawn in the order max(reference, now), now, min(reference, now) leave each bar
showing three parts: grey for the MACs both have, red for what this commit added, blue for what
it removed. The layers that changed most come first, then the biggest of the rest.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Callable, Mapping, Optional, Sequence

from ..markdown_text import one_line
from ..units import plural
from .query import entry_layers

CHART_LAYERS = 12                     # bars in a chart
LABEL_WIDTH = 30                      # characters of a layer name on the category axis
TITLE_WIDTH = 40                      # characters of a model name in the title
CHART_WIDTH = 800                     # pixels; GitHub scales the chart down to the comment's width
CHART_FRAME = 130                     # pixels of title, value axis and margins
BAR_ROW = 34                          # pixels per layer
# Mermaid gives the plot half the height first and drops the value axis's title (the unit) when
# the other half cannot hold it.
MIN_CHART_HEIGHT = 260
# In draw order; only the part of each series not covered by the next one shows.
SERIES = (("removed", "#0969da"), ("added", "#cf222e"), ("in both", "#afb8c1"))
_SCALES = ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "k"))
# Ends of the value axis on which mermaid's ticks (d3's ten-ish per axis) end too; 1.5 and 2.5 do not.
_NICE_STEPS = (1, Decimal("1.2"), 2, 3, 4, 5, 6, 8, 10)
# Mermaid reads `#...;` as an entity, `%%{...}%%` anywhere as a directive (a layer name could
# recolour the chart), and a quote or backtick as the end of the string; `<`/`>` stay out in case
# a renderer allows HTML; `&` shows as `&amp;` in a title. A string that starts with `%%` does not
# parse (mermaid 12), so runs of `%` become one.
_MERMAID_UNSAFE = str.maketrans({'"': "'", "`": "'", "#": None, ";": ",", "{": "(", "}": ")",
                                 "<": "‹", ">": "›", "&": "+"})
_PERCENT_RUN = re.compile("%%+")


@dataclass(frozen=True)
class _Bar:
    key: str
    reference: int   # MACs in the base (or budget); 0: the layer is new
    now: int         # MACs in this commit; 0: the layer is gone

    @property
    def change(self) -> int:
        return self.now - self.reference


def _safe(text: object) -> str:
    return _PERCENT_RUN.sub("%", one_line(text).translate(_MERMAID_UNSAFE))


def mermaid_text(text: object, width: int) -> str:
    """Safe inside a mermaid double-quoted string (see _MERMAID_UNSAFE), on one line; a long
    name keeps its end ("…stage3.conv1"), where module paths differ."""
    clean = _safe(text)
    if len(clean) > width:
        clean = "…" + clean[-(width - 1):].lstrip("./")
    return clean or "?"


def _head_and_tail(text: object, width: int) -> str:
    """The start of a name and its end ("encoder.la…0.self_attn.proj"), for two layers
    whose ends are the same."""
    clean = _safe(text)
    if len(clean) <= width:
        return clean or "?"
    head = clean[:width // 3] + "…"
    return head + clean[-(width - len(head)):]


def axis_labels(keys: Sequence[str], width: int = LABEL_WIDTH) -> list[str]:
    """One distinct label per key: mermaid draws two categories with the same label as one bar.
    Names whose ends are the same show their start too; any still alike get a number."""
    ends = [mermaid_text(key, width) for key in keys]
    repeated = {end for end in ends if ends.count(end) > 1}
    labels: list[str] = []
    for key, end in zip(keys, ends):
        label = _head_and_tail(key, width) if end in repeated else end
        labels.append(_numbered(label, labels, width))
    return labels


def _numbered(label: str, taken: Sequence[str], width: int) -> str:
    """`label`, or "label (2)", "label (3)"... if that is taken (shortened to fit `width`)."""
    candidate, number = label, 2
    while candidate in taken:
        suffix = f" ({number})"
        candidate = mermaid_text(label, width - len(suffix)) + suffix
        number += 1
    return candidate


def _compared(reference: Mapping[str, int], measured: Mapping[str, Optional[int]]) -> tuple[list[_Bar], int]:
    """Every layer in the reference or counted now, and how many layers could not be counted."""
    uncounted = {key for key, value in measured.items() if value is None}
    keys = (set(reference) | set(measured)) - uncounted
    return [_Bar(key, reference.get(key, 0), measured.get(key) or 0) for key in keys], len(uncounted)


def _chosen_bars(bars: Sequence[_Bar], limit: int = CHART_LAYERS) -> tuple[list[_Bar], list[_Bar]]:
    """(changed, unchanged): the layers that changed most, largest change first, then the
    biggest unchanged ones, at most `limit` in all."""
    changed = sorted((bar for bar in bars if bar.change), key=lambda bar: (-abs(bar.change), bar.key))[:limit]
    unchanged = sorted((bar for bar in bars if not bar.change and bar.now), key=lambda bar: (-bar.now, bar.key))
    return changed, unchanged[:limit - len(changed)]


def _scale(biggest: int) -> tuple[int, str]:
    return next(((scale, prefix) for scale, prefix in _SCALES if biggest >= scale), (1, ""))


def _chart_number(value: Decimal) -> str:
    number = value.quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)
    text = f"{number:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def nice_top(biggest: Decimal) -> Decimal:
    """The end of the value axis: the smallest round number (1, 1.2, 2, 3, 4, 5, 6, 8 times a
    power of ten) not below `biggest` (> 0), so the last tick sits at the end."""
    power = Decimal(1).scaleb(biggest.adjusted())
    return next(step * power for step in _NICE_STEPS if step * power >= biggest)


def _series_lines(bars: Sequence[_Bar], divisor: int) -> list[str]:
    def values(pick: Callable[[_Bar], int]) -> str:
        return ", ".join(_chart_number(Decimal(pick(bar)) / divisor) for bar in bars)

    picks = (lambda bar: max(bar.reference, bar.now), lambda bar: bar.now, lambda bar: min(bar.reference, bar.now))
    return [f'    bar "{name}" [{values(pick)}]' for (name, _), pick in zip(SERIES, picks)]


def _directive(bars: int) -> str:
    """Mermaid's init directive: the chart's size and the series' colours. Mermaid 12 reads
    front-matter `config:` too; the directive is the older form, read by older renderers as well."""
    palette = ", ".join(colour for _, colour in SERIES)
    height = max(MIN_CHART_HEIGHT, CHART_FRAME + BAR_ROW * bars)
    return (f'%%{{init: {{"xyChart": {{"width": {CHART_WIDTH}, "height": {height}}}, '
            f'"themeVariables": {{"xyChart": {{"plotColorPalette": "{palette}"}}}}}}}}%%')


def _caption(reference_name: str, changed: int, shown: int, unchanged_shown: int, total: int, uncounted: int) -> str:
    """How to read the chart: what the colours mean and which layers have a bar."""
    if total == 1:
        which = "The only layer"
    else:
        which = f"All {total} layers" if shown == total else f"{shown} of {total} layers"
    if shown - unchanged_shown < changed:
        which += f" ({changed} changed)"
    if shown > 1:
        which += ", largest change first" + (", then the biggest unchanged" if unchanged_shown else "")
    if uncounted:
        which += f"; {plural(uncounted, 'layer')} not counted (no bar)"
    return (f"_MACs per layer from 0, this commit against the {reference_name}: grey in both, red added, "
            f"blue removed. {which}._")


def chart_lines(report: Mapping[str, Any], model: Mapping[str, Any]) -> list[str]:
    """A mermaid xychart of the model's layers against the base's (the budget's when there is
    no base), with a caption saying how to read it. No chart when there are no recorded layers
    to compare with, or no counted layer changed."""
    reference = entry_layers(model.get("base"))
    reference_name = "base"
    if reference is None:
        reference, reference_name = entry_layers(model.get("budget")), "budget"
    if reference is None:
        return []
    bars, uncounted = _compared(reference, model["measurement"]["layers"])
    changed, unchanged = _chosen_bars(bars)
    if not changed:
        return []
    changed_count = sum(1 for bar in bars if bar.change)
    shown = changed + unchanged
    biggest = max(max(bar.reference, bar.now) for bar in shown)
    divisor, unit = _scale(biggest)
    axis = f"MACs ({unit})" if unit else "MACs"
    top = _chart_number(nice_top(Decimal(biggest) / divisor))
    labels = ", ".join(f'"{label}"' for label in axis_labels([bar.key for bar in shown]))
    return [
        "```mermaid",
        _directive(len(shown)),
        "xychart-beta horizontal",
        f'    title "{mermaid_text(model["name"], TITLE_WIDTH)}: MACs per layer"',
        f"    x-axis [{labels}]",
        f'    y-axis "{axis}" 0 --> {top}',
        *_series_lines(shown, divisor),
        "```",
        "",
        _caption(reference_name, changed_count, len(shown), len(unchanged), len(bars), uncounted),
        "",
    ]
