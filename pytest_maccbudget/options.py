"""The plugin's options: the --macc-budget* flags, the macc_budget_* ini keys, and `Settings`,
every option read once (a flag wins over the ini). pytest and the standard library only."""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import pytest

FAIL_OR_WARN = ("fail", "warn")
UPDATE_COMMAND = "pytest --macc-budget-update"
# flags of a check that an update does not take (with the value that follows when written apart)
_CHECK_FLAGS = frozenset({"--macc-budget", "--macc-budget-strict", "--macc-budget-update", "--macc-budget-update-new-only"})
_CHECK_OPTIONS = frozenset({"--macc-budget-report", "--macc-budget-json", "--macc-budget-base", "--macc-budget-shard"})
# what narrows a run to part of the suite
_SELECTION_FLAGS = frozenset({"--lf", "--last-failed", "--ff", "--failed-first", "--sw", "--stepwise", "-x", "--exitfirst"})
_SELECTION_OPTIONS = frozenset({"-k", "-m", "--deselect", "--ignore", "--ignore-glob", "--maxfail"})
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
        "--macc-budget-no-cache", action="store_true", default=False, dest="macc_budget_no_cache",
        help="export and profile every model, without reading or writing the measurement cache in pytest's "
             "cache directory (--cache-clear empties it). Default: a torch model whose computation did not "
             "change since the last run is not exported again.",
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
    parser.addini("macc_budget_profile_timeout", "seconds one model's graph may take to profile before its test fails "
                  "(default: 600)", default="600")
    parser.addini("macc_budget_profile_memory", "memory (address space) the profiling process may add to what it inherits, e.g. 16GB, "
                  "or none (default: 16GiB)", default="16GiB")
    parser.addini("macc_budget_devices", "devices to estimate latency and energy on, one per line: a built-in profile "
                  "(`maccbudget devices` lists them), a profile in the budget file's devices: section, or a profile "
                  "YAML file relative to the rootdir (default: none)", type="linelist", default=[])
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
    budget_file_named: bool = False  # given by --macc-budget-file or the ini key, not the default name
    use_cache: bool = True  # the measurement cache (off with --macc-budget-no-cache)
    profile_timeout_s: float = 600.0   # a graph that takes longer fails its test (onnx can hang on a hostile one)
    profile_memory_bytes: Optional[int] = 16 * 2**30  # the profiling process's address space; None: no limit
    devices: tuple[str, ...] = ()  # ini macc_budget_devices: profiles every model is estimated on
    update_command: str = UPDATE_COMMAND          # re-records what this run selected, the user's flags kept
    suite_update_command: str = UPDATE_COMMAND    # the same over the whole suite (no -k, -m, paths)

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
            budget_file_named=budget_file != DEFAULT_BUDGET_FILE,
            use_cache=not config.getoption("macc_budget_no_cache"),
            profile_timeout_s=_seconds(config, "macc_budget_profile_timeout"),
            profile_memory_bytes=_bytes_or_none(config, "macc_budget_profile_memory"),
            devices=tuple(str(line).strip() for line in config.getini("macc_budget_devices") if str(line).strip()),
            update_command=update_command(config.invocation_params.args),
            suite_update_command=update_command(config.invocation_params.args, whole_suite=True,
                                                positional=_positional_args(config)),
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


def update_command(args: Sequence[str], whole_suite: bool = False, positional: Sequence[str] = ()) -> str:
    """The `pytest --macc-budget-update ...` command that re-records what a run with `args`
    checked: the user's own flags (budget file, ini overrides, plugins, -n) kept, the check's
    report flags dropped; `whole_suite` also drops what selects part of the suite: -k, -m,
    --lf and such, and the `positional` test paths."""
    drop_with_value = _CHECK_OPTIONS | (_SELECTION_OPTIONS if whole_suite else frozenset())
    paths = set(positional) if whole_suite else set()
    kept: list[str] = []
    words = iter(args)
    for arg in words:
        if arg in _CHECK_FLAGS or arg in paths or (whole_suite and arg in _SELECTION_FLAGS):
            continue
        option = _option_of(arg, drop_with_value)
        if option is not None:
            if arg == option:
                next(words, None)  # its value is the next word
            continue
        kept.append(arg)
    return shlex.join(["pytest", "--macc-budget-update", *kept])


def _option_of(arg: str, options: frozenset[str]) -> Optional[str]:
    """The option of `options` that `arg` is (`--opt`, `--opt=value`, `-kvalue`), else None."""
    for option in options:
        if arg == option or arg.startswith(option + "=") or (len(option) == 2 and arg.startswith(option)):
            return option
    return None


def _positional_args(config: pytest.Config) -> list[str]:
    """The test paths the user gave on the command line (none when pytest used testpaths)."""
    return list(config.args) if config.args_source == pytest.Config.ArgsSource.ARGS else []


def _seconds(config: pytest.Config, key: str) -> float:
    text = str(config.getini(key)).strip()
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise pytest.UsageError(f"ini {key} = {text!r}: expected a positive number of seconds")
    return value


def _bytes_or_none(config: pytest.Config, key: str) -> Optional[int]:
    from .units import parse_size_limit

    text = str(config.getini(key)).strip()
    try:
        return parse_size_limit(text)
    except ValueError:
        raise pytest.UsageError(f"ini {key} = {text!r}: expected a size such as 16GB, or none") from None
