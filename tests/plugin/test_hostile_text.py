"""Text a pull request controls (model, layer and test names, exception messages, the base ref)
is escaped in the markdown report and cannot become a workflow command in the log."""
from __future__ import annotations

import json
import re

import pytest

from .conftest import Project

pytest.importorskip("torch")
markdown_it = pytest.importorskip("markdown_it", reason="the markdown checks need markdown-it-py (test extra)")

HOSTILE = "<img src=x onerror=alert(1)> @octocat [link](https://evil.example) **bold**"

HOSTILE_TESTS = '''
import pytest
import torch
from torch import nn


class Exploding(nn.Module):
    def forward(self, x):
        raise RuntimeError("export failed\\n::error::pwned by a model\\n##[warning]old form\\r::add-mask::x "
                           + {hostile!r})


class Small(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc = nn.Linear(4, width)

    def forward(self, x):
        return self.fc(x)


@pytest.mark.macc_budget("exploding", inputs=[(1, 4)])
def test_exploding():
    return Exploding()


@pytest.mark.macc_budget({name!r}, inputs=[(1, 4)])
def test_hostile_name():
    return Small({width})
'''

NAME = "net\n::warning::from a name <b>x</b> @octocat"


def _command_lines(output: str) -> list[str]:
    """Every line the runner would read as a workflow command (it splits at CR and LF)."""
    lines = re.split(r"\r\n|\r|\n", output)
    return [line for line in lines if line.lstrip().startswith("::") or "##[" in line]


@pytest.mark.slow
@pytest.mark.parametrize("xdist_args", [(), ("-n", "2")], ids=["no-xdist-args", "n2"])
def test_hostile_text_is_escaped_in_markdown_and_neutralised_in_the_log(project: Project,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    project.add_test("test_hostile", HOSTILE_TESTS.format(hostile=HOSTILE, name=NAME, width=2))
    project.record("-k", "hostile_name")
    project.add_test("test_hostile", HOSTILE_TESTS.format(hostile=HOSTILE, name=NAME, width=3))
    summary = project.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    result = project.run("--macc-budget", "--macc-budget-report=report.md", "--macc-budget-json=report.json")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    output = result.stdout.str() + result.stderr.str()
    assert "pwned by a model" in output  # the message is shown...
    commands = _command_lines(output)
    # ...but the only workflow commands are the plugin's own annotations, one per regression
    assert commands and all(re.match(r"::(error|notice) (file=|title=pytest-maccbudget)", line) for line in commands), commands
    assert not any("pwned" in line.split("::", 2)[1] for line in commands)  # no command named by the text

    report = json.loads((project.path / "report.json").read_text())
    assert [e["name"] for e in report["errors"]] == ["exploding"]
    markdown = (project.path / "report.md").read_text()
    assert markdown == summary.read_text()
    tokens = markdown_it.MarkdownIt("commonmark").enable("table").parse(markdown)
    assert tokens[0].type == "html_block" and tokens[0].content == "<!-- pytest-maccbudget report -->\n"
    tokens = tokens[1:]  # the report's own marker is its only HTML
    inline = [child for token in tokens for child in (token.children or [])]
    kinds = {token.type for token in tokens} | {child.type for child in inline}
    assert not kinds & {"html_block", "html_inline", "link_open", "image", "strong_open"}, kinds
    headings = [tokens[i + 1].content for i, token in enumerate(tokens) if token.type == "heading_open"]
    assert not any("warning" in heading and "::" in heading and "`" not in heading for heading in headings)
    texts = " ".join(child.content for child in inline if child.type == "text")
    assert "@octocat" not in texts  # a mention would notify the person
    assert "@\u200boctocat" in texts
