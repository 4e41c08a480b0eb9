"""Errors the engine raises for input it cannot profile."""
from __future__ import annotations


class ModelError(Exception):
    """The model cannot be read or profiled. The message names the problem; callers add the file."""
