"""Aligned plain-text tables for terminals: text columns left-aligned, numbers right-aligned."""
from __future__ import annotations

from typing import Collection, Optional, Sequence

Row = Sequence[str]


def aligned_table(header: Row, body: Sequence[Row], right_aligned: Collection[int],
                  footer: Optional[Row] = None) -> list[str]:
    """Header, a rule, the body rows, and (if given) a rule and a footer row such as totals."""
    rows = [header, *body] + ([footer] if footer is not None else [])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]

    def line(cells: Row) -> str:
        parts = [cell.rjust(width) if index in right_aligned else cell.ljust(width)
                 for index, (cell, width) in enumerate(zip(cells, widths))]
        return "  ".join(parts).rstrip()

    rule = line(["-" * width for width in widths])
    lines = [line(header), rule] + [line(row) for row in body]
    if footer is not None:
        lines += [rule, line(footer)]
    return lines
