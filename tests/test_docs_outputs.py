"""The command outputs shown in README.md and docs/*.md are what the commands print now.

scripts/docs_outputs.py finds each output block by its marker, runs its command in a controlled
environment and compares; `python scripts/docs_outputs.py --write` rewrites the blocks that
differ. One test per distinct command, so that each command runs once per test session (blocks
that show parts of one output share it); the runs that export torch models are marked slow.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Pages whose every output block must be generated. report-schema.md and github-action.md are
# checked by their own tests.
GENERATED_PAGES = ("README.md", "docs/plugin.md", "docs/budget-file.md", "docs/history.md", "examples/README.md")
# A fence with no info string shows a command's output and needs a marker; code, configuration
# and drawings (a directory tree) name their language.


def _load_docs_outputs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_outputs", ROOT / "scripts" / "docs_outputs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


docs_outputs = _load_docs_outputs()
BLOCKS = docs_outputs.find_blocks(ROOT)
RUNS = docs_outputs.runs_of(BLOCKS)


def _run_param(run: Any) -> Any:
    first = RUNS[run][0]
    marks = [pytest.mark.slow] if run.slow else []
    return pytest.param(run, id=f"{first.where} {run.command}"[:120], marks=marks)


@pytest.fixture(scope="session")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One runner per session; under pytest-xdist the workers share the prepared places (the
    examples project recorded once, the history repository built once)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return docs_outputs.Runner(ROOT, tmp_path_factory.mktemp("docs-outputs"),
                               templates_dir=shared / "docs-outputs-places")


@pytest.mark.parametrize("run", [_run_param(run) for run in RUNS])
def test_shown_output_is_what_the_command_prints(run: Any, runner: Any) -> None:
    result = runner.execute(run)
    problems = [problem for problem in (docs_outputs.block_problem(block, result) for block in RUNS[run])
                if problem is not None]
    assert not problems, "\n\n".join(problems) + "\n\n(python scripts/docs_outputs.py --write rewrites them)"


@pytest.mark.parametrize("page", GENERATED_PAGES)
def test_every_output_block_is_generated(page: str) -> None:
    """A fence with no info string is an output: it needs a marker."""
    lines = (ROOT / page).read_text(encoding="utf-8").split("\n")
    marked = {block.content_start - 1 for block in BLOCKS if block.doc == page}
    unmarked = [f"{page}:{start + 1}: {fence}" for start, (fence, _, language) in docs_outputs.fenced_blocks(lines)
                if start not in marked and not language]
    assert not unmarked, ("output blocks without an <!-- output: ... --> marker (or code blocks without a "
                          "language):\n" + "\n".join(unmarked))


def test_pages_have_generated_blocks() -> None:
    """The markers are found: every page that must be generated has some."""
    pages = {block.doc for block in BLOCKS}
    assert set(GENERATED_PAGES) <= pages, sorted(set(GENERATED_PAGES) - pages)


def test_a_block_that_differs_is_reported_with_its_page_command_and_diff() -> None:
    run = docs_outputs.Run(place="project", command="echo hello")
    block = docs_outputs.Block(doc="docs/x.md", line=3, run=run, prompt=None, shows=(), gap="...", fence="```",
                               content_start=5, content_end=6, content="goodbye")
    problem = docs_outputs.block_problem(block, docs_outputs.RunResult(output="hello", exit_status=0))
    assert problem is not None
    assert problem.startswith("docs/x.md:3: `echo hello`: the block differs from what the command prints:")
    assert "-goodbye" in problem and "+hello" in problem


def test_durations_are_not_compared() -> None:
    shown = "=== 6 passed in 18.74s ==="
    printed = "============================== 6 passed in 3.06s ==============================="
    assert docs_outputs.comparable(shown) == docs_outputs.comparable(printed)
    assert docs_outputs.comparable("6 passed in 5.86s") == docs_outputs.comparable("6 passed in 0.5s")


def test_show_ranges_mark_left_out_lines() -> None:
    lines = ["header", "a", "b", "skipped", "c", "tail"]
    shows = [docs_outputs.parse_line_range("/^a$/ .. /^b$/", "t"), docs_outputs.parse_line_range("/^c$/", "t")]
    assert docs_outputs.select_lines(lines, shows, "...") == ["...", "a", "b", "...", "c", "..."]
    assert docs_outputs.select_lines(lines, shows, None) == ["a", "b", "c"]
    until = [docs_outputs.parse_line_range("start .. before /^skipped$/", "t")]
    assert docs_outputs.select_lines(lines, until, "...") == ["header", "a", "b", "..."]


def test_a_rewrite_keeps_the_durations_the_block_shows() -> None:
    shown = "...\n=== 6 passed in 18.74s ==="
    printed = "1 failed\n============================== 6 passed in 3.06s ==============================="
    assert docs_outputs.keep_shown_durations(shown, printed) == "1 failed\n=== 6 passed in 18.74s ==="
    # a summary that says something else is the new one, duration and all
    assert docs_outputs.keep_shown_durations(shown, "5 passed in 3.06s") == "5 passed in 3.06s"


PAGE = """# A page

<!-- output: echo one; echo two; echo three
show: /^two$/
-->
```
old
```

<!-- output: same run as above
show: /^three$/
gap: none
-->
```
three
```

```python
print("code is not an output")
```
"""


def test_markers_are_read_with_their_options_and_shared_runs() -> None:
    first, second = docs_outputs.blocks_of("docs/page.md", PAGE)
    assert (first.line, first.run.place, first.run.command) == (3, "project", "echo one; echo two; echo three")
    assert first.content == "old" and first.gap == "..."
    assert second.run is first.run and second.gap is None and second.content == "three"
    assert list(docs_outputs.runs_of([first, second])) == [first.run]


def test_a_marker_without_its_block_or_with_an_unknown_place_option_is_an_error() -> None:
    with pytest.raises(docs_outputs.MarkerError, match="not followed by a fenced block"):
        docs_outputs.blocks_of("docs/page.md", "<!-- output: echo hi -->\ntext\n")
    with pytest.raises(docs_outputs.MarkerError, match="read-only"):
        docs_outputs.blocks_of("docs/page.md", "<!-- output: repo: ls\nbefore: touch x\n-->\n```\nx\n```\n")
    with pytest.raises(docs_outputs.MarkerError, match="no marker is above it"):
        docs_outputs.blocks_of("docs/page.md", "<!-- output: same run as above -->\n```\nx\n```\n")


def test_write_replaces_only_the_blocks_contents(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    page.write_text(PAGE, encoding="utf-8")
    first, second = docs_outputs.blocks_of("docs/page.md", PAGE)
    assert docs_outputs.write_blocks(tmp_path, [(first, "...\ntwo\n..."), (second, "three")]) == ["docs/page.md"]
    assert page.read_text(encoding="utf-8") == PAGE.replace("```\nold\n```", "```\n...\ntwo\n...\n```")


def test_write_refuses_a_page_that_changed_while_the_commands_ran(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    first, _ = docs_outputs.blocks_of("docs/page.md", PAGE)
    page.write_text(PAGE.replace("```\nold\n```", "```\nedited by hand\n```"), encoding="utf-8")
    with pytest.raises(docs_outputs.MarkerError, match="changed while the commands ran"):
        docs_outputs.write_blocks(tmp_path, [(first, "two")])


def test_an_edit_that_no_longer_applies_is_an_error(tmp_path: Path) -> None:
    target = tmp_path / "model.py"
    target.write_text("WIDTH = 16\n", encoding="utf-8")
    with pytest.raises(docs_outputs.RunError, match="does not contain 'WIDTH = 32'"):
        docs_outputs.apply_edit(target, docs_outputs.Edit("model.py", "WIDTH = 32", "WIDTH = 64"))
    docs_outputs.apply_edit(target, docs_outputs.Edit("model.py", "WIDTH = 16", "WIDTH = 64"))
    assert target.read_text(encoding="utf-8") == "WIDTH = 64\n"


def test_a_run_gets_a_fixed_environment_and_its_directory_reads_home_you(tmp_path: Path) -> None:
    run = docs_outputs.Run(place="project", command='echo "$PWD $COLUMNS $TZ"; cat notes.txt; exit 3',
                           files=(docs_outputs.FileToWrite("notes.txt", "from the marker\n"),))
    result = docs_outputs.Runner(docs_outputs.ROOT, tmp_path).execute(run)
    assert result.exit_status == 3
    assert result.output == "/home/you/project 80 UTC\nfrom the marker"
    assert str(tmp_path) not in result.output


def test_an_exit_status_other_than_the_markers_is_a_problem_even_with_the_same_output() -> None:
    run = docs_outputs.Run(place="project", command="false", exit_status=0)
    block = docs_outputs.Block(doc="docs/x.md", line=1, run=run, prompt=None, shows=(), gap="...", fence="```",
                               content_start=3, content_end=3, content="")
    problem = docs_outputs.block_problem(block, docs_outputs.RunResult(output="", exit_status=1))
    assert problem is not None and "exited 1, the marker says exit 0" in problem
