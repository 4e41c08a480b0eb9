"""install.py: the wheel cache's key, and when a wheel directory counts as complete.

It runs as a script before the package is installed, so it is loaded here from its file, the
way the action runs it (``python -I .../install.py``), not imported from the package."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "pytest_maccbudget" / "action" / "install.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("maccbudget_install_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


install = load_script()
RUNNER = {"RUNNER_OS": "Linux", "RUNNER_ARCH": "X64"}


@pytest.fixture
def action(tmp_path: Path) -> Path:
    """A copy of the files the wheel is built from."""
    copy = tmp_path / "action"
    copy.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, copy / name)
    shutil.copytree(ROOT / "pytest_maccbudget", copy / "pytest_maccbudget",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return copy


def test_the_key_names_the_platform_the_python_and_the_sources(action: Path) -> None:
    key = install.cache_key(action, RUNNER)
    python = f"{sys.implementation.name}{sys.version_info[0]}.{sys.version_info[1]}{sys.abiflags}"
    assert key == f"pytest-maccbudget-wheels-Linux-X64-{python}-{install.source_digest(action)[:24]}"
    assert install.cache_key(action, {**RUNNER, "ImageOS": "ubuntu24"}).startswith(
        "pytest-maccbudget-wheels-Linux-X64-ubuntu24-")
    assert install.cache_key(action, {**RUNNER, "RUNNER_ARCH": "ARM64"}) != key


def test_the_key_changes_with_the_package_and_nothing_else(action: Path) -> None:
    key = install.cache_key(action, RUNNER)
    (action / "pytest_maccbudget" / "__pycache__").mkdir(exist_ok=True)
    (action / "pytest_maccbudget" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (action / "tests").mkdir()
    (action / "tests" / "test_new.py").write_text("def test(): pass\n")
    (action / "pytest_maccbudget.egg-info").mkdir()  # what an in-tree build leaves
    assert install.cache_key(action, RUNNER) == key
    for changed in (action / "pytest_maccbudget" / "units.py", action / "pyproject.toml"):
        original = changed.read_bytes()
        changed.write_bytes(original + b"\n")
        assert install.cache_key(action, RUNNER) != key, changed
        changed.write_bytes(original)
    (action / "pytest_maccbudget" / "new_module.py").write_text("")
    assert install.cache_key(action, RUNNER) != key


def test_a_directory_is_complete_only_after_pip_wheel_succeeded(tmp_path: Path) -> None:
    assert not install.is_complete(tmp_path / "absent")
    (tmp_path / "pytest_maccbudget-0.1.0-py3-none-any.whl").write_bytes(b"")
    assert not install.is_complete(tmp_path)  # a wheel left by a build that failed later
    (tmp_path / install.COMPLETE_STAMP).write_text("complete\n")
    assert install.is_complete(tmp_path)


def test_the_key_command_writes_the_outputs(action: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    output = tmp_path / "github_output"
    for name, value in {**RUNNER, "GITHUB_OUTPUT": str(output)}.items():
        monkeypatch.setenv(name, value)
    assert install.main(["key", "--action-path", str(action), "--wheels-root", str(tmp_path / "wheels")]) == 0
    key = install.cache_key(action, RUNNER)
    assert output.read_text() == f"key={key}\ndir={tmp_path / 'wheels' / key}\n"


def test_isolated_mode_keeps_a_planted_module_out(tmp_path: Path) -> None:
    """A workflow's PYTHONPATH pointing at a directory with a module named like one the script
    imports: plain ``python`` runs it, ``python -I`` (as the action runs the script) does not."""
    (tmp_path / "hashlib.py").write_text("raise SystemExit('the planted module ran')\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path), **RUNNER}
    command = [str(SCRIPT), "key", "--action-path", str(ROOT), "--wheels-root", str(tmp_path)]
    plain = subprocess.run([sys.executable, *command], capture_output=True, text=True, env=env)
    assert "the planted module ran" in plain.stderr
    isolated = subprocess.run([sys.executable, "-I", *command], capture_output=True, text=True, env=env)
    assert isolated.returncode == 0, isolated.stderr
    assert isolated.stdout.startswith("key=pytest-maccbudget-wheels-Linux-X64-")
    action = (ROOT / "action.yml").read_text()
    assert action.count('-I "$GITHUB_ACTION_PATH/pytest_maccbudget/action/install.py"') == 2


def test_a_missing_interpreter_is_one_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wheels = tmp_path / "wheels"
    assert install.main(["install", "--python", str(tmp_path / "no-python"), "--action-path", str(ROOT),
                         "--wheel-dir", str(wheels)]) == 1
    assert capsys.readouterr().out == (f"::error title=pytest-maccbudget::{tmp_path / 'no-python'} does not exist: "
                                       "set the action's python-version input\n")
