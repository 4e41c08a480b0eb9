"""Independent cross-check of the dot-product layers against torch's own counter.

Hypothesis draws random Conv (1-D/2-D/3-D), ConvTranspose (1-D/2-D), Linear and batched
matmul shapes. Each case is built as a torch module, exported with the TorchScript exporter
(`dynamo=False`), profiled by the engine, and compared with
`torch.utils.flop_counter.FlopCounterMode` on the same forward pass:

    engine total MACs x 2 == FlopCounterMode total

(FlopCounterMode counts 2 FLOPs per multiply-accumulate, and for a transposed conv it uses
the same input-based rule as the contract: N x Cin x prod(in spatial) x Cout/g x prod(k).)

The engine's FLOPs are checked against the contract's closed form, computed here from torch
tensors only (no engine code):
    Conv / Linear / MatMul:  2 x MACs - outputs (+ outputs when a bias is added)
    ConvTranspose:           2 x MACs - touched (+ outputs when a bias is added)
where `touched` is the number of output elements that receive at least one product (all of
them unless stride leaves gaps). It is measured by running the transposed conv on all-ones
input and weight: every product is positive, so an output is non-zero iff it was touched.

Known gap of the oracle, not of the engine: FlopCounterMode has no formula for aten.mv and
aten.dot, so a matmul with a 1-D right operand counts 0 there. Those shapes are checked
against the closed form numel(out) x K in a separate property.
"""
from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import onnx
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from pytest_maccbudget import profile_model

# Small shapes: each example exports and profiles in a few milliseconds. The whole file
# (about 520 examples plus two dynamo exports) runs in well under a minute on 2 cores.
PROPERTY = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,  # the same examples on every run (CI reproducibility)
    database=None,  # write no .hypothesis/ directory into the checkout
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)


@dataclass
class Case:
    module: torch.nn.Module
    args: tuple[torch.Tensor, ...]
    bias: bool  # the layer adds a bias: + outputs FLOPs
    transposed: bool = False
    touched: Optional[int] = None  # ConvTranspose: outputs receiving >= 1 product


@dataclass
class Counts:
    torch_flops: int
    output_numel: int
    engine_macs: int
    engine_flops: int
    engine_params: int


def _export(module: torch.nn.Module, args: tuple[torch.Tensor, ...], dynamo: bool) -> onnx.ModelProto:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in torch >= 2.9 and says so on every call.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        if dynamo:
            program = torch.onnx.export(module, args, dynamo=True, verbose=False)
            return program.model_proto
        torch.onnx.export(module, args, buffer, dynamo=False)
    return onnx.load_from_string(buffer.getvalue())


def _run(case: Case, dynamo: bool = False) -> Counts:
    module = case.module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # padding='same' with an even kernel warns that it pads a copy of the input
        warnings.simplefilter("ignore", UserWarning)
        with FlopCounterMode(display=False) as counter:
            out = module(*case.args)
    model = _export(module, case.args, dynamo)
    profile = profile_model(model)
    assert profile.unknown == (), profile.unknown
    assert profile.coverage == 1.0
    return Counts(
        torch_flops=counter.get_total_flops(),
        output_numel=out.numel(),
        engine_macs=profile.totals.macs,
        engine_flops=profile.totals.flops,
        engine_params=profile.totals.params,
    )


def _check(case: Case, dynamo: bool = False) -> None:
    counts = _run(case, dynamo)
    # MACs: torch's FlopCounterMode is the independent oracle (2 FLOPs per MAC).
    assert counts.engine_macs * 2 == counts.torch_flops, (
        f"engine {counts.engine_macs} MACs, FlopCounterMode {counts.torch_flops} FLOPs "
        f"(= {counts.torch_flops / 2:g} MACs)"
    )
    # FLOPs: the contract's closed form, from torch's output shape.
    outputs = counts.output_numel
    adds_saved = case.touched if case.transposed else outputs
    expected_flops = 2 * counts.engine_macs - adds_saved + (outputs if case.bias else 0)
    assert counts.engine_flops == expected_flops
    # Parameters: every weight of the module, each once.
    assert counts.engine_params == sum(p.numel() for p in case.module.parameters())


# --- strategies -----------------------------------------------------------------------------

CONV = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}
CONV_T = {1: torch.nn.ConvTranspose1d, 2: torch.nn.ConvTranspose2d}


@st.composite
def conv_cases(draw: st.DrawFn) -> Case:
    torch.manual_seed(draw(st.integers(0, 2**16)))  # weights and inputs reproducible too
    dim = draw(st.sampled_from([1, 2, 3]))
    groups = draw(st.integers(1, 3))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 3))
    kernel = [draw(st.integers(1, 3)) for _ in range(dim)]
    dilation = [draw(st.integers(1, 2)) for _ in range(dim)]
    same = draw(st.booleans()) and draw(st.booleans())  # 'same' padding in about 1/4 of cases
    stride = [1] * dim if same else [draw(st.integers(1, 3)) for _ in range(dim)]
    padding = [0] * dim if same else [draw(st.integers(0, 2)) for _ in range(dim)]
    max_extra = 6 if dim < 3 else 3
    size = []
    for axis in range(dim):
        extent = dilation[axis] * (kernel[axis] - 1) + 1
        smallest = max(1, extent - 2 * padding[axis])  # at least one output position
        size.append(draw(st.integers(smallest, smallest + max_extra)))
    batch = draw(st.integers(1, 2))
    bias = draw(st.booleans())
    module = CONV[dim](cin, cout, kernel, stride=stride, padding="same" if same else padding,
                       dilation=dilation, groups=groups, bias=bias)
    return Case(module, (torch.randn(batch, cin, *size),), bias)


def _touched_outputs(module: torch.nn.Module, x: torch.Tensor) -> int:
    """Output elements of a transposed conv that receive at least one product (torch only)."""
    ones = type(module)(
        module.in_channels, module.out_channels, module.kernel_size, stride=module.stride,
        padding=module.padding, output_padding=module.output_padding, groups=module.groups,
        bias=False, dilation=module.dilation,
    )
    with torch.no_grad():
        ones.weight.fill_(1.0)
        return int((ones(torch.ones_like(x)) != 0).sum())


@st.composite
def conv_transpose_cases(draw: st.DrawFn) -> Case:
    torch.manual_seed(draw(st.integers(0, 2**16)))
    dim = draw(st.sampled_from([1, 2]))
    groups = draw(st.integers(1, 3))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 3))
    kernel, stride, dilation, padding, output_padding, size = [], [], [], [], [], []
    for _ in range(dim):
        k, s, d = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
        n = draw(st.integers(1, 6))
        op = draw(st.integers(0, max(s, d) - 1))  # torch: output_padding < max(stride, dilation)
        # keep at least one output: (n - 1) s - 2 p + d (k - 1) + op + 1 >= 1
        p = draw(st.integers(0, min(2, ((n - 1) * s + d * (k - 1) + op) // 2)))
        for values, value in ((kernel, k), (stride, s), (dilation, d), (padding, p), (output_padding, op), (size, n)):
            values.append(value)
    batch = draw(st.integers(1, 2))
    bias = draw(st.booleans())
    module = CONV_T[dim](cin, cout, kernel, stride=stride, padding=padding, output_padding=output_padding,
                         groups=groups, bias=bias, dilation=dilation)
    x = torch.randn(batch, cin, *size)
    return Case(module, (x,), bias, transposed=True, touched=_touched_outputs(module, x))


@st.composite
def linear_cases(draw: st.DrawFn) -> Case:
    torch.manual_seed(draw(st.integers(0, 2**16)))
    in_features = draw(st.integers(1, 16))
    out_features = draw(st.integers(1, 16))
    lead = draw(st.lists(st.integers(1, 4), min_size=0, max_size=3))  # () is a 1-D input
    bias = draw(st.booleans())
    module = torch.nn.Linear(in_features, out_features, bias=bias)
    return Case(module, (torch.randn(*lead, in_features),), bias)


class BatchedMatMul(torch.nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.fn(a, b)


def _broadcast_side(draw: st.DrawFn, batch: Sequence[int]) -> list[int]:
    """A batch shape that broadcasts to `batch`: leading dims may be dropped, any dim may be 1."""
    drop = draw(st.integers(0, len(batch)))
    return [1 if draw(st.booleans()) else extent for extent in batch[drop:]]


@st.composite
def matmul_cases(draw: st.DrawFn) -> Case:
    torch.manual_seed(draw(st.integers(0, 2**16)))
    m, k, n = draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    if draw(st.booleans()):
        b = draw(st.integers(1, 4))
        module = BatchedMatMul(torch.bmm)
        return Case(module, (torch.randn(b, m, k), torch.randn(b, k, n)), bias=False)
    batch = draw(st.lists(st.integers(1, 3), min_size=0, max_size=3))
    a_batch, b_batch = _broadcast_side(draw, batch), _broadcast_side(draw, batch)
    a_shape = [*a_batch, m, k]
    # a 1-D left operand is fine for FlopCounterMode when the right one is a matrix (aten.mm)
    if not a_batch and draw(st.integers(0, 3)) == 0:
        a_shape = [k]
    return Case(BatchedMatMul(torch.matmul), (torch.randn(*a_shape), torch.randn(*b_batch, k, n)), bias=False)


# --- properties ---------------------------------------------------------------------------


@PROPERTY
@given(conv_cases())
def test_conv_macs_match_torch_flop_counter(case: Case) -> None:
    conv = case.module
    event(f"{len(conv.kernel_size)}-D, groups={conv.groups}, padding={'same' if conv.padding == 'same' else 'explicit'}")
    _check(case)


@PROPERTY
@given(conv_transpose_cases())
def test_conv_transpose_macs_match_torch_flop_counter(case: Case) -> None:
    conv = case.module
    out = conv(*case.args)
    event(f"{len(conv.kernel_size)}-D, " + ("stride leaves untouched outputs" if case.touched < out.numel() else "every output touched"))
    event("output_padding > 0" if any(conv.output_padding) else "output_padding = 0")
    _check(case)


@settings(PROPERTY, max_examples=150)
@given(linear_cases())
def test_linear_macs_match_torch_flop_counter(case: Case) -> None:
    _check(case)


@settings(PROPERTY, max_examples=150)
@given(matmul_cases())
def test_batched_matmul_macs_match_torch_flop_counter(case: Case) -> None:
    _check(case)


@settings(PROPERTY, max_examples=20)
@given(
    a=st.lists(st.integers(1, 4), min_size=1, max_size=4),
    k=st.integers(1, 6),
)
def test_matmul_with_vector_right_operand_closed_form(a: list[int], k: int) -> None:
    """x @ v with v 1-D: torch dispatches to aten.mv / aten.dot, which FlopCounterMode does
    not count (it reports 0), so the oracle here is the closed form numel(out) x K."""
    x, v = torch.randn(*a[:-1], k), torch.randn(k)
    counts = _run(Case(BatchedMatMul(torch.matmul), (x, v), bias=False))
    outputs = math.prod(a[:-1])
    assert counts.output_numel == outputs
    assert counts.engine_macs == outputs * k
    assert counts.engine_flops == (2 * k - 1) * outputs


def test_transposed_conv_rule_is_input_based() -> None:
    """field-notes: ConvTranspose 64 -> 32, k4, s2 on 28x28 is 25,690,112 MACs (input-based:
    28 x 28 x 64 x 32 x 16), not onnx-tool's output-based 51,380,224."""
    module = torch.nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1)
    x = torch.randn(1, 64, 28, 28)
    counts = _run(Case(module, (x,), bias=True, transposed=True))
    assert counts.engine_macs == 28 * 28 * 64 * 32 * 4 * 4 == 25_690_112
    assert counts.torch_flops == 2 * 25_690_112


# --- the dynamo exporter (about 2.5 s per export) -----------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    [
        pytest.param(lambda: Case(torch.nn.Conv2d(6, 8, 3, stride=2, padding=1, groups=2), (torch.randn(2, 6, 9, 9),), bias=True), id="conv2d"),
        pytest.param(lambda: Case(torch.nn.Linear(12, 5), (torch.randn(3, 4, 12),), bias=True), id="linear-3d"),
    ],
)
def test_dynamo_export_matches_torch_flop_counter(case: Callable[[], Case]) -> None:
    torch.manual_seed(0)
    _check(case(), dynamo=True)
