"""The plugin's options: the --macc-budget* flags, the macc_budget_* ini keys, and `Settings`,
every option read once (a flag wins over the ini). pytest and the standard library only."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

FAIL_OR_WARN = ("fail", "warn")
DEFAULT_BUDGET_FILE = "macc_budget.yaml"


def add_options(parser: pytest.Parser) -> None:
    """The --macc-budget* flags and the macc_budget_* ini keys."""
    group = parser.getgroup("maccbudget", "model cost budgets (pytest-maccbudget)")
    group.addoption(
        "--macc-budget", action="store_true", default=None, dest="macc_budget",
        help="check every model marked with @pytest.mark.macc_budget (or passed to the macc_budget fixture) "
             "against the budget file; a regression fails its test. Default: off.",
    )
    group.addoption(
        "--macc-budget-update", action="store_true", default=None, dest="macc_budget_update",
        help="record the costs of the models that ran in the budget file: adds and refreshes their entries, "
             "keeps every other entry, never changes a limit or a tolerance. Default: off.",
    )
    group.addoption(
        "--macc-budget-update-new-only", action="store_true", default=None, dest="macc_budget_update_new_only",
        help="like --macc-budget-update, but only add entries for models that have none. Default: off.",
    )
    group.addoption(
        "--macc-budget-file", metavar="PATH", default=None, dest="macc_budget_file",
        help=f"the budget file, relative to the rootdir. Default: ini macc_budget_file, else {DEFAULT_BUDGET_FILE}.",
    )
    group.addoption(
        "--macc-budget-strict", action="store_true", default=None, dest="macc_budget_strict",
        help="also fail models that got cheaper than their budget, so budgets don't go stale. "
             "Default: ini macc_budget_strict, else off.",
    )
    group.addoption(
        "--macc-budget-report", metavar="PATH", default=None, dest="macc_budget_report",
        help="write a markdown report (per model: base branch, budget, this commit, change; the layers that "
             "changed most, with a chart) to PATH. Default: none.",
    )
    group.addoption(
        "--macc-budget-json", metavar="PATH", default=None, dest="macc_budget_json",
        help="write the same report as JSON (schema: docs/report-schema.md) to PATH; also the input of "
             "`maccbudget merge` for sharded runs. Default: none.",
    )
    group.addoption(
        "--macc-budget-base", metavar="REF", default=None, dest="macc_budget_base",
        help="also show the budget file as it was at the merge-base of HEAD and REF (e.g. origin/main), and flag "
             "every entry this branch raised or added. Default: ini macc_budget_base, else none.",
    )
    group.addoption(
        "--macc-budget-shard", metavar="I/N", default=None, dest="macc_budget_shard", type=parse_shard,
        help="run only the I-th of N shards of the tests (1-based), e.g. 2/4, for a CI matrix; merge the shards' "
             "--macc-budget-json files with `maccbudget merge`. Default: all tests.",
    )
    parser.addini("macc_budget_base", "git ref whose merge-base with HEAD holds the base budget (default: none)",
                  default="")
    parser.addini("macc_budget_file", f"budget file, relative to the rootdir (default: {DEFAULT_BUDGET_FILE})",
                  default=DEFAULT_BUDGET_FILE)
    parser.addini("macc_budget_exporter", "torch exporter: torchscript (fast) or dynamo (needs onnxscript, ~2.5 s a model) "
                  "(default: torchscript)", default="torchscript")
    parser.addini("macc_budget_missing", "a model with no budget entry: fail or warn (default: fail)", default="fail")
    parser.addini("macc_budget_unknown_ops", "a model with ops the engine cannot count: fail or warn (default: fail)",
                  default="fail")
    parser.addini("macc_budget_strict", "fail models that got cheaper than their budget (default: false)",
                  type="bool", default=False)


@dataclass(frozen=True)
class Settings:
    """Every option, read once from flags and ini keys (a flag wins over the ini)."""

    enabled: bool
    update: bool
    update_new_only: bool
    budget_path: Path
    exporter: str
    missing_fails: bool
    unknown_fails: bool
    strict: bool
    rootdir: Path
    report_path: Optional[Path] = None
    json_path: Optional[Path] = None
    base_ref: str = ""
    shard: Optional[tuple[int, int]] = None  # (I, N) of --macc-budget-shard I/N

    @classmethod
    def from_config(cls, config: pytest.Config) -> "Settings":
        update = bool(config.getoption("macc_budget_update"))
        new_only = bool(config.getoption("macc_budget_update_new_only"))
        budget_file = config.getoption("macc_budget_file") or config.getini("macc_budget_file") or DEFAULT_BUDGET_FILE
        strict_flag = config.getoption("macc_budget_strict")
        return cls(
            enabled=bool(config.getoption("macc_budget")) or update or new_only,
            update=update or new_only,
            update_new_only=new_only,
            budget_path=(config.rootpath / budget_file).resolve(),
            exporter=str(config.getini("macc_budget_exporter")).strip() or "torchscript",
            missing_fails=_choice(config, "macc_budget_missing", FAIL_OR_WARN) == "fail",
            unknown_fails=_choice(config, "macc_budget_unknown_ops", FAIL_OR_WARN) == "fail",
            strict=bool(strict_flag) if strict_flag is not None else bool(config.getini("macc_budget_strict")),
            rootdir=config.rootpath,
            report_path=_output_path(config, "macc_budget_report"),
            json_path=_output_path(config, "macc_budget_json"),
            base_ref=str(config.getoption("macc_budget_base") or config.getini("macc_budget_base") or "").strip(),
            shard=config.getoption("macc_budget_shard", None),
        )


def _output_path(config: pytest.Config, option: str) -> Optional[Path]:
    value = config.getoption(option)
    return Path(config.invocation_params.dir, value).resolve() if value else None


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` -> (I, N), 1 <= I <= N."""
    import argparse

    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit()) or not 1 <= int(index) <= int(count):
        raise argparse.ArgumentTypeError(f"expected I/N with 1 <= I <= N, e.g. 2/4; got {text!r}")
    return int(index), int(count)


def _choice(config: pytest.Config, key: str, choices: tuple[str, ...]) -> str:
    value = str(config.getini(key)).strip().lower()
    if value not in choices:
        raise pytest.UsageError(f"ini {key} = {value!r}: expected one of {', '.join(choices)}")
    return value
