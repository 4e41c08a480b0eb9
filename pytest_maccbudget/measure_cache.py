"""The measurement cache: a torch model whose computation did not change is neither exported
nor profiled again.

An entry is one JSON file in pytest's cache directory (`.pytest_cache/d/maccbudget/`, so
`--cache-clear` empties it and CI can keep it with actions/cache), named by the hash of the
*static key*: the package version and counting rules, the versions of Python, torch, onnx and
onnxscript, the exporter, and the model's static fingerprint (module tree and attributes,
tensor shapes, dtypes, sharing and equal bytes, the inputs). It holds the measurement and the
code record of the forward pass that was measured; a hit needs the key AND a code record that
still verifies (no function it ran changed). Entries are written atomically (a temporary file,
then os.replace), so xdist workers can share the directory; an entry that does not parse or
does not have the expected shape is ignored and replaced.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from . import __version__
from .atomic import write_atomically
from .fingerprint import CodeRecord, digest, package_version, verify
from .rules import RULES_VERSION

FORMAT = 1
MAX_ENTRIES = 2000  # the oldest entries beyond this are deleted when one is written
_SUFFIX = ".json"


def environment(exporter: str) -> dict[str, Any]:
    """What besides the model decides the exported graph and its count."""
    versions = {name: package_version(name) for name in ("torch", "onnx")}
    if exporter == "dynamo":
        versions["onnxscript"] = package_version("onnxscript")
    return {"format": FORMAT, "package": __version__, "rules": RULES_VERSION,
            "python": sys.version.split()[0], "versions": versions, "exporter": exporter}


@dataclass(frozen=True)
class Hit:
    measurement: dict[str, Any]  # inputs, total, layers, unknown_ops as Measurement.to_json writes them


class MeasureCache:
    """Entries in one directory; `lookup` and `store` never raise on a bad entry or disk."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.stale_reasons: dict[str, str] = {}  # key -> why its entry was not used (for messages)

    def lookup(self, key: str) -> Optional[Hit]:
        entry = self._read(key)
        if entry is None:
            return None
        stale = verify(CodeRecord.from_json(entry["code"]))
        if stale is not None:
            self.stale_reasons[key] = stale
            return None
        self._touch(key)
        return Hit(entry["measurement"])

    def store(self, key: str, measurement: Mapping[str, Any], code: CodeRecord) -> None:
        data = json.dumps({"format": FORMAT, "key": key, "measurement": dict(measurement), "code": code.to_json()},
                          sort_keys=True, separators=(",", ":"))
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            write_atomically(self._path(key), data, durable=False)
            self._prune()
        except OSError:  # a read-only or full disk: the run goes on without the cache
            return

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}{_SUFFIX}"

    def _read(self, key: str) -> Optional[dict[str, Any]]:
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        if not _well_formed(entry, key):
            return None
        return entry

    def _touch(self, key: str) -> None:
        try:
            os.utime(self._path(key))
        except OSError:
            pass

    def _prune(self) -> None:
        entries = sorted(self.directory.glob(f"*{_SUFFIX}"), key=_mtime)
        for path in entries[:max(0, len(entries) - MAX_ENTRIES)]:
            try:
                path.unlink()
            except OSError:
                pass


def cache_key(environment_data: Mapping[str, Any], fingerprint: Mapping[str, Any]) -> str:
    return digest({"environment": dict(environment_data), "model": dict(fingerprint)})


def _well_formed(entry: Any, key: str) -> bool:
    if not isinstance(entry, dict) or entry.get("format") != FORMAT or entry.get("key") != key:
        return False
    measurement, code = entry.get("measurement"), entry.get("code")
    if not isinstance(measurement, dict) or not isinstance(code, dict):
        return False
    if not all(isinstance(measurement.get(field), dict) for field in ("inputs", "total", "layers")):
        return False
    if not isinstance(measurement.get("unknown_ops"), list):
        return False
    return (all(isinstance(code.get(field), dict) for field in ("functions", "globals", "packages"))
            and isinstance(code.get("unresolvable"), bool))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()
