"""Install pytest-maccbudget from the action's own checkout, through a cached wheel directory.

It runs before the package is installed, as a script, with the standard library only:

    python -I install.py key --action-path DIR --wheels-root DIR
        appends ``key=`` (the cache key) and ``dir=`` (the wheel directory for that key) to
        ``$GITHUB_OUTPUT``. The key names the OS, the architecture, the Python and a hash of the
        files the package is built from: a change to any of them builds new wheels.
    python -I install.py install --python PYTHON --action-path DIR --wheel-dir DIR
        on a miss (no complete wheel directory: actions/cache restored nothing), ``pip wheel``
        builds the package's wheel and downloads its dependencies' wheels into the directory;
        then pip installs from that directory alone (``--no-index``). pip runs quietly; its
        output is shown only when it fails. Prints one line, and ``built=true`` in
        ``$GITHUB_OUTPUT`` when the directory is new and should be saved to the cache.

``-I`` (isolated mode) keeps the workflow's PYTHONPATH and the current directory out of
``sys.path``: nothing in the repository under test can stand in for a module imported here.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Mapping, Optional, Sequence

PACKAGE = "pytest-maccbudget"
PACKAGE_DIR = "pytest_maccbudget"
BUILD_FILES = ("pyproject.toml", "setup.py", "setup.cfg", "MANIFEST.in", "README.md")
SKIPPED_PARTS = {"__pycache__"}
SKIPPED_SUFFIXES = {".pyc", ".pyo"}
COMPLETE_STAMP = ".complete"  # written after `pip wheel` succeeded: a directory without it is rebuilt
PIP_FLAGS = ("-q", "--disable-pip-version-check", "--no-input", "--progress-bar", "off")
# Byte-compiling every installed module (numpy's, onnx's) took half of a warm install; Python
# compiles the modules a run imports when it imports them.
INSTALL_FLAGS = ("--no-compile",)
PIP_TIMEOUT_SECONDS = 900
TITLE = "pytest-maccbudget"


class InstallError(Exception):
    """pip failed; the message says what to do, ``log`` holds pip's output."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


# --- the cache key ------------------------------------------------------------------------------


def package_files(action_path: Path) -> Iterator[Path]:
    """The files the wheel is built from, sorted: the build configuration and the package."""
    for name in BUILD_FILES:
        if (action_path / name).is_file():
            yield action_path / name
    package = action_path / PACKAGE_DIR
    found = [path for path in package.rglob("*") if path.is_file() and _kept(path.relative_to(action_path))]
    yield from sorted(found, key=lambda path: path.relative_to(action_path).as_posix())


def _kept(relative: Path) -> bool:
    return not SKIPPED_PARTS.intersection(relative.parts) and relative.suffix not in SKIPPED_SUFFIXES


def source_digest(action_path: Path) -> str:
    """SHA-256 over the package files' paths and bytes."""
    digest = hashlib.sha256()
    for path in package_files(action_path):
        digest.update(path.relative_to(action_path).as_posix().encode("utf-8") + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def cache_key(action_path: Path, environ: Mapping[str, str]) -> str:
    """e.g. ``pytest-maccbudget-wheels-Linux-X64-ubuntu24-cpython3.12-<hash>``."""
    system = environ.get("RUNNER_OS") or platform.system()
    arch = environ.get("RUNNER_ARCH") or platform.machine()
    image = environ.get("ImageOS", "")  # the runner image: a wheel built from source links its libraries
    python = f"{sys.implementation.name}{sys.version_info[0]}.{sys.version_info[1]}{getattr(sys, 'abiflags', '')}"
    parts = ["pytest-maccbudget-wheels", system, arch, image, python, source_digest(action_path)[:24]]
    return "-".join(_key_part(part) for part in parts if part)


def _key_part(text: str) -> str:
    return "".join(char if char.isalnum() or char in "._-" else "_" for char in text)


# --- the install -----------------------------------------------------------------------------------


def is_complete(wheel_dir: Path) -> bool:
    return (wheel_dir / COMPLETE_STAMP).is_file() and any(wheel_dir.glob("pytest_maccbudget-*.whl"))


def build_wheels(python: str, action_path: Path, wheel_dir: Path) -> None:
    """The package's wheel and every dependency's, in ``wheel_dir``."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    run_pip(python, ["wheel", *PIP_FLAGS, f"--wheel-dir={wheel_dir}", str(action_path)],
            f"pip could not build the {PACKAGE} wheels from {action_path}")
    (wheel_dir / COMPLETE_STAMP).write_text("complete\n", encoding="utf-8")


def install_wheels(python: str, wheel_dir: Path) -> None:
    """Installs from ``wheel_dir`` alone. A pytest-maccbudget that is already installed (from
    PyPI, or editable) is replaced even at the same version: the plugin must be the action's."""
    wheels = sorted(wheel_dir.glob("pytest_maccbudget-*.whl"))
    if not wheels:
        raise InstallError(f"no {PACKAGE} wheel in {wheel_dir}")
    wheel = str(wheels[-1])
    local = ["--no-index", f"--find-links={wheel_dir}"]
    failure = (f"pip could not install {PACKAGE} into {python}: set the action's python-version input, or "
               "activate a virtual environment before this step")
    already_there = is_installed(python)
    run_pip(python, ["install", *PIP_FLAGS, *INSTALL_FLAGS, *local, wheel], failure)
    if already_there:  # pip keeps an installed distribution of the same version
        run_pip(python, ["install", *PIP_FLAGS, *INSTALL_FLAGS, *local, "--force-reinstall", "--no-deps", wheel],
                failure)


def is_installed(python: str) -> bool:
    code = (f"import importlib.metadata as m\ntry: m.distribution({PACKAGE!r})\n"
            "except m.PackageNotFoundError: raise SystemExit(1)")
    try:
        return subprocess.run([python, "-I", "-c", code], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def run_pip(python: str, args: Sequence[str], failure: str) -> None:
    try:
        done = subprocess.run([python, "-m", "pip", *args], capture_output=True, text=True, errors="replace",
                              timeout=PIP_TIMEOUT_SECONDS, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise InstallError(f"{python} does not exist: set the action's python-version input") from None
    except subprocess.TimeoutExpired:
        raise InstallError(f"{failure} (pip did not finish within {PIP_TIMEOUT_SECONDS} s)") from None
    if done.returncode != 0:
        raise InstallError(failure, (done.stdout + done.stderr).strip())


def install(python: str, action_path: Path, wheel_dir: Path) -> tuple[bool, str]:
    """Builds on a miss, installs; returns (built, the line to print)."""
    started = time.monotonic()
    built = not is_complete(wheel_dir)
    if built:
        build_wheels(python, action_path, wheel_dir)
    install_wheels(python, wheel_dir)
    seconds = time.monotonic() - started
    how = "built the wheels (cache miss)" if built else "used the cached wheels"
    return built, f"{PACKAGE} {version_of(wheel_dir)}: {how} and installed in {seconds:.1f} s ({python})"


def version_of(wheel_dir: Path) -> str:
    wheels = sorted(wheel_dir.glob("pytest_maccbudget-*.whl"))
    parts = wheels[-1].name.split("-") if wheels else []
    return parts[1] if len(parts) > 1 else "(unknown version)"


# --- the command ------------------------------------------------------------------------------------


def escape_data(text: str) -> str:
    """A workflow command's message escaped (commands.escape_data; not importable before the install)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def write_outputs(values: Mapping[str, str], environ: Mapping[str, str]) -> None:
    lines = "".join(f"{name}={value}\n" for name, value in values.items())
    if any("\n" in value or "\r" in value for value in values.values()):
        raise InstallError(f"an output value spans several lines: {values!r}")
    target = environ.get("GITHUB_OUTPUT", "")
    if not target:
        sys.stdout.write(lines)
        return
    with open(target, "a", encoding="utf-8") as handle:
        handle.write(lines)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -I install.py",
                                     description=f"Install {PACKAGE} through a cached wheel directory.")
    commands = parser.add_subparsers(dest="command", required=True)
    key = commands.add_parser("key", help="print the cache key and the wheel directory")
    key.add_argument("--action-path", required=True, type=Path)
    key.add_argument("--wheels-root", required=True, type=Path, help="the wheel directory's parent")
    run = commands.add_parser("install", help="build the wheels on a miss, then install them")
    run.add_argument("--action-path", required=True, type=Path)
    run.add_argument("--wheel-dir", required=True, type=Path)
    run.add_argument("--python", default=sys.executable, help="the interpreter to install into")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        if args.command == "key":
            key = cache_key(args.action_path, os.environ)
            write_outputs({"key": key, "dir": str(args.wheels_root / key)}, os.environ)
            return 0
        built, line = install(args.python, args.action_path, args.wheel_dir)
    except InstallError as err:
        if err.log:
            print(err.log)
        print(f"::error title={TITLE}::{escape_data(str(err))}")
        return 1
    except OSError as err:
        print(f"::error title={TITLE}::{escape_data(f'cannot prepare the {PACKAGE} wheels: {err}')}")
        return 1
    write_outputs({"built": "true" if built else "false"}, os.environ)
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
