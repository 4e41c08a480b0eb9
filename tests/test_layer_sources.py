"""Where each layer of a torch model is built: the construction chain recorded while the model is
built, the class-based fallback, and the choice of the line an annotation goes on."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from pytest_maccbudget.layer_sources import (  # noqa: E402
    ConstructionRecorder, UserCode, choose_location, layer_chains,
)

USER_MODELS = '''\
from torch import nn
from library import LibraryNet


class Block(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3)


class Net(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.stem = Block(width)
        self.head = nn.Linear(
            width,
            10,
        )


def build(width=4):
    return Net(width)


def library_with_new_head():
    model = LibraryNet()
    model.classifier = nn.Linear(8, 100)
    return model


class Tricky(nn.Module):
    __hash__ = None  # unhashable, as a module defining __eq__ only would be

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
'''

LIBRARY = '''\
from torch import nn


class LibraryNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(3, 8, 3)
        self.classifier = nn.Linear(8, 10)
'''


def _line(source: str, text: str) -> int:
    return next(number for number, line in enumerate(source.splitlines(), 1) if text in line)


def _import(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, ModuleType]:
    """`models.py` in a project root; `library.py` outside it (an installed package's stand-in)."""
    root, outside = tmp_path / "project", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    (outside / "library.py").write_text(LIBRARY)
    (root / "models.py").write_text(USER_MODELS)
    monkeypatch.syspath_prepend(str(outside))
    monkeypatch.delitem(sys.modules, "library", raising=False)
    return root, _import(root / "models.py", "user_models_under_test")


def _recorded_chains(root: Path, build: Any, keys: list[str]) -> dict[str, list[dict[str, Any]]]:
    recorder = ConstructionRecorder(UserCode(root))
    with recorder:
        model = build()
    return layer_chains(model, keys, recorder, recorder.user_code)


def test_a_layers_chain_is_its_own_construction_then_its_ancestors(project: tuple[Path, ModuleType]) -> None:
    root, models = project
    chains = _recorded_chains(root, lambda: models.build(4), ["stem.conv", "stem", "head", ""])
    conv = _line(USER_MODELS, "self.conv = nn.Conv2d")
    stem = _line(USER_MODELS, "self.stem = Block(width)")
    call_site = _line(USER_MODELS, "return Net(width)")
    head = _line(USER_MODELS, "self.head = nn.Linear(")
    # innermost first, each line once; the frames of this test file are outside the root
    assert [(c["file"], c["line"]) for c in chains["stem.conv"]] == [
        ("models.py", conv), ("models.py", stem), ("models.py", call_site)]
    assert [c["line"] for c in chains["stem"]] == [stem, call_site]  # not Block's `super().__init__()` line
    assert [c["line"] for c in chains[""]] == [call_site]
    # a call written over three lines spans them
    assert chains["head"][0] == {"file": "models.py", "line": head, "end_line": head + 3}


def test_recording_restores_torch_and_costs_nothing_without_it(project: tuple[Path, ModuleType]) -> None:
    root, models = project
    original = nn.Module.__init__
    recorder = ConstructionRecorder(UserCode(root))
    with recorder:
        with recorder:  # nested use keeps one wrapper
            assert nn.Module.__init__ is not original
        assert nn.Module.__init__ is not original
        model = models.build(2)
    assert nn.Module.__init__ is original
    assert set(recorder.stacks) == set(model.modules())  # Net, Block, Conv2d, Linear
    after = nn.Linear(2, 2)  # built outside the block: not recorded
    assert after not in recorder.stacks


def test_an_unhashable_module_is_built_normally_and_not_recorded(project: tuple[Path, ModuleType]) -> None:
    root, models = project
    recorder = ConstructionRecorder(UserCode(root))
    with recorder:
        tricky = models.Tricky()
    assert isinstance(tricky.fc, nn.Linear)
    assert tricky.fc in recorder.stacks


def test_a_library_models_replaced_layer_points_at_the_users_line(project: tuple[Path, ModuleType]) -> None:
    root, models = project
    chains = _recorded_chains(root, models.library_with_new_head, ["classifier", "features"])
    replaced = _line(USER_MODELS, "model.classifier = nn.Linear(8, 100)")
    library_call = _line(USER_MODELS, "model = LibraryNet()")
    assert [c["line"] for c in chains["classifier"]] == [replaced, library_call]
    # the library's own layer: built in the library; the user's line is the call that built it
    assert [c["line"] for c in chains["features"]] == [library_call]


def test_without_a_recording_the_fallback_reads_each_user_class_once(
        project: tuple[Path, ModuleType], monkeypatch: pytest.MonkeyPatch) -> None:
    root, models = project
    model = models.build(4)  # built before any recording: nothing recorded
    import inspect

    parsed: list[object] = []
    real = inspect.getsourcelines
    monkeypatch.setattr(inspect, "getsourcelines", lambda obj: parsed.append(obj) or real(obj))
    chains = layer_chains(model, ["stem.conv", "stem", "head", "", "missing"], None, UserCode(root))
    assert chains == {
        "stem.conv": [{"file": "models.py", "line": _line(USER_MODELS, "self.conv = nn.Conv2d"),
                       "end_line": _line(USER_MODELS, "self.conv = nn.Conv2d")}],
        "stem": [{"file": "models.py", "line": _line(USER_MODELS, "class Block"),
                  "end_line": _line(USER_MODELS, "class Block")}],
        "head": [{"file": "models.py", "line": _line(USER_MODELS, "self.head = nn.Linear("),
                  "end_line": _line(USER_MODELS, "self.head = nn.Linear(")}],
        "": [{"file": "models.py", "line": _line(USER_MODELS, "class Net"), "end_line": _line(USER_MODELS, "class Net")}],
    }
    # Block and Net, once each; torch's Conv2d and Linear are rejected by path, never parsed
    assert sorted(cls.__name__ for cls in parsed) == ["Block", "Net"]


def test_a_model_of_library_classes_only_has_no_location(project: tuple[Path, ModuleType]) -> None:
    root, _ = project
    assert layer_chains(nn.Sequential(nn.Linear(2, 2)), ["0"], None, UserCode(root)) == {}
    assert layer_chains(object(), ["0"], None, UserCode(root)) == {}


def test_user_code_excludes_installed_packages_inside_the_root(tmp_path: Path) -> None:
    venv_file = tmp_path / ".venv" / "lib" / "python3.11" / "site-packages" / "lib.py"
    venv_file.parent.mkdir(parents=True)
    venv_file.write_text("")
    (tmp_path / "mine.py").write_text("")
    user = UserCode(tmp_path)
    assert user.relative(str(tmp_path / "mine.py")) == "mine.py"
    assert user.relative(str(venv_file)) is None
    assert user.relative("<string>") is None
    assert user.relative(str(tmp_path.parent / "other.py")) is None


CHAIN = [
    {"file": "models.py", "line": 8, "end_line": 8},     # self.conv = nn.Conv2d(3, width, 3)
    {"file": "models.py", "line": 14, "end_line": 14},   # self.stem = Block(width)
    {"file": "models.py", "line": 22, "end_line": 25},   # return Net(\n width=4,\n ...)
    {"file": "tests/test_m.py", "line": 5, "end_line": 5},
]


@pytest.mark.parametrize(("changed", "expected"), [
    # the PR changed only the width argument at the call site: the annotation goes there
    ({"models.py": {23}}, {"file": "models.py", "line": 23, "changed": True}),
    # the layer's own line changed: the innermost changed line wins over an outer one
    ({"models.py": {8, 14}}, {"file": "models.py", "line": 8, "changed": True}),
    # lines changed elsewhere only: the innermost line that builds the layer
    ({"models.py": {30}, "other.py": {8}}, {"file": "models.py", "line": 8, "changed": False}),
    ({}, {"file": "models.py", "line": 8, "changed": False}),
    ({"tests/test_m.py": {5}}, {"file": "tests/test_m.py", "line": 5, "changed": True}),
])
def test_choose_location_prefers_a_changed_line(changed: dict[str, set[int]], expected: dict[str, Any]) -> None:
    assert choose_location(CHAIN, changed) == expected
