"""The budget file: format, errors with file:line:key, tolerances, compare, update, atomic write."""
from __future__ import annotations

import json
import os
import re
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_maccbudget import atomic as budget_module
from pytest_maccbudget.budget import (
    TOTAL_METRICS,
    ZERO_TOLERANCE,
    Budget,
    BudgetError,
    Comparison,
    LayerChange,
    Measurement,
    ModelEntry,
    Tolerance,
    compare,
    dump_budget,
    load_budget,
    parse_budget,
    update_budget,
    write_budget,
)
from pytest_maccbudget.terminal_summary import render_layer_table

HEADER = """\
# Model cost budget for pytest-maccbudget, checked by `pytest --macc-budget`.
# inputs, total and layers are recorded by `pytest --macc-budget-update`;
# limit and tolerance are yours: an update never changes them.
# Numbers may carry units: 1.2G, 350M, 1,234 (counts); 24MB, 1.5GiB (bytes).
"""

# Written by hand: units, a quoted tolerance, unsorted models and layers, a comment.
HAND_WRITTEN = """\
version: 1
defaults:
  tolerance: {macs: 0%, params: 0, peak_activation_bytes: 5%}
models:
  segmenter:
    total: {macs: 350M, params: "1,234"}
  detector-small:
    inputs: {images: [1, 3, 320, 320]}
    limit: {macs: 1.2G, peak_activation_bytes: 24MB}   # the phone budget
    tolerance: {macs: "2% and 1M", layer_macs: 5%}
    total: {macs: 1093402624, flops: 2189672448, params: 4213872, param_bytes: 16855488,
            peak_activation_bytes: 9830400}
    layers:
      backbone.stem.conv: {macs: 44236800}
      backbone.stage1.0.dw: {macs: 3686400}
"""

DUMPED = HEADER + """\
version: 1
defaults:
  tolerance: {macs: 0%, params: 0, peak_activation_bytes: 5%}
models:
  detector-small:
    inputs: {images: [1, 3, 320, 320]}
    limit: {macs: 1.2G, peak_activation_bytes: 24MB}
    tolerance: {macs: 2% and 1M, layer_macs: 5%}
    total: {macs: 1093402624, flops: 2189672448, params: 4213872,
            param_bytes: 16855488, peak_activation_bytes: 9830400}
    layers:
      backbone.stage1.0.dw: {macs: 3686400}
      backbone.stem.conv: {macs: 44236800}
  segmenter:
    total: {macs: 350000000, params: 1234}
"""

DETECTOR_TOTAL = {"macs": 1093402624, "flops": 2189672448, "params": 4213872, "param_bytes": 16855488,
                  "peak_activation_bytes": 9830400}
DETECTOR_LAYERS = {"backbone.stem.conv": 44236800, "backbone.stage1.0.dw": 3686400}


def parse(text: str) -> Budget:
    return parse_budget(text, Path("macc_budget.yaml"))


def measurement(name: str = "detector-small", total: dict | None = None, layers: dict | None = None,
                inputs: dict | None = None, unknown_ops: tuple[str, ...] = ()) -> Measurement:
    return Measurement(
        name=name,
        nodeid=f"tests/test_models.py::test_{name}",
        inputs={"images": [1, 3, 320, 320]} if inputs is None else inputs,
        total=dict(DETECTOR_TOTAL) if total is None else total,
        layers=dict(DETECTOR_LAYERS) if layers is None else layers,
        unknown_ops=unknown_ops,
    )


# --- loading and dumping ------------------------------------------------------------------


def test_parse_reads_units_and_keeps_the_hand_written_text():
    budget = parse(HAND_WRITTEN)
    assert budget.exists is True
    assert sorted(budget.models) == ["detector-small", "segmenter"]
    detector = budget.models["detector-small"]
    assert detector.inputs == {"images": [1, 3, 320, 320]}
    assert detector.limit == {"macs": 1_200_000_000, "peak_activation_bytes": 24_000_000}
    assert detector.limit_text == {"macs": "1.2G", "peak_activation_bytes": "24MB"}
    assert detector.tolerance["macs"] == Tolerance(Fraction(1, 50), 1_000_000, "2% and 1M")
    assert detector.tolerance["layer_macs"] == Tolerance(Fraction(1, 20), None, "5%")
    assert detector.total == DETECTOR_TOTAL
    assert detector.layers == DETECTOR_LAYERS
    assert budget.models["segmenter"].total == {"macs": 350_000_000, "params": 1234}
    assert budget.models["segmenter"].inputs is None
    assert budget.default_tolerance == {
        "macs": Tolerance(Fraction(0), None, "0%"),
        "params": Tolerance(None, 0, "0"),
        "peak_activation_bytes": Tolerance(Fraction(1, 20), None, "5%"),
    }


def test_dump_is_sorted_and_stable():
    first = dump_budget(parse(HAND_WRITTEN))
    assert first == DUMPED
    assert dump_budget(parse(first)) == first


def test_empty_budget_dumps_a_header_version_and_no_models():
    text = dump_budget(Budget(path=Path("macc_budget.yaml"), exists=False))
    assert text == HEADER + "version: 1\nmodels: {}\n"
    assert parse(text).models == {}


def test_keys_are_quoted_only_when_yaml_needs_it():
    budget = Budget(path=Path("b.yaml"), models={
        "123": ModelEntry(name="123", layers={"(root)": 1, "1.0": 2, "a: b": 3, "true": 4, "x:y": 5}),
        "plain-name": ModelEntry(name="plain-name", inputs={"input.1": [1], "x, y": [2]}),
        "it's": ModelEntry(name="it's"),
    })
    text = dump_budget(budget)
    assert text == HEADER + """\
version: 1
models:
  '123':
    layers:
      (root): {macs: 1}
      '1.0': {macs: 2}
      'a: b': {macs: 3}
      'true': {macs: 4}
      x:y: {macs: 5}
  it's: {}
  plain-name:
    inputs: {input.1: [1], 'x, y': [2]}
"""
    reparsed = parse(text)
    assert reparsed.models["123"].layers == {"(root)": 1, "1.0": 2, "a: b": 3, "true": 4, "x:y": 5}
    assert reparsed.models["plain-name"].inputs == {"input.1": [1], "x, y": [2]}
    assert dump_budget(reparsed) == text


def test_a_key_too_long_for_a_simple_key_uses_an_explicit_key():
    long_key = "encoder." + "block." * 200 + "conv"
    budget = Budget(path=Path("b.yaml"), models={long_key: ModelEntry(name=long_key, layers={long_key: 9})})
    text = dump_budget(budget)
    assert f'  ? "{long_key}"\n  :\n' in text
    assert parse(text).models[long_key].layers == {long_key: 9}
    assert dump_budget(parse(text)) == text


_names = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    models=st.dictionaries(_names, st.dictionaries(_names, st.integers(0, 10**15), max_size=4), max_size=4),
    input_name=_names,
)
def test_any_names_round_trip_byte_for_byte(models, input_name):
    budget = Budget(path=Path("b.yaml"), models={
        name: ModelEntry(name=name, inputs={input_name: [1, 3]}, layers=layers) for name, layers in models.items()
    })
    text = dump_budget(budget)
    reparsed = parse(text)
    assert {name: entry.layers for name, entry in reparsed.models.items()} == models
    assert all(entry.inputs == {input_name: [1, 3]} for entry in reparsed.models.values())
    assert dump_budget(reparsed) == text


def test_missing_file_is_an_empty_budget(tmp_path):
    budget = load_budget(tmp_path / "macc_budget.yaml")
    assert budget.exists is False
    assert budget.models == {}
    assert budget.default_tolerance == {}


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_empty_file_is_an_empty_budget(tmp_path, text):
    path = tmp_path / "macc_budget.yaml"
    path.write_text(text)
    budget = load_budget(path)
    assert budget.exists is True
    assert budget.models == {}


def test_empty_sections_are_empty():
    budget = parse("version: 1\ndefaults:\nmodels:\n  m:\n    limit:\n    layers:\n")
    assert budget.default_tolerance == {}
    assert budget.models["m"] == ModelEntry(name="m")


# --- errors: file, line, key --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("models:\n  m: {total: {macs: 1}\n",
         "macc_budget.yaml:3: invalid YAML: expected ',' or '}', but got '<stream end>' "
         "(while parsing a flow mapping)"),
        ("- a\n- b\n",
         "macc_budget.yaml:1: expected the budget file to be a mapping with keys version, rules, defaults, devices, models, "
         "got a list"),
        ("version: 1\nmodel: {}\n",
         "macc_budget.yaml:2: model: unknown key 'model'; allowed: version, rules, defaults, devices, models"),
        ("defaults:\n  tolerances: {macs: 2%}\n",
         "macc_budget.yaml:2: defaults.tolerances: unknown key 'tolerances'; allowed: tolerance"),
        ("models:\n  resnet:\n    totals: {macs: 1}\n",
         "macc_budget.yaml:3: models.resnet.totals: unknown key 'totals'; "
         "allowed: inputs, rules, partial, upper_bounds, limit, tolerance, total, devices, layers"),
        ("models:\n  resnet:\n    total: {mac: 1}\n",
         "macc_budget.yaml:3: models.resnet.total.mac: unknown key 'mac'; "
         "allowed: macs, flops, params, param_bytes, peak_activation_bytes"),
        ("models:\n  resnet:\n    tolerance: {layers: 2%}\n",
         "macc_budget.yaml:3: models.resnet.tolerance.layers: unknown key 'layers'; "
         "allowed: all, macs, flops, params, param_bytes, peak_activation_bytes, layer_macs, latency_ms, energy_mj"),
        ("models:\n  resnet:\n    layers:\n      conv1: {flops: 2}\n",
         "macc_budget.yaml:4: models.resnet.layers.conv1.flops: unknown key 'flops'; allowed: macs"),
        ("models:\n  resnet:\n    layers:\n      conv1: {}\n",
         "macc_budget.yaml:4: models.resnet.layers.conv1: missing key 'macs'"),
        ("models:\n  resnet:\n    layers:\n      conv1: 12\n",
         "macc_budget.yaml:4: models.resnet.layers.conv1: expected a mapping such as {macs: 1234}, got '12'"),
        ("models:\n  resnet:\n    total: [1, 2]\n",
         "macc_budget.yaml:3: models.resnet.total: expected a mapping of metric to number "
         "(macs, flops, params, param_bytes, peak_activation_bytes), got a list"),
        ("models: [resnet]\n",
         "macc_budget.yaml:1: models: expected a mapping of model name to entry, got a list"),
        ("models:\n  resnet:\n",
         "macc_budget.yaml:2: models.resnet: expected a mapping with keys inputs, rules, partial, upper_bounds, limit, tolerance, total, "
         "devices, layers, got nothing"),
        ("models:\n  resnet: 42\n",
         "macc_budget.yaml:2: models.resnet: expected a mapping with keys inputs, rules, partial, upper_bounds, limit, tolerance, total, "
         "devices, layers, got '42'"),
        ("version: 1\nmodels:\n  resnet:\n    total: {macs: 1}\n\n\n    layers: {}\n    total: {macs: 2}\n",
         "macc_budget.yaml:8: models.resnet.total: duplicate key 'total' (first at line 4)"),
        ("models:\n  resnet:\n    total:\n      macs: -3\n",
         "macc_budget.yaml:4: models.resnet.total.macs: expected a non-negative number, got '-3'"),
        ("models:\n  resnet:\n    limit: {macs: -1.2G}\n",
         "macc_budget.yaml:3: models.resnet.limit.macs: expected a non-negative number, got '-1.2G'"),
        ("models:\n  resnet:\n    total: {macs: 1.2Q}\n",
         "macc_budget.yaml:3: models.resnet.total.macs: cannot read '1.2Q' as a count quantity: "
         "unknown unit 'Q' (e.g. 512, 30k, 350M, 1.82G)"),
        ("models:\n  resnet:\n    total: {param_bytes: 24 MiBs}\n",
         "macc_budget.yaml:3: models.resnet.total.param_bytes: cannot read '24 MiBs' as a bytes quantity: "
         "unknown unit 'MiBs' (e.g. 512B, 1.5KB, 24MB, 1.5GiB)"),
        ("models:\n  resnet:\n    total: {macs: 1.5}\n",
         "macc_budget.yaml:3: models.resnet.total.macs: expected a whole number, got '1.5'"),
        ("models:\n  resnet:\n    layers:\n      conv1: {macs: 1.2345k}\n",
         "macc_budget.yaml:4: models.resnet.layers.conv1.macs: expected a whole number, got '1.2345k'"),
        ("models:\n  resnet:\n    total: {macs: true}\n",
         "macc_budget.yaml:3: models.resnet.total.macs: expected a number such as 1.2G, got 'true'"),
        ("models:\n  resnet:\n    total: {params: }\n",
         "macc_budget.yaml:3: models.resnet.total.params: expected a number such as 1.2G, got nothing"),
        ("version: 2\nmodels: {}\n",
         "macc_budget.yaml:1: version: unsupported budget file version '2': "
         "this version of pytest-maccbudget reads version 1 only"),
        ("version: one\n",
         "macc_budget.yaml:1: version: unsupported budget file version 'one': "
         "this version of pytest-maccbudget reads version 1 only"),
        ("models:\n  resnet:\n    inputs: {x: [1, 0, 224]}\n",
         "macc_budget.yaml:3: models.resnet.inputs.x[1]: expected a positive integer, got '0'"),
        ("models:\n  resnet:\n    inputs:\n      x: [1, 3,\n          2.5]\n",
         "macc_budget.yaml:5: models.resnet.inputs.x[2]: expected a positive integer, got '2.5'"),
        ("models:\n  resnet:\n    inputs: {x: 224}\n",
         "macc_budget.yaml:3: models.resnet.inputs.x: expected a shape such as [1, 3, 224, 224], got '224'"),
        ("models:\n  resnet:\n    inputs: [1, 3]\n",
         "macc_budget.yaml:3: models.resnet.inputs: expected a mapping of input name to shape, got a list"),
        ("defaults:\n  tolerance:\n    macs: 2 percent\n",
         "macc_budget.yaml:3: defaults.tolerance.macs: cannot read tolerance '2 percent': cannot read "
         "'2 percent' as a count quantity: unknown unit 'percent' (e.g. 512, 30k, 350M, 1.82G); "
         "write e.g. '2%', '0', '1M' or '2% and 1M'"),
        ("models:\n  m:\n    tolerance: {peak_activation_bytes: -5%}\n",
         "macc_budget.yaml:3: models.m.tolerance.peak_activation_bytes: "
         "expected a non-negative tolerance, got '-5%'"),
        ("models:\n  m:\n    tolerance: {macs: 2% and 3%}\n",
         "macc_budget.yaml:3: models.m.tolerance.macs: cannot read tolerance '2% and 3%': more than one "
         "percentage; write e.g. '2%', '0', '1M' or '2% and 1M'"),
        ("models:\n  m:\n    total: {macs: !!python/name:os.system ''}\n",
         "macc_budget.yaml:3: models.m.total.macs: expected a number such as 1.2G, got '' (could not "
         "determine a constructor for the tag 'tag:yaml.org,2002:python/name:os.system')"),
    ],
)
def test_errors_name_file_line_and_key(tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "macc_budget.yaml"
    path.write_text(text)
    with pytest.raises(BudgetError) as info:
        load_budget(path)
    assert str(info.value) == message


def test_error_outside_the_working_directory_names_the_full_path(tmp_path, monkeypatch):
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = tmp_path / "budgets" / "cost.yaml"
    path.parent.mkdir()
    path.write_text("models:\n  m:\n    total: {macs: -3}\n")
    with pytest.raises(BudgetError) as info:
        load_budget(path)
    assert str(info.value) == f"{path}:3: models.m.total.macs: expected a non-negative number, got '-3'"
    assert (info.value.line, info.value.key) == (3, "models.m.total.macs")


def test_error_for_a_file_that_is_not_utf8(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "macc_budget.yaml"
    path.write_bytes(b"version: 1\nmodels:\n  caf\xe9: {}\n")
    with pytest.raises(BudgetError) as info:
        load_budget(path)
    assert str(info.value) == "macc_budget.yaml:3: not UTF-8 text (invalid continuation byte at byte 24)"


def test_python_tags_are_never_constructed(tmp_path, monkeypatch):
    # The safe loader rejects object construction, also where a mapping is expected.
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "macc_budget.yaml"
    path.write_text("models:\n  m:\n    limit: !!python/object/apply:os.system [echo hacked]\n")
    with pytest.raises(BudgetError) as info:
        load_budget(path)
    assert str(info.value).startswith("macc_budget.yaml:3: models.m.limit: expected a mapping of metric to limit")


# --- tolerances ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "old", "new", "allowed"),
    [
        # relative only
        ("2%", 1000, 1020, True),
        ("2%", 1000, 1021, False),
        ("2%", 1000, 900, True),            # shrinking is always allowed
        ("2%", 0, 1, False),                # nothing is 2% of zero
        ("2%", 0, 0, True),
        # absolute only
        ("1M", 10**9, 10**9 + 10**6, True),
        ("1M", 10**9, 10**9 + 10**6 + 1, False),
        ("1M", 0, 10**6, True),
        ("1M", 0, 10**6 + 1, False),
        # both: fails only when more than 2% AND more than 1 M
        ("2% and 1M", 1000, 900_000, True),            # +89900%, but under 1 M
        ("2% and 1M", 10**9, 10**9 + 15_000_000, True),  # +15 M, but only +1.5%
        ("2% and 1M", 10**8, 10**8 + 2_000_001, False),  # +2.000001% and +2 M
        ("2% and 1M", 0, 10**6, True),
        ("2% and 1M", 0, 10**6 + 1, False),
        # zero
        ("0", 1000, 1000, True),
        ("0", 1000, 1001, False),
        ("0%", 1000, 1001, False),
        ("0", 0, 1, False),
        ("0", 5, 4, True),
    ],
)
def test_tolerance_semantics(text, old, new, allowed):
    assert Tolerance.parse(text, "macs").allows_growth(old, new) is allowed


@pytest.mark.parametrize(
    ("value", "metric", "relative", "absolute"),
    [
        ("2%", "macs", Fraction(1, 50), None),
        ("0.5%", "flops", Fraction(1, 200), None),
        ("0", "params", None, 0),
        (0, "params", None, 0),
        (1000, "macs", None, 1000),
        ("1M", "macs", None, 1_000_000),
        ("1.5 MB", "param_bytes", None, 1_500_000),
        ("1 MiB", "peak_activation_bytes", None, 1_048_576),
        ("2% and 1M", "layer_macs", Fraction(1, 50), 1_000_000),
        ("1M AND 2%", "macs", Fraction(1, 50), 1_000_000),
    ],
)
def test_tolerance_parse(value, metric, relative, absolute):
    tolerance = Tolerance.parse(value, metric)
    assert (tolerance.relative, tolerance.absolute) == (relative, absolute)
    assert tolerance.text == str(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2", None),
        ("two", "cannot read tolerance 'two': cannot read 'two' as a count quantity "
                "(e.g. 512, 30k, 350M, 1.82G); write e.g. '2%', '0', '1M' or '2% and 1M'"),
        ("1MB", "cannot read tolerance '1MB': cannot read '1MB' as a count quantity: unknown unit 'MB' "
                "(e.g. 512, 30k, 350M, 1.82G); write e.g. '2%', '0', '1M' or '2% and 1M'"),
        ("1M and 2M", "cannot read tolerance '1M and 2M': more than one absolute amount; "
                      "write e.g. '2%', '0', '1M' or '2% and 1M'"),
        (-1, "expected a non-negative tolerance, got '-1'"),
        (True, "cannot read tolerance 'True': write e.g. '2%', '0', '1M' or '2% and 1M'"),
        (None, "cannot read tolerance 'None': write e.g. '2%', '0', '1M' or '2% and 1M'"),
    ],
)
def test_tolerance_parse_errors(value, message):
    if message is None:  # a bare number is an absolute amount, not a percentage
        assert Tolerance.parse(value, "macs") == Tolerance(None, 2, "2")
        return
    with pytest.raises(BudgetError) as info:
        Tolerance.parse(value, "macs")
    assert str(info.value) == message


def test_zero_tolerance():
    assert ZERO_TOLERANCE == Tolerance.parse(0, "macs")
    assert ZERO_TOLERANCE.text == "0"
    assert ZERO_TOLERANCE.allows_growth(10, 10) and not ZERO_TOLERANCE.allows_growth(10, 11)


def test_tolerance_for_falls_back_from_model_to_default_and_layers_to_macs():
    budget = parse("""\
defaults:
  tolerance: {macs: 1%, params: 0}
models:
  a:
    tolerance: {macs: 3%}
  b:
    tolerance: {layer_macs: 4%}
  c: {}
""")
    assert budget.tolerance_for("a", "macs").text == "3%"
    assert budget.tolerance_for("a", "layer_macs").text == "3%"    # the model's macs tolerance
    assert budget.tolerance_for("b", "layer_macs").text == "4%"
    assert budget.tolerance_for("b", "macs").text == "1%"
    assert budget.tolerance_for("c", "layer_macs").text == "1%"    # the default macs tolerance
    assert budget.tolerance_for("c", "params").text == "0"
    assert budget.tolerance_for("c", "flops") == ZERO_TOLERANCE
    assert budget.tolerance_for("not-in-the-budget", "macs").text == "1%"

    with_layer_default = parse(
        "defaults:\n  tolerance: {layer_macs: 5%}\nmodels:\n  a:\n    tolerance: {macs: 3%}\n")
    assert with_layer_default.tolerance_for("a", "layer_macs").text == "5%"


# --- compare ------------------------------------------------------------------------------

COMPARE_BUDGET = """\
rules: 6
models:
  resnet:
    inputs: {x: [1, 3, 224, 224]}
    total: {macs: 1800000000, flops: 3600000000, params: 11000000,
            param_bytes: 44000000, peak_activation_bytes: 9000000}
    layers:
      fc: {macs: 512000}
      layer1.0.conv1: {macs: 58000000}
      layer4.1.conv2: {macs: 115000000}
  capped:
    limit: {macs: 1.2G}
    total: {macs: 1.1G}
"""

RESNET_TOTAL = {"macs": 1_800_000_000, "flops": 3_600_000_000, "params": 11_000_000,
                "param_bytes": 44_000_000, "peak_activation_bytes": 9_000_000}
RESNET_LAYERS = {"fc": 512_000, "layer1.0.conv1": 58_000_000, "layer4.1.conv2": 115_000_000}


def resnet(total: dict | None = None, layers: dict | None = None, **kwargs) -> Measurement:
    merged_total = {**RESNET_TOTAL, **(total or {})}
    merged_layers = {**RESNET_LAYERS, **(layers or {})}
    return Measurement(
        name=kwargs.get("name", "resnet"),
        nodeid="tests/test_models.py::test_resnet",
        inputs=kwargs.get("inputs", {"x": [1, 3, 224, 224]}),
        total=merged_total,
        layers={key: value for key, value in merged_layers.items() if key not in kwargs.get("drop", ())},
        unknown_ops=kwargs.get("unknown_ops", ()),
    )


@pytest.fixture
def cmp_budget() -> Budget:
    return parse(COMPARE_BUDGET)


def test_compare_unchanged_is_ok(cmp_budget):
    result = compare(cmp_budget, resnet())
    assert (result.status, result.failed, result.failures, result.layers) == ("ok", False, [], [])
    assert [m.status for m in result.metrics] == ["ok"] * 5
    assert render_layer_table(result) == []


def test_compare_total_regression(cmp_budget):
    result = compare(cmp_budget, resnet(total={"macs": 1_820_000_000}))
    assert result.status == "regressed"
    assert result.failed
    assert result.failures == ["macs 1.82 G > budget 1.80 G (+1.1%, tolerance 0%)"]
    macs = result.metrics[0]
    assert (macs.metric, macs.old, macs.new, macs.limit, macs.status) == ("macs", 1_800_000_000, 1_820_000_000,
                                                                          None, "regressed")


def test_compare_byte_metric_regression_uses_bytes(cmp_budget):
    result = compare(cmp_budget, resnet(total={"peak_activation_bytes": 9_500_000}))
    assert result.failures == ["peak_activation_bytes 9.50 MB > budget 9.00 MB (+5.6%, tolerance 0%)"]


def test_compare_growth_within_tolerance_passes(cmp_budget):
    cmp_budget.models["resnet"].tolerance["macs"] = Tolerance.parse("2%", "macs")
    result = compare(cmp_budget, resnet(total={"macs": 1_820_000_000}))
    assert (result.status, result.failed) == ("ok", False)
    assert result.metrics[0].status == "grew"


def test_compare_one_layer_regression(cmp_budget):
    result = compare(cmp_budget, resnet(layers={"layer1.0.conv1": 116_000_000}))
    assert result.status == "regressed"
    assert result.failures == ["layer layer1.0.conv1: macs 116 M > budget 58.0 M (+100.0%, tolerance 0%)"]
    assert result.layers == [LayerChange("layer1.0.conv1", 58_000_000, 116_000_000, "grew")]
    assert render_layer_table(result) == [
        "layer           budget  measured   change        %",
        "--------------  ------  --------  -------  -------",
        "layer1.0.conv1  58.0 M     116 M  +58.0 M  +100.0%",
    ]


def test_compare_new_layer_fails_and_removed_layer_is_shown(cmp_budget):
    layers = {"head.extra": 1_200_000}
    result = compare(cmp_budget, resnet(layers=layers, drop=("fc",)))
    assert result.status == "regressed"
    assert result.failures == ["new layer head.extra: 1.20 M MACs (not in the budget)"]
    assert result.layers == [
        LayerChange("head.extra", None, 1_200_000, "new"),
        LayerChange("fc", 512_000, None, "removed"),
    ]
    assert render_layer_table(result) == [
        "layer       budget  measured   change        %",
        "----------  ------  --------  -------  -------",
        "head.extra       -    1.20 M  +1.20 M      new",
        "fc           512 k         -   -512 k  removed",
    ]


def test_compare_removed_layer_alone_does_not_fail(cmp_budget):
    result = compare(cmp_budget, resnet(drop=("fc",)))
    assert result.status == "tightenable"
    assert result.failed is False
    assert result.layers == [LayerChange("fc", 512_000, None, "removed")]
    assert result.failures == ["model 'resnet' is cheaper than its budget (1 layer lower or removed); "
                               "run `pytest --macc-budget-update` to tighten the budget"]


def test_compare_new_layer_within_an_absolute_layer_tolerance_passes(cmp_budget):
    cmp_budget.models["resnet"].tolerance["layer_macs"] = Tolerance.parse("2% and 2M", "layer_macs")
    result = compare(cmp_budget, resnet(layers={"head.extra": 1_200_000}))
    assert (result.status, result.failures) == ("ok", [])
    assert result.layers == [LayerChange("head.extra", None, 1_200_000, "new")]


def test_compare_layers_largest_change_first(cmp_budget):
    cmp_budget.models["resnet"].tolerance["layer_macs"] = Tolerance.parse("100%", "layer_macs")
    result = compare(cmp_budget, resnet(layers={"fc": 1_000_000, "layer1.0.conv1": 50_000_000,
                                                "layer4.1.conv2": 116_000_000}))
    assert [(change.key, change.delta) for change in result.layers] == [
        ("layer1.0.conv1", -8_000_000), ("layer4.1.conv2", 1_000_000), ("fc", 488_000)]


def test_compare_over_limit(cmp_budget):
    measured = Measurement("capped", "t.py::test_capped", {}, {"macs": 1_250_000_000}, {})
    result = compare(cmp_budget, measured)
    assert result.status == "over_limit"
    assert result.failed
    assert result.failures == ["macs 1.25 G > limit 1.20 G", "macs 1.25 G > budget 1.10 G (+13.6%, tolerance 0%)"]
    assert result.metrics[0].status == "over_limit"
    assert result.metrics[0].limit == 1_200_000_000


@pytest.mark.parametrize(("strict", "failed"), [(False, False), (True, True)])
def test_compare_tightenable(cmp_budget, strict, failed):
    result = compare(cmp_budget, resnet(total={"macs": 1_700_000_000}, layers={"fc": 500_000}), strict=strict)
    assert result.status == "tightenable"
    assert result.failed is failed
    assert result.failures == [
        "model 'resnet' is cheaper than its budget (macs 1.70 G < budget 1.80 G (-5.6%); "
        "1 layer lower or removed); run `pytest --macc-budget-update` to tighten the budget"]
    assert result.metrics[0].status == "shrank"


@pytest.mark.parametrize(("missing_fails", "failed"), [(True, True), (False, False)])
def test_compare_missing(cmp_budget, monkeypatch, tmp_path, missing_fails, failed):
    result = compare(cmp_budget, resnet(name="mobilenet"), missing_fails=missing_fails)
    assert result.status == "missing"
    assert result.failed is failed
    assert result.failures == ["no budget entry for model 'mobilenet' in macc_budget.yaml; "
                               "run `pytest --macc-budget-update` to record it"]
    assert [m.status for m in result.metrics] == ["new"] * 5


def test_compare_inputs_changed(cmp_budget):
    result = compare(cmp_budget, resnet(inputs={"x": [1, 3, 320, 320]}, total={"macs": 3_600_000_000}))
    assert result.status == "inputs_changed"
    assert result.failed
    assert result.failures == [
        "inputs of model 'resnet' changed: the budget was recorded for {x: [1, 3, 224, 224]}, the test measured "
        "{x: [1, 3, 320, 320]}; run `pytest --macc-budget-update` to record the new inputs"]


def test_compare_inputs_given_as_tuples_match(cmp_budget):
    result = compare(cmp_budget, resnet(inputs={"x": (1, 3, 224, 224)}))
    assert result.status == "ok"


def test_compare_unknown_total(cmp_budget):
    result = compare(cmp_budget, resnet(total={"macs": None, "flops": None}, unknown_ops=("acme::Foo (blk.foo)",)))
    assert result.status == "unknown"
    assert result.failed
    assert result.failures == [
        "macs could not be counted (ops not counted: acme::Foo (blk.foo)); budget 1.80 G",
        "flops could not be counted (ops not counted: acme::Foo (blk.foo)); budget 3.60 G",
    ]
    assert [m.status for m in result.metrics[:2]] == ["unknown", "unknown"]


def test_compare_unknown_layer(cmp_budget):
    result = compare(cmp_budget, resnet(layers={"fc": None}))
    assert result.status == "unknown"
    assert result.failures == ["layer fc: MACs could not be counted; budget 512 k"]
    assert render_layer_table(result) == [
        "layer  budget  measured  change  %",
        "-----  ------  --------  ------  -",
        "fc      512 k         ?       ?  ?",
    ]


def test_compare_unknown_without_a_budget_value_is_not_a_failure():
    budget = parse("models:\n  m:\n    total: {macs: 10}\n")
    measured = Measurement("m", "t.py::test_m", {}, {"macs": 10, "peak_activation_bytes": None}, {})
    result = compare(budget, measured)
    assert (result.status, result.failures) == ("ok", [])
    assert result.metrics[4].status == "unknown"


def test_comparison_failed_follows_status():
    def make(status: str, **settings) -> Comparison:
        return Comparison("m", "t", status, [], [], [], **settings)

    assert [make(s).failed for s in ("ok", "regressed", "over_limit", "inputs_changed", "unknown")] == [
        False, True, True, True, True]
    assert make("missing").failed and not make("missing", missing_fails=False).failed
    assert not make("tightenable").failed and make("tightenable", strict=True).failed


# --- update -------------------------------------------------------------------------------


def test_update_keeps_hand_written_limit_and_tolerance_verbatim():
    budget = parse(HAND_WRITTEN)
    measured = measurement(total={**DETECTOR_TOTAL, "macs": 1_100_000_000},
                           layers={"backbone.stem.conv": 50_000_000, "head": 7})
    updated, messages = update_budget(budget, [measured])
    assert messages == []
    # the file recorded no counting rules (v1): the refreshed entry is under the current ones,
    # the untouched entry keeps v1, written on it
    assert dump_budget(updated) == HEADER + """\
version: 1
rules: 6
defaults:
  tolerance: {macs: 0%, params: 0, peak_activation_bytes: 5%}
models:
  detector-small:
    inputs: {images: [1, 3, 320, 320]}
    limit: {macs: 1.2G, peak_activation_bytes: 24MB}
    tolerance: {macs: 2% and 1M, layer_macs: 5%}
    total: {macs: 1100000000, flops: 2189672448, params: 4213872,
            param_bytes: 16855488, peak_activation_bytes: 9830400}
    layers:
      backbone.stem.conv: {macs: 50000000}
      head: {macs: 7}
  segmenter:
    rules: 1
    total: {macs: 350000000, params: 1234}
"""
    # the input budget is not changed
    assert budget.models["detector-small"].total["macs"] == 1093402624


def test_update_adds_a_new_entry_and_keeps_untouched_ones():
    budget = parse(HAND_WRITTEN)
    new = measurement(name="tiny", total={"macs": 5, "flops": 9, "params": 3, "param_bytes": 12,
                                          "peak_activation_bytes": 40}, layers={"fc": 5}, inputs={"x": [1, 4]})
    updated, messages = update_budget(budget, [new])
    assert messages == []
    assert updated.models["tiny"] == ModelEntry(
        name="tiny", inputs={"x": [1, 4]}, total={"macs": 5, "flops": 9, "params": 3, "param_bytes": 12,
                                                  "peak_activation_bytes": 40}, layers={"fc": 5})
    text = dump_budget(updated)
    # the entries recorded before (under the file's v1 counting rules) say so; the new one is current
    assert text == DUMPED.replace("version: 1\n", "version: 1\nrules: 6\n").replace(
        "    inputs: {images: [1, 3, 320, 320]}\n", "    inputs: {images: [1, 3, 320, 320]}\n    rules: 1\n").replace(
        "  segmenter:\n", "  segmenter:\n    rules: 1\n") + """\
  tiny:
    inputs: {x: [1, 4]}
    total: {macs: 5, flops: 9, params: 3,
            param_bytes: 12, peak_activation_bytes: 40}
    layers:
      fc: {macs: 5}
"""


def test_update_new_only_adds_but_does_not_refresh():
    budget = parse(HAND_WRITTEN)
    changed = measurement(total={**DETECTOR_TOTAL, "macs": 1})
    new = measurement(name="tiny", layers={})
    updated, messages = update_budget(budget, [changed, new], new_only=True)
    assert messages == []
    assert updated.models["detector-small"].total == DETECTOR_TOTAL
    assert updated.models["tiny"].total == DETECTOR_TOTAL
    assert updated.models["tiny"].layers == {}


def test_update_refuses_a_value_over_the_limit():
    budget = parse(HAND_WRITTEN)
    over = measurement(total={**DETECTOR_TOTAL, "macs": 1_250_000_000, "peak_activation_bytes": 30_000_000})
    updated, messages = update_budget(budget, [over])
    assert messages == [
        "refused to record model 'detector-small': macs 1.25 G (1250000000) is over its limit 1.2G (1.20 G); "
        "peak_activation_bytes 30.0 MB (30000000) is over its limit 24MB (24.0 MB); "
        "its budget entry is kept as it was"]
    assert updated.models["detector-small"] == budget.models["detector-small"]
    assert dump_budget(updated) == DUMPED


def test_update_refuses_a_count_no_budget_file_may_hold():
    budget = parse(HAND_WRITTEN)
    huge = measurement(name="new", total={**DETECTOR_TOTAL, "macs": 10**30 + 1}, layers={"stem": 10**31})
    updated, messages = update_budget(budget, [huge])
    assert messages == ["not recording model 'new': macs, layer stem over 1e30, more than a budget file may hold "
                        "(a declared size the graph cannot have?); no entry was written"]
    assert dump_budget(updated) == DUMPED
    at_the_limit = measurement(name="new", total={**DETECTOR_TOTAL, "macs": 10**30}, layers={})
    assert update_budget(budget, [at_the_limit])[1] == []


def test_update_refuses_unknown_values():
    budget = parse(HAND_WRITTEN)
    partial = measurement(total={**DETECTOR_TOTAL, "macs": None}, layers={"blk.foo": None, "stem": 4},
                          unknown_ops=("acme::Foo (blk.foo)",))
    new_partial = measurement(name="new", total={**DETECTOR_TOTAL, "flops": None})
    updated, messages = update_budget(budget, [partial, new_partial])
    how = ("To record what can be counted as a partial entry (lower bounds, `partial: true`), set the ini key "
           "`macc_budget_unknown_ops = warn`; to count the op, add a cost rule (docs/counting.md, \"Adding an op\").")
    assert messages == [
        "not recording model 'detector-small': macs, layer blk.foo could not be counted "
        f"(ops not counted: acme::Foo (blk.foo)); its budget entry is kept as it was. {how}",
        f"not recording model 'new': flops could not be counted; no entry was written. {how}",
    ]
    assert dump_budget(updated) == DUMPED


def test_update_removes_unused_entries_only_when_asked():
    budget = parse(HAND_WRITTEN)
    kept, _ = update_budget(budget, [measurement()])
    assert sorted(kept.models) == ["detector-small", "segmenter"]
    pruned, messages = update_budget(budget, [measurement()], remove_unused=["segmenter", "not-there"])
    assert messages == []
    assert sorted(pruned.models) == ["detector-small"]
    # an entry measured in the same run is never removed
    still, _ = update_budget(budget, [measurement()], remove_unused=["detector-small"])
    assert "detector-small" in still.models


def test_update_then_compare_is_ok():
    budget = parse(HAND_WRITTEN)
    measured = measurement(total={**DETECTOR_TOTAL, "macs": 1_000_000_000})
    updated, _ = update_budget(budget, [measured])
    assert compare(parse(dump_budget(updated)), measured).status == "ok"


# --- measurements -------------------------------------------------------------------------


def test_measurement_json_round_trip():
    measured = Measurement(
        name="m", nodeid="tests/t.py::test_m[cpu]", inputs={"x": [1, 3, 8, 8], "mask": [1, 8]},
        total={"macs": 10, "flops": None, "params": 3, "param_bytes": 12, "peak_activation_bytes": 256},
        layers={"conv": 10, "custom": None}, unknown_ops=("acme::Foo (custom)",),
    )
    data = json.loads(json.dumps(measured.to_json()))
    assert data == {
        "name": "m", "nodeid": "tests/t.py::test_m[cpu]", "inputs": {"x": [1, 3, 8, 8], "mask": [1, 8]},
        "total": {"macs": 10, "flops": None, "params": 3, "param_bytes": 12, "peak_activation_bytes": 256},
        "layers": {"conv": 10, "custom": None}, "unknown_ops": ["acme::Foo (custom)"],
    }
    assert Measurement.from_json(data) == measured


# --- atomic write -------------------------------------------------------------------------


def test_write_budget_writes_the_text(tmp_path):
    path = tmp_path / "macc_budget.yaml"
    write_budget(path, DUMPED)
    assert path.read_text() == DUMPED
    assert os.listdir(tmp_path) == ["macc_budget.yaml"]


def test_write_budget_keeps_the_file_mode(tmp_path):
    path = tmp_path / "macc_budget.yaml"
    path.write_text("old\n")
    path.chmod(0o640)
    write_budget(path, "new\n")
    assert path.read_text() == "new\n"
    assert path.stat().st_mode & 0o777 == 0o640


def test_write_budget_leaves_the_old_file_when_the_rename_fails(tmp_path, monkeypatch):
    path = tmp_path / "macc_budget.yaml"
    path.write_text("old content\n")

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(budget_module.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_budget(path, DUMPED)
    assert path.read_text() == "old content\n"
    assert os.listdir(tmp_path) == ["macc_budget.yaml"]


def test_write_budget_leaves_the_old_file_when_interrupted_mid_write(tmp_path, monkeypatch):
    path = tmp_path / "macc_budget.yaml"
    path.write_text("old content\n")

    def interrupted_fsync(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(budget_module.os, "fsync", interrupted_fsync)
    with pytest.raises(KeyboardInterrupt):
        write_budget(path, DUMPED)
    assert path.read_text() == "old content\n"
    assert os.listdir(tmp_path) == ["macc_budget.yaml"]


def test_write_then_load_round_trip(tmp_path):
    path = tmp_path / "macc_budget.yaml"
    write_budget(path, dump_budget(parse(HAND_WRITTEN)))
    assert dump_budget(load_budget(path)) == DUMPED


def test_total_metrics_order_is_the_dump_order():
    assert TOTAL_METRICS == ("macs", "flops", "params", "param_bytes", "peak_activation_bytes")


def test_budget_module_imports_no_pytest_torch_onnx_or_git():
    import subprocess
    import sys

    code = ("import sys, pytest_maccbudget.budget; "
            "print(sorted(m for m in ('pytest', 'torch', 'onnx', 'git') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_model_lines_find_each_entry_in_any_layout() -> None:
    from pytest_maccbudget.budget import model_lines

    block = "version: 1\nmodels:\n  alpha:\n    total: {macs: 1}\n  'we:ird':\n    total: {macs: 2}\n"
    assert model_lines(block) == {"alpha": 3, "we:ird": 5}
    flow = "version: 1\nmodels: {alpha: {total: {macs: 1}},\n  beta: {total: {macs: 2}}}\n"
    assert model_lines(flow) == {"alpha": 2, "beta": 3}
    assert model_lines("models: [unclosed") == {}
    assert model_lines("just text") == {}


# --- counting rules versions --------------------------------------------------------------------


V1_BUDGET = COMPARE_BUDGET.replace("rules: 6\n", "")  # recorded before the file said which rules


def test_a_budget_without_rules_was_recorded_under_the_first_ones() -> None:
    budget = parse(V1_BUDGET)
    assert (budget.rules, budget.rules_of("resnet"), budget.rules_of("unknown")) == (None, 1, 1)
    assert parse(COMPARE_BUDGET).rules_of("resnet") == 6
    entry_override = parse("rules: 6\nmodels:\n  a:\n    rules: 1\n    total: {macs: 1}\n  b: {}\n")
    assert (entry_override.rules_of("a"), entry_override.rules_of("b")) == (1, 6)


def test_a_difference_under_other_rules_is_not_the_models_regression() -> None:
    budget = parse(V1_BUDGET)
    result = compare(budget, resnet(total={"params": 10_000_000}), update_command="pytest --macc-budget-update -k res")
    assert (result.status, result.failed) == ("rules_changed", True)
    assert result.failures == [
        "model 'resnet': counting rules changed (v1 -> v6: params is the model's own parameter count (each tensor "
        "once, tied weights once), no longer what the export stores; figures after ops whose output size depends "
        "on data (NonMaxSuppression, NonZero, ...) are upper bounds, no longer unknown; shape arithmetic is folded "
        "to the end (graphs it left partial are counted); params of an ONNX graph's If, Loop and Scan bodies count "
        "each constant once in the whole model, at its source; shapes onnx's inference leaves unknown are worked out "
        "where a constant gives them: a weight made by ConstantOfShape of a computed shape is counted (it was 0), the "
        "Shape of NonZero(a small weight) is known before the graph runs, and If/Loop/Scan bodies see what the graph "
        "around them works out late; a weight whose size cannot be worked out is named in a note; a weight only read "
        "through Shape is no parameter; the shape of a constant onnx's inference leaves unknown (a position embedding "
        "gathered by a Range of the input's length) is worked out for the layer reading it: its bytes read were "
        "unknown, left out of the byte totals, and made the model's device estimates unknown, and a rule that needs it "
        "(a conv's filters) left the layer unresolved; a value only an If/Loop/Scan body reads has its shape worked "
        "out as one the graph reads; a value that is an upper bound "
        "only in its value (the Shape of NonZero's output) has exact bytes, and the ops reading it as data exact "
        "counts; counted layers whose bytes are not known are named in a note); its budget was recorded under v1 and "
        "is not "
        "comparable: run `pytest --macc-budget-update -k res` to re-record it"]
    # the same numbers under other rules: nothing to say
    assert compare(budget, resnet()).status == "ok"
    # a hand-written limit is a limit under any rules
    assert compare(budget, resnet(name="capped", total={"macs": 1_300_000_000}, layers={})).status == "over_limit"


def test_rules_newer_than_this_version_are_refused() -> None:
    with pytest.raises(BudgetError, match=r"^macc_budget.yaml:1: rules: recorded under counting rules v9, newer than "
                                          r"this pytest-maccbudget's v6: upgrade pytest-maccbudget$"):
        parse("rules: 9\nmodels: {}\n")
    with pytest.raises(BudgetError, match=r"^macc_budget.yaml:3: models.a.rules: expected a counting rules version"):
        parse("rules: 6\nmodels:\n  a: {rules: zero}\n")


def test_an_update_records_the_current_rules_and_a_dump_keeps_them() -> None:
    budget = parse(V1_BUDGET)
    updated, _ = update_budget(budget, [resnet(total={"params": 10_000_000})])
    assert (updated.rules, updated.rules_of("resnet"), updated.rules_of("capped")) == (6, 6, 1)
    again = parse(dump_budget(updated))
    assert (again.rules, again.rules_of("resnet"), again.rules_of("capped")) == (6, 6, 1)
    assert compare(again, resnet(total={"params": 10_000_000})).status == "ok"
    # refreshing the last old entry leaves no per-entry rules behind
    final, _ = update_budget(again, [resnet(name="capped", total={"macs": 1_100_000_000}, layers={})])
    assert "    rules:" not in dump_budget(final)
    # an update that records nothing changes nothing
    unchanged, _ = update_budget(budget, [])
    assert dump_budget(unchanged) == dump_budget(budget)


# --- a tolerance for every metric -----------------------------------------------------------------


def test_one_tolerance_covers_every_metric_and_names_override_it() -> None:
    budget = parse("rules: 6\ndefaults:\n  tolerance: 2%\nmodels:\n  a:\n    tolerance: {all: 1%, params: 0}\n"
                   "  b:\n    tolerance: {macs: 5%}\n")
    assert [budget.tolerance_for("a", m).text for m in ("macs", "flops", "params", "layer_macs")] == ["1%", "1%", "0", "1%"]
    # a model's own tolerance for one metric; the defaults' for every metric covers the rest
    assert [budget.tolerance_for("b", m).text for m in ("macs", "flops", "layer_macs")] == ["5%", "2%", "5%"]
    assert budget.tolerance_for("not-there", "peak_activation_bytes").text == "2%"
    dumped = dump_budget(budget)
    assert "defaults:\n  tolerance: 2%\n" in dumped and "    tolerance: {all: 1%, params: 0}\n" in dumped
    assert parse(dumped).tolerance_for("a", "flops").text == "1%"


def test_a_tolerance_for_every_metric_is_a_percentage() -> None:
    with pytest.raises(BudgetError, match=r"^macc_budget.yaml:2: defaults.tolerance: a tolerance for every metric is a "
                                          r"percentage such as 2%, got '1M'"):
        parse("defaults:\n  tolerance: 1M\n")
    with pytest.raises(BudgetError, match=r"^macc_budget.yaml:3: models.a.tolerance.all: a tolerance for every metric"):
        parse("models:\n  a:\n    tolerance: {all: 2% and 1M}\n")


def test_growth_under_a_tolerance_for_another_metric_says_what_covers_it() -> None:
    budget = parse(COMPARE_BUDGET)
    budget.models["resnet"].tolerance["macs"] = Tolerance.parse("2%", "macs")
    grown = resnet(total={"macs": 1_818_000_000, "flops": 3_636_000_000})  # +1% each
    assert compare(budget, grown).failures == [
        "flops 3.64 G > budget 3.60 G (+1.0%, tolerance 0%); a tolerance on macs does not cover flops: "
        "`tolerance: 2%` covers every metric, `tolerance: {all: 2%, flops: 0}` every metric but one"]
    budget.models["resnet"].tolerance = {"all": Tolerance.parse("2%")}
    assert compare(budget, grown).status == "ok"


# --- partial entries ---------------------------------------------------------------------------


def test_a_partial_measurement_is_recorded_as_lower_bounds_and_checked_against_them() -> None:
    budget = parse(COMPARE_BUDGET)
    partial = Measurement("resnet", "t::r", {"x": [1, 3, 224, 224]},
                          {**RESNET_TOTAL, "peak_activation_bytes": None}, {**RESNET_LAYERS, "head": None},
                          unknown_ops=("com.acme::Foo (head): no cost rule",), partial=True)
    # against a complete entry: the ops that could not be counted are the finding
    result = compare(budget, partial)
    assert result.status == "unknown"
    assert result.failures[0] == ("model 'resnet': ops could not be counted (com.acme::Foo (head): no cost rule), "
                                  "while its budget entry counted every op")
    updated, messages = update_budget(budget, [partial])
    assert messages == []
    entry = updated.models["resnet"]
    assert entry.partial and "peak_activation_bytes" not in entry.total and "head" not in entry.layers
    assert "    partial: true\n" in dump_budget(updated)
    assert parse(dump_budget(updated)).models["resnet"].partial
    assert compare(updated, partial).status in ("ok", "unknown")  # lower bounds against lower bounds
    # every op counted again: the partial entry must be re-recorded, whatever the numbers
    complete = resnet()
    again = compare(updated, complete, update_command="pytest --macc-budget-update -k r")
    assert (again.status, again.failed) == ("rules_changed", True)
    assert "every op is counted now" in again.failures[0] and "-k r" in again.failures[0]


def test_an_uncountable_model_is_refused_with_how_to_record_it_partially() -> None:
    unknown = resnet(total={"macs": None})
    _, messages = update_budget(parse(COMPARE_BUDGET), [unknown])
    assert "set the ini key `macc_budget_unknown_ops = warn`" in messages[0] and "add a cost rule" in messages[0]


@pytest.mark.parametrize(("text", "message"), [
    ("models: " + "[" * 100_000 + "]" * 100_000, "macc_budget.yaml:1: invalid YAML: nested more than 100 levels deep"),
    ("version: 1\nmodels:\n  a\x00: {}\n", "macc_budget.yaml:3: invalid YAML: unacceptable character #x0000"),
    ("models:\n  a:\n    total: {macs: !!int 10M}\n",
     "macc_budget.yaml:3: models.a.total.macs: expected a number such as 1.2G, got '10M' "
     "(invalid literal for int() with base 10: '10M')"),
    ("a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
     "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
     "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n",
     "macc_budget.yaml:6: invalid YAML: its aliases expand it to more than 1,000,000 values"),
])
def test_hostile_yaml_is_a_one_line_error_not_a_crash(text: str, message: str) -> None:
    with pytest.raises(BudgetError) as raised:
        parse(text)
    assert str(raised.value) == message


def test_aliases_within_bounds_are_read() -> None:
    budget = parse("defaults:\n  tolerance: &t {macs: 2%}\nmodels:\n  a: {tolerance: *t}\n  b: {tolerance: *t}\n")
    assert budget.tolerance_for("b", "macs").text == "2%"


def test_a_long_list_of_ops_not_counted_is_capped_in_a_message_line() -> None:
    ops = tuple(f"acme::Op{i} (node{i}): no cost rule" for i in range(207))
    measured = resnet(total={"macs": None}, layers={})
    measured = Measurement(measured.name, measured.nodeid, measured.inputs, measured.total, measured.layers, ops)
    [line] = [f for f in compare(parse(COMPARE_BUDGET), measured).failures if f.startswith("macs")]
    assert line.count("acme::Op") == 10 and "and 197 more" in line
    assert len(line) < 600  # was 57 KB for swin_t's 207 unresolved layers


def test_upper_bounds_round_trip_and_are_checked() -> None:
    text = ("version: 1\nmodels:\n  det:\n    upper_bounds: {total: [macs, flops], layers: [head, 'yes']}\n"
            "    total: {macs: 10, flops: 20}\n    layers:\n      head: {macs: 4}\n      'yes': {macs: 6}\n")
    budget = parse(text)
    assert (budget.models["det"].upper_bounds, budget.models["det"].bound_layers) == (("macs", "flops"), ("head", "yes"))
    dumped = dump_budget(budget)
    assert '    upper_bounds: {total: [macs, flops], layers: [head, "yes"]}\n' in dumped
    assert parse(dumped).models["det"] == budget.models["det"]
    for wrong, message in [
        ("{total: [macs, macs]}", "models.det.upper_bounds.total[1]: 'macs' is listed twice"),
        ("{total: [latency]}", "models.det.upper_bounds.total[0]: expected one of macs, flops, params, "
                               "param_bytes, peak_activation_bytes, got 'latency'"),
        ("{layers: head}", "models.det.upper_bounds.layers: expected a list, got 'head'"),
    ]:
        with pytest.raises(BudgetError, match=re.escape(message)):
            parse(f"version: 1\nmodels:\n  det:\n    upper_bounds: {wrong}\n")
