"""Human units for counts (MACs, FLOPs, parameters), bytes and percentages.

Formatting (what the reports print):

* counts use SI prefixes with 3 significant digits: ``1.82 G``, ``350 M``, ``30.0 k``, ``512``;
* bytes use **decimal** units (1 KB = 1000 B, 1 MB = 10^6 B, 1 GB = 10^9 B), also with 3
  significant digits: ``24.0 MB``, ``1.50 KB``, ``512 B``;
* percentages take a fraction (0.973 -> ``97.3%``) and never round a non-zero share to
  ``0.0%`` or a share below one to ``100.0%``.

An unknown value (``None``) is printed as ``?``, never as ``0``.

Parsing (what people write in budget files and on the command line), ``parse_quantity``:

* ``kind="count"``: ``1200``, ``1_200``, ``1.2k``, ``350M``, ``1.2 G``, ``4T``, ``1.5e9``, and
  ``7B`` (billion, as in "7B params"). Prefixes are case-insensitive (``350m`` is 350 million:
  nobody budgets milli-MACs). Returns an int (rounded to the nearest integer).
* ``kind="bytes"``: ``512``, ``512B``, ``1.5KB``/``1.5kB`` (x1000), ``24 MB`` (x10^6),
  ``2GB`` (x10^9), and binary ``KiB``/``MiB``/``GiB``/``TiB`` (x1024^n). Case-insensitive.
  Returns an int.
* ``kind="percent"``: ``2%``, ``-0.5 %``, ``+10%``. The ``%`` sign is required (a bare ``2`` could
  mean 2% or 200%). Returns a fraction: ``"2%"`` -> ``0.02``.
* ``kind="ms"`` (estimated latencies): ``12``, ``12ms``, ``800us``, ``1.5s``; a bare number is in
  milliseconds. ``kind="mJ"`` (estimated energies): ``3.2``, ``3.2mJ``, ``450uJ``, ``20nJ``, ``1J``; a
  bare number is in millijoules. Both return a float in their unit.

A leading ``+`` or ``-`` is accepted for every kind (deltas); the caller decides whether a
negative value makes sense. Anything else raises ``ValueError`` quoting the bad text.
"""
from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation, localcontext
from fractions import Fraction
from typing import Optional, Union

UNKNOWN = "?"

COUNT_KIND = "count"
BYTES_KIND = "bytes"
PERCENT_KIND = "percent"
MS_KIND = "ms"   # durations in milliseconds (device latency estimates)
MJ_KIND = "mJ"   # energies in millijoules (device energy estimates)
KINDS = (COUNT_KIND, BYTES_KIND, PERCENT_KIND, MS_KIND, MJ_KIND)

_COUNT_PREFIXES = ("", "k", "M", "G", "T", "P", "E")
_BYTE_UNITS = ("B", "KB", "MB", "GB", "TB", "PB", "EB")

_COUNT_MULTIPLIERS: dict[str, int] = {
    "": 1, "k": 10**3, "m": 10**6, "g": 10**9, "b": 10**9, "t": 10**12, "p": 10**15, "e": 10**18,
}
_BYTE_MULTIPLIERS: dict[str, int] = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
    "t": 10**12, "tb": 10**12, "p": 10**15, "pb": 10**15,
    "ki": 2**10, "kib": 2**10, "mi": 2**20, "mib": 2**20, "gi": 2**30, "gib": 2**30,
    "ti": 2**40, "tib": 2**40, "pi": 2**50, "pib": 2**50,
}

_DURATION_MULTIPLIERS: dict[str, Decimal] = {
    "": Decimal(1), "ms": Decimal(1), "us": Decimal("0.001"), "ns": Decimal("0.000001"), "s": Decimal(1000),
}
_ENERGY_MULTIPLIERS: dict[str, Decimal] = {
    "": Decimal(1), "mj": Decimal(1), "uj": Decimal("0.001"), "nj": Decimal("0.000001"), "j": Decimal(1000),
}
_MEASURE_MULTIPLIERS = {MS_KIND: _DURATION_MULTIPLIERS, MJ_KIND: _ENERGY_MULTIPLIERS}
# the units a duration or an energy is printed in, smallest first, with their size in ms or mJ
_DURATION_STEPS = (("ns", Decimal("0.000001")), ("µs", Decimal("0.001")), ("ms", Decimal(1)), ("s", Decimal(1000)))
_ENERGY_STEPS = (("nJ", Decimal("0.000001")), ("µJ", Decimal("0.001")), ("mJ", Decimal(1)), ("J", Decimal(1000)))

Number = Union[int, float]


# --- formatting ---------------------------------------------------------------------------


def _scaled(value: Number, units: tuple[str, ...], step: int) -> tuple[str, str]:
    """(mantissa with 3 significant digits, unit) for a non-negative value >= 1."""
    scaled = Decimal(value) if isinstance(value, int) else Decimal(repr(float(value)))
    if scaled.is_finite() and scaled.adjusted() >= _DEFAULT_DIGITS:  # beyond the last unit: exact digits
        with localcontext(_context_for(scaled)):
            return _scaled_decimal(scaled, units, step)
    return _scaled_decimal(scaled, units, step)


def _scaled_decimal(scaled: Decimal, units: tuple[str, ...], step: int) -> tuple[str, str]:
    index = 0
    while index < len(units) - 1 and scaled >= step:
        scaled /= step
        index += 1
    text = _three_digits(scaled)
    if Decimal(text) >= step and index < len(units) - 1:  # 999.7 k rounds to 1.00 M
        index += 1
        text = _three_digits(scaled / step)
    return text, units[index]


# Digits the default decimal context holds; a value with more (a count beyond 10^24) is
# divided and rounded in a context as wide as it is, so that any count formats.
_DEFAULT_DIGITS = 24


def _context_for(value: Decimal) -> Context:
    return Context(prec=value.adjusted() + 8, Emax=max(999_999, value.adjusted() + 8))


def _three_digits(value: Decimal) -> str:
    """3 significant digits, halves rounded up: 1.82, 30.0, 350 (99.95 -> 100, not 100.0)."""
    text = _fixed_for_magnitude(value)
    return _fixed_for_magnitude(Decimal(text))  # re-format when rounding crossed 10 or 100


def _fixed_for_magnitude(value: Decimal) -> str:
    if not value.is_finite():
        return "nan" if value.is_nan() else "inf"
    places = 0 if value >= 100 else 1 if value >= 10 else 2
    exponent = Decimal(1).scaleb(-places)
    if value.adjusted() < _DEFAULT_DIGITS:
        return str(value.quantize(exponent, rounding=ROUND_HALF_UP))
    with localcontext(_context_for(value)):  # a value of more digits than the default context holds
        return str(value.quantize(exponent, rounding=ROUND_HALF_UP))


def format_count(n: Optional[Number]) -> str:
    """1_820_000_000 -> "1.82 G", 350_000_000 -> "350 M", 30_000 -> "30.0 k", 512 -> "512"."""
    if n is None:
        return UNKNOWN
    sign = "-" if n < 0 else ""
    magnitude = abs(n)
    if magnitude < 1000:
        if isinstance(magnitude, float) and not magnitude.is_integer():
            return f"{sign}{_three_digits(Decimal(repr(magnitude)))}"
        return f"{sign}{int(magnitude)}"
    text, prefix = _scaled(magnitude, _COUNT_PREFIXES, 1000)
    return f"{sign}{text} {prefix}"


def format_bytes(n: Optional[Number]) -> str:
    """Decimal units: 24_000_000 -> "24.0 MB", 1500 -> "1.50 KB", 512 -> "512 B"."""
    if n is None:
        return UNKNOWN
    sign = "-" if n < 0 else ""
    magnitude = abs(n)
    if magnitude < 1000:
        return f"{sign}{int(round(magnitude))} B"
    text, unit = _scaled(magnitude, _BYTE_UNITS, 1000)
    return f"{sign}{text} {unit}"


def format_duration(ms: Optional[Number]) -> str:
    """Milliseconds with 3 significant digits in the unit that fits: 10.41 -> "10.4 ms",
    0.8125 -> "813 µs", 1500 -> "1.50 s"."""
    return _format_measure(ms, _DURATION_STEPS)


def format_energy(mj: Optional[Number]) -> str:
    """Millijoules with 3 significant digits in the unit that fits: 3.215 -> "3.22 mJ",
    0.00041 -> "410 nJ"."""
    return _format_measure(mj, _ENERGY_STEPS)


def _format_measure(value: Optional[Number], steps: tuple[tuple[str, Decimal], ...]) -> str:
    if value is None:
        return UNKNOWN
    sign = "-" if value < 0 else ""
    magnitude = abs(Decimal(repr(float(value))))
    if magnitude == 0:
        return f"0 {steps[-2][0]}"
    unit, size = steps[0]
    for candidate, candidate_size in steps:
        if magnitude >= candidate_size:
            unit, size = candidate, candidate_size
    text = _three_digits(magnitude / size)
    if Decimal(text) >= 1000 and unit != steps[-1][0]:  # 999.7 µs rounds to 1.00 ms
        unit, size = next((u, s) for u, s in steps if s > size)
        text = _three_digits(magnitude / size)
    return f"{sign}{text} {unit}"


def format_percent(fraction: Optional[float], digits: int = 1) -> str:
    """0.973 -> "97.3%". A tiny non-zero share is "<0.1%", a share just below 1 is ">99.9%"."""
    if fraction is None or (isinstance(fraction, float) and math.isnan(fraction)):
        return UNKNOWN
    percent = fraction * 100
    text = f"{percent:.{digits}f}"
    smallest = 10.0 ** -digits
    if percent != 0 and float(text) == 0:
        return f"<{smallest:.{digits}f}%" if percent > 0 else f">-{smallest:.{digits}f}%"
    if percent != 100 and float(text) == 100:
        return f">{100 - smallest:.{digits}f}%" if percent < 100 else f"<{100 + smallest:.{digits}f}%"
    return f"{text}%"


# --- parsing ------------------------------------------------------------------------------

# 1200, 1_200, 1,200,000 (commas only as thousands separators), 1.5, .5, 1.5e9
_NUMBER = r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+(?:_\d+)*)?(?:\.\d*)?(?:[eE][+-]?\d+)?"
_QUANTITY_RE = re.compile(rf"^\s*(?P<number>{_NUMBER})\s*(?P<unit>[A-Za-z%]*)\s*$")

_EXAMPLES = {
    COUNT_KIND: "e.g. 512, 30k, 350M, 1.82G",
    BYTES_KIND: "e.g. 512B, 1.5KB, 24MB, 1.5GiB",
    PERCENT_KIND: "e.g. 2%, 0.5%",
    MS_KIND: "e.g. 12, 12ms, 800us, 1.5s",
    MJ_KIND: "e.g. 3.2, 3.2mJ, 450uJ, 20nJ",
}


def parse_size_limit(text: str) -> Optional[int]:
    """"16GB", "512MiB" -> bytes; "none" -> None (no limit). ValueError for anything else,
    a size of 0 included."""
    if text.strip().lower() == "none":
        return None
    value = int(parse_quantity(text, BYTES_KIND))
    if value <= 0:
        raise ValueError(f"not a positive size: {text!r}")
    return value


def parse_quantity(text: Union[str, int, float], kind: str = COUNT_KIND) -> Number:
    """Parse a human quantity: see the module docstring for what each kind accepts.

    Returns an int for "count" and "bytes", a fraction (float) for "percent".
    Raises ValueError quoting the text when it cannot be read.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown quantity kind {kind!r}; expected one of {', '.join(KINDS)}")
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ValueError(f"{text!r} is not a {kind} quantity ({_EXAMPLES[kind]})")
    if isinstance(text, (int, float)):
        return _parse_plain_number(text, kind)
    match = _QUANTITY_RE.match(text)
    if match is None or not any(ch.isdigit() for ch in match.group("number")):
        raise ValueError(f"cannot read {text!r} as a {kind} quantity ({_EXAMPLES[kind]})")
    number = Decimal(match.group("number").replace("_", "").replace(",", ""))
    unit = match.group("unit")
    if kind == PERCENT_KIND:
        if unit != "%":
            raise ValueError(f"cannot read {text!r} as a percentage: write it with a % sign, e.g. '2%'")
        return float(number / 100)
    if kind in _MEASURE_MULTIPLIERS:
        scale = _MEASURE_MULTIPLIERS[kind].get(unit.lower())
        if scale is None:
            raise ValueError(f"cannot read {text!r} as a {kind} quantity: unknown unit {unit!r} ({_EXAMPLES[kind]})")
        return float(number * scale)
    multipliers = _COUNT_MULTIPLIERS if kind == COUNT_KIND else _BYTE_MULTIPLIERS
    multiplier = multipliers.get(unit.lower())
    if multiplier is None:
        raise ValueError(f"cannot read {text!r} as a {kind} quantity: unknown unit {unit!r} ({_EXAMPLES[kind]})")
    return _round(number * multiplier)


_WIDE = Context(prec=400)  # the default 28 digits can't hold 1e30 as an integer


def _round(value: Decimal) -> int:
    """Nearest integer, halves away from zero (1234.5 -> 1235)."""
    try:
        return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP, context=_WIDE))
    except InvalidOperation:  # more digits than even the wide context holds
        raise ValueError(f"{value} is too large") from None


def _parse_plain_number(value: Number, kind: str) -> Number:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        raise ValueError(f"{value!r} is not a finite {kind} quantity")
    if kind == PERCENT_KIND:
        raise ValueError(f"cannot read {value!r} as a percentage: write it with a % sign, e.g. '{value}%'")
    if kind in _MEASURE_MULTIPLIERS:
        return float(value)
    return value if isinstance(value, int) else _round(Decimal(repr(value)))


_NUMBER_AND_UNIT = re.compile(
    r"^\s*(?P<number>[+-]?[0-9_,]*\.?[0-9]*(?:[eE][+-]?[0-9]+)?)\s*(?P<unit>[A-Za-z]*)\s*$")


def _exact_value(value: Union[str, int, float], kind: str) -> Optional[Fraction]:
    """The quantity before parse_quantity rounds it, when it can be worked out exactly."""
    if isinstance(value, (int, float)):
        return Fraction(value)
    match = _NUMBER_AND_UNIT.match(value)
    if match is None:
        return None
    try:
        number = Decimal(match.group("number").replace("_", "").replace(",", ""))
        multiplier = parse_quantity("1" + match.group("unit"), kind)
    except (InvalidOperation, ValueError):
        return None
    return Fraction(number) * int(multiplier)


def parse_whole_quantity(value: Union[str, int, float], kind: str) -> int:
    """A count or byte amount that must be a whole number: "1.2G" yes, "1.5" no (ValueError)."""
    number = parse_quantity(value, kind)
    exact = _exact_value(value, kind)
    if exact is not None and exact != number:
        raise ValueError(f"expected a whole number, got {str(value)!r}")
    return int(number)



def change_percent(old: int, new: int) -> Optional[str]:
    """Signed relative change ("+1.1%", "-5.6%"); None when the old value is 0."""
    if old == 0:
        return None
    text = format_percent((new - old) / old)
    return f"+{text}" if new > old else text


def plural(count: int, singular: str, plural_form: str = "") -> str:
    """plural(1, "layer") -> "1 layer", plural(3, "layer") -> "3 layers"."""
    return f"{count} {singular if count == 1 else (plural_form or singular + 's')}"


LIST_LIMIT = 10  # items of a list written into a one-line message


def capped_list(items: "list[str] | tuple[str, ...]", separator: str = "; ", limit: int = LIST_LIMIT) -> str:
    """The first `limit` items joined, and how many more there are: "a; b; c and 197 more"."""
    shown = separator.join(items[:limit])
    hidden = len(items) - limit
    return f"{shown} and {hidden} more" if hidden > 0 else shown
