"""pytest hooks: the `macc_budget` marker and fixture, options, the budget check, xdist hand-off.

This module is loaded in every pytest run of a repository that has the package installed, so
it imports only pytest and the standard library at module level; the engine (onnx), the budget
file (yaml) and the exporter (torch) are imported when `--macc-budget` is on and a model is
checked.
"""
from __future__ import annotations

import functools
import inspect
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

import pytest

if TYPE_CHECKING:
    from .budget import Budget, Comparison, Measurement
    from .export import ExportedModel

MARKER = "macc_budget"
MARKER_KWARGS = ("inputs", "model")
WORKER_OUTPUT_KEY = "maccbudget"
MISSING_CHOICES = ("fail", "warn")
UNKNOWN_CHOICES = ("fail", "warn")
DEFAULT_BUDGET_FILE = "macc_budget.yaml"

_STATE = pytest.StashKey["_SessionState"]()
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
            missing_fails=_choice(config, "macc_budget_missing", MISSING_CHOICES) == "fail",
            unknown_fails=_choice(config, "macc_budget_unknown_ops", UNKNOWN_CHOICES) == "fail",
            strict=bool(strict_flag) if strict_flag is not None else bool(config.getini("macc_budget_strict")),
        )


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
    state = _SessionState(settings, _load_budget(settings.budget_path), is_worker=hasattr(config, "workerinput"))
    config.stash[_STATE] = state
    config.pluginmanager.register(_SkipCounter(state), "maccbudget-skips")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(config), "maccbudget-xdist")


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is not None:
        state.cleanup()


class _SkipCounter:
    """Counts skipped tests: an update removes no entry after a run that skipped any (a skipped
    test may check a model that this run could not measure)."""

    def __init__(self, state: "_SessionState") -> None:
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and report.when in ("setup", "call"):
            self.state.skipped += 1


def _load_budget(path: Path) -> "Budget":
    from .budget import BudgetError, load_budget

    try:
        return load_budget(path)
    except BudgetError as error:
        raise pytest.UsageError(f"pytest-maccbudget: {error}") from None


@dataclass
class _CheckRecord:
    measurement: "Measurement"
    failed: bool


@dataclass
class _SessionState:
    settings: Settings
    budget: "Budget"
    is_worker: bool
    records: list[_CheckRecord] = field(default_factory=list)
    checked_by: dict[str, str] = field(default_factory=dict)  # model name -> nodeid
    exports: dict[str, "ExportedModel"] = field(default_factory=dict)
    deselected: int = 0
    skipped: int = 0
    declared: dict[str, str] = field(default_factory=dict)  # model names of collected markers -> nodeid
    duplicate_errors: list[str] = field(default_factory=list)
    # what the update at the end of the session did
    update_messages: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    removal_withheld: str = ""
    update_outcomes: dict[str, str] = field(default_factory=dict)
    written: bool = False
    interrupted: bool = False
    _workdir: Optional[Path] = None

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="maccbudget-"))
        return self._workdir

    def cleanup(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def claim_name(self, name: str, nodeid: str) -> None:
        """Two tests may not check models of the same name."""
        first = self.checked_by.setdefault(name, nodeid)
        if first != nodeid:
            pytest.fail(f"model name {name!r} is checked by two tests: {first} and {nodeid}", pytrace=False)


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


def pytest_runtest_setup(item: pytest.Item) -> None:
    message = item.config.stash.get(_DUPLICATES, {}).get(item.nodeid)
    if message is not None:
        pytest.fail(message, pytrace=False)


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
        return (yield)
    pyfuncitem.obj = _capture_return_value(pyfuncitem, original)
    try:
        result = yield
    finally:
        pyfuncitem.obj = original
    state = pyfuncitem.config.stash.get(_STATE, None)
    if state is not None:
        model = _marked_model(pyfuncitem, marker)
        _check_model(state, pyfuncitem, marker.args[0], model, marker.kwargs.get("inputs"))
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
            _check_model(state, self._item, name or self._item.name, model, inputs)


@pytest.fixture
def macc_budget(request: pytest.FixtureRequest) -> MaccBudgetFixture:
    """Check a model's cost against the budget file: `macc_budget.check(model, inputs=..., name=...)`."""
    return MaccBudgetFixture(request.node)


def _check_model(state: _SessionState, item: pytest.Item, name: str, model: Any, inputs: Any) -> None:
    from .budget import compare

    state.claim_name(name, item.nodeid)
    measurement = _measure(state, item, name, model, inputs)
    settings = state.settings
    comparison = compare(state.budget, measurement, strict=settings.strict, missing_fails=settings.missing_fails)
    failures = _failures_for_run(comparison, measurement, settings)
    state.records.append(_CheckRecord(measurement, bool(failures)))
    details = _report_section(failures, comparison)
    if details:
        item.add_report_section("call", "macc budget", "\n".join(details))
    if failures:
        pytest.fail(_headline(name, failures, comparison), pytrace=False)
    _warn_if_needed(item, comparison, measurement, settings)


def _headline(name: str, failures: list[str], comparison: "Comparison") -> str:
    """One line: the model, its first failure, and the layer that grew most."""
    from .units import format_count

    line = failures[0] if repr(name) in failures[0] else f"model {name!r}: {failures[0]}"
    grown = next((layer for layer in comparison.layers if layer.status in ("grew", "new")), None)
    if grown is not None and "layer" not in failures[0]:
        line += f"; most grown layer {grown.key}: {format_count(grown.old or 0)} -> {format_count(grown.new)} MACs"
    if len(failures) > 1:
        line += f" (+{len(failures) - 1} more below)"
    return line


def _report_section(failures: list[str], comparison: "Comparison") -> list[str]:
    from .budget import render_layer_table

    table = render_layer_table(comparison)
    listed = [line for line in failures if not (table and line.startswith(("layer ", "new layer ")))]
    lines = listed if len(failures) > 1 else []
    if table:
        lines += ([""] if lines else []) + ["layers that changed, largest change first:"] + table
    return lines


def _measure(state: _SessionState, item: pytest.Item, name: str, model: Any, inputs: Any) -> "Measurement":
    from .budget import Measurement
    from .engine.errors import ModelError
    from .engine.profile import profile_model
    from .export import ExportError, InputSpecError, export_model
    from .layers import layer_macs

    try:
        exported = state.exports.get(name)
        if exported is None:
            exported = export_model(model, inputs, name=name, workdir=state.workdir, exporter=state.settings.exporter)
            state.exports[name] = exported
        onnx_inputs = _onnx_input_shapes(inputs) if exported.exporter == "onnx" else None
        profile = profile_model(exported.path, onnx_inputs, name=name)
        problem = ""
    except (ExportError, InputSpecError, ModelError) as error:
        problem = str(error) if repr(name) in str(error) else f"model {name!r}: {error}"
    if problem:  # failed outside the except block, so pytest shows one message, not a chain
        pytest.fail(problem, pytrace=False)
    partial = profile.partial
    totals = profile.totals
    return Measurement(
        name=name,
        nodeid=item.nodeid,
        inputs=exported.inputs or {k: list(v) for k, v in profile.inputs.items()},
        total={
            "macs": None if partial else totals.macs,
            "flops": None if partial else totals.flops,
            "params": totals.params,
            "param_bytes": totals.param_bytes,
            "peak_activation_bytes": totals.peak_activation_bytes,
        },
        layers=layer_macs((layer.name, layer.macs) for layer in profile.layers),
        unknown_ops=tuple(f"{u.domain + '::' if u.domain else ''}{u.op_type} ({u.name}): {u.reason}" for u in profile.unknown),
    )


def _onnx_input_shapes(inputs: Any) -> Any:
    """For an ONNX file given as is, `inputs` overrides its input dims: a dict by input name,
    or shapes in the order of the model's inputs."""
    if inputs is None:
        return None
    if isinstance(inputs, dict):
        return {str(k): list(v) for k, v in inputs.items()}
    from .export import parse_inputs

    return [list(spec.shape) for spec in parse_inputs(inputs)]


def _failures_for_run(comparison: "Comparison", measurement: "Measurement", settings: Settings) -> list[str]:
    """Failure lines for this run: under update only limits and uncountable models fail."""
    uncounted = _uncounted_line(measurement) if measurement.unknown_ops and settings.unknown_fails else []
    if settings.update:
        if comparison.status == "over_limit":
            return [line + " (not recorded)" for line in comparison.failures if "limit" in line]
        return [f"not recorded: {line}" for line in uncounted]
    if comparison.status == "unknown" and not settings.unknown_fails:
        return []
    failures = list(comparison.failures) if comparison.failed else []
    if comparison.status == "missing" and failures:
        failures += uncounted
    return failures


def _uncounted_line(measurement: "Measurement") -> list[str]:
    ops = measurement.unknown_ops
    return [f"{len(ops)} op(s) could not be counted: " + "; ".join(ops)]


def _warn_if_needed(item: pytest.Item, comparison: "Comparison", measurement: "Measurement", settings: Settings) -> None:
    lines: list[str] = []
    if measurement.unknown_ops and not settings.unknown_fails:
        lines += [("not recorded: " if settings.update else "") + line for line in _uncounted_line(measurement)]
    if not settings.update and comparison.status == "missing":
        lines += comparison.failures
    for line in lines:
        item.warn(pytest.PytestWarning(f"macc budget: {line}"))


# --- end of session: merge, summary, update --------------------------------------------------


class _XdistHooks:
    """Registered only when pytest-xdist is installed (its hooks do not exist otherwise)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        payload = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT_KEY)
        state = self.config.stash.get(_STATE, None)
        if payload is None or state is None:
            return
        from .budget import Measurement

        for entry in payload["records"]:
            measurement = Measurement.from_json(entry["measurement"])
            first = state.checked_by.setdefault(measurement.name, measurement.nodeid)
            if first != measurement.nodeid:
                state.duplicate_errors.append(f"model name {measurement.name!r} is checked by two tests: {first} and {measurement.nodeid}")
            state.records.append(_CheckRecord(measurement, entry["failed"]))
        state.deselected += payload["deselected"]
        state.declared.update(payload["declared"])


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(_STATE, None)
    if state is None:
        return
    if state.is_worker:
        session.config.workeroutput[WORKER_OUTPUT_KEY] = {  # type: ignore[attr-defined]
            "records": [{"measurement": r.measurement.to_json(), "failed": r.failed} for r in state.records],
            "deselected": state.deselected,
            "declared": state.declared,
        }
        return
    if state.duplicate_errors:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    state.interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
    state.removal_withheld = _why_entries_are_kept(session, state)
    if state.settings.update and not state.interrupted:
        _write_update(session, state)


def _unused_entries(state: _SessionState) -> list[str]:
    """Budget entries no test measured or declared with a marker in this run."""
    measured = {record.measurement.name for record in state.records}
    return sorted(name for name in state.budget.models if name not in measured and name not in state.declared)


def _why_entries_are_kept(session: pytest.Session, state: _SessionState) -> str:
    """Unused entries are removed only by a run of every test in which none failed or was
    skipped; otherwise the reason they were kept."""
    config = session.config
    option = config.option
    if (state.deselected or config.args_source == pytest.Config.ArgsSource.ARGS or getattr(option, "keyword", "")
            or getattr(option, "markexpr", "") or getattr(option, "lf", False)):
        from .budget_report import NOT_ALL_SELECTED

        return NOT_ALL_SELECTED
    if session.testsfailed:
        return "a test failed"
    if state.skipped:
        return "a test was skipped"
    return ""


def _write_update(session: pytest.Session, state: _SessionState) -> None:
    from .budget import dump_budget, update_budget, write_budget

    recordable = [r.measurement for r in state.records if not r.failed]
    new_only = state.settings.update_new_only
    unused = [] if new_only else _unused_entries(state)
    remove = [] if state.removal_withheld else unused
    updated, messages = update_budget(state.budget, recordable, new_only=new_only, remove_unused=remove)
    state.update_messages = messages
    state.removed = remove
    state.update_outcomes = {r.measurement.name: _update_outcome(state.budget, updated, r.measurement.name, new_only)
                             for r in state.records}
    path = state.settings.budget_path
    if not path.exists() and not updated.models:
        return  # nothing recorded: don't create an empty budget file
    text = dump_budget(updated)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        write_budget(path, text)
        state.written = True


def _update_outcome(before: "Budget", after: "Budget", name: str, new_only: bool) -> str:
    old, new = before.models.get(name), after.models.get(name)
    if new is None:
        return "NOT RECORDED"
    if old is None:
        return "recorded"
    if old != new:
        return "updated"
    return "kept (new-only update)" if new_only else "unchanged"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or state.is_worker:
        return
    from .budget import compare
    from .budget_report import budget_summary_lines

    settings = state.settings
    comparisons = [compare(state.budget, r.measurement, strict=settings.strict, missing_fails=settings.missing_fails)
                   for r in sorted(state.records, key=lambda r: r.measurement.name)]
    lines = budget_summary_lines(
        comparisons,
        unused=_unused_entries(state),
        budget_path=settings.budget_path,
        update="new-only" if settings.update_new_only else ("all" if settings.update else ""),
        update_outcomes=state.update_outcomes,
        written=state.written,
        interrupted=state.interrupted,
        removed=state.removed,
        kept_because=state.removal_withheld,
        messages=state.update_messages + state.duplicate_errors,
    )
    terminalreporter.write_sep("-", "macc budget")
    for line in lines:
        terminalreporter.write_line(line)
