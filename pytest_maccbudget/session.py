"""One pytest run of the budget check: its state, checking a model, and what happens at the
end (the xdist merge, the update of the budget file, the summary). Imported by the plugin only
when --macc-budget (or an update) is on."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import pytest

from .action.commands import neutralise
from .budget.update import PARTIAL_HOW
from .budget import (
    GREW, LAYER_FINDING_PREFIXES, MISSING, NEW, UNKNOWN, Budget, BudgetError, Comparison, Measurement, compare,
    dump_budget, load_budget, update_budget, write_budget,
)
from .terminal_summary import NOT_ALL_SELECTED, budget_summary_lines, render_layer_table
from .units import LIST_LIMIT, capped_list, format_count, plural

if TYPE_CHECKING:
    from .devices.profiles import Device
    from .export import ExportedModel
    from .cached_measure import CacheStats
    from .isolation import IsolatedProfiler
    from .layer_sources import ConstructionRecorder
    from .measure_cache import MeasureCache
    from .options import Settings


def read_budget(settings: "Settings") -> Budget:
    """The budget file; an invalid one stops the run as a usage error naming file, line and key,
    and so does a budget file named by the user that does not exist (a typo would otherwise
    check every model against nothing), except in an update, which creates it."""
    try:
        budget = load_budget(settings.budget_path)
    except BudgetError as error:
        raise pytest.UsageError(f"pytest-maccbudget: {error}") from None
    if not budget.exists and settings.budget_file_named and not settings.update:
        raise pytest.UsageError(f"pytest-maccbudget: the budget file {settings.budget_path} does not exist: check the "
                                f"name, or run `{settings.update_command}` to create it")
    return budget


def _github_base_branch(ref: str, commit: str) -> str:
    """In a GitHub pull_request run given the base commit itself (as the action does), the name
    of the branch the pull request merges into, for the report to say."""

    if os.environ.get("GITHUB_ACTIONS") != "true" or not commit.lower().startswith(ref.lower()):
        return ""
    return " ".join(os.environ.get("GITHUB_BASE_REF", "").split())[:200]


def _new_cache_stats() -> "CacheStats":
    from .cached_measure import CacheStats

    return CacheStats()


def open_cache(config: pytest.Config, settings: "Settings") -> Optional["MeasureCache"]:
    """The measurement cache in pytest's cache directory, unless there is none or it is off."""
    cache_provider = getattr(config, "cache", None)
    if not settings.use_cache or cache_provider is None:
        return None
    from .measure_cache import MeasureCache

    return MeasureCache(cache_provider.mkdir("maccbudget"))


@dataclass
class CheckRecord:
    measurement: "Measurement"
    failed: bool


@dataclass
class BudgetSession:
    settings: "Settings"
    budget: "Budget"
    is_worker: bool
    records: list[CheckRecord] = field(default_factory=list)
    checked_by: dict[str, str] = field(default_factory=dict)  # model name -> nodeid
    exports: dict[str, "ExportedModel"] = field(default_factory=dict)
    deselected: int = 0
    skipped: int = 0
    declared: dict[str, str] = field(default_factory=dict)  # model names of collected markers -> nodeid
    duplicate_errors: list[str] = field(default_factory=list)
    duplicate_names: set[str] = field(default_factory=set)  # checked by tests on two xdist workers
    # what the update at the end of the session did
    update_messages: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    removal_withheld: str = ""
    update_outcomes: dict[str, str] = field(default_factory=dict)
    written: bool = False
    interrupted: bool = False
    # the base branch (--macc-budget-base), where each model's layers are defined, the report
    base_budget: Optional[Budget] = None
    base_info: Optional[dict[str, str]] = None
    sources: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)  # model -> layer -> chain
    report: Optional[dict[str, Any]] = None
    errors: list[dict[str, str]] = field(default_factory=list)  # checks that failed before measuring
    cache: Optional["MeasureCache"] = None  # None: no cache dir (-p no:cacheprovider) or --macc-budget-no-cache
    cache_stats: "CacheStats" = field(default_factory=lambda: _new_cache_stats())
    default_devices: tuple["Device", ...] = ()  # ini macc_budget_devices
    _marker_devices: dict[tuple[str, tuple[str, ...]], tuple["Device", ...]] = field(default_factory=dict)
    _workdir: Optional[Path] = None
    _recorder: Optional["ConstructionRecorder"] = None
    _profiler: Optional["IsolatedProfiler"] = None

    @property
    def wants_sources(self) -> bool:
        """Where layers are built is looked up only for a report, JSON or annotations."""
        return wants_report(self.settings)

    @property
    def recorder(self) -> "ConstructionRecorder":
        if self._recorder is None:
            from .layer_sources import ConstructionRecorder, UserCode

            self._recorder = ConstructionRecorder(UserCode(self.settings.rootdir))
        return self._recorder

    def recording(self) -> contextlib.AbstractContextManager[Any]:
        """Record where torch modules are built, while a marked test (or its model factory) runs."""
        return self.recorder if self.wants_sources else contextlib.nullcontext()

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="maccbudget-"))
        return self._workdir

    @property
    def profiler(self) -> "IsolatedProfiler":
        """The child process that profiles graphs (started at the first graph)."""
        if self._profiler is None:
            from .isolation import IsolatedProfiler, Limits

            limits = Limits(self.settings.profile_timeout_s, self.settings.profile_memory_bytes)
            self._profiler = IsolatedProfiler(limits)
        return self._profiler

    def cleanup(self) -> None:
        if self._profiler is not None:
            self._profiler.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def resolve_default_devices(self) -> None:
        """The ini's devices, read once: a name or file that cannot be read stops the run."""
        if not self.settings.devices:
            return
        from .device_estimates import DeviceSpecError, resolve_devices

        try:
            self.default_devices = resolve_devices(self.settings.devices, self.budget, self.settings.rootdir,
                                                   "ini macc_budget_devices")
        except DeviceSpecError as error:
            raise pytest.UsageError(f"pytest-maccbudget: {error}") from None

    def devices_for(self, item: pytest.Item, specs: Optional[Any]) -> tuple["Device", ...]:
        """The devices a check estimates on: its own (marker devices=, relative paths from the
        test's file), else the ini's. A device that cannot be read fails that test."""
        if specs is None:
            return self.default_devices
        if not isinstance(specs, (list, tuple)) or not all(isinstance(spec, str) for spec in specs):
            pytest.fail(neutralise(f"devices= must be a list of device names or profile files, got {specs!r}"),
                        pytrace=False)
        base_dir = Path(getattr(item, "path", self.settings.rootdir)).parent
        key = (str(base_dir), tuple(specs))
        if key not in self._marker_devices:
            from .device_estimates import DeviceSpecError, resolve_devices

            problem = ""
            try:
                self._marker_devices[key] = resolve_devices(specs, self.budget, base_dir, "devices=")
            except DeviceSpecError as error:
                problem = str(error)
            if problem:  # failed outside the except block: one message, not a chain
                pytest.fail(neutralise(problem), pytrace=False)
        return self._marker_devices[key]

    def read_base(self) -> None:
        """The budget file at the merge-base of HEAD and --macc-budget-base (never rebuilt)."""
        from .budget import parse_budget
        from .gitbase import BaseRefError, budget_at_base

        settings = self.settings
        try:
            base = budget_at_base(settings.rootdir, settings.base_ref, settings.budget_path)
        except BaseRefError as error:
            raise pytest.UsageError(f"pytest-maccbudget: --macc-budget-base {settings.base_ref}: {error}") from None
        self.base_info = {"ref": base.ref, "commit": base.commit}
        branch = _github_base_branch(base.ref, base.commit)
        if branch:
            self.base_info["branch"] = branch
        label = Path(f"{base.ref}@{base.commit[:12]}:{settings.budget_path.name}")
        try:
            # no budget file at the merge-base: an empty base, so every entry reads as added
            self.base_budget = parse_budget(base.text, label) if base.text is not None else Budget(path=label, exists=False)
        except BudgetError as error:
            raise pytest.UsageError(f"pytest-maccbudget: the base budget file: {error}") from None

    def worker_payload(self) -> dict[str, Any]:
        """What an xdist worker sends the controller (JSON-able)."""
        return {
            "records": [{"measurement": r.measurement.to_json(), "failed": r.failed} for r in self.records],
            "deselected": self.deselected,
            "declared": self.declared,
            "sources": self.sources,
            "errors": self.errors,
            "cache": self.cache_stats.to_json(),
        }

    def merge_worker_payload(self, payload: dict[str, Any]) -> None:
        for entry in payload["records"]:
            measurement = Measurement.from_json(entry["measurement"])
            first = self.checked_by.setdefault(measurement.name, measurement.nodeid)
            if first != measurement.nodeid:
                self.duplicate_names.add(measurement.name)
                self.duplicate_errors.append(
                    f"model name {measurement.name!r} is checked by two tests: {first} and {measurement.nodeid}")
            self.records.append(CheckRecord(measurement, entry["failed"]))
        self.deselected += payload["deselected"]
        self.declared.update(payload["declared"])
        self.sources.update(payload["sources"])
        self.errors.extend(payload["errors"])
        self.cache_stats.merge(payload.get("cache") or {})

    def claim_name(self, name: str, nodeid: str) -> None:
        """Two tests may not check models of the same name."""
        first = self.checked_by.get(name)
        if first is not None:
            where = f"twice by {nodeid}" if first == nodeid else f"by two tests: {first} and {nodeid}"
            pytest.fail(neutralise(f"model name {name!r} is checked {where}"), pytrace=False)
        self.checked_by[name] = nodeid


def check_model(state: BudgetSession, item: pytest.Item, name: str, model: Any, inputs: Any,
                devices: Optional[Any] = None) -> None:
    state.claim_name(name, item.nodeid)
    targets = state.devices_for(item, devices)
    measurement = _as_checked(_measure(state, item, name, model, inputs, targets), state.settings)
    settings = state.settings
    comparison = compare(state.budget, measurement, strict=settings.strict, missing_fails=settings.missing_fails,
                         update_command=settings.update_command)
    failures = _failures_for_run(comparison, measurement, settings)
    state.records.append(CheckRecord(measurement, bool(failures)))
    _add_junit_properties(item, measurement, comparison)
    details = _report_section(failures, comparison) + _all_uncounted_ops(measurement)
    if details:
        item.add_report_section("call", "macc budget", neutralise("\n".join(details)))
    if failures:
        pytest.fail(neutralise(_headline(name, failures, comparison)), pytrace=False)
    _warn_if_needed(item, comparison, measurement, settings)


def _add_junit_properties(item: pytest.Item, measurement: Measurement, comparison: Comparison) -> None:
    """Per-test figures as JUnit XML <property> elements (--junit-xml)."""
    item.user_properties.append(("macc_budget.model", measurement.name))
    item.user_properties.append(("macc_budget.status", comparison.status))
    for metric, value in measurement.total.items():
        item.user_properties.append((f"macc_budget.{metric}", "unknown" if value is None else value))
    for device, figures in measurement.devices.items():
        for metric in ("latency_ms", "energy_mj"):
            value = figures.figure(metric)
            item.user_properties.append((f"macc_budget.{device}.{metric}", "unknown" if value is None else value))
    for change in comparison.metrics:
        if change.old is not None:
            prefix = f"{change.device}." if change.device else ""
            item.user_properties.append((f"macc_budget.{prefix}budget_{change.metric}", change.old))


def _headline(name: str, failures: list[str], comparison: "Comparison") -> str:
    """One line: the model, its first failure, and the layer that grew most."""
    line = failures[0] if repr(name) in failures[0] else f"model {name!r}: {failures[0]}"
    grown = next((layer for layer in comparison.layers if layer.status in (GREW, NEW)), None)
    if grown is not None and "layer" not in failures[0]:
        line += f"; most grown layer {grown.key}: {format_count(grown.old or 0)} -> {format_count(grown.new)} MACs"
    if len(failures) > 1:
        line += f" (+{len(failures) - 1} more below)"
    return line


def _report_section(failures: list[str], comparison: "Comparison") -> list[str]:
    table = render_layer_table(comparison)
    listed = [line for line in failures if not (table and line.startswith(LAYER_FINDING_PREFIXES))]
    lines = listed if len(failures) > 1 else []
    if table:
        lines += ([""] if lines else []) + ["layers that changed, largest change first:"] + table
    return lines


def _measure(state: BudgetSession, item: pytest.Item, name: str, model: Any, inputs: Any,
             devices: tuple["Device", ...]) -> "Measurement":
    """The model's measurement: from the cache when its computation (and the devices it is
    estimated on) did not change, else by exporting and profiling it (and then stored in the cache)."""
    from .cached_measure import cache_lookup, cache_store

    key = cache_lookup(state, model, inputs, devices)
    if key is not None and key.hit is not None:
        measurement = Measurement.from_json({**key.hit, "name": name, "nodeid": item.nodeid})
        _record_sources(state, name, model, measurement.layers)
        return measurement
    measurement = _export_and_profile(state, item, name, model, inputs, devices)
    if key is not None:
        cache_store(state, key, model, measurement)
    return measurement


def _record_sources(state: BudgetSession, name: str, model: Any, layers: Any) -> None:
    if state.wants_sources:
        from .layer_sources import layer_chains

        state.sources[name] = layer_chains(model, layers, state.recorder, state.recorder.user_code)


def _export_and_profile(state: BudgetSession, item: pytest.Item, name: str, model: Any, inputs: Any,
                        devices: tuple["Device", ...]) -> "Measurement":
    from .engine.errors import ModelError
    from .export import ONNX_FILE_EXPORTER, ExportError, InputSpecError, export_model
    from .isolation import InternalError
    from .layers import layer_keys, profile_layer_macs

    try:
        exported = state.exports.get(name)
        if exported is None:
            try:
                exported = export_model(model, inputs, name=name, workdir=state.workdir, exporter=state.settings.exporter)
            except ExportError as error:  # what the exporter warned, logged and printed goes with its failure
                if error.log:
                    item.add_report_section("call", "macc budget export", neutralise(error.log))
                raise
            if exported.log:  # warnings of the user's code: shown if the test fails (or with -rP)
                item.add_report_section("call", "macc budget export", neutralise(exported.log))
            state.exports[name] = exported
        onnx_inputs = _onnx_input_shapes(inputs) if exported.exporter == "onnx" else None
        profile = state.profiler.profile(exported.path, onnx_inputs)  # in a child process; errors name the file
        problem = _negative_counts(name, profile) or ("" if profile.runtime_layers else _computes_nothing(name))
    except (ExportError, InputSpecError, ModelError) as error:
        problem = str(error) if repr(name) in str(error) else f"model {name!r}: {error}"
    except InternalError as error:  # a bug of ours must fail this model, not the session
        problem = f"model {name!r}: {error}; please report it"
    except Exception as error:  # noqa: BLE001  (the same, from this process)
        problem = f"model {name!r}: internal error ({type(error).__name__}: {_first_line(error)}); please report it"
    if problem:  # failed outside the except block, so pytest shows one message, not a chain
        state.errors.append({"name": name, "test": item.nodeid, "message": problem})
        pytest.fail(neutralise(problem), pytrace=False)
    partial = profile.partial
    totals = profile.totals
    keys = layer_keys(profile)
    layers = profile_layer_macs(profile, keys)
    if exported.exporter != ONNX_FILE_EXPORTER:
        _record_sources(state, name, model, layers)
    return Measurement(
        name=name,
        nodeid=item.nodeid,
        inputs=exported.inputs or {k: list(v) for k, v in profile.inputs.items()},
        total={
            "macs": totals.macs,
            "flops": totals.flops,
            "params": _own_parameter_count(model, totals.params),
            "param_bytes": totals.param_bytes,
            "peak_activation_bytes": totals.peak_activation_bytes,
        },
        layers=layers,
        unknown_ops=tuple(f"{u.domain + '::' if u.domain else ''}{u.op_type} ({u.name}): {u.reason}" for u in profile.unknown),
        partial=partial,
        devices=_device_figures(profile, devices, partial and not state.settings.unknown_fails, exported.path, keys),
        upper_bounds=tuple(metric for metric in ("macs", "flops", "peak_activation_bytes")
                           if metric in getattr(totals, "upper_bounds", ())),
        bound_layers=_bound_layers(profile, keys, layers),
    )


def _bound_layers(profile: Any, keys: dict[str, str], layers: dict[str, Optional[int]]) -> tuple[str, ...]:
    """The budget keys whose MACs are upper bounds: a layer after a NonMaxSuppression, say."""
    bound = {keys[layer.name] for layer in profile.layers if "macs" in getattr(layer, "upper_bounds", ())}
    return tuple(sorted(key for key in bound if layers.get(key) is not None))


def _device_figures(profile: Any, devices: tuple["Device", ...], lower_bounds: bool, path: Path,
                    keys: dict[str, str]) -> dict[str, Any]:
    if not devices:
        return {}
    from .device_estimates import device_figures

    return device_figures(profile, devices, partial=lower_bounds, model_path=path, keys=keys)


def _as_checked(measurement: "Measurement", settings: "Settings") -> "Measurement":
    """A partial measurement counts only what could be counted. Where uncountable ops fail
    (the default), its MACs and FLOPs are unknown; where they only warn, the lower bounds are
    checked and recorded as such (a partial entry)."""
    if not measurement.partial or not settings.unknown_fails:
        return measurement
    total = {**measurement.total, "macs": None, "flops": None}
    return dataclasses.replace(measurement, total=total, partial=False)


def _negative_counts(name: str, profile: Any) -> str:
    """A count below zero can only come from a graph that declares a negative size: never recorded."""
    totals = profile.totals
    figures = {"macs": totals.macs, "flops": totals.flops, "params": totals.params, "param_bytes": totals.param_bytes,
               "peak_activation_bytes": totals.peak_activation_bytes}
    negative = [metric for metric, value in figures.items() if value is not None and value < 0]
    negative += [layer.name for layer in profile.layers if layer.macs is not None and layer.macs < 0]
    if not negative:
        return ""
    return (f"model {name!r}: its graph gives negative counts ({capped_list(negative, ', ')}): it declares a "
            "negative dimension somewhere; nothing is recorded")


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else "no message"


def _computes_nothing(name: str) -> str:
    return (f"model {name!r}: its graph computes nothing from its inputs (no layer runs at inference: the "
            "forward returns None, constants, or its input unchanged), so there is nothing to budget; "
            "return the model's real outputs from forward()")


def _own_parameter_count(model: Any, stored: Optional[int]) -> Optional[int]:
    """A torch model's parameters as its author counts them (each tensor once, tied weights
    once, the same whichever exporter ran); for any other model, what the ONNX graph stores
    (param_bytes is what the export stores in either case)."""
    from .export import parameter_count

    count = parameter_count(model)
    return count if count is not None else stored


def _onnx_input_shapes(inputs: Any) -> Any:
    """For an ONNX file given as is, `inputs` overrides its input dims: a dict by input name (a
    symbolic dim's name may map to one value), or shapes in the order of the model's inputs."""
    if inputs is None:
        return None
    from .export import parse_inputs

    if isinstance(inputs, dict):
        symbols = {str(k): v for k, v in inputs.items() if isinstance(v, int) and not isinstance(v, bool)}
        shaped = {k: v for k, v in inputs.items() if str(k) not in symbols}
        return {**symbols, **{spec.name: list(spec.shape) for spec in parse_inputs(shaped)}}
    return [list(spec.shape) for spec in parse_inputs(inputs)]


def _failures_for_run(comparison: "Comparison", measurement: "Measurement", settings: "Settings") -> list[str]:
    """Failure lines for this run: under update only limits and uncountable models fail."""
    uncounted = _uncounted_line(measurement) if measurement.unknown_ops and settings.unknown_fails else []
    if settings.update:
        over = [line + " (not recorded)" for line in comparison.failures if "> limit" in line]
        return over + [f"not recorded: {line}. {PARTIAL_HOW}" for line in uncounted]
    if comparison.status == UNKNOWN and not settings.unknown_fails:
        return []
    failures = list(comparison.failures) if comparison.failed else []
    if comparison.status == MISSING and failures:
        failures += uncounted
    return failures


def _all_uncounted_ops(measurement: "Measurement") -> list[str]:
    """Every op that could not be counted, one a line, when the one-line messages list only some."""
    ops = measurement.unknown_ops
    if len(ops) <= LIST_LIMIT:
        return []
    return ["", f"all {len(ops)} ops that could not be counted:"] + [f"  {op}" for op in ops]


def _uncounted_line(measurement: "Measurement") -> list[str]:
    ops = measurement.unknown_ops
    return [f"{plural(len(ops), 'op')} could not be counted: {capped_list(ops)}"]


def _warn_if_needed(item: pytest.Item, comparison: "Comparison", measurement: "Measurement", settings: "Settings") -> None:
    lines: list[str] = []
    if measurement.unknown_ops and not settings.unknown_fails:
        prefix = "recorded as a partial entry (lower bounds): " if settings.update else "lower bounds: "
        lines += [prefix + line for line in _uncounted_line(measurement)]
    if not settings.update and comparison.status == MISSING:
        lines += comparison.failures
    for line in lines:
        item.warn(pytest.PytestWarning(neutralise(f"macc budget: {line}")))


def _unused_entries(state: BudgetSession) -> list[str]:
    """Budget entries no test measured or declared with a marker in this run."""
    measured = {record.measurement.name for record in state.records}
    return sorted(name for name in state.budget.models if name not in measured and name not in state.declared)


def why_entries_are_kept(session: pytest.Session, state: BudgetSession) -> str:
    """Unused entries are removed only by a run of the whole suite in which no test failed or
    was skipped; otherwise the reason they were kept."""
    if not _selects_the_whole_suite(session.config, state):
        return NOT_ALL_SELECTED
    if session.testsfailed:
        return "a test failed"
    if state.skipped:
        return "a test was skipped"
    return ""


def _selects_the_whole_suite(config: pytest.Config, state: BudgetSession) -> bool:
    option = config.option
    sources = pytest.Config.ArgsSource
    from_rootdir = config.args_source == sources.TESTPATHS or (
        config.args_source == sources.INVOCATION_DIR and Path(config.invocation_params.dir) == config.rootpath)
    narrowed = any(getattr(option, name, None) for name in
                   ("keyword", "markexpr", "lf", "collectonly", "ignore", "ignore_glob", "deselect"))
    return from_rootdir and not narrowed and not state.deselected


def write_update(session: pytest.Session, state: BudgetSession) -> None:
    """Record this run's measurements. Under the budget file's lock, the file is read again and
    the measurements merged into it as it is then, so a concurrent update's entries are kept."""
    from .file_lock import LockTimeout, locked

    path = state.settings.budget_path
    try:
        with locked(path):
            _merge_into_the_file(session, state, _budget_as_it_is_now(state))
    except LockTimeout as error:
        _update_failed(session, state, f"could not update the budget file: {error}")
    except BudgetError as error:
        _update_failed(session, state, f"could not update the budget file: it changed while the tests ran and no "
                                       f"longer reads ({error})")


def _budget_as_it_is_now(state: BudgetSession) -> Budget:
    path = state.settings.budget_path
    return load_budget(path) if path.exists() or state.budget.exists else state.budget


def _merge_into_the_file(session: pytest.Session, state: BudgetSession, current: Budget) -> None:
    duplicated = state.duplicate_names  # which worker's measurement wins would depend on timing
    recordable = [r.measurement for r in state.records if not r.failed and r.measurement.name not in duplicated]
    new_only = state.settings.update_new_only
    unused = [] if new_only else _unused_entries(state)
    remove = [] if state.removal_withheld else unused
    updated, messages = update_budget(current, recordable, new_only=new_only, remove_unused=remove)
    state.update_messages = messages
    state.removed = remove
    state.update_outcomes = {r.measurement.name: _update_outcome(r, current, updated, new_only, duplicated)
                             for r in state.records}
    path = state.settings.budget_path
    if not path.exists() and not updated.models:
        return  # nothing recorded: don't create an empty budget file
    text = dump_budget(updated)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    refusal = _unwritable(path)
    if refusal:
        _update_failed(session, state, refusal)
        return
    from .atomic import remove_stale_temporaries

    remove_stale_temporaries(path)  # a killed update's leftovers (no writer runs while we hold the lock)
    try:
        write_budget(path, text)
    except OSError as error:
        _update_failed(session, state, f"could not write the budget file {path}: {error.strerror or error}")
        return
    state.written = True


def _unwritable(path: Path) -> str:
    """Why the budget file must not be replaced: a read-only file is someone's decision."""
    if path.exists() and not path.stat().st_mode & 0o222:  # by its mode: root may write anything
        return (f"the budget file {path} is read-only: not replaced (make it writable to record, "
                "e.g. chmod u+w)")
    return ""


def _update_failed(session: pytest.Session, state: BudgetSession, message: str) -> None:
    state.update_messages.append(message)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _update_outcome(record: CheckRecord, before: Budget, after: Budget, new_only: bool, duplicated: set[str]) -> str:
    name = record.measurement.name
    if name in duplicated:
        return "NOT RECORDED (name used twice)"
    uncounted = not record.measurement.partial and any(value is None for value in record.measurement.total.values())
    if record.failed or uncounted:
        over_limit = any(m.limit is not None and m.new is not None and m.new > m.limit
                         for m in compare(before, record.measurement).metrics)
        return "NOT RECORDED (over limit)" if over_limit else "NOT RECORDED (not counted)"
    old, new = before.models.get(name), after.models.get(name)
    if new is None:
        return "NOT RECORDED"
    if old is None:
        return "recorded"
    if old != new:
        return "updated"
    return "kept (new-only update)" if new_only else "unchanged"


def finish_session(session: pytest.Session, state: BudgetSession, exitstatus: int) -> None:
    """On the controller (or without xdist): flag duplicate names, then write the update."""
    if state.duplicate_errors:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    state.interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
    state.removal_withheld = why_entries_are_kept(session, state)
    if state.settings.update and not state.interrupted:
        write_update(session, state)
    if not wants_report(state.settings):
        return
    incomplete = _INCOMPLETE.get(exitstatus)
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and state.settings.shard is None:
        incomplete = "no tests were collected"  # (an empty shard of a sharded run still reports, for the merge)
    if incomplete:  # a partial report would read as "within budget" for what did not run
        state.update_messages.append(f"no report written: pytest did not complete the checks ({incomplete})")
        return
    write_reports(session, state)


_INCOMPLETE = {
    pytest.ExitCode.INTERRUPTED: "interrupted, or a collection error",
    pytest.ExitCode.INTERNAL_ERROR: "an internal error",
    pytest.ExitCode.USAGE_ERROR: "a usage error",
}


def wants_report(settings: "Settings") -> bool:
    return bool(settings.report_path or settings.json_path or settings.base_ref or _in_github_actions())


def _in_github_actions() -> bool:

    return os.environ.get("GITHUB_ACTIONS") == "true"


def write_reports(session: pytest.Session, state: BudgetSession) -> None:
    """The report as markdown and JSON files, and in GitHub Actions the step summary."""

    from .atomic import write_atomically
    from .pr_report import STEP_SUMMARY_LIMIT, build_report, dump_report, render_markdown

    settings = state.settings
    records = [r for r in state.records if r.measurement.name not in state.duplicate_names]
    state.report = build_report(
        [(r.measurement, r.failed) for r in records], state.budget,
        base_budget=state.base_budget, base=state.base_info, unused=_unused_entries(state),
        budget_file=_relative(settings.budget_path, settings.rootdir), sources=_annotation_sources(state),
        strict=settings.strict, missing_fails=settings.missing_fails, errors=state.errors, shard=settings.shard,
        update_command=settings.update_command, trends=_trends(state),
    )
    outputs = [(settings.json_path, lambda: dump_report(state.report)),
               (settings.report_path, lambda: render_markdown(state.report))]
    summary = os.environ.get("GITHUB_STEP_SUMMARY") if _in_github_actions() else None
    try:
        for path, render in outputs:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_atomically(path, render(), durable=False)  # never a half-written report
        if summary:
            with open(summary, "a", encoding="utf-8") as handle:
                handle.write(render_markdown(state.report, limit=STEP_SUMMARY_LIMIT))
    except OSError as error:
        state.update_messages.append(f"could not write the report: {error}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


TREND_CHANGES = 5  # recorded changes of a model's budget shown in the report's trend line
TREND_COMMITS = 30  # newest versions of the budget file read for it (each is parsed: bounds the cost)


def _trends(state: BudgetSession) -> dict[str, str]:
    """Per model the report details, how its recorded MACs moved on the base branch lately:
    "MACs 31.3 M → 32.1 M → 33.0 M over the last 3 changes (since a1b2c3d, 2026-11-02)". Only
    what the clone's history holds (a shallow clone may hold one change: then nothing)."""
    if state.base_info is None:
        return {}
    from .history import HistoryError, budget_history, trend_phrase

    names = sorted({record.measurement.name for record in state.records})
    try:
        history = budget_history(state.settings.rootdir, state.settings.budget_path, rev=state.base_info["commit"],
                                 models=names, last=TREND_CHANGES, max_commits=TREND_COMMITS)
    except HistoryError:  # no history to tell: the report still has base, budget and this commit
        return {}
    return {name: trend_phrase(model.points) for name, model in history.models.items() if len(model.points) >= 2}


def _annotation_sources(state: BudgetSession) -> dict[str, dict[str, dict[str, Any]]]:
    """Per model and layer, the one line an annotation goes on: a line this branch changed in the
    code that builds the layer when a base is known, else the innermost line that builds it."""
    from .layer_sources import choose_location

    changed: dict[str, set[int]] = {}
    if state.base_info is not None:
        from .gitdiff import changed_lines

        files = {location["file"] for chains in state.sources.values() for chain in chains.values() for location in chain}
        changed = changed_lines(state.settings.rootdir, state.base_info["commit"], files)
    return {name: {key: choose_location(chain, changed) for key, chain in chains.items() if chain}
            for name, chains in state.sources.items()}


def annotation_lines(state: BudgetSession) -> list[str]:
    """GitHub `::error` workflow commands for the regressions (GitHub Actions only)."""
    if state.report is None or not _in_github_actions() or state.settings.update:
        return []  # an update records growth: nothing for a reviewer to act on
    from .action.annotations import annotations
    from .budget import model_lines

    import copy

    # the runner reads an annotation's file relative to the repository (GITHUB_WORKSPACE), while
    # the report's paths are relative to the rootdir, which may be a subdirectory (examples/)
    root = state.settings.rootdir.resolve()
    workspace = Path(os.environ.get("GITHUB_WORKSPACE") or root).resolve()

    def in_workspace(path: Path) -> str:
        return Path(os.path.relpath(path.resolve(), workspace)).as_posix()

    report = copy.deepcopy(state.report)
    for model in report["models"]:
        for location in model.get("sources", {}).values():
            location["file"] = in_workspace(root / location["file"])
    path = state.settings.budget_path
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    return annotations(report, budget_path=in_workspace(path), budget_lines=model_lines(text))


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _cache_lines(state: BudgetSession) -> list[str]:
    """What the measurement cache saved, when it was used."""
    stats = state.cache_stats
    looked_up = stats.hits + stats.misses
    if state.cache is None or not looked_up:
        return []
    line = (f"measurement cache: {stats.hits} of {plural(looked_up, 'torch model')} unchanged since the last run, "
            "not exported again")
    if stats.stale:
        reason, count = max(stats.stale.items(), key=lambda item: item[1])
        line += f"; {count} exported again because {reason}"
    return [line + " (--macc-budget-no-cache to bypass)"]


def summary_lines(state: BudgetSession) -> list[str]:
    settings = state.settings
    comparisons = [compare(state.budget, r.measurement, strict=settings.strict, missing_fails=settings.missing_fails,
                           update_command=settings.update_command)
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
        messages=state.update_messages + state.duplicate_errors + _cache_lines(state),
        suite_update_command=settings.suite_update_command,
        not_measured=sorted({error["name"] for error in state.errors}),
        base=(state.base_info["ref"], state.base_budget, state.budget)
        if state.base_info is not None and state.base_budget is not None else None,
    )
    return [neutralise(line) for line in lines]  # names and messages may hold "::error::"
