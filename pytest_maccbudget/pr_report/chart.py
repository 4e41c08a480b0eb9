"""The mermaid chart of a model's layers in the pull-request report."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Mapping

from ..markdown_text import one_line
from ..units import plural
from .query import entry_layers

CHART_LAYERS = 10                     # bars per series in a chart
LABEL_WIDTH = 24                      # characters of a layer name on a chart's x-axis
_SCALES = ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "k"))


def _mermaid_text(text: str, width: int) -> str:
    """Safe inside a mermaid double-quoted string: no double quotes, backticks or line breaks;
    long names keep their end ("…stage3.conv1"), where module paths differ."""
    clean = one_line(text).replace('"', "'").replace("`", "'").replace("#", "")
    if len(clean) > width:
        clean = "…" + clean[-(width - 1):].lstrip("./")
    return clean


def _chart_number(value: int, divisor: int) -> str:
    number = (Decimal(value) / Decimal(divisor)).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)
    text = f"{number:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def chart_lines(report: Mapping[str, Any], model: Mapping[str, Any]) -> list[str]:
    """A mermaid xychart: the top layers by MACs, a bar for the base (the budget when there is
    no base) then one for this commit, and a line marking the base (mermaid draws the second
    bar over the first). No chart when there are no recorded layers to compare with."""
    reference = entry_layers(model.get("base"))
    reference_name = "base"
    if reference is None:
        reference, reference_name = entry_layers(model.get("budget")), "budget"
    if reference is None:
        return []
    measured = model["measurement"]["layers"]
    keys = set(reference) | {key for key, value in measured.items() if value is not None}
    points = [(key, reference.get(key, 0), measured.get(key) or 0) for key in keys
              if not (key in measured and measured[key] is None)]
    points.sort(key=lambda point: (-max(point[1], point[2]), point[0]))
    points = points[:CHART_LAYERS]
    biggest = max((max(old, new) for _, old, new in points), default=0)
    if biggest == 0:
        return []
    divisor, unit = next(((scale, prefix) for scale, prefix in _SCALES if biggest >= scale), (1, ""))
    axis = f"MACs ({unit})" if unit else "MACs"
    labels = ", ".join(f'"{_mermaid_text(key, LABEL_WIDTH)}"' for key, _, _ in points)
    olds = ", ".join(_chart_number(old, divisor) for _, old, _ in points)
    news = ", ".join(_chart_number(new, divisor) for _, _, new in points)
    return [
        "```mermaid",
        "xychart-beta",
        f'    title "{_mermaid_text(model["name"], 48)}: top layers by MACs"',
        f"    x-axis [{labels}]",
        f'    y-axis "{axis}"',
        f"    bar [{olds}]",
        f"    bar [{news}]",
        f"    line [{olds}]",
        "```",
        "",
        f"_Bars: {reference_name} (drawn first, and marked by the line) and this commit; "
        f"{plural(len(points), 'layer')} with the most MACs._",
        "",
    ]
