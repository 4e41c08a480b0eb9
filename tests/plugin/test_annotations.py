"""Annotations land on the line a pull request changed in the code that builds the grown layer,
or on the user's own line for a library model whose layer the user replaced."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .conftest import Project

pytest.importorskip("torch")

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]

MODELS = '''\
from torch import nn


class Block(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)

    def forward(self, x):
        return self.conv(x)


class Net(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.block = Block(width)
        self.head = nn.Linear(width, 2)

    def forward(self, x):
        return self.head(self.block(x).mean((2, 3)))


def build():
    return Net(
        width={width},
    )
'''

NET_TEST = '''\
import pytest
import torch

from models import build


@pytest.mark.macc_budget("net", inputs=[(1, 3, 8, 8)])
def test_net():
    torch.manual_seed(0)
    return build()
'''

LIBRARY = '''\
from torch import nn


class LibraryNet(nn.Module):
    """Stands for a torchvision model: its classes are not the user's code."""

    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(3, 8, 3, padding=1)
        self.classifier = nn.Linear(8, 10)

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))
'''

LIBRARY_TEST = '''\
import pytest
from torch import nn

from vision_library import LibraryNet


def classifier_for_my_classes():
    model = LibraryNet()
    model.classifier = nn.Linear(8, {classes})
    return model


@pytest.mark.macc_budget("finetuned", inputs=[(1, 3, 8, 8)])
def test_finetuned():
    return classifier_for_my_classes()
'''


def _git(repo: Path, *args: str) -> None:
    subprocess.run([*GIT, *args], cwd=repo, check=True, capture_output=True)


def _line(path: Path, text: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def _in_github_actions(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(project.path))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(project.path / "step-summary.md"))


def _errors(result: pytest.RunResult) -> list[str]:
    return [line for line in result.stdout.lines if line.startswith("::error ")]


@pytest.mark.slow
@pytest.mark.parametrize("xdist_args", [(), ("-n", "2")], ids=["no-xdist-args", "n2"])
def test_a_width_changed_at_the_call_site_is_annotated_on_that_line(project: Project,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    models = project.path / "models.py"
    models.write_text(MODELS.format(width=4))
    project.add_test("test_net", NET_TEST)
    project.record()
    _git(project.path, "init", "-q", "-b", "main")
    _git(project.path, "add", "-A")
    _git(project.path, "commit", "-q", "-m", "base")
    _git(project.path, "checkout", "-q", "-b", "wider")
    models.write_text(MODELS.format(width=6))  # only the argument at the call site changes
    _git(project.path, "commit", "-q", "-am", "wider net")
    _in_github_actions(project, monkeypatch)

    result = project.run("--macc-budget", "--macc-budget-base", "main")

    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    [error] = _errors(result)
    # not the conv's own line in Block, which this branch did not touch
    assert error.startswith(f"::error file=models.py,line={_line(models, 'width=6,')},"), error
    assert "changed in this branch" in error and "block.conv" in error


@pytest.mark.slow
@pytest.mark.parametrize("xdist_args", [()], ids=["no-xdist-args"])
def test_a_replaced_layer_of_a_library_model_is_annotated_on_the_users_line(
        project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    library = tmp_path_factory.mktemp("site") / "vision_library.py"
    library.write_text(LIBRARY)
    monkeypatch.setenv("PYTHONPATH", str(library.parent))
    project.add_test("test_finetuned", LIBRARY_TEST.format(classes=10))
    project.record()
    project.add_test("test_finetuned", LIBRARY_TEST.format(classes=100))
    _in_github_actions(project, monkeypatch)

    result = project.run("--macc-budget")

    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    [error] = _errors(result)
    user_line = _line(project.path / "test_finetuned.py", "model.classifier = nn.Linear")
    assert error.startswith(f"::error file=test_finetuned.py,line={user_line},"), error
    assert "classifier" in error and "it is built here" in error
