"""The measurement cache: an unchanged torch model is not exported again, and anything that can
change its exported graph makes the entry stale (never a stale hit)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import Project

pytestmark = pytest.mark.slow
pytest.importorskip("torch")

# `-p no:cacheprovider` is in every run's base arguments: these runs bring the cache back
CACHE_ON = ("-p", "cacheprovider")

MODELS = '''
from torch import nn

SCALE = {scale}


def widen(x):
    return x * SCALE{helper_tail}


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, {width}, 3, padding=1, stride={stride})
        self.fc = nn.Linear({width}, 4)

    def forward(self, x):
        return self.fc(widen(self.conv(x)).mean((2, 3)))
'''

TESTS = '''
import pytest

from models import Net


@pytest.mark.macc_budget("net", inputs=[{shape}])
def test_net():
    return Net()
'''


def write(project: Project, scale: int = 2, helper_tail: str = "", width: int = 8, stride: int = 1,
          shape: str = "(1, 3, 16, 16)") -> None:
    project.add_test("models", MODELS.format(scale=scale, helper_tail=helper_tail, width=width, stride=stride))
    project.add_test("test_net", TESTS.format(shape=shape))


def cache_line(result: pytest.RunResult) -> str:
    return next(line for line in result.stdout.lines if "measurement cache:" in line)


def run(project: Project, *args: str) -> pytest.RunResult:
    return project.run(*CACHE_ON, "--macc-budget", *args)


def entries(project: Project) -> list[Path]:
    return sorted((project.path / ".pytest_cache" / "d" / "maccbudget").glob("*.json"))


@pytest.fixture
def recorded(project: Project) -> Project:
    write(project)
    result = project.run(*CACHE_ON, "--macc-budget-update")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert "0 of 1 torch model unchanged" in cache_line(result)
    assert len(entries(project)) == 1
    return project


@pytest.mark.parametrize("xdist_args", [()], ids=["no-xdist-args"])
def test_an_unchanged_model_is_not_exported_again(recorded: Project) -> None:
    again = run(recorded)
    assert again.ret == pytest.ExitCode.OK
    assert "1 of 1 torch model unchanged since the last run, not exported again" in cache_line(again)
    # a hit is checked like a measurement: a lowered budget still fails it
    recorded.edit_budget("macs: ", "macs: 1", name="macc_budget.yaml")  # 55296 -> 155296: a looser budget
    tightened = run(recorded, "--macc-budget-strict")
    assert tightened.ret == pytest.ExitCode.TESTS_FAILED
    assert "1 of 1 torch model unchanged" in cache_line(tightened)
    # a corrupt entry is ignored and written again, whole
    [entry] = entries(recorded)
    entry.write_text('{"format": 1, "key": "truncated', encoding="utf-8")
    assert "0 of 1 torch model unchanged" in cache_line(run(recorded))
    assert json.loads(entry.read_text(encoding="utf-8"))["format"] == 1
    # the bypass flag neither reads nor writes it; --cache-clear empties it
    bypass = run(recorded, "--macc-budget-no-cache")
    assert not any("measurement cache:" in line for line in bypass.stdout.lines)
    assert "1 of 1 torch model unchanged" in cache_line(run(recorded))
    assert "0 of 1 torch model unchanged" in cache_line(run(recorded, "--cache-clear"))


# Each change is made on top of the one before; each run misses, measures and stores anew.
CHANGES = [
    # code inside a helper forward() calls, no structural change: caught by the code record
    (dict(helper_tail=" + x"), "models.widen changed"),
    # a plain global that code reads (a scale factor: the same counts, but it could be a shape)
    (dict(helper_tail=" + x", scale=3), "global models.SCALE changed"),
    # a module attribute that is no parameter shape (the conv's stride: a quarter of the MACs)
    (dict(helper_tail=" + x", scale=3, stride=2), ""),
    # a parameter shape
    (dict(helper_tail=" + x", scale=3, stride=2, width=9), ""),
    # the input spec
    (dict(helper_tail=" + x", scale=3, stride=2, width=9, shape="(1, 3, 32, 32)"), ""),
]


@pytest.mark.parametrize("xdist_args", [()], ids=["no-xdist-args"])
def test_what_can_change_the_graph_makes_the_entry_stale(recorded: Project) -> None:
    for change, why in CHANGES:
        write(recorded, **change)
        result = run(recorded)
        line = cache_line(result)
        assert "0 of 1 torch model unchanged" in line, (change, line)
        assert why in line, (change, line)
    # the last measurement is the one checked: its inputs are new
    assert "the test measured {x: [1, 3, 32, 32]}" in result.stdout.str()
    assert "1 of 1 torch model unchanged" in cache_line(run(recorded))  # and stored: the next run hits
    # another exporter is another entry
    before = len(entries(recorded))
    recorded.ini("macc_budget_exporter = dynamo")
    assert "0 of 1 torch model unchanged" in cache_line(run(recorded))
    assert len(entries(recorded)) == before + 1


TWINS = '''
import pytest

from models import Net


@pytest.mark.macc_budget("{name}", inputs=[(1, 3, 16, 16)])
def test_{name}():
    return Net()
'''


@pytest.mark.parametrize("xdist_args", [("-n", "2")], ids=["n2"])
def test_workers_share_the_cache(project: Project) -> None:
    write(project)
    for name in ("twin_a", "twin_b", "twin_c", "twin_d"):  # one model four times: one entry, written by any worker
        project.add_test(f"test_{name}", TWINS.format(name=name))
    first = project.run(*CACHE_ON, "--macc-budget-update")
    assert first.ret == pytest.ExitCode.OK, first.stdout.str()
    assert len(entries(project)) == 1
    second = run(project)
    assert second.ret == pytest.ExitCode.OK
    assert "5 of 5 torch models unchanged" in cache_line(second)
