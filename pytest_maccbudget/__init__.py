"""pytest-maccbudget: model cost budgets (MACs, FLOPs, parameters, activation memory) in CI.

The engine is imported lazily: this package is imported in every pytest run of a user's
repository (the plugin lives in it), so `import pytest_maccbudget` must stay cheap.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["profile_model", "Profile", "LayerCost", "ModelError", "__version__"]

if TYPE_CHECKING:
    from .engine.errors import ModelError
    from .engine.profile import profile_model
    from .engine.results import LayerCost, Profile

_LAZY = {
    "profile_model": "pytest_maccbudget.engine.profile",
    "Profile": "pytest_maccbudget.engine.results",
    "LayerCost": "pytest_maccbudget.engine.results",
    "ModelError": "pytest_maccbudget.engine.errors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pytest_maccbudget' has no attribute {name!r}")
