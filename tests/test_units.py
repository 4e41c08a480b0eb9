"""Human units: formatting counts, bytes and percentages, and parsing what people write."""
from __future__ import annotations

import pytest

from pytest_maccbudget.units import format_bytes, format_count, format_percent, parse_quantity


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0"),
        (7, "7"),
        (512, "512"),
        (999, "999"),
        (1000, "1.00 k"),
        (30_000, "30.0 k"),
        (99_949, "99.9 k"),
        (99_950, "100 k"),  # rounding crosses into the next digit: 3 significant digits kept
        (9_995, "10.0 k"),
        (999_499, "999 k"),
        (999_500, "1.00 M"),  # never "1000 k"
        (350_000_000, "350 M"),
        (1_820_000_000, "1.82 G"),
        (4_089_184_256, "4.09 G"),
        (1_500_000_000_000, "1.50 T"),
        (-4_500, "-4.50 k"),
        (None, "?"),
    ],
)
def test_format_count(value, expected):
    assert format_count(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0 B"),
        (512, "512 B"),
        (1_500, "1.50 KB"),
        (24_000_000, "24.0 MB"),
        (9_633_792, "9.63 MB"),
        (102_440_608, "102 MB"),
        (2 * 10**9, "2.00 GB"),
        (None, "?"),
    ],
)
def test_format_bytes_is_decimal(value, expected):
    assert format_bytes(value) == expected


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [
        (0.0, "0.0%"),
        (1.0, "100.0%"),
        (0.973, "97.3%"),
        (36 / 37, "97.3%"),
        (0.5, "50.0%"),
        (0.0001, "<0.1%"),  # a non-zero share is never shown as 0.0%
        (0.99999, ">99.9%"),  # and an incomplete one never as 100.0%
        (-0.02, "-2.0%"),
        (None, "?"),
    ],
)
def test_format_percent(fraction, expected):
    assert format_percent(fraction) == expected


def test_unknown_is_never_zero():
    assert format_count(None) != format_count(0)
    assert format_bytes(None) == "?"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1200", 1200),
        (1200, 1200),
        ("1_200_000", 1_200_000),
        ("1,200,000", 1_200_000),
        ("1.2k", 1200),
        ("1.2K", 1200),
        ("350M", 350_000_000),
        ("350m", 350_000_000),
        ("1.2G", 1_200_000_000),
        ("1.82 G", 1_820_000_000),  # what format_count prints
        ("4T", 4 * 10**12),
        ("7B", 7 * 10**9),
        ("1.5e9", 1_500_000_000),
        (" 30k ", 30_000),
        ("+3k", 3000),
        ("-5k", -5000),
        ("1.2345k", 1235),  # rounded to the nearest integer
        (2.0, 2),
    ],
)
def test_parse_count(text, expected):
    value = parse_quantity(text, "count")
    assert value == expected
    assert isinstance(value, int)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512", 512),
        ("512B", 512),
        ("1.5KB", 1500),
        ("1.5kB", 1500),
        ("24MB", 24_000_000),
        ("24 mb", 24_000_000),
        ("2GB", 2_000_000_000),
        ("1.5 GiB", 1_610_612_736),
        ("4KiB", 4096),
        ("1MiB", 1_048_576),
        ("24.0 MB", 24_000_000),  # what format_bytes prints
    ],
)
def test_parse_bytes(text, expected):
    assert parse_quantity(text, "bytes") == expected


@pytest.mark.parametrize(("text", "expected"), [("2%", 0.02), ("0.5 %", 0.005), ("-1%", -0.01), ("+10%", 0.10)])
def test_parse_percent_gives_a_fraction(text, expected):
    assert parse_quantity(text, "percent") == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("", "count"),
        ("abc", "count"),
        ("k", "count"),
        ("1.2X", "count"),
        ("24MB", "count"),  # a byte unit is not a count
        ("1,5", "count"),  # a decimal comma is not a thousands separator
        ("1..2", "count"),
        ("12 foo", "bytes"),
        ("2%", "bytes"),
        ("2", "percent"),  # 2% or 200%? the % sign is required
        (0.02, "percent"),
        ("lots", "percent"),
        (True, "count"),
        (None, "count"),
        (float("nan"), "count"),
    ],
)
def test_parse_rejects_bad_text_and_quotes_it(text, kind):
    with pytest.raises(ValueError) as caught:
        parse_quantity(text, kind)
    assert repr(text) in str(caught.value)


def test_parse_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        parse_quantity("1k", "watts")


@pytest.mark.parametrize("value", [1, 999, 1000, 1234, 45_678, 999_999, 1_820_000_000, 123_456_789_012])
def test_formatted_counts_parse_back_within_rounding(value):
    parsed = parse_quantity(format_count(value), "count")
    assert abs(parsed - value) <= max(value * 0.005, 0.5)  # 3 significant digits


@pytest.mark.parametrize("value", [512, 1500, 24_000_000, 9_633_792, 3 * 10**12])
def test_formatted_bytes_parse_back_within_rounding(value):
    parsed = parse_quantity(format_bytes(value), "bytes")
    assert abs(parsed - value) <= value * 0.005


def test_huge_quantities_parse_exactly_or_fail_cleanly() -> None:
    assert parse_quantity("1e30", "count") == 10**30
    with pytest.raises(ValueError, match="too large"):
        parse_quantity("1e900", "count")


@pytest.mark.parametrize("value", [10**27, 10**28 + 1, 2**186, 2**62 * 2**62 * 2**62 * 1000, 10**400 + 7])
def test_counts_of_any_size_format(value: int) -> None:
    """Beyond 10^28 the default decimal context could not quantize (decimal.InvalidOperation):
    a count of any size prints in the largest unit, whole (rounded half up), exactly."""
    text = format_count(value)
    assert text == f"{(value + 5 * 10**17) // 10**18} E"
    assert format_bytes(value) == text[:-2] + " EB"
    if value <= 10**30:
        assert parse_quantity(text, "count") == (value + 5 * 10**17) // 10**18 * 10**18


def test_huge_and_non_finite_floats_format() -> None:
    assert format_count(1e300).endswith(" E") and format_count(float("inf")) == "inf E"


def test_a_size_limit_is_a_positive_size_or_none() -> None:
    from pytest_maccbudget.units import parse_size_limit

    assert parse_size_limit("16GiB") == 16 * 2**30
    assert parse_size_limit("4GB") == 4_000_000_000
    assert parse_size_limit(" None ") is None
    for wrong in ("0", "-1GB", "lots", ""):
        with pytest.raises(ValueError):
            parse_size_limit(wrong)
