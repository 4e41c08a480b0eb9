"""pytest hooks: the `macc_budget` marker and fixture, the options, the xdist hand-off.

This module is loaded in every pytest run of a repository that has the package installed, so
it only wires hooks and imports only pytest and the standard library at module level; what a
budget run does lives in session.py, imported (with the engine, the budget file and, for torch
models, the exporter) only when `--macc-budget` is on.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

import pytest

if TYPE_CHECKING:
    from .session import BudgetSession

MARKER = "macc_budget"
MARKER_KWARGS = ("inputs", "model")
WORKER_OUTPUT_KEY = "maccbudget"
FAIL_OR_WARN = ("fail", "warn")
DEFAULT_BUDGET_FILE = "macc_budget.yaml"

_STATE = pytest.StashKey["BudgetSession"]()
_CAPTURED = pytest.StashKey[Any]()  # a marked test's return value


# --- options ------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
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
        "--macc-budget-shard", metavar="I/N", default=None, dest="macc_budget_shard", type=_shard,
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


def _shard(text: str) -> tuple[int, int]:
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


# --- configuration and session state ---------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(name, inputs=None, model=None): check this model's MACs, FLOPs, parameters and peak "
        "activation memory against the budget file under --macc-budget. The model is the test's return value, "
        "or model= (a path to an .onnx file or a zero-argument factory). inputs: shapes like [(1, 3, 224, 224)], "
        "(shape, dtype) pairs, example tensors, or a dict of them by input name.",
    )
    settings = Settings.from_config(config)
    if not settings.enabled:
        return
    from .export import EXPORTERS

    if settings.exporter not in EXPORTERS:
        raise pytest.UsageError(f"ini macc_budget_exporter = {settings.exporter!r}: expected one of {', '.join(EXPORTERS)}")
    from .session import BudgetSession, read_budget

    state = BudgetSession(settings, read_budget(settings.budget_path), is_worker=hasattr(config, "workerinput"))
    if settings.base_ref and not state.is_worker:
        state.read_base()
    config.stash[_STATE] = state
    config.pluginmanager.register(_SkipCounter(state), "maccbudget-skips")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(config), "maccbudget-xdist")


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is not None:
        state.cleanup()


class _SkipCounter:
    """Counts skipped tests and modules (not xfails): an update removes no entry after a run that
    skipped any (a skipped test may check a model that this run could not measure)."""

    def __init__(self, state: "BudgetSession") -> None:
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and report.when in ("setup", "call") and not hasattr(report, "wasxfail"):
            self.state.skipped += 1

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.skipped:  # e.g. a module-level importorskip
            self.state.skipped += 1


# --- collection: marker validation -----------------------------------------------------------

_DUPLICATES = pytest.StashKey[dict[str, str]]()  # nodeid -> error naming both tests


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> Iterator[Any]:
    """A misused marker is a collection error of its test module (which pytest-xdist reports)."""
    result = yield
    items = result if isinstance(result, list) else [result]
    for item in items:
        if isinstance(item, pytest.Function):
            marker = item.get_closest_marker(MARKER)
            if marker is not None:
                _validate_marker(item, marker)
    return result


@pytest.hookimpl(tryfirst=True)  # before -k/-m deselect: deselected markers still declare their names
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Two tests marking the same model name: both fail at setup, each naming the other."""
    first_by_name: dict[str, str] = {}
    duplicates: dict[str, str] = {}
    for item in items:
        marker = item.get_closest_marker(MARKER)
        if marker is None or not marker.args:
            continue
        name = marker.args[0]
        first = first_by_name.setdefault(name, item.nodeid)
        if first != item.nodeid:
            message = f"@pytest.mark.{MARKER}: model name {name!r} is used by two tests: {first} and {item.nodeid}"
            duplicates[first] = duplicates[item.nodeid] = message
    config.stash[_DUPLICATES] = duplicates
    state = config.stash.get(_STATE, None)
    if state is not None:
        state.declared.update(first_by_name)
    _select_shard(config, items)


def _select_shard(config: pytest.Config, items: list[pytest.Item]) -> None:
    """--macc-budget-shard I/N: keep the tests whose node id hashes to shard I."""
    shard = config.getoption("macc_budget_shard", None)
    if not shard:
        return
    index, count = shard
    # deal the tests round-robin in node-id order: balanced, and the same on every xdist worker
    position = {item.nodeid: rank for rank, item in enumerate(sorted(items, key=lambda item: item.nodeid))}
    in_shard = [position[item.nodeid] % count == index - 1 for item in items]
    dropped = [item for item, keep in zip(items, in_shard) if not keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item, keep in zip(items, in_shard) if keep]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    message = item.config.stash.get(_DUPLICATES, {}).get(item.nodeid)
    if message is not None:
        pytest.fail(message, pytrace=False)
    state = item.config.stash.get(_STATE, None)
    if state is None or not _checks_a_model(item):
        return (yield)
    with state.recording():  # a fixture may build the model
        return (yield)


def _checks_a_model(item: pytest.Item) -> bool:
    return item.get_closest_marker(MARKER) is not None or MARKER in getattr(item, "fixturenames", ())


def _validate_marker(item: pytest.Item, marker: pytest.Mark) -> str:
    where = f"{item.nodeid}: @pytest.mark.{MARKER}"
    if len(marker.args) != 1 or not isinstance(marker.args[0], str) or not marker.args[0].strip():
        raise _MarkerError(f"{where} needs exactly one positional argument, the model's name, e.g. "
                                f"@pytest.mark.{MARKER}(\"resnet18\", inputs=[(1, 3, 224, 224)])")
    unknown = sorted(set(marker.kwargs) - set(MARKER_KWARGS))
    if unknown:
        raise _MarkerError(f"{where}: unknown keyword argument(s) {', '.join(unknown)}; allowed: {', '.join(MARKER_KWARGS)}")
    model = marker.kwargs.get("model")
    if model is not None and not (callable(model) or _looks_like_onnx_path(model)):
        raise _MarkerError(f"{where}: model= must be a path to an .onnx file or a zero-argument factory, got {model!r}")
    if marker.kwargs.get("inputs") is not None:
        from .export import InputSpecError, parse_inputs

        try:
            parse_inputs(marker.kwargs["inputs"])
        except InputSpecError as error:
            raise _MarkerError(f"{where}: {error}") from None
    return marker.args[0]


class _MarkerError(pytest.Collector.CollectError):
    """A misused marker: reported as a collection error with just this message."""


def _looks_like_onnx_path(value: object) -> bool:
    return isinstance(value, (str, Path)) and str(value).endswith(".onnx")


def pytest_deselected(items: list[pytest.Item]) -> None:
    if items:
        state = items[0].config.stash.get(_STATE, None)
        if state is not None:
            state.deselected += len(items)


# --- running a marked test -------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Iterator[None]:
    marker = pyfuncitem.get_closest_marker(MARKER)
    original = pyfuncitem.obj
    if marker is None or inspect.iscoroutinefunction(original):
        state = pyfuncitem.config.stash.get(_STATE, None)
        if state is None or MARKER not in pyfuncitem.fixturenames:
            return (yield)
        with state.recording():  # the test builds the model it gives the fixture
            return (yield)
    pyfuncitem.obj = _capture_return_value(pyfuncitem, original)
    state = pyfuncitem.config.stash.get(_STATE, None)
    recording = state.recording() if state is not None else contextlib.nullcontext()
    try:
        with recording:  # where the model's layers are built, for annotations
            result = yield
            model = _marked_model(pyfuncitem, marker) if state is not None else None
    finally:
        pyfuncitem.obj = original
    if state is not None:
        from .session import check_model

        check_model(state, pyfuncitem, marker.args[0], model, marker.kwargs.get("inputs"))
    return result


def _capture_return_value(item: pytest.Function, test_function: Callable[..., Any]) -> Callable[..., None]:
    """The marked test's return value is the model: keep it, and return None to pytest."""
    @functools.wraps(test_function)
    def capture(*args: Any, **kwargs: Any) -> None:
        item.stash[_CAPTURED] = test_function(*args, **kwargs)
    return capture


def _marked_model(item: pytest.Function, marker: pytest.Mark) -> Any:
    returned = item.stash.get(_CAPTURED, None)
    given = marker.kwargs.get("model")
    where = f"@pytest.mark.{MARKER}({marker.args[0]!r})"
    if given is not None and returned is not None:
        pytest.fail(f"{where}: the test returned a model and model= is given too; use one", pytrace=False)
    if given is None:
        if returned is None:
            pytest.fail(f"{where}: the test returned nothing; return the model, or give model=", pytrace=False)
        return returned
    if _looks_like_onnx_path(given):
        path = Path(given)
        return path if path.is_absolute() else Path(item.path).parent / path
    return given()


class MaccBudgetFixture:
    """The `macc_budget` fixture: check models from inside a test."""

    def __init__(self, item: pytest.Item) -> None:
        self._item = item

    def check(self, model: Any, inputs: Any = None, name: Optional[str] = None) -> None:
        """Export (if needed), profile and compare `model` with its budget entry `name`
        (default: the test's name). Does nothing unless --macc-budget is on."""
        state = self._item.config.stash.get(_STATE, None)
        if state is not None:
            from .session import check_model

            check_model(state, self._item, name or self._item.name, model, inputs)


@pytest.fixture
def macc_budget(request: pytest.FixtureRequest) -> MaccBudgetFixture:
    """Check a model's cost against the budget file: `macc_budget.check(model, inputs=..., name=...)`."""
    return MaccBudgetFixture(request.node)


# --- end of session: merge, summary, update --------------------------------------------------


class _XdistHooks:
    """Registered only when pytest-xdist is installed (its hooks do not exist otherwise)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        payload = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT_KEY)
        state = self.config.stash.get(_STATE, None)
        if payload is not None and state is not None:
            state.merge_worker_payload(payload)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(_STATE, None)
    if state is None:
        return
    if state.is_worker:
        session.config.workeroutput[WORKER_OUTPUT_KEY] = state.worker_payload()  # type: ignore[attr-defined]
        return
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and session.config.getoption("macc_budget_shard", None):
        session.exitstatus = pytest.ExitCode.OK  # more shards than tests: an empty shard is fine
    from .session import finish_session

    finish_session(session, state, exitstatus)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or state.is_worker:
        return
    from .session import annotation_lines, summary_lines

    terminalreporter.write_sep("-", "macc budget")
    for line in summary_lines(state):
        terminalreporter.write_line(line)
    for line in annotation_lines(state):  # GitHub reads workflow commands from stdout
        terminalreporter.write_line(line)
