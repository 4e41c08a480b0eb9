"""Write a file all at once or not at all: a temporary file beside it, then os.replace. Any
failure (a full disk, Ctrl-C) leaves the old file as it was and no temporary file behind.
Used for the budget file, the reports and the measurement cache."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Union


def write_atomically(path: Union[Path, str], text: str, *, durable: bool = True) -> None:
    """Replace `path` with `text` (UTF-8). `durable`: fsync the data and the directory, so the
    new content survives a power cut (the budget file); a cache entry can do without."""
    path = Path(path)
    data = text.encode("utf-8")
    mode = _mode_of(path)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=_TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(temp_name, mode)
        os.replace(temp_name, path)
    except BaseException:
        try:
            os.unlink(temp_name)
        except OSError:
            pass
        raise
    if durable:
        _sync_directory(path.parent)


_TEMP_SUFFIX = ".tmp"


def _temp_prefix(path: Path) -> str:
    return f".{path.name[:40]}."


def remove_stale_temporaries(path: Union[Path, str]) -> list[Path]:
    """Delete the temporary files a killed writer of `path` left beside it (call it holding the
    file's lock, when no writer can be running); returns what was deleted."""
    path = Path(path)
    removed = []
    for candidate in path.parent.glob(f"{_temp_prefix(path)}*{_TEMP_SUFFIX}"):
        try:
            candidate.unlink()
            removed.append(candidate)
        except OSError:
            pass
    return removed


def _mode_of(path: Path) -> int:
    """The file's own permissions when it exists, else what the umask gives a new file."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable where the OS allows it (not on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
