"""The measurement cache's key and code record: what they see, and what they ignore."""
from __future__ import annotations

import copy
import sys
import textwrap
import types
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from pytest_maccbudget import fingerprint, measure_cache  # noqa: E402
from pytest_maccbudget.export import parse_inputs  # noqa: E402
from pytest_maccbudget.fingerprint import (  # noqa: E402
    CodeRecord, code_digest, record_forward, static_fingerprint, user_file_test, verify,
)

pytestmark = pytest.mark.skipif(not fingerprint.SUPPORTED, reason="the cache needs Python 3.11+")


def _code(source: str) -> types.CodeType:
    namespace: dict = {}
    exec(compile(textwrap.dedent(source), "<test>", "exec"), namespace)  # noqa: S102
    return namespace["f"].__code__


def test_a_code_digest_ignores_comments_and_line_numbers_but_not_what_the_code_does() -> None:
    plain = _code("def f(x):\n    return x * 2\n")
    moved = _code("\n\n# a comment\ndef f(x):\n    # another\n    return x * 2\n")
    changed = _code("def f(x):\n    return x * 3\n")
    nested = _code("def f(x):\n    def g(y):\n        return y + 1\n    return g(x)\n")
    nested_changed = _code("def f(x):\n    def g(y):\n        return y + 2\n    return g(x)\n")
    assert code_digest(plain) == code_digest(moved)
    assert code_digest(plain) != code_digest(changed)
    assert code_digest(nested) != code_digest(nested_changed)  # nested code by its own digest


def _key(model: nn.Module, inputs: object = ((1, 4),)) -> dict:
    return static_fingerprint(model, parse_inputs(list(inputs)), False)


class Tied(nn.Module):
    def __init__(self, tie: bool) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.out = nn.Linear(4, 10, bias=False)
        if tie:
            self.out.weight = self.embed.weight


def test_the_static_fingerprint_sees_attributes_sharing_equal_bytes_and_zeros() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3)
    strided = copy.deepcopy(conv)
    strided.stride = (2, 2)
    assert _key(conv) != _key(strided)  # same parameter shapes, another graph
    assert _key(Tied(True))["tensors"]["shared"] == [["embed.weight", "out.weight"]]
    assert _key(Tied(False))["tensors"]["shared"] == []
    twins = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    twins[1].load_state_dict(twins[0].state_dict())
    assert _key(twins)["tensors"]["equal"] == [["0.bias", "1.bias"], ["0.weight", "1.weight"]]
    with torch.no_grad():
        twins[0].bias.zero_()
    assert _key(twins)["tensors"]["zeros"] == ["0.bias"]
    # the same model built twice (other random weights): the same key
    torch.manual_seed(1)
    first = _key(nn.Sequential(nn.Linear(4, 4), nn.ReLU()))
    torch.manual_seed(2)
    assert _key(nn.Sequential(nn.Linear(4, 4), nn.ReLU())) == first
    # inputs: shape and dtype, and the bytes of an example tensor given
    model = nn.Linear(4, 4)
    assert _key(model, [(1, 4)]) != _key(model, [(2, 4)])
    assert _key(model, [torch.ones(1, 4)]) != _key(model, [torch.zeros(1, 4)])


def test_versions_and_the_exporter_are_in_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    fingerprint_data = _key(nn.Linear(4, 4))
    key = measure_cache.cache_key(measure_cache.environment("torchscript"), fingerprint_data)
    assert key != measure_cache.cache_key(measure_cache.environment("dynamo"), fingerprint_data)
    monkeypatch.setattr(measure_cache, "package_version", lambda name: "0.0.0" if name == "torch" else "1")
    assert key != measure_cache.cache_key(measure_cache.environment("torchscript"), fingerprint_data)


USER_MODULE = '''
from torch import nn

OFFSET = 1


def shift(x):
    return x + OFFSET


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.act = {act}

    def forward(self, x):
        return self.act(shift(self.fc(x)))
'''


def _import_user_module(root: Path, act: str, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    (root / "user_net.py").write_text(USER_MODULE.format(act=act))
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, "user_net", raising=False)
    import user_net  # type: ignore[import-not-found]

    return user_net


def test_the_code_record_and_its_verification(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user_net = _import_user_module(tmp_path, "nn.ReLU()", monkeypatch)
    record = record_forward(user_net.Net(), parse_inputs([(1, 4)]), False, user_file_test(tmp_path))
    assert set(record.functions) == {"user_net:Net.forward", "user_net:shift"}
    assert record.global_values == {"user_net:OFFSET": 1}
    assert "torch" in record.packages and not record.unresolvable
    assert verify(record) is None
    monkeypatch.setattr(user_net, "OFFSET", 2)
    assert verify(record) == "global user_net.OFFSET changed"
    monkeypatch.setattr(user_net, "OFFSET", 1)
    monkeypatch.setattr(user_net, "shift", lambda x: x)
    assert verify(record) == "user_net.shift changed"
    stale_package = CodeRecord(packages={"torch": "0.0.1"})
    assert verify(stale_package) == "package torch is no longer version 0.0.1"


def test_code_that_cannot_be_found_again_is_never_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user_net = _import_user_module(tmp_path, "(lambda x: x * 2)", monkeypatch)
    record = record_forward(user_net.Net(), parse_inputs([(1, 4)]), False, user_file_test(tmp_path))
    assert record.unresolvable
    assert "cannot be found again" in (verify(record) or "")
