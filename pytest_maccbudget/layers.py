"""Budget keys for layers: the PyTorch module path, whichever exporter made the graph.

torch's TorchScript-based exporter names nodes by scope, e.g. `/layer1/layer1.0/conv1/Conv`;
export.py renames the dynamo exporter's nodes (`node_Conv_12`, scope in metadata) into the
same form. The key drops the op part and joins the scopes into `layer1.0.conv1`. Every node of
one module shares its key, so a module's MACs are budgeted as one number (the two matmuls
of an attention block, say). Names in any other form (graphs from elsewhere) are their own key.
"""
from __future__ import annotations

from typing import Iterable, Optional

ROOT_KEY = "(root)"  # ops called in the top-level module's own forward
_DUPLICATE_SUFFIX = "#"  # the engine's suffix for a repeated node name: "name#2"


def layer_key(layer_name: str) -> str:
    base = layer_name.split(_DUPLICATE_SUFFIX, 1)[0]
    if not base.startswith("/"):
        return base
    scopes = [part for part in base.split("/") if part][:-1]  # the last part names the op
    return module_path(scopes) or ROOT_KEY


def module_path(scopes: Iterable[str]) -> str:
    """Join scope names into a dotted path. A scope may be the full path from the root
    (`encoder.layers.0` under `encoder`), a name relative to its parent (`layers.0` under
    `encoder`), or, as the TorchScript exporter writes it, a container's name then an index
    (`conv.0` under `features.1.conv`): the parts it shares with the end of the path merge."""
    parts: list[str] = []
    for scope in scopes:
        scope_parts = scope.split(".")
        overlap = next((k for k in range(min(len(parts), len(scope_parts) - 1), 0, -1)
                        if parts[-k:] == scope_parts[:k]), 0)
        if overlap == 0 and parts and scope_parts[: len(parts)] == parts:
            overlap = len(parts)  # a full path from the root
        parts += scope_parts[overlap:]
    return ".".join(parts)


def layer_macs(layers: Iterable[tuple[str, Optional[int]]]) -> dict[str, Optional[int]]:
    """MACs per budget key from (layer name, MACs) pairs: summed per key, keys with no MACs
    left out; a key with any uncounted layer is None (unknown, never 0)."""
    totals: dict[str, Optional[int]] = {}
    for name, macs in layers:
        key = layer_key(name)
        if macs is None:
            totals[key] = None
        elif key in totals:
            if totals[key] is not None:
                totals[key] = (totals[key] or 0) + macs
        elif macs:
            totals[key] = macs
    return {key: value for key, value in sorted(totals.items())}
