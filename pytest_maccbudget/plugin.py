"""pytest hooks: the `macc_budget` marker and fixture, the options, the xdist hand-off.

This module is loaded in every pytest run of a repository that has the package installed, so
it only wires hooks and imports only pytest and the standard library at module level; what a
budget run does lives in session.py, imported (with the engine, the budget file and, for torch
models, the exporter) only when `--macc-budget` is on.
"""
from __future__ import annotations

import contextlib
import inspect
from typing import TYPE_CHECKING, Any, Iterator, Optional

import pytest

from .marker import MARKER, capture_return_value, checks_a_model, marked_model, marker_help, validate_marker
from .options import Settings, add_options

if TYPE_CHECKING:
    from .session import BudgetSession

WORKER_OUTPUT_KEY = "maccbudget"

_STATE = pytest.StashKey["BudgetSession"]()


# --- options ------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


# --- configuration and session state ---------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", marker_help())
    settings = Settings.from_config(config)
    if not settings.enabled:
        return
    from .export import EXPORTERS

    if settings.exporter not in EXPORTERS:
        raise pytest.UsageError(f"ini macc_budget_exporter = {settings.exporter!r}: expected one of {', '.join(EXPORTERS)}")
    from .session import BudgetSession, open_cache, read_budget

    state = BudgetSession(settings, read_budget(settings), is_worker=hasattr(config, "workerinput"))
    state.cache = open_cache(config, settings)
    state.resolve_default_devices()
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
                validate_marker(item, marker)
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
    if state is None or not checks_a_model(item):
        return (yield)
    with state.recording():  # a fixture may build the model
        return (yield)


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
    pyfuncitem.obj = capture_return_value(pyfuncitem, original)
    state = pyfuncitem.config.stash.get(_STATE, None)
    recording = state.recording() if state is not None else contextlib.nullcontext()
    try:
        with recording:  # where the model's layers are built, for annotations
            result = yield
            model = marked_model(pyfuncitem, marker) if state is not None else None
    finally:
        pyfuncitem.obj = original
    if state is not None:
        from .session import check_model

        check_model(state, pyfuncitem, marker.args[0], model, marker.kwargs.get("inputs"), marker.kwargs.get("devices"))
    return result


class MaccBudgetFixture:
    """The `macc_budget` fixture: check models from inside a test."""

    def __init__(self, item: pytest.Item) -> None:
        self._item = item

    def check(self, model: Any, inputs: Any = None, name: Optional[str] = None,
              devices: Optional[list[str]] = None) -> None:
        """Export (if needed), profile and compare `model` with its budget entry `name`
        (default: the test's name); `devices` replaces ini macc_budget_devices for it. Does
        nothing unless --macc-budget is on."""
        state = self._item.config.stash.get(_STATE, None)
        if state is not None:
            from .session import check_model

            check_model(state, self._item, name or self._item.name, model, inputs, devices)


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
