"""The models of this example project, built in code with plain torch (and onnx.helper for the
model that arrives as an ONNX file from another framework)."""
from __future__ import annotations

from .mobilenet_v2 import MobileNetV2, mobilenet_v2
from .token_tagger import TokenTagger

__all__ = ["MobileNetV2", "TokenTagger", "mobilenet_v2"]
