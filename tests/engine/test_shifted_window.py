"""A Swin-style shifted-window block, exported with the TorchScript exporter: the window padding
is computed from runtime shapes (Shape -> Gather -> Mod -> Sub), so every block's shapes depend
on the previous block's shape arithmetic. The engine must resolve all of it, exactly: its MACs
are the matmuls torch's own counter sees (FlopCounterMode counts 2 FLOPs per MAC)."""
from __future__ import annotations

import io
import warnings

import onnx
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from pytest_maccbudget import profile_model


class ShiftedWindowBlock(nn.Module):
    """Window attention over [B, H, W, C] with the window padding computed from the input's
    runtime size, and a cyclic shift (torch.roll) on every other block, as torchvision's Swin."""

    def __init__(self, dim: int, heads: int, window: int, shift: int) -> None:
        super().__init__()
        self.heads, self.window, self.shift = heads, window, shift
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, channels = x.shape
        w = self.window
        h = F.pad(self.norm(x), (0, 0, 0, (w - width % w) % w, 0, (w - height % w) % w))
        _, padded_h, padded_w, _ = h.shape
        if self.shift:
            h = torch.roll(h, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = h.view(batch, padded_h // w, w, padded_w // w, w, channels).permute(0, 1, 3, 2, 4, 5)
        windows = windows.reshape(-1, w * w, channels)
        count = windows.shape[0]
        qkv = self.qkv(windows).reshape(count, w * w, 3, self.heads, channels // self.heads).permute(2, 0, 3, 1, 4)
        scores = (qkv[0] @ qkv[1].transpose(-2, -1)) * (channels // self.heads) ** -0.5
        attended = (scores.softmax(-1) @ qkv[2]).transpose(1, 2).reshape(count, w * w, channels)
        h = self.proj(attended).view(batch, padded_h // w, padded_w // w, w, w, channels)
        h = h.permute(0, 1, 3, 2, 4, 5).reshape(batch, padded_h, padded_w, channels)
        if self.shift:
            h = torch.roll(h, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + h[:, :height, :width, :].contiguous()
        return x + self.mlp(x)


def _blocks(depth: int) -> nn.Module:
    return nn.Sequential(*[ShiftedWindowBlock(16, 2, 4, 2 if i % 2 else 0) for i in range(depth)]).eval()


def _export(model: nn.Module, example: torch.Tensor) -> onnx.ModelProto:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated and says so
        torch.onnx.export(model, (example,), buffer, dynamo=False, opset_version=17)
    return onnx.load_from_string(buffer.getvalue())


def test_shifted_window_blocks_from_torchscript_are_exact() -> None:
    torch.manual_seed(0)
    model, example = _blocks(6), torch.randn(1, 10, 10, 16)  # 10 x 10: padded to 12 x 12 for 4 x 4 windows
    with FlopCounterMode(display=False) as counter:
        model(example)
    profile = profile_model(_export(model, example))
    assert profile.unknown == () and not profile.partial and not profile.bounded
    assert 2 * profile.totals.macs == counter.get_total_flops()
    # the closed form: per block, 9 windows of 16 tokens; qkv 16 -> 48, proj 16 -> 16 on 144 padded
    # tokens; attention 2 heads x 16 x 16 x 8 twice per window; the MLP 16 -> 32 -> 16 on 100 tokens
    per_block = 144 * 16 * 48 + 144 * 16 * 16 + 9 * 2 * 2 * 16 * 16 * 8 + 100 * (16 * 32 + 32 * 16)
    assert profile.totals.macs == 6 * per_block
