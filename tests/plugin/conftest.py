"""A throw-away pytest project for each plugin test, run by pytest in a subprocess.

The project's model is a tiny ONNX net written with onnx.helper (`netlib.write_net`):

    x [1, 3, 8, 8] -> conv (Conv 3->4, 3x3, pads 1, bias) -> flatten -> fc (Gemm 256->width, bias) -> y

Its costs, worked out by hand (docs/counting.md), are in `net_totals` and `net_layers`.
`width` makes one layer, `fc`, grow or shrink. `custom_op=True` appends an op of a custom domain
that the engine has no rule for.
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

BUDGET_FILE = "macc_budget.yaml"
UPDATE_COMMAND = "pytest --macc-budget-update"
RUN_TIMEOUT = 300  # seconds for one pytest subprocess; a hang must not stall the suite

# Every run: no cache dir to clean up, and none of the unrelated plugins that may be installed:
# hypothesis' plugin costs ~0.6 s a process (xdist workers included), pytest-benchmark warns
# under xdist. Blocking a plugin that is not installed is not an error.
BASE_ARGS = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark")

XDIST_MODES = [
    pytest.param((), id="no-xdist-args"),
    pytest.param(("-n", "0"), id="n0"),
    pytest.param(("-n", "2"), id="n2"),
]

# --- the hand-computed costs of netlib's net ---------------------------------------------

INPUT_SHAPE = [1, 3, 8, 8]
CONV_OUT = 4 * 8 * 8  # 4 channels of 8x8 (3x3 kernel, pads 1, stride 1)
CONV_MACS = CONV_OUT * 3 * 3 * 3  # each output: a dot product over 3 channels x 3x3 = 6912
CONV_PARAMS = 4 * 3 * 3 * 3 + 4  # weight + bias = 112
INPUT_BYTES = 1 * 3 * 8 * 8 * 4  # float32 = 768


def fc_macs(width: int) -> int:
    """Gemm 256 -> width: one dot product of length 256 per output."""
    return width * CONV_OUT


def net_totals(width: int = 10) -> dict[str, int]:
    macs = CONV_MACS + fc_macs(width)
    params = CONV_PARAMS + width * CONV_OUT + width
    # Peak: while conv runs, its input (768 B) and its output (1024 B) are both live; flatten
    # aliases the conv output, and conv output + fc output (4 * width B) is smaller for width < 192.
    return {
        "macs": macs,
        # a dot product of length K is K multiplies and K - 1 adds, the bias one add per output:
        # 2 x MACs - outputs + outputs for both layers
        "flops": 2 * macs,
        "params": params,
        "param_bytes": 4 * params,
        "peak_activation_bytes": INPUT_BYTES + CONV_OUT * 4,
    }


def net_layers(width: int = 10) -> dict[str, dict[str, int]]:
    return {"conv": {"macs": CONV_MACS}, "fc": {"macs": fc_macs(width)}}


def net_entry(width: int = 10) -> dict[str, Any]:
    """The budget entry `--macc-budget-update` records for the net, as YAML reads it."""
    return {"inputs": {"x": INPUT_SHAPE}, "total": net_totals(width), "layers": net_layers(width)}


BUDGET_HEADER = (
    "# Model cost budget for pytest-maccbudget, checked by `pytest --macc-budget`.",
    "# inputs, total and layers are recorded by `pytest --macc-budget-update`;",
    "# limit and tolerance are yours: an update never changes them.",
    "# Numbers may carry units: 1.2G, 350M, 1,234 (counts); 24MB, 1.5GiB (bytes).",
)


def recorded_budget(**widths: int) -> str:
    """The budget file, byte for byte, that an update writes for nets of these widths by name."""
    lines = [*BUDGET_HEADER, "version: 1", "rules: 6", "models:"]
    for name in sorted(widths):
        totals = net_totals(widths[name])
        lines += [
            f"  {name}:",
            "    inputs: {x: [1, 3, 8, 8]}",
            f"    total: {{macs: {totals['macs']}, flops: {totals['flops']}, params: {totals['params']},",
            f"            param_bytes: {totals['param_bytes']}, "
            f"peak_activation_bytes: {totals['peak_activation_bytes']}}}",
            "    layers:",
            f"      conv: {{macs: {CONV_MACS}}}",
            f"      fc: {{macs: {fc_macs(widths[name])}}}",
        ]
    return "\n".join(lines) + "\n"


NETLIB = '''
"""Writes the tiny test net as an ONNX file (onnx is imported only when a net is written)."""
from pathlib import Path


def write_net(path, width=10, custom_op=False):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "conv.weight"),
        numpy_helper.from_array(np.zeros(4, np.float32), "conv.bias"),
        numpy_helper.from_array(rng.standard_normal((width, 256)).astype(np.float32), "fc.weight"),
        numpy_helper.from_array(np.zeros(width, np.float32), "fc.bias"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["c"], name="conv",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Flatten", ["c"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["g" if custom_op else "y"], name="fc", transB=1),
    ]
    opsets = [helper.make_opsetid("", 17)]
    if custom_op:
        nodes.append(helper.make_node("Frobnicate", ["g"], ["y"], name="frob", domain="com.example"))
        opsets.append(helper.make_opsetid("com.example", 1))
    graph = helper.make_graph(
        nodes, "net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        weights,
    )
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))
'''


def net_test_source(name: str, width: int = 10, custom_op: bool = False) -> str:
    """A test that writes `<name>.onnx` and marks it as model `name` (model= path)."""
    return textwrap.dedent(f"""
        from pathlib import Path

        import pytest
        from netlib import write_net


        @pytest.mark.macc_budget({name!r}, model={name + ".onnx"!r})
        def test_{name}():
            write_net(Path(__file__).with_name({name + ".onnx"!r}), width={width}, custom_op={custom_op})
    """)


def run_pytest(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """pytest in a subprocess, in the current directory (xdist and a fresh plugin need one)."""
    return pytester.runpytest_subprocess(*BASE_ARGS, *args, timeout=RUN_TIMEOUT)


class Project:
    """The generated project in `pytester.path`, run in one xdist mode."""

    def __init__(self, pytester: pytest.Pytester, xdist_args: tuple[str, ...]) -> None:
        self.pytester = pytester
        self.xdist_args = tuple(xdist_args)
        self.path = pytester.path
        self.ini()
        pytester.makepyfile(netlib=NETLIB)

    def ini(self, *lines: str) -> None:
        """The project's pytest.ini (it also pins the rootdir to the project)."""
        self.pytester.makeini("\n".join(["[pytest]", *lines]) + "\n")

    def add_net_test(self, name: str = "net", width: int = 10, custom_op: bool = False) -> None:
        self.pytester.makepyfile(**{f"test_{name}": net_test_source(name, width, custom_op)})

    def add_test(self, filename: str, source: str) -> None:
        self.pytester.makepyfile(**{filename: textwrap.dedent(source)})

    def run(self, *args: str) -> pytest.RunResult:
        return run_pytest(self.pytester, *self.xdist_args, *args)

    def record(self, *args: str) -> pytest.RunResult:
        result = self.run("--macc-budget-update", *args)
        assert result.ret == pytest.ExitCode.OK, result.stdout.str()
        return result

    def file(self, name: str = BUDGET_FILE) -> Path:
        return self.path / name

    def budget(self, name: str = BUDGET_FILE) -> dict[str, Any]:
        return yaml.safe_load(self.file(name).read_text(encoding="utf-8"))

    def budget_bytes(self, name: str = BUDGET_FILE) -> bytes:
        return self.file(name).read_bytes()

    def edit_budget(self, old: str, new: str, name: str = BUDGET_FILE) -> None:
        """Edit the budget file by hand, as a user would."""
        text = self.file(name).read_text(encoding="utf-8")
        assert old in text, text
        self.file(name).write_text(text.replace(old, new, 1), encoding="utf-8")

    def write_budget(self, text: str, name: str = BUDGET_FILE) -> None:
        self.file(name).write_text(textwrap.dedent(text), encoding="utf-8")

    def write_recorded(self, **widths: int) -> None:
        """The budget file as an update would have written it for these nets (saves a run)."""
        self.write_budget(recorded_budget(**widths))


@pytest.fixture(params=XDIST_MODES)
def xdist_args(request: pytest.FixtureRequest) -> tuple[str, ...]:
    return request.param


@pytest.fixture
def subprocess_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment of the generated project's pytest runs."""
    # Test files are rewritten between runs within the same second; a cached .pyc (keyed on
    # mtime and size) could hide the change.
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    # When this suite itself runs under xdist, the inner run must not look like a worker's.
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID",
                 "PYTEST_XDIST_AUTO_NUM_WORKERS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def project(pytester: pytest.Pytester, xdist_args: tuple[str, ...], subprocess_env: None) -> Project:
    return Project(pytester, xdist_args)
