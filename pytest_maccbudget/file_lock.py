"""An exclusive lock per budget file, between processes of one machine, for the read-merge-write
of an update: two `--macc-budget-update -k ...` runs of different subsets keep both refreshes.

The lock is a file in the system's temporary directory named by a hash of the budget file's
path, not beside the budget file: nothing new appears in the project for `git add -A` to pick
up. It is held with flock (fcntl) where there is one, msvcrt's byte lock on Windows, and
released when the holder ends, however it ends.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Iterator

WAIT_SECONDS = 120.0  # an update of a large suite writes in well under a second
_POLL_SECONDS = 0.05


class LockTimeout(Exception):
    """Another process held the lock for longer than the wait."""


def lock_path(path: Path) -> Path:
    digest = hashlib.sha256(os.path.realpath(path).encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return Path(tempfile.gettempdir()) / f"pytest-maccbudget-{digest}.lock"


@contextlib.contextmanager
def locked(path: Path, wait_seconds: float = WAIT_SECONDS) -> Iterator[None]:
    """Hold the lock of the budget file `path` for the block."""
    fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _acquire(fd, path, wait_seconds)
        try:
            yield
        finally:
            _release(fd)
    finally:
        os.close(fd)


def _acquire(fd: int, path: Path, wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    while not _try_lock(fd):
        if time.monotonic() >= deadline:
            raise LockTimeout(f"another pytest-maccbudget update of {path} held its lock for {wait_seconds:.0f} s")
        time.sleep(_POLL_SECONDS)


try:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _release(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
except ImportError:  # Windows
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _release(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
