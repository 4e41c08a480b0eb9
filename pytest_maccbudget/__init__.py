"""pytest-maccbudget: model cost budgets (MACs, FLOPs, parameters, activation memory) in CI."""
from __future__ import annotations

__version__ = "0.1.0"
