"""Device estimates in the budget file: latency_ms and energy_mj per model and device, with
limits and tolerances of their own, compared and updated like the totals."""
from __future__ import annotations

from pathlib import Path

import pytest

from pytest_maccbudget.budget import (
    MISSING,
    OK,
    OVER_LIMIT,
    REGRESSED,
    TIGHTENABLE,
    UNKNOWN,
    BudgetError,
    DeviceFigures,
    Measurement,
    compare,
    dump_budget,
    parse_budget,
    update_budget,
)
from pytest_maccbudget.rules import RULES_VERSION
from pytest_maccbudget.units import format_duration, format_energy, parse_quantity

PATH = Path("macc_budget.yaml")
TOTAL = "{macs: 1000, flops: 2000, params: 10, param_bytes: 40, peak_activation_bytes: 400}"

BUDGET = f"""\
version: 1
rules: {RULES_VERSION}
devices:
  # our board, measured on 2026-11-30
  my-board:
    class: microcontroller
    peak_macs_per_s: {{int8: 100M}}
    memory_bandwidth: 200 MB/s
models:
  net:
    inputs: {{x: [1, 4]}}
    total: {TOTAL}
    devices:
      ci-runner: {{latency_ms: 10.0, energy_mj: 0.25}}
      phone:
        limit: {{latency_ms: 12}}
        tolerance: {{latency_ms: 5%}}
        latency_ms: 10.41
        energy_mj: 3.2
"""


def measured(latency: dict[str, float], energy: float = 0.25, macs: int = 1000, **devices: DeviceFigures) -> Measurement:
    figures = {name: DeviceFigures(latency_ms=ms, energy_mj=energy) for name, ms in latency.items()}
    figures.update(devices)
    return Measurement(name="net", nodeid="t::net", inputs={"x": [1, 4]},
                       total={"macs": macs, "flops": 2000, "params": 10, "param_bytes": 40, "peak_activation_bytes": 400},
                       layers={}, devices=figures)


def test_device_entries_and_custom_devices_are_read() -> None:
    budget = parse_budget(BUDGET, PATH)
    entry = budget.models["net"]
    assert entry.devices["ci-runner"].figures == {"latency_ms": 10.0, "energy_mj": 0.25}
    phone = entry.devices["phone"]
    assert phone.figures == {"latency_ms": 10.41, "energy_mj": 3.2}
    assert phone.limit == {"latency_ms": 12.0}
    assert phone.tolerance["latency_ms"].describe() == "5%"
    assert list(budget.custom_devices) == ["my-board"]
    assert budget.custom_devices["my-board"].key == "devices.my-board"


def test_the_file_written_back_keeps_the_custom_devices_as_written_and_reads_the_same() -> None:
    budget = parse_budget(BUDGET, PATH)
    text = dump_budget(budget)
    assert "devices:\n  # our board, measured on 2026-11-30\n  my-board:\n    class: microcontroller\n" in text
    assert "      ci-runner: {latency_ms: 10.0, energy_mj: 0.25}\n" in text
    assert ("      phone:\n        limit: {latency_ms: 12}\n        tolerance: {latency_ms: 5%}\n"
            "        latency_ms: 10.41\n        energy_mj: 3.2\n") in text
    again = parse_budget(text, PATH)
    assert again.models == budget.models
    assert dump_budget(again) == text


def test_small_estimates_are_written_as_plain_decimals() -> None:
    budget = parse_budget(BUDGET, PATH)
    budget.models["net"].devices["ci-runner"].figures = {"latency_ms": 1e-05, "energy_mj": 3.215e-07}
    text = dump_budget(budget)
    assert "ci-runner: {latency_ms: 0.00001, energy_mj: 0.0000003215}" in text
    assert parse_budget(text, PATH).models["net"].devices["ci-runner"].figures == {"latency_ms": 1e-05,
                                                                                   "energy_mj": 3.215e-07}


@pytest.mark.parametrize("text, message", [
    ("models:\n  net:\n    devices:\n      phone: {latency: 3}\n",
     "macc_budget.yaml:4: models.net.devices.phone.latency: unknown key 'latency'; allowed: limit, tolerance, "
     "latency_ms, energy_mj"),
    ("models:\n  net:\n    devices:\n      phone: {latency_ms: fast}\n",
     "macc_budget.yaml:4: models.net.devices.phone.latency_ms: cannot read 'fast' as a ms quantity "
     "(e.g. 12, 12ms, 800us, 1.5s)"),
    ("models:\n  net:\n    devices:\n      phone: {energy_mj: -1}\n",
     "macc_budget.yaml:4: models.net.devices.phone.energy_mj: expected a non-negative number, got '-1'"),
    ("models:\n  net:\n    devices:\n      phone: {limit: {macs: 3}}\n",
     "macc_budget.yaml:4: models.net.devices.phone.limit.macs: unknown key 'macs'; allowed: latency_ms, energy_mj"),
    ("devices:\n  board: 3\n",
     "macc_budget.yaml:2: devices.board: expected a device profile (a mapping with peak_macs_per_s, memory_bandwidth, "
     "...), got '3'"),
])
def test_errors_in_device_entries_name_the_line_and_key(text: str, message: str) -> None:
    with pytest.raises(BudgetError) as raised:
        parse_budget(text, PATH)
    assert str(raised.value) == message


def test_limits_accept_units() -> None:
    text = "models:\n  net:\n    devices:\n      phone: {limit: {latency_ms: 800us, energy_mj: 20nJ}}\n"
    limit = parse_budget(text, PATH).models["net"].devices["phone"].limit
    assert limit == {"latency_ms": 0.8, "energy_mj": pytest.approx(2e-05)}
    assert "phone:\n        limit: {latency_ms: 800us, energy_mj: 20nJ}\n" in dump_budget(parse_budget(text, PATH))


def test_unchanged_estimates_pass() -> None:
    comparison = compare(parse_budget(BUDGET, PATH), measured({"ci-runner": 10.0}, phone=DeviceFigures(10.41, 3.2)))
    assert comparison.status == OK
    latency = next(m for m in comparison.metrics if m.device == "phone" and m.metric == "latency_ms")
    assert (latency.old, latency.new, latency.limit, latency.label) == (10.41, 10.41, 12.0, "latency_ms on phone")


def test_latency_growth_without_a_tolerance_fails_and_says_how_macs_moved() -> None:
    comparison = compare(parse_budget(BUDGET, PATH), measured({"ci-runner": 10.9}, phone=DeviceFigures(10.41, 3.2)))
    assert comparison.status == REGRESSED
    assert comparison.failures == ["latency_ms on ci-runner 10.9 ms > budget 10.0 ms (+9.0%, tolerance 0%); "
                                   "MACs unchanged"]
    grown = measured({"ci-runner": 10.9}, macs=1010, phone=DeviceFigures(10.41, 3.2))
    assert compare(parse_budget(BUDGET, PATH), grown).failures == [
        "macs 1.01 k > budget 1.00 k (+1.0%, tolerance 0%)",
        "latency_ms on ci-runner 10.9 ms > budget 10.0 ms (+9.0%, tolerance 0%); MACs +1.0%"]


def test_growth_exactly_at_the_devices_tolerance_passes_and_past_it_fails() -> None:
    budget = parse_budget(BUDGET, PATH)
    at_tolerance = measured({"ci-runner": 10.0}, phone=DeviceFigures(10.93, 3.2))  # 10.41 * 1.05 = 10.9305
    assert compare(budget, at_tolerance).status == OK
    exact = parse_budget(BUDGET.replace("latency_ms: 10.41", "latency_ms: 10.0"), PATH)
    assert compare(exact, measured({"ci-runner": 10.0}, phone=DeviceFigures(10.5, 3.2))).status == OK
    past = compare(exact, measured({"ci-runner": 10.0}, phone=DeviceFigures(10.51, 3.2)))
    assert past.status == REGRESSED
    assert past.failures[0].startswith("latency_ms on phone 10.5 ms > budget 10.0 ms (+5.1%, tolerance 5%)")


def test_a_device_limit_fails_whatever_the_tolerance() -> None:
    comparison = compare(parse_budget(BUDGET, PATH), measured({"ci-runner": 10.0}, phone=DeviceFigures(12.5, 3.2)))
    assert comparison.status == OVER_LIMIT
    assert comparison.failures[0] == "latency_ms on phone 12.5 ms > limit 12.0 ms; MACs unchanged"


def test_a_limit_on_a_device_this_run_does_not_estimate_fails() -> None:
    comparison = compare(parse_budget(BUDGET, PATH), measured({"ci-runner": 10.0}))
    assert comparison.status == UNKNOWN
    assert comparison.failures == ["limit on device phone is not checked: this test does not estimate the model on "
                                   "phone (ini macc_budget_devices or the marker's devices=)"]


def test_estimates_on_a_device_not_recorded_are_missing_and_ones_no_longer_made_can_be_tightened() -> None:
    budget = parse_budget(BUDGET, PATH)
    new_device = compare(budget, measured({"ci-runner": 10.0, "gpu": 0.1}, phone=DeviceFigures(10.41, 3.2)))
    assert new_device.status == MISSING
    assert new_device.failed
    assert new_device.failures == ["no estimates for device gpu in the budget entry of model 'net'; run "
                                   "`pytest --macc-budget-update` to record them"]
    assert not compare(budget, measured({"ci-runner": 10.0, "gpu": 0.1}, phone=DeviceFigures(10.41, 3.2)),
                       missing_fails=False).failed
    without_phone_limit = parse_budget(BUDGET.replace("        limit: {latency_ms: 12}\n", ""), PATH)
    dropped = compare(without_phone_limit, measured({}, phone=DeviceFigures(10.41, 3.2)))
    assert dropped.status == TIGHTENABLE
    assert "estimates on device ci-runner are recorded but no longer made" in dropped.failures[0]


def test_an_unknown_estimate_against_a_budget_fails_with_its_reason() -> None:
    unknown = DeviceFigures(None, None, unknown_reason="layer head: MACs not counted")
    comparison = compare(parse_budget(BUDGET, PATH), measured({"ci-runner": 10.0}, phone=unknown))
    assert comparison.status == UNKNOWN
    assert comparison.failures[0] == ("latency_ms on phone could not be estimated (layer head: MACs not counted); "
                                      "budget 10.4 ms and limit 12.0 ms")


def test_tolerances_apply_from_the_device_then_the_model_then_the_defaults() -> None:
    text = BUDGET.replace("devices:\n  #", "defaults:\n  tolerance: {energy_mj: 50%, all: 1%}\ndevices:\n  #")
    text = text.replace("    total: " + TOTAL, "    tolerance: {latency_ms: 20%}\n    total: " + TOTAL)
    budget = parse_budget(text, PATH)
    assert budget.tolerance_for("net", "latency_ms", "phone").describe() == "5%"
    assert budget.tolerance_for("net", "latency_ms", "ci-runner").describe() == "20%"
    assert budget.tolerance_for("net", "energy_mj", "phone").describe() == "50%"
    assert budget.tolerance_for("net", "macs").describe() == "1%"
    assert compare(budget, measured({"ci-runner": 11.9}, phone=DeviceFigures(10.41, 3.2))).status == OK


def test_absolute_device_tolerances_are_in_the_metrics_unit() -> None:
    text = BUDGET.replace("tolerance: {latency_ms: 5%}", "tolerance: {latency_ms: 0.5ms, energy_mj: 0.1}")
    budget = parse_budget(text, PATH)
    assert compare(budget, measured({"ci-runner": 10.0}, phone=DeviceFigures(10.91, 3.3))).status == OK
    assert compare(budget, measured({"ci-runner": 10.0}, phone=DeviceFigures(10.92, 3.2))).status == REGRESSED
    assert "tolerance: {latency_ms: 0.5ms, energy_mj: 0.1}" in dump_budget(budget)


def test_update_records_estimates_and_keeps_what_the_owner_wrote() -> None:
    budget = parse_budget(BUDGET, PATH)
    updated, messages = update_budget(budget, [measured({"gpu": 0.125}, energy=0.5, phone=DeviceFigures(11.0, 3.5))])
    assert messages == []
    devices = updated.models["net"].devices
    assert set(devices) == {"gpu", "phone"}  # ci-runner is no longer estimated, and had nothing hand-written
    assert devices["gpu"].figures == {"latency_ms": 0.125, "energy_mj": 0.5}
    assert devices["phone"].figures == {"latency_ms": 11.0, "energy_mj": 3.5}
    assert devices["phone"].limit == {"latency_ms": 12.0}
    assert devices["phone"].tolerance == budget.models["net"].devices["phone"].tolerance
    assert budget.models["net"].devices["ci-runner"].figures  # the input budget is not changed
    assert "my-board:" in dump_budget(updated)


def test_a_device_no_longer_estimated_keeps_its_limit_without_figures() -> None:
    updated, _ = update_budget(parse_budget(BUDGET, PATH), [measured({"ci-runner": 10.0})])
    phone = updated.models["net"].devices["phone"]
    assert (phone.figures, phone.limit) == ({}, {"latency_ms": 12.0})
    assert "      phone:\n        limit: {latency_ms: 12}\n        tolerance: {latency_ms: 5%}\n  " not in dump_budget(updated)
    assert parse_budget(dump_budget(updated), PATH).models["net"].devices["phone"].limit == {"latency_ms": 12.0}


def test_update_refuses_an_estimate_over_its_limit_and_leaves_out_unknown_ones() -> None:
    budget = parse_budget(BUDGET, PATH)
    updated, messages = update_budget(budget, [measured({"ci-runner": 10.0}, phone=DeviceFigures(13.0, 3.2))])
    assert updated.models["net"] == budget.models["net"]
    assert messages == ["refused to record model 'net': latency_ms on phone 13.0 ms is over its limit 12; "
                        "its budget entry is kept as it was"]
    unknown = DeviceFigures(None, 3.0, unknown_reason="no fp16 peak on phone")
    updated, messages = update_budget(budget, [measured({"ci-runner": 10.0}, phone=unknown)])
    assert updated.models["net"].devices["phone"].figures == {"energy_mj": 3.0}
    assert messages == ["model 'net': latency_ms on phone could not be estimated (no fp16 peak on phone); not recorded"]


def test_a_new_entry_lists_the_device_estimates_as_new() -> None:
    comparison = compare(parse_budget("version: 1\n", PATH), measured({"ci-runner": 1.5}))
    assert comparison.status == MISSING
    assert [(m.label, m.new, m.status) for m in comparison.metrics if m.device] == [
        ("latency_ms on ci-runner", 1.5, "new"), ("energy_mj on ci-runner", 0.25, "new")]


def test_measurements_carry_estimates_through_json() -> None:
    figures = DeviceFigures(1.25, None, memory_bound=(("head", 0.5),), unknown_reason="why")
    original = measured({}, gpu=figures)
    assert Measurement.from_json(original.to_json()) == original


@pytest.mark.parametrize("ms, text", [(10.41, "10.4 ms"), (0.8125, "813 µs"), (1500, "1.50 s"), (0.9997, "1.00 ms"),
                                      (0.00041, "410 ns"), (0, "0 ms"), (-0.5, "-500 µs"), (None, "?")])
def test_durations_are_printed_in_the_unit_that_fits(ms: float, text: str) -> None:
    assert format_duration(ms) == text


def test_energies_are_printed_in_the_unit_that_fits() -> None:
    assert [format_energy(v) for v in (3.215, 0.00041, 2500, 0.0125)] == ["3.22 mJ", "410 nJ", "2.50 J", "12.5 µJ"]


@pytest.mark.parametrize("text, kind, value", [("12", "ms", 12.0), ("800us", "ms", 0.8), ("1.5s", "ms", 1500.0),
                                               ("20ns", "ms", 2e-05), ("450uJ", "mJ", 0.45), ("1J", "mJ", 1000.0),
                                               (3, "mJ", 3.0)])
def test_durations_and_energies_parse_with_or_without_a_unit(text: str, kind: str, value: float) -> None:
    assert parse_quantity(text, kind) == pytest.approx(value)
