"""The pull-request report: the report JSON (build, dump, load, merge of shards), its markdown
(tables, budget flags, mermaid charts, size caps) and the GitHub `::error` annotations."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Optional

import pytest

from pytest_maccbudget.budget import Measurement, parse_budget
from pytest_maccbudget.action.annotations import annotations
from pytest_maccbudget.action.comment import MAX_BODY_BYTES as COMMENT_LIMIT
from pytest_maccbudget.action.commands import escape_data, escape_property
from pytest_maccbudget.pr_report import (
    MARKER,
    SCHEMA,
    SCHEMA_VERSION,
    base_budget_from_reports,
    build_report,
    dump_report,
    load_report,
    merge_reports,
    render_markdown,
)

BUDGET_PATH = Path("macc_budget.yaml")
BASE = {"ref": "origin/main", "commit": "0123456789abcdef0123456789abcdef01234567"}
DOCS = Path(__file__).resolve().parents[1] / "docs" / "report-schema.md"

# The budget file at the merge base.
BASE_YAML = """\
version: 1
rules: 6
models:
  dropped:
    total: {macs: 50, flops: 100, params: 10, param_bytes: 40, peak_activation_bytes: 8}
  ghost:
    total: {macs: 1, flops: 1, params: 1, param_bytes: 4, peak_activation_bytes: 4}
  net:
    inputs: {x: [1, 3, 16, 16]}
    total: {macs: 1000000, flops: 2000000, params: 5000, param_bytes: 20000, peak_activation_bytes: 40000}
    layers:
      conv1: {macs: 900000}
      fc: {macs: 100000}
  slim:
    total: {macs: 500, flops: 1000, params: 50, param_bytes: 200, peak_activation_bytes: 64}
  small:
    inputs: {x: [1, 8]}
    total: {macs: 80, flops: 150, params: 90, param_bytes: 360, peak_activation_bytes: 64}
    layers:
      fc: {macs: 80}
  tuned:
    total: {macs: 300, flops: 600, params: 30, param_bytes: 120, peak_activation_bytes: 32}
"""

# This branch: net raised by 8.2%, fresh added, slim lowered, tuned's tolerance loosened,
# dropped removed; ghost and small untouched.
BRANCH_YAML = """\
version: 1
rules: 6
models:
  fresh:
    total: {macs: 70, flops: 140, params: 7, param_bytes: 28, peak_activation_bytes: 16}
  ghost:
    total: {macs: 1, flops: 1, params: 1, param_bytes: 4, peak_activation_bytes: 4}
  net:
    inputs: {x: [1, 3, 16, 16]}
    total: {macs: 1082000, flops: 2164000, params: 5000, param_bytes: 20000, peak_activation_bytes: 40000}
    layers:
      conv1: {macs: 982000}
      fc: {macs: 100000}
  slim:
    total: {macs: 400, flops: 800, params: 50, param_bytes: 200, peak_activation_bytes: 64}
  small:
    inputs: {x: [1, 8]}
    total: {macs: 80, flops: 150, params: 90, param_bytes: 360, peak_activation_bytes: 64}
    layers:
      fc: {macs: 80}
  tuned:
    tolerance: {macs: 5%}
    total: {macs: 300, flops: 600, params: 30, param_bytes: 120, peak_activation_bytes: 32}
"""


def measure(name: str, total: dict[str, Optional[int]], layers: Optional[dict[str, Optional[int]]] = None,
            inputs: Optional[dict[str, list[int]]] = None) -> Measurement:
    return Measurement(name=name, nodeid=f"tests/test_models.py::test_{name}", inputs=inputs or {},
                       total=total, layers=layers or {})


def totals(macs: Optional[int], flops: int, params: int, param_bytes: int, peak: int) -> dict[str, Optional[int]]:
    return {"macs": macs, "flops": flops, "params": params, "param_bytes": param_bytes, "peak_activation_bytes": peak}


def measurements() -> list[tuple[Measurement, bool]]:
    """(measurement, failed) pairs as a run on the branch would give them."""
    return [
        (measure("net", totals(1_200_000, 2_400_000, 5000, 20000, 40000), {"conv1": 1_100_000, "fc": 100_000},
                 {"x": [1, 3, 16, 16]}), True),
        (measure("small", totals(80, 150, 90, 360, 64), {"fc": 80}, {"x": [1, 8]}), False),
        (measure("fresh", totals(70, 140, 7, 28, 16), {"fc": 70}), False),
        (measure("slim", totals(380, 760, 50, 200, 64)), False),
        (measure("tuned", totals(300, 600, 30, 120, 32)), False),
        (measure("orphan", totals(10, 20, 2, 8, 4)), True),
        (measure("dropped", totals(50, 100, 10, 40, 8)), True),
    ]


SOURCES = {"net": {"conv1": {"file": "models/net.py", "line": 12}, "fc": {"file": "models/net.py", "line": 30}}}


def budgets() -> tuple[Any, Any]:
    return parse_budget(BRANCH_YAML, BUDGET_PATH), parse_budget(BASE_YAML, BUDGET_PATH)


def full_report(pairs: Optional[list[tuple[Measurement, bool]]] = None, **overrides: Any) -> dict[str, Any]:
    budget, base_budget = budgets()
    arguments: dict[str, Any] = dict(base_budget=base_budget, base=BASE, unused=["ghost"],
                                     budget_file="macc_budget.yaml", sources=SOURCES)
    arguments.update(overrides)
    return build_report(measurements() if pairs is None else pairs, budget, **arguments)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {model["name"]: model for model in report["models"]}


# --- build_report ---------------------------------------------------------------------------


def test_build_report_statuses_and_budget_changes() -> None:
    report = full_report()
    assert (report["schema"], report["version"]) == (SCHEMA, SCHEMA_VERSION) == ("pytest-maccbudget-report", 1)
    assert report["budget_file"] == "macc_budget.yaml"
    assert report["base"] == {"ref": "origin/main", "commit": "0123456789abcdef0123456789abcdef01234567"}
    assert report["unused"] == ["ghost"]
    assert [model["name"] for model in report["models"]] == [
        "dropped", "fresh", "net", "orphan", "slim", "small", "tuned"]
    models = by_name(report)
    assert {name: model["status"] for name, model in models.items()} == {
        "dropped": "missing", "fresh": "ok", "net": "regressed", "orphan": "missing",
        "slim": "tightenable", "small": "ok", "tuned": "ok"}
    assert {name: model["budget_change"] for name, model in models.items()} == {
        "dropped": "removed", "fresh": "added", "net": "raised", "orphan": "unchanged",
        "slim": "lowered", "small": "unchanged", "tuned": "changed"}
    assert {name: model["failed"] for name, model in models.items()} == {
        "dropped": True, "fresh": False, "net": True, "orphan": True, "slim": False, "small": False, "tuned": False}


def test_build_report_model_fields() -> None:
    net = by_name(full_report())["net"]
    assert net["test"] == "tests/test_models.py::test_net"
    assert net["failures"] == [
        "macs 1.20 M > budget 1.08 M (+10.9%, tolerance 0%)",
        "flops 2.40 M > budget 2.16 M (+10.9%, tolerance 0%)",
        "layer conv1: macs 1.10 M > budget 982 k (+12.0%, tolerance 0%)",
    ]
    assert net["measurement"] == {
        "name": "net", "nodeid": "tests/test_models.py::test_net", "inputs": {"x": [1, 3, 16, 16]},
        "total": {"flops": 2400000, "macs": 1200000, "param_bytes": 20000, "params": 5000,
                  "peak_activation_bytes": 40000},
        "layers": {"conv1": 1100000, "fc": 100000}, "unknown_ops": []}
    zero = {key: "0%" for key in ("macs", "flops", "params", "param_bytes", "peak_activation_bytes", "layer_macs")}
    assert net["budget"] == {
        "inputs": {"x": [1, 3, 16, 16]}, "limit": {}, "tolerance": zero,
        "total": {"macs": 1082000, "flops": 2164000, "params": 5000, "param_bytes": 20000,
                  "peak_activation_bytes": 40000},
        "layers": {"conv1": 982000, "fc": 100000}}
    assert net["base"]["total"]["macs"] == 1000000
    assert net["base"]["layers"] == {"conv1": 900000, "fc": 100000}
    assert net["sources"] == {"conv1": {"file": "models/net.py", "line": 12}, "fc": {"file": "models/net.py", "line": 30}}
    tuned = by_name(full_report())["tuned"]
    assert tuned["budget"]["tolerance"]["macs"] == "5%"
    assert tuned["base"]["tolerance"]["macs"] == "0%"
    models = by_name(full_report())
    assert models["orphan"]["budget"] is None and models["orphan"]["base"] is None
    assert models["dropped"]["budget"] is None and models["dropped"]["base"] is not None
    assert models["fresh"]["budget"] is not None and models["fresh"]["base"] is None


def test_build_report_without_a_base() -> None:
    report = full_report(base_budget=None, base=None)
    assert report["base"] is None
    assert all(model["base"] is None and model["budget_change"] is None for model in report["models"])


def test_build_report_keeps_only_well_formed_sources() -> None:
    sources = {"net": {"conv1": {"file": "models/net.py", "line": 12}, "fc": {"file": "", "line": 3},
                       "bn": {"file": "models/net.py", "line": 0}, "relu": {"file": "models/net.py", "line": "7"}}}
    assert by_name(full_report(sources=sources))["net"]["sources"] == {"conv1": {"file": "models/net.py", "line": 12}}


def test_build_report_rejects_a_model_measured_twice() -> None:
    pairs = measurements() + [(measure("net", totals(1, 1, 1, 4, 4)), False)]
    pairs[-1] = (Measurement("net", "tests/test_other.py::test_again", {}, totals(1, 1, 1, 4, 4), {}), False)
    with pytest.raises(ValueError, match=r"model 'net' was measured twice, by tests/test_models.py::test_net "
                                         r"and tests/test_other.py::test_again"):
        full_report(pairs)


def test_build_report_rejects_a_malformed_base() -> None:
    with pytest.raises(ValueError, match="base must be"):
        full_report(base={"ref": "origin/main"})


# --- dump and load --------------------------------------------------------------------------


def test_dump_is_byte_stable() -> None:
    text = dump_report(full_report())
    assert text == dump_report(full_report(list(reversed(measurements()))))
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    loaded = load_report(text, "report.json")
    assert dump_report(loaded) == text
    assert render_markdown(loaded) == render_markdown(full_report())
    assert text.startswith('{\n  "base": {\n    "commit": "0123456789abcdef0123456789abcdef01234567",\n'
                           '    "ref": "origin/main"\n  },\n  "budget_file": "macc_budget.yaml",\n')


def test_unknown_values_are_null_in_the_json() -> None:
    pairs = [(measure("net", totals(None, 2_164_000, 5000, 20000, 40000), {"conv1": None, "fc": 100_000},
                      {"x": [1, 3, 16, 16]}), True)]
    report = full_report(pairs)
    net = report["models"][0]
    assert net["status"] == "unknown"
    assert net["measurement"]["total"]["macs"] is None
    assert net["measurement"]["layers"] == {"conv1": None, "fc": 100000}
    assert '"macs": null' in dump_report(report)


@pytest.mark.parametrize(("text", "message"), [
    ("{", r"^shard-1\.json: not a JSON report: Expecting property name enclosed in double quotes "
          r"\(line 1, column 2\)$"),
    ("[]", r"^shard-1\.json: not a pytest-maccbudget report: expected a JSON object, got a list$"),
    ('{"schema": "other"}', r"^shard-1\.json: not a pytest-maccbudget report: \"schema\" is 'other', "
                            r"expected 'pytest-maccbudget-report'$"),
    ('{"schema": "pytest-maccbudget-report", "version": 2}',
     r"^shard-1\.json: unsupported report version 2: this version of pytest-maccbudget reads version 1$"),
    ('{"schema": "pytest-maccbudget-report", "version": true}', r"unsupported report version True"),
])
def test_load_rejects_what_is_not_a_report(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_report(text, "shard-1.json")


@pytest.mark.parametrize(("path", "value", "message"), [
    (("base",), {"ref": "origin/main"}, r"base\.commit: expected a string, got null"),
    (("models", 0, "status"), "broken", r"models\[0\]\.status: expected one of ok, regressed, .*got 'broken'"),
    (("models", 0, "failed"), "yes", r"models\[0\]\.failed: expected true or false, got a string"),
    (("models", 2, "measurement", "total", "macs"), -1,
     r"models\[2\]\.measurement\.total\.macs: expected a non-negative integer or null, got -1"),
    (("models", 2, "measurement", "name"), "other", r"models\[2\]\.measurement\.name: 'other' is not the model's name 'net'"),
    (("models", 2, "budget", "layers", "conv1"), None,
     r"models\[2\]\.budget\.layers\.conv1: expected a non-negative integer, got null"),
    (("models", 2, "budget_change"), "grown", r"models\[2\]\.budget_change: expected null or one of"),
    (("models", 2, "sources", "conv1", "line"), "12", r"models\[2\]\.sources\.conv1\.line: expected an integer"),
    (("models", 1, "name"), "dropped", r"models\[1\]\.measurement\.name: 'fresh' is not the model's name 'dropped'"),
    (("unused",), "ghost", r"unused: expected a list, got a string"),
])
def test_load_names_the_file_and_the_field(path: tuple[Any, ...], value: Any, message: str) -> None:
    data = json.loads(dump_report(full_report()))
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValueError, match=r"^reports/shard-1\.json: " + message):
        load_report(json.dumps(data), "reports/shard-1.json")


def test_load_rejects_a_model_listed_twice() -> None:
    data = json.loads(dump_report(full_report()))
    data["models"].append(data["models"][2])
    with pytest.raises(ValueError, match=r"^r\.json: models\[7\]: model 'net' is listed twice"):
        load_report(json.dumps(data), "r.json")


def test_load_accepts_unknown_fields_and_entries_without_tolerance() -> None:
    data = json.loads(dump_report(full_report()))
    data["added_later"] = {"anything": 1}
    del data["models"][2]["budget"]["tolerance"]
    assert load_report(json.dumps(data), "r.json")["added_later"] == {"anything": 1}


# --- merging shards -------------------------------------------------------------------------


def shard_reports(count: int = 2) -> list[dict[str, Any]]:
    """The shards of the run, dumped and loaded back as `maccbudget merge` reads them."""
    pairs = measurements()
    shards = [pairs[index::count] for index in range(count)]
    budget, base_budget = budgets()
    texts = [dump_report(build_report(shard, budget, base_budget=base_budget, base=BASE, unused=["ghost"],
                                      budget_file="macc_budget.yaml", sources=SOURCES, shard=(index, count)))
             for index, shard in enumerate(shards, start=1)]
    return [load_report(text, f"shard-{index}.json") for index, text in enumerate(texts, start=1)]


def test_merge_of_two_shards_equals_the_single_run_byte_for_byte() -> None:
    single = dump_report(full_report())
    reports = shard_reports()
    pairs, base, sources = merge_reports(reports)
    assert base == BASE
    assert sorted(sources) == ["dropped", "fresh", "net", "orphan", "slim", "small", "tuned"]
    budget, real_base_budget = budgets()
    for base_budget in (base_budget_from_reports(reports, BUDGET_PATH), real_base_budget):
        merged = build_report(pairs, budget, base_budget=base_budget, base=base, unused=["ghost"],
                              budget_file="macc_budget.yaml", sources=sources)
        assert dump_report(merged) == single
    assert render_markdown(load_report(single, "r.json")) == render_markdown(full_report())


def test_merge_without_a_base() -> None:
    budget, _ = budgets()
    pairs = measurements()
    reports = [build_report(shard, budget, base_budget=None, base=None, unused=[], budget_file="macc_budget.yaml")
               for shard in (pairs[:3], pairs[3:])]
    merged_pairs, base, sources = merge_reports(reports)
    assert base is None and base_budget_from_reports(reports, BUDGET_PATH) is None
    assert sorted((m.name, failed) for m, failed in merged_pairs) == sorted((m.name, failed) for m, failed in pairs)
    assert {m.name: m for m, _ in merged_pairs}["net"] == pairs[0][0]
    assert sources["net"] == {}


def test_merge_rejects_a_model_in_two_shards() -> None:
    budget, _ = budgets()
    first = build_report(measurements()[:2], budget, base_budget=None, base=None, unused=[], budget_file="b.yaml")
    again = Measurement("net", "tests/test_more.py::test_net_again", {"x": [1, 3, 16, 16]},
                        totals(1_200_000, 2_400_000, 5000, 20000, 40000), {})
    second = build_report([(again, True)], budget, base_budget=None, base=None, unused=[], budget_file="b.yaml")
    with pytest.raises(ValueError, match=r"^model 'net' is in two shard reports, measured by "
                                         r"tests/test_models.py::test_net and tests/test_more.py::test_net_again"):
        merge_reports([first, second])


@pytest.mark.parametrize("other_base", [
    {"ref": "origin/main", "commit": "fedcba9876543210fedcba9876543210fedcba98"},
    None,
])
def test_merge_rejects_shards_with_different_bases(other_base: Optional[dict[str, str]]) -> None:
    reports = shard_reports()
    reports[1]["base"] = other_base
    described = "no base" if other_base is None else "origin/main at fedcba987654"
    with pytest.raises(ValueError, match=rf"^shard reports 1 and 2 were compared with different bases "
                                         rf"\(origin/main at 0123456789ab and {described}\)"):
        merge_reports(reports)


def test_merge_accepts_the_same_commit_under_another_ref_name() -> None:
    reports = shard_reports()
    reports[1]["base"] = {"ref": "main", "commit": BASE["commit"]}
    assert merge_reports(reports)[1] == BASE


def test_each_shard_report_records_which_shard_it_is() -> None:
    assert [report["shard"] for report in shard_reports(3)] == [
        {"index": 1, "count": 3}, {"index": 2, "count": 3}, {"index": 3, "count": 3}]


@pytest.mark.parametrize(("pick", "message"), [
    ([0, 2], r"^shard 2/3 missing: give the reports of all 3 shards"),
    ([0], r"^shards 2/3, 3/3 missing: give the reports of all 3 shards"),
    ([0, 1, 1, 2], r"^shard 2/3 \(b.json and c.json\) given more than once: give each shard's report once"),
])
def test_merge_names_a_missing_or_repeated_shard(pick: list[int], message: str) -> None:
    reports = shard_reports(3)
    with pytest.raises(ValueError, match=message):
        merge_reports([reports[index] for index in pick], names=["a.json", "b.json", "c.json", "d.json"][:len(pick)])


def test_merge_refuses_shards_of_different_runs() -> None:
    two, three = shard_reports(2), shard_reports(3)
    with pytest.raises(ValueError, match=r"^the reports come from runs with different shard counts \(2, 3\)"):
        merge_reports([two[0], three[1], three[2]])
    unsharded = full_report()
    with pytest.raises(ValueError, match=r"^report 2: not the report of a --macc-budget-shard run"):
        merge_reports([two[0], unsharded])


def test_a_bad_shard_field_is_a_schema_error() -> None:
    report = shard_reports(2)[0]
    report["shard"] = {"index": 3, "count": 2}
    with pytest.raises(ValueError, match=r"^x.json: shard: index 3 is not between 1 and count 2"):
        load_report(dump_report(report), "x.json")


def test_merge_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no reports to merge"):
        merge_reports([])


# --- markdown -------------------------------------------------------------------------------


def parse_markdown(text: str) -> list[Any]:
    """Tokens of GitHub-flavoured markdown (CommonMark and tables), as markdown-it-py parses it."""
    markdown_it = pytest.importorskip("markdown_it", reason="the markdown checks need markdown-it-py (test extra)")
    return markdown_it.MarkdownIt("commonmark").enable("table").parse(text)


def tables(tokens: list[Any]) -> list[list[int]]:
    """Per table, the number of cells of each row (header row first)."""
    found: list[list[int]] = []
    for token in tokens:
        if token.type == "table_open":
            found.append([])
        elif token.type == "tr_open":
            found[-1].append(0)
        elif token.type in ("th_open", "td_open"):
            found[-1][-1] += 1
    return found


def fences(tokens: list[Any]) -> list[Any]:
    return [token for token in tokens if token.type == "fence"]


def balanced_fences(text: str) -> bool:
    """Every ``` line that opens a fence has a closing one."""
    return sum(1 for line in text.splitlines() if line.startswith("```")) % 2 == 0


MAIN_TABLE = """\
| model | base | budget | this commit | vs budget | vs base | status |
| :-- | --: | --: | --: | --: | --: | :-- |
| `dropped` | 50 | - | 50 | - | = | ❌ no budget entry · ⚠️ budget entry removed in this PR |
| `fresh` | - | 70 | 70 | = | - | ✅ ok · ⚠️ budget entry added in this PR |
| `net` | 1.00 M | 1.08 M | 1.20 M | +10.9% | +20.0% | ❌ regressed · ⚠️ budget raised +8.2% in this PR |
| `orphan` | - | - | 10 | - | - | ❌ no budget entry |
| `slim` | 500 | 400 | 380 | -5.0% | -24.0% | 📉 can be tightened |
| `small` | 80 | 80 | 80 | = | = | ✅ ok |
| `tuned` | 300 | 300 | 300 | = | = | ✅ ok · ⚠️ budget entry changed in this PR |
"""

NET_SECTION = """\
### `net`: ❌ regressed

Test: `tests/test_models.py::test_net`

- macs 1.20 M > budget 1.08 M (+10.9%, tolerance 0%)
- flops 2.40 M > budget 2.16 M (+10.9%, tolerance 0%)
- layer conv1: macs 1.10 M > budget 982 k (+12.0%, tolerance 0%)
- ⚠️ budget raised +8.2% in this PR

| metric | base | budget | this commit | vs budget | vs base |
| :-- | --: | --: | --: | --: | --: |
| MACs | 1.00 M | 1.08 M | 1.20 M | +118 k (+10.9%) | +200 k (+20.0%) |
| FLOPs | 2.00 M | 2.16 M | 2.40 M | +236 k (+10.9%) | +400 k (+20.0%) |
| params | 5.00 k | 5.00 k | 5.00 k | = | = |
| parameter bytes | 20.0 KB | 20.0 KB | 20.0 KB | = | = |
| peak activation memory | 40.0 KB | 40.0 KB | 40.0 KB | = | = |

Layers that changed most (MACs, largest change first):

| layer | base | budget | this commit | vs budget | vs base |
| :-- | --: | --: | --: | --: | --: |
| `conv1` | 900 k | 982 k | 1.10 M | +118 k (+12.0%) | +200 k (+22.2%) |

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


def test_markdown_marker_title_and_model_table() -> None:
    text = render_markdown(full_report())
    lines = text.splitlines()
    assert lines[0] == MARKER == "<!-- pytest-maccbudget report -->"
    assert lines[1] == ("## ❌ pytest-maccbudget: 3 regressions, 4 budget changes to review "
                        "(base `origin/main` @ `0123456`)")
    assert lines[3] == ("Budget file `macc_budget.yaml`, compared with the same file at "
                        "`0123456789abcdef0123456789abcdef01234567`, the merge base of this commit and `origin/main`.")
    assert "Total MACs per model:\n\n" + MAIN_TABLE + "\n" in text
    assert text == render_markdown(full_report())   # deterministic
    assert text.endswith(".\n")


def test_markdown_flags_every_budget_entry_this_branch_raised_or_added() -> None:
    text = render_markdown(full_report())
    assert "### Budget changes in this PR\n\n" + "\n".join([
        "- ⚠️ `dropped`: budget entry removed in this PR",
        "- ⚠️ `fresh`: budget entry added in this PR",
        "- ⚠️ `net`: budget raised +8.2% in this PR — MACs 1.00 M → 1.08 M (+8.2%); "
        "FLOPs 2.00 M → 2.16 M (+8.2%); 1 layer entry changed",
        "- `slim`: budget lowered -20.0% in this PR — MACs 500 → 400 (-20.0%); FLOPs 1.00 k → 800 (-20.0%)",
        "- ⚠️ `tuned`: budget entry changed in this PR — tolerance on MACs 0% → 5%; tolerance on layer MACs 0% → 5%",
    ]) + "\n\n" in text


def test_markdown_failing_model_section_layers_and_chart() -> None:
    text = render_markdown(full_report())
    assert NET_SECTION in text
    # failures first, then the other changed models; the unchanged one gets a compact line
    headings = [line for line in text.splitlines() if line.startswith("### ")]
    assert headings == ["### Budget changes in this PR", "### `dropped`: ❌ no budget entry",
                        "### `net`: ❌ regressed", "### `orphan`: ❌ no budget entry", "### `fresh`: ✅ ok",
                        "### `slim`: 📉 can be tightened", "### `tuned`: ✅ ok", "### Unchanged models",
                        "### Unused budget entries"]
    assert ("- `small` (✅ ok): MACs 80 · FLOPs 150 · params 90 · parameter bytes 360 B · "
            "peak activation memory 64 B; same as the budget and the base\n") in text
    assert ("1 budget entry in `macc_budget.yaml` not used by any test: `ghost`. "
            "Run `pytest --macc-budget-update` on the whole suite to remove it.\n") in text


def test_markdown_without_a_base_compares_with_the_budget() -> None:
    text = render_markdown(full_report(base_budget=None, base=None))
    assert text.splitlines()[1] == "## ❌ pytest-maccbudget: 3 regressions"
    assert ("| model | budget | this commit | vs budget | status |\n| :-- | --: | --: | --: | :-- |\n"
            "| `dropped` | - | 50 | - | ❌ no budget entry |\n") in text
    assert "Budget changes" not in text and "merge base" not in text
    assert ('    bar "removed" [1.1, 0.1]\n    bar "added" [1.1, 0.1]\n    bar "in both" [0.982, 0.1]\n```\n\n'
            "_MACs per layer from 0, this commit against the budget: ") in text


def test_markdown_all_within_budget() -> None:
    pairs = [pair for pair in measurements() if pair[0].name in ("small", "tuned", "slim")]
    text = render_markdown(full_report(pairs, base_budget=None, base=None, unused=[]))
    assert text.splitlines()[1] == "## ✅ pytest-maccbudget: all within budget"
    with_base = render_markdown(full_report(pairs, unused=[]))
    assert with_base.splitlines()[1] == ("## ⚠️ pytest-maccbudget: all within budget, 1 budget change to review "
                                         "(base `origin/main` @ `0123456`)")
    empty = render_markdown(full_report([], base_budget=None, base=None))
    assert empty.splitlines()[1] == "## ℹ️ pytest-maccbudget: no model was checked"


def test_markdown_unknown_values_print_as_question_marks() -> None:
    pairs = [(measure("net", totals(None, 2_164_000, 5000, 20000, 40000), {"conv1": None, "fc": 100_000},
                      {"x": [1, 3, 16, 16]}), True)]
    text = render_markdown(full_report(pairs, base_budget=None, base=None))
    assert "| `net` | 1.08 M | ? | ? | ❓ not counted |" in text
    assert "| MACs | 1.08 M | ? | ? |" in text
    assert "| `conv1` | 982 k | ? | ? |" in text
    assert "```mermaid" not in text   # no counted layer changed: no chart


def test_markdown_renders_tables_and_a_mermaid_fence() -> None:
    text = render_markdown(full_report())
    tokens = parse_markdown(text)
    found = tables(tokens)
    # the model table (header + 7 models), 5 metric tables, net's layer table (header + 1 layer)
    assert found[0] == [7] * 8
    assert [len(rows) for rows in found] == [8, 6, 6, 2, 6, 6]
    assert found[3] == [6, 6]
    (fence,) = fences(tokens)
    assert fence.info == "mermaid"
    chart = fence.content.splitlines()
    assert chart[0].startswith("%%{init: ") and chart[1] == "xychart-beta horizontal"
    assert chart[2] == '    title "net: MACs per layer"'
    assert any(line.strip().startswith("x-axis [") for line in chart)
    assert sum(1 for line in chart if line.strip().startswith("bar ")) == 3
    assert balanced_fences(text)


def test_markdown_escapes_names_for_tables_and_mermaid() -> None:
    layers = {'head|"q"`x': 700, "body": 300}
    budget = parse_budget('version: 1\nrules: 6\nmodels:\n  "a|b*":\n    total: {macs: 900}\n    layers:\n'
                          '      "head|\\"q\\"`x": {macs: 600}\n      body: {macs: 300}\n', BUDGET_PATH)
    pairs = [(Measurement("a|b*", "t.py::test_x", {}, {"macs": 1000}, layers), True)]
    report = build_report(pairs, budget, base_budget=None, base=None, unused=[], budget_file="b.yaml")
    text = render_markdown(report)
    assert "| `a\\|b*` | 900 | 1.00 k | +11.1% | ❌ regressed |" in text
    assert "| `head\\|\"q\"'x` | 600 | 700 | +100 (+16.7%) |" in text
    assert 'x-axis ["head|\'q\'\'x", "body"]' in text
    tokens = parse_markdown(text)
    assert all(len(set(rows)) == 1 for rows in tables(tokens))   # a pipe in a name makes no extra cell
    codes = [child.content for token in tokens if token.type == "inline" for child in token.children or []
             if child.type == "code_inline"]
    assert codes == ["b.yaml", "a|b*", "a|b*", "t.py::test_x", "head|\"q\"'x"]


def test_mermaid_labels_are_short() -> None:
    key = "backbone.stage3.block12.attention.proj"
    budget = parse_budget(f"version: 1\nrules: 6\nmodels:\n  m:\n    total: {{macs: 10}}\n    layers:\n      {key}: {{macs: 10}}\n",
                          BUDGET_PATH)
    pairs = [(Measurement("m", "t.py::test_m", {}, {"macs": 20}, {key: 20}), True)]
    text = render_markdown(build_report(pairs, budget, base_budget=None, base=None, unused=[], budget_file="b.yaml"))
    assert '    x-axis ["…stage3.block12.attention.proj"]\n    y-axis "MACs" 0 --> 20\n' in text


# --- size caps ------------------------------------------------------------------------------


def big_report(models: int = 40, layers: int = 30) -> dict[str, Any]:
    """Every model grew in every layer: long layer tables and a chart each."""
    entries = []
    pairs = []
    for m in range(models):
        name = f"model{m:02d}"
        old = {f"blocks.{i}.conv": 1000 * (i + 1) for i in range(layers)}
        new = {key: value + 100 * (i + 1) for i, (key, value) in enumerate(old.items())}
        layer_lines = "".join(f"      {key}: {{macs: {value}}}\n" for key, value in old.items())
        entries.append(f"  {name}:\n    total: {{macs: {sum(old.values())}}}\n    layers:\n{layer_lines}")
        pairs.append((Measurement(name, f"tests/test_zoo.py::test_{name}", {}, {"macs": sum(new.values())}, new), True))
    budget = parse_budget("version: 1\nrules: 6\nmodels:\n" + "".join(entries), BUDGET_PATH)
    return build_report(pairs, budget, base_budget=None, base=None, unused=[f"old{i}" for i in range(50)],
                        budget_file="macc_budget.yaml")


def size(text: str) -> int:
    return len(text.encode("utf-8"))


def assert_well_formed(text: str) -> None:
    assert text.startswith(MARKER + "\n")
    assert balanced_fences(text)
    tokens = parse_markdown(text)
    for rows in tables(tokens):
        assert len(set(rows)) == 1          # every row of every table has the header's cells
    for fence in fences(tokens):
        assert fence.info == "mermaid"
        lines = fence.content.splitlines()
        assert lines[1] == "xychart-beta horizontal" and sum(line.strip().startswith("bar ") for line in lines) == 3


def test_full_report_when_it_fits() -> None:
    report = big_report()
    text = render_markdown(report)
    assert size(text) < 1024 * 1024
    assert "truncated" not in text
    assert text.count("```mermaid") == 40
    assert "_… 20 more layers not shown (the 10 largest changes are shown)_" in text
    assert ("- layer blocks.27.conv: macs 30.8 k > budget 28.0 k (+10.0%, tolerance 0%)\n"
            "- … 27 more layer findings not listed\n") in text
    assert_well_formed(text)


def test_truncation_drops_layer_rows_first() -> None:
    report = big_report()
    full = render_markdown(report)
    text = render_markdown(report, limit=size(full) - 1)
    assert size(text) <= size(full) - 1
    assert text.count("```mermaid") == 40                     # charts kept
    assert "_… 21 more layers not shown (report truncated to fit GitHub's limit)_" in text
    assert_well_formed(text)


def test_truncation_then_drops_charts_then_sections_then_rows() -> None:
    report = big_report()
    comment = render_markdown(report, limit=COMMENT_LIMIT)
    assert size(comment) <= COMMENT_LIMIT
    assert comment.count("```mermaid") == 40                  # each chart has 12 of the 30 layers
    assert "_… 30 layers not shown (report truncated to fit GitHub's limit)_" in comment
    assert_well_formed(comment)

    no_charts = render_markdown(report, limit=30000)
    assert size(no_charts) <= 30000
    assert "```mermaid" not in no_charts
    assert "_Charts not shown (report truncated to fit GitHub's limit)._" in no_charts
    assert "_… 30 layers not shown (report truncated to fit GitHub's limit)_" in no_charts
    assert no_charts.count("### `model") == 40
    assert_well_formed(no_charts)

    fewer_sections = render_markdown(report, limit=8000)
    assert size(fewer_sections) <= 8000
    assert fewer_sections.count("### `model") == 10
    assert "_… the sections of 30 more models are not shown (report truncated to fit GitHub's limit)._" \
        in fewer_sections
    assert_well_formed(fewer_sections)

    smallest = render_markdown(report, limit=2500)
    assert size(smallest) <= 2500
    assert "### `model" not in smallest
    assert "_Per-model sections not shown (report truncated to fit GitHub's limit); the JSON report has every number._" \
        in smallest
    assert "_… 15 more models not shown (report truncated to fit GitHub's limit)_" in smallest
    assert "and 25 more (not shown: report truncated to fit GitHub's limit)" in smallest
    assert_well_formed(smallest)


def test_every_limit_gives_well_formed_markdown() -> None:
    report = big_report(models=12, layers=15)
    full = size(render_markdown(report))
    for limit in range(700, full + 1, 997):
        text = render_markdown(report, limit=limit)
        assert size(text) <= limit
        assert_well_formed(text)


def test_truncated_model_list_keeps_failures_first() -> None:
    pairs = measurements() + [(measure(f"zz{i:03d}", totals(1, 1, 1, 4, 4)), False) for i in range(60)]
    report = full_report(pairs)
    text = render_markdown(report, limit=3000)
    assert size(text) <= 3000
    rows = [line.split(" | ")[0] for line in text.splitlines() if line.startswith("| `")]
    assert rows[:6] == ["| `dropped`", "| `fresh`", "| `net`", "| `orphan`", "| `slim`", "| `tuned`"]
    assert len(rows) < 67 and "| `small`" not in rows    # failures and changes first, in name order
    assert_well_formed(text)


def test_a_limit_too_small_for_anything_is_an_error() -> None:
    with pytest.raises(ValueError, match="cannot be made to fit in 100 bytes"):
        render_markdown(big_report(models=2), limit=100)


# --- annotations ----------------------------------------------------------------------------

ANNOTATED_YAML = """\
version: 1
rules: 6
models:
  big:
    total: {macs: 1000}
    layers:
      a: {macs: 600}
      b: {macs: 400}
  huge:
    limit: {macs: 1500}
    total: {macs: 1000}
    layers:
      c: {macs: 1000}
  "odd:name, 100%":
    total: {macs: 10}
  shape:
    inputs: {x: [1, 4]}
    total: {macs: 10}
  fine:
    total: {macs: 5}
"""
BUDGET_LINES = {"big": 3, "huge": 8, "odd:name, 100%": 14, "shape": 16, "fine": 19}


def annotated_report() -> dict[str, Any]:
    """Regressions of different sizes: huge (+1000 MACs, over its limit), big (+100, layer a,
    whose module is known), odd:name (+10), shape (inputs changed, +10), lost (no entry, failed);
    spare (no entry, not failed) and fine are not regressions."""
    def run(name: str, macs: int, layers: Optional[dict[str, int]] = None,
            inputs: Optional[dict[str, list[int]]] = None) -> Measurement:
        return Measurement(name, f"tests/test_a.py::test_{name.split(':')[0]}", inputs or {}, {"macs": macs}, layers or {})

    pairs = [(run("big", 1100, {"a": 700, "b": 400}), True), (run("huge", 2000, {"c": 2000}), True),
             (run("odd:name, 100%", 20), True), (run("shape", 20, inputs={"x": [1, 8]}), True),
             (run("lost", 3), True), (run("spare", 3), False), (run("fine", 5), False)]
    sources = {"big": {"a": {"file": "models/big.py", "line": 7}},
               "huge": {"d": {"file": "models/huge.py", "line": 3}},     # not the layer that grew
               "shape": {"x": {"file": "models/shape.py", "line": 1}}}
    budget = parse_budget(ANNOTATED_YAML, BUDGET_PATH)
    return build_report(pairs, budget, base_budget=None, base=None, unused=[], budget_file="macc_budget.yaml",
                        sources=sources)


HUGE = ("::error file=macc_budget.yaml,line=8,title=pytest-maccbudget%3A huge%3A over limit (MACs +100.0%25)::"
        "model 'huge' (tests/test_a.py::test_huge): over limit%0Amacs 2.00 k > limit 1.50 k%0A"
        "macs 2.00 k > budget 1.00 k (+100.0%25, tolerance 0%25)%0A"
        "layer c: macs 2.00 k > budget 1.00 k (+100.0%25, tolerance 0%25)")
BIG = ("::error file=models/big.py,line=7,title=pytest-maccbudget%3A big%3A regressed (MACs +10.0%25)::"
       "model 'big' (tests/test_a.py::test_big): regressed%0Amacs 1.10 k > budget 1.00 k (+10.0%25, tolerance 0%25)%0A"
       "layer a: macs 700 > budget 600 (+16.7%25, tolerance 0%25)%0A"
       "largest growth: layer a (+100 MACs); it is built here")
ODD = ("::error file=macc_budget.yaml,line=14,title=pytest-maccbudget%3A odd%3Aname%2C 100%25%3A regressed "
       "(MACs +100.0%25)::model 'odd:name, 100%25' (tests/test_a.py::test_odd): regressed%0A"
       "macs 20 > budget 10 (+100.0%25, tolerance 0%25)")
SHAPE = ("::error file=macc_budget.yaml,line=16,title=pytest-maccbudget%3A shape%3A inputs changed (MACs +100.0%25)::"
         "model 'shape' (tests/test_a.py::test_shape): inputs changed%0Ainputs of model 'shape' changed: the budget "
         "was recorded for {x: [1, 4]}, the test measured {x: [1, 8]}; run `pytest --macc-budget-update` to record "
         "the new inputs")
LOST = ("::error file=macc_budget.yaml,title=pytest-maccbudget%3A lost%3A no budget entry::"
        "model 'lost' (tests/test_a.py::test_lost): no budget entry%0Ano budget entry for model 'lost' in "
        "macc_budget.yaml; run `pytest --macc-budget-update` to record it")


def test_annotations_largest_regression_first_with_source_or_budget_line() -> None:
    lines = annotations(annotated_report(), budget_path="macc_budget.yaml", budget_lines=BUDGET_LINES)
    assert lines == [HUGE, BIG, ODD, SHAPE, LOST]


def test_annotations_are_capped_with_one_notice_for_the_rest() -> None:
    lines = annotations(annotated_report(), budget_path="macc_budget.yaml", budget_lines=BUDGET_LINES, max_errors=3)
    assert lines == [HUGE, BIG, ODD, "::notice::2 more budget regressions are not annotated (GitHub shows at most 3 "
                                    "error annotations per step); see the step summary"]
    one_more = annotations(annotated_report(), budget_path="macc_budget.yaml", budget_lines=BUDGET_LINES, max_errors=4)
    assert one_more[-1] == ("::notice::1 more budget regression is not annotated (GitHub shows at most 4 error "
                            "annotations per step); see the step summary")
    many = annotations(big_report(models=25, layers=20), budget_path="b.yaml", budget_lines={})
    assert len(many) == 11 and many[-1].startswith("::notice::15 more budget regressions are not annotated")
    # a message lists at most 3 layer findings (the step summary has the layer tables)
    assert many[0].endswith("%0Alayer blocks.17.conv: macs 19.8 k > budget 18.0 k (+10.0%25, tolerance 0%25)"
                            "%0A… 17 more layer findings not listed")


def test_annotation_points_at_the_module_source_of_the_layer_that_grew_most() -> None:
    lines = annotations(full_report(), budget_path="macc_budget.yaml", budget_lines={"net": 7})
    assert [line.split("::")[1] for line in lines] == [
        "error file=models/net.py,line=12,title=pytest-maccbudget%3A net%3A regressed (MACs +10.9%25)",
        "error file=macc_budget.yaml,title=pytest-maccbudget%3A dropped%3A no budget entry",
        "error file=macc_budget.yaml,title=pytest-maccbudget%3A orphan%3A no budget entry",
    ]
    without_sources = annotations(full_report(sources={}), budget_path="conf/budget.yaml", budget_lines={"net": 7})
    assert without_sources[0].startswith("::error file=conf/budget.yaml,line=7,title=pytest-maccbudget%3A net%3A ")
    assert "largest growth" not in without_sources[0]


def test_no_annotations_without_regressions() -> None:
    pairs = [pair for pair in measurements() if not pair[1]]
    assert annotations(full_report(pairs), budget_path="b.yaml", budget_lines={}) == []


def test_workflow_command_escaping() -> None:
    assert escape_data("100% done\r\nnext: a, b") == "100%25 done%0D%0Anext: a, b"
    assert escape_property("100% done\r\nnext: a, b") == "100%25 done%0D%0Anext%3A a%2C b"
    pairs = [(Measurement("x", "t.py::test_x", {}, {"macs": 2}, {}), True)]
    budget = parse_budget("version: 1\nrules: 6\nmodels:\n  x:\n    total: {macs: 1}\n", BUDGET_PATH)
    report = build_report(pairs, budget, base_budget=None, base=None, unused=[], budget_file="b.yaml")
    report["models"][0]["failures"] = ["line one\nline two: 50%"]
    (line,) = annotations(report, budget_path="dir,with:odd.yaml", budget_lines={"x": 2})
    assert line == ("::error file=dir%2Cwith%3Aodd.yaml,line=2,title=pytest-maccbudget%3A x%3A regressed "
                    "(MACs +100.0%25)::model 'x' (t.py::test_x): regressed%0Aline one%0Aline two: 50%25")


# --- the schema document --------------------------------------------------------------------


def fenced_block(text: str, opening: str) -> str:
    """The body of the first fenced block that opens with exactly `opening`."""
    fence = re.match(r"`+", opening).group(0)
    start = text.index("\n" + opening + "\n") + len(opening) + 2
    end = text.index("\n" + fence + "\n", start - 1)
    return text[start:end + 1]


def test_schema_doc_example_is_what_the_code_produces() -> None:
    doc = DOCS.read_text(encoding="utf-8")
    report = full_report([pair for pair in measurements() if pair[0].name == "net"])
    assert fenced_block(doc, "```json") == dump_report(report)
    assert fenced_block(doc, "````markdown") == render_markdown(report)
    annotation = annotations(report, budget_path="macc_budget.yaml", budget_lines={"net": 7})
    assert fenced_block(doc, "```text") == "\n".join(annotation) + "\n"
    assert load_report(fenced_block(doc, "```json"), str(DOCS)) == report


def test_schema_doc_lists_every_field() -> None:
    doc = DOCS.read_text(encoding="utf-8")
    report = full_report()
    model = by_name(report)["net"]
    fields = set(report) | set(model) | set(model["measurement"]) | set(model["budget"]) | {"base.ref", "base.commit"}
    for name in fields:
        assert f"| `{name}` |" in doc, name
    for value in ("added", "removed", "raised", "changed", "unchanged"):
        assert f"`{value}`" in doc
    for status in ("ok", "regressed", "over_limit", "missing", "tightenable", "inputs_changed", "unknown"):
        assert f"| `{status}` |" in doc


def test_budget_change_is_never_lowered_when_something_was_loosened() -> None:
    from pytest_maccbudget.pr_report import budget_change

    def entry(macs: int, params: int, limit: dict | None = None) -> dict:
        return {"inputs": {"x": [1, 4]}, "total": {"macs": macs, "params": params}, "layers": {},
                "limit": limit or {}, "tolerance": {}}

    assert budget_change(entry(1000, 10), entry(1200, 10)) == "raised"
    assert budget_change(entry(1000, 10), entry(900, 10)) == "lowered"
    assert budget_change(entry(1000, 10), entry(999, 100)) == "changed"  # one down, one up: flagged
    assert budget_change(entry(1000, 10, {"macs": 2000}), entry(999, 10)) == "changed"  # limit removed
    assert budget_change(entry(1000, 10), entry(1000, 10)) == "unchanged"


def test_a_models_trend_on_the_base_is_in_the_json_the_markdown_and_survives_a_merge() -> None:
    trend = "MACs 900 k → 1.00 M over the last 2 changes (since abc1234, 2026-11-02) <b>"
    report = full_report(trends={"net": trend})
    assert by_name(report)["net"]["trend"] == trend and "trend" not in by_name(report)["small"]
    markdown = render_markdown(load_report(dump_report(report), "r.json"))
    assert "- trend on `origin/main`: MACs 900 k → 1.00 M over the last 2 changes (since abc1234, 2026-11-02) \\<b>" in markdown
    from pytest_maccbudget.pr_report import merged_trends
    shards = [build_report(shard, budgets()[0], base_budget=budgets()[1], base=BASE, unused=[], budget_file="b.yaml",
                           trends={"net": trend}, shard=(index, 2))
              for index, shard in enumerate([measurements()[0::2], measurements()[1::2]], start=1)]
    assert merged_trends(shards) == {"net": trend}
    broken = dump_report(report).replace('"trend": "MACs', '"trend": 5, "x": "MACs')
    with pytest.raises(ValueError, match=r"trend: expected a string, got a number"):
        load_report(broken, "r.json")
