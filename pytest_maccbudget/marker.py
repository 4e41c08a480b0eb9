"""The `macc_budget` marker: its one spec (which also writes its help line), its validation at
collection, and the model a marked test gives. pytest and the standard library only."""
from __future__ import annotations

import functools
import inspect
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

MARKER = "macc_budget"
CAPTURED = pytest.StashKey[Any]()  # a marked test's return value


def macc_budget(name: str, inputs: Optional[object] = None, model: Optional[object] = None,
                devices: Optional[object] = None) -> None:
    """check this model's MACs, FLOPs, parameters and peak activation memory against the budget
    file under --macc-budget. The model is the test's return value, or model= (a path to an .onnx
    file or a zero-argument factory). inputs: shapes like [(1, 3, 224, 224)], (shape, dtype) pairs,
    example tensors, or a dict of them by input name. devices: device profiles to estimate its
    latency and energy on, instead of ini macc_budget_devices ([] for none)."""


MARKER_KWARGS = tuple(inspect.signature(macc_budget).parameters)[1:]


def marker_help() -> str:
    """The line `pytest --markers` shows, from the spec's signature and docstring."""
    parameters = inspect.signature(macc_budget).parameters.values()
    arguments = ", ".join(p.name if p.default is p.empty else f"{p.name}={p.default!r}" for p in parameters)
    return f"{MARKER}({arguments}): {' '.join((inspect.getdoc(macc_budget) or '').split())}"


def checks_a_model(item: pytest.Item) -> bool:
    return item.get_closest_marker(MARKER) is not None or MARKER in getattr(item, "fixturenames", ())


def validate_marker(item: pytest.Item, marker: pytest.Mark) -> str:
    where = f"{item.nodeid}: @pytest.mark.{MARKER}"
    if len(marker.args) != 1 or not isinstance(marker.args[0], str) or not marker.args[0].strip():
        raise MarkerError(f"{where} needs exactly one positional argument, the model's name, e.g. "
                                f"@pytest.mark.{MARKER}(\"resnet18\", inputs=[(1, 3, 224, 224)])")
    unknown = sorted(set(marker.kwargs) - set(MARKER_KWARGS))
    if unknown:
        raise MarkerError(f"{where}: unknown keyword argument(s) {', '.join(unknown)}; allowed: {', '.join(MARKER_KWARGS)}")
    model = marker.kwargs.get("model")
    if model is not None and not (callable(model) or looks_like_onnx_path(model)):
        raise MarkerError(f"{where}: model= must be a path to an .onnx file or a zero-argument factory, got {model!r}")
    devices = marker.kwargs.get("devices")
    if devices is not None and not (isinstance(devices, (list, tuple)) and all(isinstance(d, str) for d in devices)):
        raise MarkerError(f"{where}: devices= must be a list of device names or profile files, got {devices!r}")
    if marker.kwargs.get("inputs") is not None:
        from .export import InputSpecError, parse_inputs

        try:
            parse_inputs(marker.kwargs["inputs"])
        except InputSpecError as error:
            raise MarkerError(f"{where}: {error}") from None
    return marker.args[0]


class MarkerError(pytest.Collector.CollectError):
    """A misused marker: reported as a collection error with just this message."""


def looks_like_onnx_path(value: object) -> bool:
    return isinstance(value, (str, Path)) and str(value).endswith(".onnx")


def capture_return_value(item: pytest.Function, test_function: Callable[..., Any]) -> Callable[..., None]:
    """The marked test's return value is the model: keep it, and return None to pytest."""
    @functools.wraps(test_function)
    def capture(*args: Any, **kwargs: Any) -> None:
        item.stash[CAPTURED] = test_function(*args, **kwargs)
    return capture


def marked_model(item: pytest.Function, marker: pytest.Mark) -> Any:
    returned = item.stash.get(CAPTURED, None)
    given = marker.kwargs.get("model")
    where = f"@pytest.mark.{MARKER}({marker.args[0]!r})"
    if given is not None and returned is not None:
        pytest.fail(f"{where}: the test returned a model and model= is given too; use one", pytrace=False)
    if given is None:
        if returned is None:
            pytest.fail(f"{where}: the test returned nothing; return the model, or give model=", pytrace=False)
        return returned
    if looks_like_onnx_path(given):
        path = Path(given)
        return path if path.is_absolute() else Path(item.path).parent / path
    return given()
