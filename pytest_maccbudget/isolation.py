"""Profiling in a child process, so that nothing a graph does to the onnx library can take the
CLI or the pytest session down.

onnx's C++ (shape inference, the checker) is built with assertions on: some invalid but
parsable graphs abort the process (SIGABRT, no exception), and a shape input declared with
2^63-1 elements makes it run forever, ignoring Ctrl-C. `IsolatedProfiler` runs `profile_model`
in one long-lived child process, one graph at a time, under a time limit and an address-space
limit; when the child crashes or overruns, that graph's profile is a ModelError naming the
file and the cause, the child is killed and the next graph gets a new one.

Where the platform forks (Linux), the child is forked from a parent that has imported the
engine first, so starting it costs milliseconds rather than the half second of importing onnx
again; the child runs only onnx, protobuf and numpy code, none of the threads torch may have
started in the parent. Elsewhere it is spawned.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import tempfile
import warnings
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Optional, Union

from .engine.errors import ModelError

DEFAULT_TIMEOUT_S = 600.0         # the slowest real graph profiles in about 10 s
DEFAULT_MEMORY_BYTES = 16 * 2**30  # address space; a decoder of 5,000 nodes needs under 0.5 GB


def default_start_method() -> str:
    """fork where the platform forks safely enough (Linux), else spawn."""
    return "fork" if sys.platform.startswith("linux") else "spawn"


class InternalError(Exception):
    """profile_model failed in a way no input should make it fail: a bug of this package."""

    def __init__(self, path: str, kind: str, message: str) -> None:
        super().__init__(f"{path}: internal error ({kind}: {message})")
        self.path, self.kind, self.message = path, kind, message


@dataclass(frozen=True)
class Limits:
    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_bytes: Optional[int] = DEFAULT_MEMORY_BYTES  # None: no limit


class IsolatedProfiler:
    """`profile(path, inputs, batch)` as engine.profile.profile_model, in a child process."""

    def __init__(self, limits: Limits = Limits(), start_method: Optional[str] = None) -> None:
        self.limits = limits
        self.context = multiprocessing.get_context(start_method or default_start_method())
        self._process: Any = None
        self._connection: Optional[Connection] = None
        self._stderr: Optional[str] = None  # the child's stderr, a file: what a C++ assertion printed

    def profile(self, path: Union[str, Path], inputs: Any = None, batch: Optional[int] = None) -> Any:
        connection = self._child()
        connection.send((os.fspath(path), inputs, batch))
        if not connection.poll(self.limits.timeout_s):
            self.close()
            raise ModelError(f"{path}: profiling did not finish within {self.limits.timeout_s:g} s and was stopped "
                             "(a graph that makes the ONNX library run without end, or raise the time limit)")
        try:
            status, payload = connection.recv()
        except (EOFError, OSError):
            raise ModelError(f"{path}: {self._crash_cause()} while profiling the graph: the graph is not "
                             "valid ONNX") from None
        if status == "ok":
            return payload
        if status == "internal":
            raise InternalError(*payload)
        raise ModelError(payload)

    def close(self) -> None:
        """Stop the child, whatever it is doing."""
        if self._connection is not None:
            self._connection.close()
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join(timeout=10)
        if self._stderr is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._stderr)
        self._process = self._connection = self._stderr = None

    def _child(self) -> Connection:
        if self._process is not None and self._process.is_alive() and self._connection is not None:
            return self._connection
        self.close()
        parent_end, child_end = self.context.Pipe()
        descriptor, self._stderr = tempfile.mkstemp(prefix="pytest-maccbudget-profiler-", suffix=".stderr")
        os.close(descriptor)
        self._process = self.context.Process(target=_serve, args=(child_end, self.limits.memory_bytes, self._stderr),
                                             name="pytest-maccbudget profiler", daemon=True)
        if self.context.get_start_method() == "fork":
            import pytest_maccbudget.engine.profile  # noqa: F401  (imported once, here: the child inherits it)
        with warnings.catch_warnings():  # Python 3.12+ warns of forking a process with threads: see above
            warnings.simplefilter("ignore", DeprecationWarning)
            self._process.start()
        child_end.close()
        self._connection = parent_end
        return parent_end

    def _crash_cause(self) -> str:
        process = self._process
        if process is not None:
            process.join(timeout=10)
        code = None if process is None else process.exitcode
        said = self._last_stderr_line()
        self.close()
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
            return f"the ONNX library crashed ({name}{': ' + said if said else ''})"
        if code is not None and code != 0:
            return f"the profiling process ended with exit code {code} (out of memory?)"
        return "the profiling process ended"


    def _last_stderr_line(self) -> str:
        """What the child printed last (a failed C++ assertion, say), shortened."""
        try:
            text = Path(self._stderr).read_text(encoding="utf-8", errors="replace") if self._stderr else ""
        except OSError:
            return ""
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        last = lines[-1] if lines else ""
        if "Assertion" in last:  # "<file>:<line>: <function>: Assertion '...' failed."
            last = last[last.index("Assertion"):]
        return last if len(last) <= 200 else last[:197] + "..."


def _serve(connection: Connection, memory_bytes: Optional[int], stderr_path: str) -> None:
    """The child's loop: profile each graph it is sent, answer ("ok", Profile) or ("error", line)."""
    import faulthandler

    faulthandler.disable()  # a forked child inherits pytest's: its dump of an abort would go to the terminal
    descriptor = os.open(stderr_path, os.O_WRONLY | os.O_TRUNC)
    os.dup2(descriptor, 2)  # a C++ assertion writes there before the abort: the parent quotes it
    os.close(descriptor)
    _limit_memory(memory_bytes)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    from .engine.profile import profile_model

    while True:
        try:
            path, inputs, batch = connection.recv()
        except (EOFError, OSError):
            return
        try:
            answer: tuple[str, Any] = ("ok", profile_model(path, inputs, batch=batch))
        except ModelError as error:
            answer = ("error", str(error))
        except MemoryError:
            answer = ("error", f"{path}: profiling needed more memory than the limit allows")
        except OSError as error:
            answer = ("error", f"{error.filename or path}: {error.strerror or error}")
        except Exception as error:  # noqa: BLE001  (one line for the parent, never a traceback)
            first = next((line for line in str(error).splitlines() if line.strip()), "no message")
            answer = ("internal", (path, type(error).__name__, first.strip()))
        connection.send(answer)


def _limit_memory(memory_bytes: Optional[int]) -> None:
    """Limit the address space to what the child has now plus `memory_bytes`: a forked child
    inherits its parent's mappings (torch alone maps gigabytes it never touches), and the limit
    is on what profiling may add, not on what the user's test process had already imported."""
    if memory_bytes is None or sys.platform == "win32":
        return
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    wanted = _address_space_bytes() + memory_bytes
    limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _address_space_bytes() -> int:
    """This process's virtual size (Linux: /proc/self/statm); 0 where it cannot be read."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")
