"""Workflow-command text: what we print can never be read by the runner as a command."""
from __future__ import annotations

import re

import pytest

from pytest_maccbudget.action.commands import ZERO_WIDTH_SPACE, command, neutralise


def _runner_commands(text: str) -> list[str]:
    """The lines the runner would parse as commands: it splits at CR and LF, trims leading
    whitespace and looks for "::", and finds the older "##[" form anywhere in a line."""
    return [line for line in re.split(r"\r\n|\r|\n", text) if line.lstrip().startswith("::") or "##[" in line]


@pytest.mark.parametrize("text", [
    "::error::pwned",
    "ok\n  ::add-mask::secret",
    "progress\r::stop-commands::token",
    "\t::set-output name=x::1",
    "say ##[error]old form",
    "a\n::warning::x\n##[group]y\n::endgroup::",
])
def test_neutralised_text_holds_no_command(text: str) -> None:
    assert _runner_commands(text)
    assert _runner_commands(neutralise(text)) == []
    assert neutralise(text).replace(ZERO_WIDTH_SPACE, "") == text  # a reader sees the same text


def test_ordinary_text_is_unchanged() -> None:
    for text in ("model 'a::b': macs 10 > budget 8", "layer /a/b::c", "C++ std::vector", ""):
        assert neutralise(text) == text


def test_our_own_command_survives_and_its_data_cannot_start_another() -> None:
    line = command("error", "line one\n::add-mask::x")
    assert _runner_commands(line) == [line]
