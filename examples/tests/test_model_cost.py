"""Cost budgets of this project's models: MACs, FLOPs, parameters and peak activation memory.

    pytest                          # plain tests: the models build and run
    pytest --macc-budget            # also compare each marked model with macc_budget.yaml
    pytest --macc-budget-update     # record the budgets, then commit macc_budget.yaml
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import torch

from models import TokenTagger, mobilenet_v2
from models.keyword_spotter import EXPORT_PATH, build

if TYPE_CHECKING:
    from pytest_maccbudget.plugin import MaccBudgetFixture

NUM_CLASSES = 10


# 1. The marker, with the test returning the model. The test is a normal test as well: without
#    --macc-budget it only runs the body.
@pytest.mark.macc_budget("mobilenet_v2-0.5", inputs=[(1, 3, 128, 128)])
def test_mobilenet_v2() -> torch.nn.Module:
    model = mobilenet_v2(width_mult=0.5, num_classes=NUM_CLASSES).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 3, 128, 128)).shape == (2, NUM_CLASSES)
    return model


# 2a. model= a zero-argument factory (here the class itself). The input is named after forward's
#     argument and is int64 token ids.
@pytest.mark.macc_budget("token-tagger", model=TokenTagger, inputs={"tokens": ((1, 64), "int64")})
def test_token_tagger() -> None:
    pass


# 2b. model= a path to an ONNX file (relative to this test file): a model from another framework.
#     A dict of shapes sets its symbolic batch dim N.
@pytest.mark.macc_budget("keyword-spotter", model="../exports/keyword_spotter.onnx",
                         inputs={"mfcc": [1, 1, 49, 10]})
def test_keyword_spotter() -> None:
    pass


def test_keyword_spotter_file_is_current() -> None:
    """The checked-in ONNX file is what models/keyword_spotter.py builds."""
    assert EXPORT_PATH.read_bytes() == build().SerializeToString(), "run: python -m models.keyword_spotter"


# 3. The macc_budget fixture: check from inside a test, here once per input resolution, with an
#    example tensor as the input.
@pytest.mark.parametrize("resolution", [96, 160])
def test_mobilenet_v2_resolutions(macc_budget: MaccBudgetFixture, resolution: int) -> None:
    model = mobilenet_v2(width_mult=0.5, num_classes=NUM_CLASSES).eval()
    image = torch.rand(1, 3, resolution, resolution)
    with torch.no_grad():
        assert model(image).shape == (1, NUM_CLASSES)
    macc_budget.check(model, inputs=[image], name=f"mobilenet_v2-0.5-{resolution}px")
