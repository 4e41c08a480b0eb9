"""Budget keys for layers: the PyTorch module path, whichever exporter made the graph.

torch's TorchScript-based exporter names nodes by scope, e.g. `/layer1/layer1.0/conv1/Conv`;
export.py renames the dynamo exporter's nodes (`node_Conv_12`, scope in metadata) into the
same form. The key drops the op part and joins the scopes into `layer1.0.conv1`. Every node of
one module shares its key, so a module's MACs are budgeted as one number (the two matmuls
of an attention block, say). Names in any other form (graphs from elsewhere) are their own key.

A file the dynamo exporter wrote and nobody renamed (`maccbudget profile` on a user's own
export) still names its nodes `node_Conv_12`; `layer_keys` then reads the key from the module
scopes the exporter recorded in the node's metadata (`Profile.sources`), the way export.py
renames them, so the CLI prints the keys of the budget file whichever exporter made the graph.
"""
from __future__ import annotations

import ast
from typing import Any, Iterable, Mapping, Optional, Sequence

ROOT_KEY = "(root)"  # ops called in the top-level module's own forward
_DUPLICATE_SUFFIX = "#"  # the engine's suffix for a repeated node name: "name#2"


def layer_key(layer_name: str) -> str:
    base = layer_name.split(_DUPLICATE_SUFFIX, 1)[0]
    if not base.startswith("/"):
        return base
    scopes = [part for part in base.split("/") if part][:-1]  # the last part names the op
    return module_path(scopes) or ROOT_KEY


NAME_SCOPES_KEY = "pkg.torch.onnx.name_scopes"  # ['', 'layer1', 'layer1.0', 'layer1.0.conv1', 'conv2d']
REWRITE_RULE_KEY = "pkg.onnxscript.rewriter.rule_name"  # 'FuseBatchNormIntoConv' on a conv that absorbed a BN
WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def recorded_scopes(text: Optional[str]) -> Optional[list[str]]:
    """The dynamo exporter's `name_scopes` metadata as a list (root, module scopes..., aten op);
    None when absent or not such a list."""
    if not text:
        return None
    try:
        scopes = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
    if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
        return None
    return scopes


def absorbed_batch_norm(recorded: Sequence[str], rewrite_rule: str) -> bool:
    """A conv (or Gemm) that took in an eval BatchNorm carries the BatchNorm's scope."""
    return "batch_norm" in recorded[-1] or "FuseBatchNorm" in rewrite_rule


def weight_module_path(weight_name: str, scopes: Sequence[str]) -> Optional[str]:
    """The conv's module path from its weight `<path>.weight`, when that module sits beside the
    BatchNorm whose scopes the node carries (the exporter merges identical weights, so a name
    from another block is refused)."""
    if not weight_name.endswith(".weight"):
        return None
    path = weight_name[: -len(".weight")]
    if path.rpartition(".")[0] != module_path(scopes).rpartition(".")[0]:
        return None
    return path


def source_key(op_type: str, metadata: Mapping[str, str], inputs: Sequence[str]) -> Optional[str]:
    """The budget key of a node named by its exporter's metadata, not its name; None without it."""
    recorded = recorded_scopes(metadata.get(NAME_SCOPES_KEY))
    if recorded is None:
        return None
    scopes = recorded[1:-1]
    if op_type in WEIGHTED_OPS and len(inputs) > 1 and absorbed_batch_norm(recorded, metadata.get(REWRITE_RULE_KEY, "")):
        path = weight_module_path(inputs[1], scopes)
        if path is not None:
            return path
    return module_path(scopes) or ROOT_KEY


def layer_keys(profile: Any) -> dict[str, str]:
    """Layer name -> budget key for every layer of an engine Profile, reading the exporter's
    metadata (Profile.sources) where the name does not say the module."""
    sources = getattr(profile, "sources", None) or {}
    keys = {}
    for layer in profile.layers:
        source = sources.get(layer.name)
        key = source_key(layer.op_type, dict(source.metadata), source.inputs) if source is not None else None
        keys[layer.name] = layer_key(layer.name) if key is None else key
    return keys


def profile_layer_macs(profile: Any, keys: Optional[Mapping[str, str]] = None) -> dict[str, Optional[int]]:
    """MACs per budget key of an engine Profile (see layer_macs and layer_keys; `keys`: its
    layer_keys when the caller has them already)."""
    keys = layer_keys(profile) if keys is None else keys
    return _macs_by_key((keys[layer.name], layer.macs) for layer in profile.layers)


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
    return _macs_by_key((layer_key(name), macs) for name, macs in layers)


def _macs_by_key(layers: Iterable[tuple[str, Optional[int]]]) -> dict[str, Optional[int]]:
    totals: dict[str, Optional[int]] = {}
    for key, macs in layers:
        if macs is None:
            totals[key] = None
        elif key in totals:
            if totals[key] is not None:
                totals[key] = (totals[key] or 0) + macs
        elif macs:
            totals[key] = macs
    return {key: value for key, value in sorted(totals.items())}
