"""Models built in code for the benchmarks and the cross-exporter tests (no torchvision: it does
not import here).

Six architectures that exercise what the exporters treat differently: plain convs, depthwise
convs with BatchNorm (folded into the conv), residual blocks with BatchNorm and downsampling,
an `nn.TransformerEncoder` over token embeddings, an LSTM, and a UNet that upsamples with
ConvTranspose. Each is small enough to export in well under a second with the TorchScript
exporter. `LARGE_MODELS` adds a BERT-base-sized encoder, where writing 435 MB of weights, not
tracing, is what an export costs.

`build(name)` gives the model with trained-like weights: every parameter and BatchNorm
statistic drawn from a seeded generator. Untrained models would mislead a comparison of
exporters: both merge byte-identical initializers (the deep-copied layers of a fresh
`nn.TransformerEncoder` become one set of weights), and the dynamo exporter drops the all-zero
biases that folding a fresh BatchNorm gives.

    from benchmarks.models import BENCHMARK_MODELS, build
    for name, spec in BENCHMARK_MODELS.items():
        model = build(name)          # eval mode, seeded weights
        ...export_model(model, spec.inputs, ...)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

SEED = 0


# --- a small CNN ----------------------------------------------------------------------------


class SmallCNN(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(64, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(images)).flatten(1))


# --- MobileNetV2-like: inverted residuals with depthwise convs --------------------------------


def conv_bn_relu6(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.expand = conv_bn_relu6(cin, hidden, 1) if expand != 1 else nn.Identity()
        self.depthwise = conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden)
        self.project = nn.Sequential(nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


MOBILENET_BLOCKS = ((16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (64, 2, 6), (64, 1, 6))


class MobileNetLike(nn.Module):
    def __init__(self, classes: int = 10, last_channels: int = 256) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn_relu6(3, 16, 3, stride=2)]
        cin = 16
        for cout, stride, expand in MOBILENET_BLOCKS:
            layers.append(InvertedResidual(cin, cout, stride, expand))
            cin = cout
        layers.append(conv_bn_relu6(cin, last_channels, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last_channels, classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images).mean((2, 3)))


# --- ResNet-like: basic blocks with BatchNorm and 1x1 downsampling -----------------------------


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + self.downsample(x))


class ResNetLike(nn.Module):
    def __init__(self, widths: tuple[int, ...] = (32, 64, 128), classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages = []
        cin = widths[0]
        for index, width in enumerate(widths):
            stride = 1 if index == 0 else 2
            stages.append(nn.Sequential(BasicBlock(cin, width, stride), BasicBlock(width, width, 1)))
            cin = width
        self.layers = nn.Sequential(*stages)
        self.fc = nn.Linear(cin, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        return self.fc(self.layers(x).mean((2, 3)))


# --- a transformer encoder over token embeddings -----------------------------------------------


class TokenEncoder(nn.Module):
    def __init__(self, vocab: int = 1000, tokens: int = 64, width: int = 128, heads: int = 4,
                 feedforward: int = 256, layers: int = 4, classes: int = 10) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Parameter(torch.zeros(1, tokens, width))
        layer = nn.TransformerEncoderLayer(width, heads, feedforward, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(width, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.position[:, : tokens.shape[1]]
        return self.head(self.encoder(x))


# --- an LSTM over feature frames ---------------------------------------------------------------


class LSTMTagger(nn.Module):
    def __init__(self, features: int = 40, hidden: int = 128, layers: int = 2, classes: int = 12) -> None:
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        output, _ = self.lstm(frames)
        return self.head(output[:, -1])


# --- a UNet that upsamples with ConvTranspose ----------------------------------------------------


def double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    def __init__(self, width: int = 16, classes: int = 2) -> None:
        super().__init__()
        self.enc1 = double_conv(3, width)
        self.enc2 = double_conv(width, 2 * width)
        self.bottleneck = double_conv(2 * width, 4 * width)
        self.pool = nn.MaxPool2d(2)
        self.up2 = nn.ConvTranspose2d(4 * width, 2 * width, 2, stride=2)
        self.dec2 = double_conv(4 * width, 2 * width)
        self.up1 = nn.ConvTranspose2d(2 * width, width, 2, stride=2)
        self.dec1 = double_conv(2 * width, width)
        self.head = nn.Conv2d(width, classes, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        skip1 = self.enc1(images)
        skip2 = self.enc2(self.pool(skip1))
        x = self.bottleneck(self.pool(skip2))
        x = self.dec2(torch.cat([self.up2(x), skip2], dim=1))
        x = self.dec1(torch.cat([self.up1(x), skip1], dim=1))
        return self.head(x)


# --- the registry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchmarkModel:
    make: Callable[[], nn.Module]
    inputs: Any  # as a test writes `inputs=`
    what: str


BENCHMARK_MODELS: dict[str, BenchmarkModel] = {
    "small_cnn": BenchmarkModel(SmallCNN, [(1, 3, 64, 64)], "3 convs + ReLU + max-pool, linear head"),
    "mobilenet_like": BenchmarkModel(MobileNetLike, [(1, 3, 96, 96)], "MobileNetV2 inverted residuals, depthwise, BN"),
    "resnet_like": BenchmarkModel(ResNetLike, [(1, 3, 64, 64)], "ResNet basic blocks, BN, 1x1 downsampling"),
    "transformer_encoder": BenchmarkModel(TokenEncoder, {"tokens": ((1, 64), "int64")},
                                          "embedding + 4-layer nn.TransformerEncoder, d=128"),
    "lstm": BenchmarkModel(LSTMTagger, [(1, 50, 40)], "2-layer nn.LSTM, hidden 128, 50 frames"),
    "unet": BenchmarkModel(UNet, [(1, 3, 64, 64)], "2-level UNet, BN, ConvTranspose upsampling, skip concat"),
}


# Kept apart from BENCHMARK_MODELS: each export takes seconds.
LARGE_MODELS: dict[str, BenchmarkModel] = {
    "bert_base_encoder": BenchmarkModel(
        lambda: TokenEncoder(vocab=30522, tokens=128, width=768, heads=12, feedforward=3072, layers=12),
        {"tokens": ((1, 128), "int64")}, "BERT-base-sized: 12 layers, d=768, 128 tokens, 30522-token vocabulary"),
}


def build(name: str, seed: int = SEED) -> nn.Module:
    """The model `name` in eval mode, with trained-like weights drawn from `seed`."""
    model = {**BENCHMARK_MODELS, **LARGE_MODELS}[name].make()
    randomize_weights(model, seed)
    return model.eval()


def randomize_weights(model: nn.Module, seed: int = SEED) -> None:
    """Every floating parameter and buffer drawn from a seeded generator (no two tensors alike);
    BatchNorm variances stay positive."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if not tensor.is_floating_point():
                continue  # num_batches_tracked
            values = torch.randn(tensor.shape, generator=generator) * 0.1
            if name.endswith("running_var"):
                values = values.abs() + 0.5
            tensor.copy_(values)
