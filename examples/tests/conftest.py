from __future__ import annotations

from typing import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def seeded() -> Iterator[None]:
    """Same weights and example inputs on every run, so every export is the same."""
    torch.manual_seed(0)
    yield
