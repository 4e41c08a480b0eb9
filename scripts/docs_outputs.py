"""The command outputs shown in README.md and docs/*.md: run them, then check or rewrite the docs.

    python scripts/docs_outputs.py --check    # exit 1 and a unified diff per block that differs
    python scripts/docs_outputs.py --write    # rewrite the blocks that differ
    python scripts/docs_outputs.py --list     # the blocks and the command each shows
    python scripts/docs_outputs.py --check --fast docs/history.md   # one page, no torch exports

An output block is a fenced block right after a marker, an HTML comment (markdown renderers
do not show it):

    <!-- output: examples: python -m pytest --macc-budget
    edit: models/mobilenet_v2.py: LAST_CHANNELS = 1280 => LAST_CHANNELS = 1600
    exit: 1
    show: /^model 'mobilenet_v2-0.5':/
    -->
    ```
    model 'mobilenet_v2-0.5': macs 32.1 M > budget 31.3 M ...
    ```

The first line is `output: [PLACE:] COMMAND`: a bash command, run in a fresh copy of PLACE:

- `examples`: examples/, after `python -m pytest --macc-budget-update`, so that its budget holds
  this version's counting rules (the docs show a project whose budget an update wrote);
- `project` (the default): an empty directory, filled by `file:` options;
- `history`: a git repository whose budget file has a fixed history (`HISTORY`), with fixed
  dates, names and contents, so its SHAs are the same on every machine;
- `zoo`: onnx's directory of light model-zoo graphs (read-only, not copied);
- `repo`: this repository (read-only, not copied), for showing a file's lines.

A one-line marker (`<!-- output: zoo: maccbudget profile light_resnet50.onnx --top 10 -->`)
shows the whole output. `<!-- output: same run as above` shows another part of the output of
the page's previous marker (then only prompt, show and gap may follow). The other lines of a
marker are options:

- `prompt:` the block starts with `$ COMMAND`; `prompt: TEXT` starts it with `$ TEXT`.
- `file: PATH` then lines indented by four spaces: a file written before the run;
  `file: PATH = block "FIRST LINE"`: the file is the fenced block of the same page whose first
  line is FIRST LINE (so the code a page shows is the code that ran).
- `edit: PATH: OLD => NEW`: replace every OLD with NEW in that file (`\\n` is a newline); an
  OLD that is not there is an error, so an edit cannot silently stop applying.
- `before: COMMAND`: run first (exit 0 required), output not shown. Repeatable.
- `exit: N`: the exit status the command must have (default 0).
- `show: FROM [.. TO]`: the lines shown, repeatable, in order. FROM is `/REGEX/` (the first line
  after the previous range that matches) or `start`; TO is `/REGEX/`, `before /REGEX/` or `end`.
  Without `show:` every line is shown.
- `gap: TEXT`: the line that stands for left-out lines (default `...`); `gap: none` for none.
- `cache: on`: keep pytest's cache provider (the measurement cache's own examples).

Every run gets a fixed environment: COLUMNS=80, TZ=UTC, a C.UTF-8 locale, no GitHub Actions
variables, a fixed git identity and date, no git configuration but its own, and
PYTEST_ADDOPTS="-p no:cacheprovider -p no:hypothesispytest -p no:benchmark" (in the environment,
so the fix commands pytest prints are the ones a user types). What legitimately varies is
normalised: the run's directory reads /home/you, and pytest's "in 1.23s" is not compared
(`--write` keeps the duration a block already shows).
"""
from __future__ import annotations

import argparse
import contextlib
import difflib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
DOC_GLOBS = ("README.md", "docs/*.md", "examples/README.md")
MARKER_START = "<!-- output:"
MARKER_END = "-->"
SAME_RUN = "same run as above"
SAME_RUN_OPTIONS = ("prompt", "show", "gap")
DISPLAY_HOME = "/home/you"
COPIED_PLACES = ("examples", "project", "history")
READ_ONLY_PLACES = ("zoo", "repo")
PLACE_DIRECTORY_NAMES = {"examples": "examples", "project": "project", "history": "repo"}
DEFAULT_GAP = "..."
RUN_TIMEOUT = 600  # seconds for one command
PYTEST_ADDOPTS = "-p no:hypothesispytest -p no:benchmark"
NO_CACHE_ADDOPTS = "-p no:cacheprovider " + PYTEST_ADDOPTS
FIXED_DATE = "2026-11-12T10:00:00+00:00"
_FENCE = re.compile(r"^(`{3,}|~{3,})(.*)$")
_DURATION = re.compile(r"^=* ?(?P<text>.*?) in \d+(?:\.\d+)?s(?: \(\d+:\d\d:\d\d\))?(?: =*)?$")
_FILE_FROM_BLOCK = re.compile(r'^(?P<path>\S+) = block "(?P<first>.*)"$')


class MarkerError(Exception):
    """A marker that cannot be read, or a block it cannot be generated for."""


class RunError(Exception):
    """A command of a marker that did not run as the marker says."""


# --- markers and blocks -------------------------------------------------------------------


@dataclass(frozen=True)
class FileToWrite:
    path: str
    content: str


@dataclass(frozen=True)
class Edit:
    path: str
    old: str
    new: str


@dataclass(frozen=True)
class LineRange:
    """`show: FROM .. TO`: `start` is None for the first line; `stop` None for the end."""

    start: Optional[str]
    stop: Optional[str]
    stop_inclusive: bool = True
    single: bool = False


@dataclass(frozen=True)
class Run:
    """What runs; blocks with equal runs share one execution."""

    place: str
    command: str
    files: tuple[FileToWrite, ...] = ()
    edits: tuple[Edit, ...] = ()
    before: tuple[str, ...] = ()
    exit_status: int = 0
    cache: bool = False

    @property
    def label(self) -> str:
        return f"{self.place}: {self.command}"

    @property
    def slow(self) -> bool:
        """Runs that export torch models: the examples project, or files that import torch."""
        return self.place == "examples" or any("import torch" in file.content for file in self.files)


@dataclass(frozen=True)
class Block:
    doc: str              # the page, relative to the repository
    line: int             # 1-based line of the marker
    run: Run
    prompt: Optional[str]
    shows: tuple[LineRange, ...]
    gap: Optional[str]
    fence: str
    content_start: int    # 0-based index of the first content line
    content_end: int      # 0-based index of the closing fence
    content: str

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


@dataclass
class _Options:
    place: str
    command: str
    prompt: Optional[str] = None
    files: list[FileToWrite] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    before: list[str] = field(default_factory=list)
    shows: list[LineRange] = field(default_factory=list)
    gap: Optional[str] = DEFAULT_GAP
    exit_status: int = 0
    cache: bool = False


def doc_paths(root: Path = ROOT) -> list[Path]:
    paths: list[Path] = []
    for pattern in DOC_GLOBS:
        paths.extend(sorted(root.glob(pattern)))
    return paths


def find_blocks(root: Path = ROOT, docs: Optional[Sequence[Path]] = None) -> list[Block]:
    blocks: list[Block] = []
    for path in docs if docs is not None else doc_paths(root):
        blocks.extend(blocks_of(path.resolve().relative_to(root).as_posix(), path.read_text(encoding="utf-8")))
    return blocks


def blocks_of(doc: str, text: str) -> list[Block]:
    lines = text.split("\n")
    fenced = dict(fenced_blocks(lines))
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        if lines[index].startswith(MARKER_START):
            block, index = _read_block(doc, lines, index, fenced, blocks[-1].run if blocks else None)
            blocks.append(block)
        else:
            index += 1
    return blocks


def fenced_blocks(lines: Sequence[str]) -> Iterator[tuple[int, tuple[str, int, str]]]:
    """(index of the opening fence, (the fence line, index of the closing fence, info string))."""
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        fence = match.group(1)
        end = next((i for i in range(index + 1, len(lines)) if lines[i].rstrip() == fence), None)
        if end is None:
            return
        yield index, (lines[index], end, match.group(2).strip())
        index = end + 1


def _read_block(doc: str, lines: Sequence[str], index: int, fenced: dict[int, tuple[str, int, str]],
                previous_run: Optional[Run]) -> tuple[Block, int]:
    where = f"{doc}:{index + 1}"
    marker_end = next((i for i in range(index, len(lines)) if lines[i].rstrip().endswith(MARKER_END)), None)
    if marker_end is None:
        raise MarkerError(f"{where}: the marker has no closing {MARKER_END}")
    marker_lines = list(lines[index:marker_end + 1])
    marker_lines[-1] = marker_lines[-1].rstrip()[:-len(MARKER_END)]
    options = _parse_marker(marker_lines, where, lines)
    run = _run_of(options)
    if options.command == SAME_RUN:
        if previous_run is None:
            raise MarkerError(f"{where}: {SAME_RUN}, but no marker is above it")
        run = previous_run
    fence_index = marker_end + 1
    if fence_index not in fenced:
        raise MarkerError(f"{where}: the marker is not followed by a fenced block")
    fence_line, closing, _ = fenced[fence_index]
    block = Block(
        doc=doc, line=index + 1, run=run, prompt=options.prompt, shows=tuple(options.shows),
        gap=options.gap, fence=_FENCE.match(fence_line).group(1),  # type: ignore[union-attr]
        content_start=fence_index + 1, content_end=closing, content="\n".join(lines[fence_index + 1:closing]),
    )
    return block, closing + 1


def _run_of(options: _Options) -> Run:
    return Run(place=options.place, command=options.command, files=tuple(options.files), edits=tuple(options.edits),
               before=tuple(options.before), exit_status=options.exit_status, cache=options.cache)


def _parse_marker(marker_lines: Sequence[str], where: str, doc_lines: Sequence[str]) -> _Options:
    place, command = _parse_first_line(marker_lines[0][len(MARKER_START):].strip(), where)
    options = _Options(place=place, command=command)
    index = 1
    while index < len(marker_lines):
        line = marker_lines[index]
        index += 1
        if not line.strip():
            continue
        key, _, value = line.partition(":")
        if key == "file":
            body, index = _indented_lines(marker_lines, index)
            options.files.append(_file_option(value.strip(), body, where, doc_lines))
        else:
            _set_option(options, key.strip(), value.strip(), where)
    _check_options(options, where, marker_lines)
    return options


def _parse_first_line(text: str, where: str) -> tuple[str, str]:
    if text == SAME_RUN:
        return "", SAME_RUN
    place, separator, rest = text.partition(": ")
    if separator and place in COPIED_PLACES + READ_ONLY_PLACES:
        command = rest.strip()
    else:
        place, command = "project", text
    if not command:
        raise MarkerError(f"{where}: the marker names no command")
    return place, command


def _indented_lines(marker_lines: Sequence[str], index: int) -> tuple[list[str], int]:
    body: list[str] = []
    while index < len(marker_lines) and (marker_lines[index].startswith("    ") or not marker_lines[index].strip()):
        body.append(marker_lines[index][4:])
        index += 1
    while body and not body[-1].strip():
        body.pop()
    return body, index


def _file_option(value: str, body: list[str], where: str, doc_lines: Sequence[str]) -> FileToWrite:
    from_block = _FILE_FROM_BLOCK.match(value)
    if from_block is None:
        if not body:
            raise MarkerError(f"{where}: file: {value} has no content (indent it by four spaces)")
        return FileToWrite(value, "\n".join(body) + "\n")
    if body:
        raise MarkerError(f"{where}: file: {value} has both a block and indented content")
    return FileToWrite(from_block.group("path"), _block_starting_with(from_block.group("first"), where, doc_lines))


def _block_starting_with(first_line: str, where: str, doc_lines: Sequence[str]) -> str:
    matches = [(start, end) for start, (_, end, _) in fenced_blocks(doc_lines)
               if end > start + 1 and doc_lines[start + 1] == first_line]
    if len(matches) != 1:
        raise MarkerError(f"{where}: {len(matches)} fenced blocks start with {first_line!r}; expected one")
    start, end = matches[0]
    return "\n".join(doc_lines[start + 1:end]) + "\n"


def _set_option(options: _Options, key: str, value: str, where: str) -> None:
    if key == "prompt":
        options.prompt = value or options.command
    elif key == "edit":
        options.edits.append(_edit_option(value, where))
    elif key == "before":
        options.before.append(value)
    elif key == "exit":
        if not value.isdigit():
            raise MarkerError(f"{where}: exit: expected a number, got {value!r}")
        options.exit_status = int(value)
    elif key == "show":
        options.shows.append(parse_line_range(value, where))
    elif key == "gap":
        options.gap = None if value == "none" else value
    elif key == "cache":
        options.cache = value == "on"
    else:
        raise MarkerError(f"{where}: unknown option {key!r}; allowed: prompt, file, edit, before, exit, show, gap, cache")


def _edit_option(value: str, where: str) -> Edit:
    path, separator, change = value.partition(": ")
    old, arrow, new = change.partition(" => ")
    if not separator or not arrow or not old:
        raise MarkerError(f"{where}: edit: expected PATH: OLD => NEW, got {value!r}")
    return Edit(path, old.replace("\\n", "\n"), new.replace("\\n", "\n"))


def parse_line_range(value: str, where: str) -> LineRange:
    start_text, separator, stop_text = value.partition(" .. ")
    start = None if start_text.strip() == "start" else _regex(start_text, where)
    if not separator:
        return LineRange(start, start, single=True)
    stop_text = stop_text.strip()
    if stop_text == "end":
        return LineRange(start, None)
    if stop_text.startswith("before "):
        return LineRange(start, _regex(stop_text[len("before "):], where), stop_inclusive=False)
    return LineRange(start, _regex(stop_text, where))


def _regex(text: str, where: str) -> str:
    text = text.strip()
    if len(text) < 2 or not (text.startswith("/") and text.endswith("/")):
        raise MarkerError(f"{where}: show: expected /REGEX/, start, end or before /REGEX/, got {text!r}")
    pattern = text[1:-1]
    try:
        re.compile(pattern)
    except re.error as error:
        raise MarkerError(f"{where}: show: bad regex {pattern!r}: {error}") from None
    return pattern


def _check_options(options: _Options, where: str, marker_lines: Sequence[str]) -> None:
    if options.command == SAME_RUN:
        keys = {line.partition(":")[0].strip() for line in marker_lines[1:] if line.strip()}
        if not keys <= set(SAME_RUN_OPTIONS):
            raise MarkerError(f"{where}: {SAME_RUN} takes only {', '.join(SAME_RUN_OPTIONS)}")
        return
    if options.place in READ_ONLY_PLACES and (options.files or options.edits or options.before):
        raise MarkerError(f"{where}: {options.place} is read-only: no file, edit or before")


# --- places and runs ------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    output: str       # stdout and stderr as one stream, paths normalised
    exit_status: int


def zoo_directory() -> Path:
    import onnx

    return Path(onnx.__file__).resolve().parent / "backend" / "test" / "data" / "light"


def run_environment(cache: bool = False) -> dict[str, str]:
    """The controlled environment of every command."""
    dropped_prefixes = ("PYTEST_", "GITHUB_", "GIT_", "RUNNER_", "XDG_")
    dropped = {"CI", "FORCE_COLOR", "NO_COLOR", "PY_COLORS", "COLUMNS", "LINES", "TERM", "MACCBUDGET_DEBUG"}
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped_prefixes) and k not in dropped}
    env.update({
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
        "COLUMNS": "80",
        "LINES": "24",
        "TZ": "UTC",
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
        "PY_COLORS": "0",
        "PYTEST_ADDOPTS": PYTEST_ADDOPTS if cache else NO_CACHE_ADDOPTS,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "Ana",
        "GIT_AUTHOR_EMAIL": "ana@example.com",
        "GIT_COMMITTER_NAME": "Ana",
        "GIT_COMMITTER_EMAIL": "ana@example.com",
        "GIT_AUTHOR_DATE": FIXED_DATE,
        "GIT_COMMITTER_DATE": FIXED_DATE,
    })
    return env


def _bash(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace",
                          timeout=RUN_TIMEOUT, check=False)


class Runner:
    """Runs each distinct command once, in fresh copies of the places prepared once. Processes
    that share `templates_dir` (pytest-xdist workers) prepare each place once between them."""

    def __init__(self, root: Path, workdir: Path, templates_dir: Optional[Path] = None) -> None:
        self.root = root
        self.workdir = Path(workdir)
        self.templates_dir = Path(templates_dir) if templates_dir is not None else self.workdir / "places"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._templates: dict[str, Path] = {}
        self._results: dict[Run, RunResult] = {}
        self._lock = threading.Lock()
        self._place_locks = {place: threading.Lock() for place in COPIED_PLACES}
        self._run_locks: dict[Run, threading.Lock] = {}
        self._count = 0

    def execute(self, run: Run) -> RunResult:
        with self._lock:
            run_lock = self._run_locks.setdefault(run, threading.Lock())
        with run_lock:
            if run not in self._results:
                self._results[run] = self._execute(run)
            return self._results[run]

    def _execute(self, run: Run) -> RunResult:
        run_root, cwd = self._place_for(run)
        env = run_environment(run.cache)
        for file in run.files:
            target = cwd / file.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(file.content, encoding="utf-8")
        for edit in run.edits:
            apply_edit(cwd / edit.path, edit)
        for command in run.before:
            done = _bash(command, cwd, env)
            if done.returncode != 0:
                raise RunError(f"before: {command} exited {done.returncode}:\n{done.stdout}")
        done = _bash(run.command, cwd, env)
        output = self._normalised(done.stdout, run_root)
        return RunResult(output=output, exit_status=done.returncode)

    def _place_for(self, run: Run) -> tuple[Optional[Path], Path]:
        """(the run's own root directory, or None for a read-only place; the working directory)."""
        if run.place == "zoo":
            return None, zoo_directory()
        if run.place == "repo":
            return None, self.root
        with self._lock:
            self._count += 1
            run_root = self.workdir / f"run-{self._count}"
        cwd = run_root / PLACE_DIRECTORY_NAMES[run.place]
        template = self._template(run.place)
        if template is None:
            cwd.mkdir(parents=True)
        else:
            shutil.copytree(template, cwd, symlinks=True)
        return run_root, cwd

    def _template(self, place: str) -> Optional[Path]:
        """The prepared place that every run of it copies, made on first use."""
        if place == "project":
            return None
        with self._place_locks[place]:
            if place not in self._templates:
                self._templates[place] = self._shared_template(place)
            return self._templates[place]

    def _shared_template(self, place: str) -> Path:
        name = PLACE_DIRECTORY_NAMES[place]
        target = self.templates_dir / name
        ready = self.templates_dir / f"{name}.ready"
        self.templates_dir.mkdir(parents=True, exist_ok=True)
        with _exclusive(self.templates_dir / f"{name}.lock"):
            if not ready.exists():
                shutil.rmtree(target, ignore_errors=True)
                if place == "examples":
                    prepare_examples(self.root / "examples", target, run_environment())
                else:
                    build_history_repository(target, run_environment())
                ready.touch()
        return target

    def _normalised(self, output: str, run_root: Optional[Path]) -> str:
        text = output
        if run_root is not None:
            for path in sorted({str(run_root), str(run_root.resolve())}, key=len, reverse=True):
                text = text.replace(path, DISPLAY_HOME)
        return "\n".join(line.rstrip() for line in text.split("\n")).rstrip("\n")


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Held by one process at a time."""
    with open(lock_path, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def apply_edit(path: Path, edit: Edit) -> None:
    text = path.read_text(encoding="utf-8")
    if edit.old not in text:
        raise RunError(f"edit: {edit.path} does not contain {edit.old!r}")
    path.write_text(text.replace(edit.old, edit.new), encoding="utf-8")


def prepare_examples(source: Path, target: Path, env: dict[str, str]) -> None:
    """A copy of examples/ whose budget an update of this version wrote."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    done = _bash("python -m pytest -q --macc-budget-update", target, env)
    if done.returncode != 0:
        raise RunError(f"recording the examples' budget failed ({done.returncode}):\n{done.stdout}")


# --- the history repository -------------------------------------------------------------------

BUDGET_HEADER = """\
# Model cost budget for pytest-maccbudget, checked by `pytest --macc-budget`.
# inputs, total and layers are recorded by `pytest --macc-budget-update`;
# limit and tolerance are yours: an update never changes them.
# Numbers may carry units: 1.2G, 350M, 1,234 (counts); 24MB, 1.5GiB (bytes).
version: 1
rules: 2
"""
# Each model's entry in the history's budget files: the lines above its totals.
ENTRY_HEADS = {
    "keyword-spotter": "    inputs: {mfcc: [1, 1, 49, 10]}\n",
    "mobilenet_v2-0.5": "    inputs: {images: [1, 3, 128, 128]}\n    limit: {macs: 40M, peak_activation_bytes: 2MB}\n",
}
# (macs, flops, params, param_bytes, peak_activation_bytes), as the example project measures them
MOBILENET_BASE = (31311360, 64856576, 700490, 2738504, 1572864)
MOBILENET_WIDER_HEAD = (32133760, 66516736, 755530, 2957384, 1572864)   # last conv 1280 -> 1600
MOBILENET_EXPANSION_7 = (36323456, 75207936, 835202, 3267400, 1835008)  # and expansion 6 -> 7
KWS_FLOAT = (816384, 1636768, 8076, 32304, 32000)
KWS_INT8 = (816384, 1636768, 8076, 8076, 32000)
CONFLICTED = "<<<<<<< HEAD\n"


@dataclass(frozen=True)
class HistoryStep:
    """A commit on main: a merged pull request when `branch` is given, else a direct commit."""

    day: str
    subject: str
    models: dict[str, tuple[int, ...]]
    branch: Optional[tuple[str, str]] = None  # (branch name, the branch's commit subject)
    conflicted: bool = False                  # the file was committed with conflict markers


HISTORY = (
    HistoryStep("2026-11-02", "Record budgets for the example models",
                {"keyword-spotter": KWS_FLOAT, "mobilenet_v2-0.5": MOBILENET_BASE}),
    HistoryStep("2026-11-04", "Merge pull request #12 from ana/wider-head",
                {"keyword-spotter": KWS_FLOAT, "mobilenet_v2-0.5": MOBILENET_WIDER_HEAD},
                branch=("ana/wider-head", "Widen the last conv to 1600 channels")),
    HistoryStep("2026-11-06", "Merge pull request #15 from bo/kws-int8",
                {"keyword-spotter": KWS_INT8, "mobilenet_v2-0.5": MOBILENET_WIDER_HEAD},
                branch=("bo/kws-int8", "Quantize the keyword spotter to int8")),
    HistoryStep("2026-11-07", "Merge branch 'release'",
                {"keyword-spotter": KWS_INT8, "mobilenet_v2-0.5": MOBILENET_WIDER_HEAD}, conflicted=True),
    HistoryStep("2026-11-08", "Fix the budget file",
                {"keyword-spotter": KWS_INT8, "mobilenet_v2-0.5": MOBILENET_WIDER_HEAD}),
    HistoryStep("2026-11-09", "Merge pull request #17 from ana/expansion-7",
                {"keyword-spotter": KWS_INT8, "mobilenet_v2-0.5": MOBILENET_EXPANSION_7},
                branch=("ana/expansion-7", "Expand the inverted residual blocks 7x")),
    HistoryStep("2026-11-10", "Merge pull request #21 from cy/drop-kws",
                {"mobilenet_v2-0.5": MOBILENET_EXPANSION_7},
                branch=("cy/drop-kws", "Drop the keyword spotter")),
)


def history_budget_text(models: dict[str, tuple[int, ...]], conflicted: bool = False) -> str:
    """A version of the history's budget file, in the layout an update writes (totals only), or
    committed with conflict markers. Written out here, not by the package, so that the history's
    SHAs change only when this story does."""
    lines = BUDGET_HEADER.splitlines()
    if conflicted:
        lines += [CONFLICTED.rstrip("\n"), "  owner: ml-platform", "=======", ">>>>>>> release"]
    lines.append("models:")
    for name in sorted(models):
        macs, flops, params, param_bytes, peak = models[name]
        lines.append(f"  {name}:")
        lines += ENTRY_HEADS[name].splitlines()
        lines.append(f"    total: {{macs: {macs}, flops: {flops}, params: {params},")
        lines.append(f"            param_bytes: {param_bytes}, peak_activation_bytes: {peak}}}")
    return "\n".join(lines) + "\n"


def build_history_repository(target: Path, env: dict[str, str]) -> None:
    """HISTORY as a git repository in `target` (branch main), the same SHAs on every machine."""
    target.mkdir(parents=True)
    _git(target, env, "init", "-q", "-b", "main")
    for step in HISTORY:
        text = history_budget_text(step.models, step.conflicted)
        if step.branch is None:
            _commit(target, env, text, step.subject, f"{step.day}T10:00:00+00:00")
            continue
        branch, branch_subject = step.branch
        _git(target, env, "checkout", "-q", "-b", branch)
        _commit(target, env, text, branch_subject, f"{step.day}T09:00:00+00:00")
        _git(target, env, "checkout", "-q", "main")
        dated = _dated(env, f"{step.day}T10:00:00+00:00")
        _git(target, dated, "merge", "-q", "--no-ff", "-m", step.subject, branch)


def _dated(env: dict[str, str], date: str) -> dict[str, str]:
    return {**env, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}


def _commit(repo: Path, env: dict[str, str], budget_text: str, subject: str, date: str) -> None:
    (repo / "macc_budget.yaml").write_text(budget_text, encoding="utf-8")
    _git(repo, env, "add", "macc_budget.yaml")
    _git(repo, _dated(env, date), "commit", "-q", "-m", subject)


def _git(repo: Path, env: dict[str, str], *args: str) -> None:
    done = subprocess.run(["git", *args], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, check=False)
    if done.returncode != 0:
        raise RunError(f"git {' '.join(args)} failed ({done.returncode}): {done.stdout}")


# --- rendering and comparing -------------------------------------------------------------------


def select_lines(lines: Sequence[str], shows: Sequence[LineRange], gap: Optional[str]) -> list[str]:
    """The lines the ranges pick, a gap line wherever lines were left out."""
    if not shows:
        return list(lines)
    picked: list[str] = []
    position = 0
    for line_range in shows:
        start, stop = _range_bounds(lines, line_range, position)
        if gap is not None and start > position:
            picked.append(gap)
        picked.extend(lines[start:stop])
        position = stop
    if gap is not None and position < len(lines):
        picked.append(gap)
    return picked


def _range_bounds(lines: Sequence[str], line_range: LineRange, position: int) -> tuple[int, int]:
    start = position if line_range.start is None else _first_match(lines, line_range.start, position)
    if line_range.single:
        return start, start + 1
    if line_range.stop is None:
        return start, len(lines)
    stop = _first_match(lines, line_range.stop, start + 1)
    return start, stop + 1 if line_range.stop_inclusive else stop


def _first_match(lines: Sequence[str], pattern: str, position: int) -> int:
    regex = re.compile(pattern)
    for index in range(position, len(lines)):
        if regex.search(lines[index]):
            return index
    raise MarkerError(f"show: no line from line {position + 1} on matches /{pattern}/")


def render(block: Block, result: RunResult) -> str:
    lines = select_lines(result.output.split("\n"), block.shows, block.gap)
    if block.prompt is not None:
        lines = [f"$ {block.prompt}"] + lines
    text = "\n".join(lines)
    if any(line.startswith(block.fence[:3]) and line.strip() == block.fence for line in lines):
        raise MarkerError(f"{block.where}: the output holds the block's own fence {block.fence}: use a longer one")
    return text


def comparable(text: str) -> str:
    """The text with what legitimately varies masked: pytest's durations."""
    return "\n".join(_mask_duration(line) for line in text.split("\n"))


def _mask_duration(line: str) -> str:
    match = _DURATION.match(line)
    return f"{match.group('text')} in <duration>" if match else line


def keep_shown_durations(shown: str, generated: str) -> str:
    """The generated text, with each duration line that reads as one the block shows (up to the
    duration) replaced by the shown line, so that a rewrite does not churn timings."""
    shown_by_comparable: dict[str, str] = {}
    for line in shown.split("\n"):
        if _DURATION.match(line):
            shown_by_comparable.setdefault(_mask_duration(line), line)
    return "\n".join(shown_by_comparable.get(_mask_duration(line), line) if _DURATION.match(line) else line
                     for line in generated.split("\n"))


def block_problem(block: Block, result: RunResult) -> Optional[str]:
    """Why the block is not what its command prints, with a diff; None when it is."""
    header = f"{block.where}: `{block.run.command}`"
    if result.exit_status != block.run.exit_status:
        return (f"{header} exited {result.exit_status}, the marker says exit {block.run.exit_status}; "
                f"its output:\n{result.output}")
    try:
        generated = render(block, result)
    except MarkerError as error:
        return f"{header}: {error}; the output:\n{result.output}"
    if comparable(generated) == comparable(block.content):
        return None
    diff = difflib.unified_diff(block.content.split("\n"), generated.split("\n"),
                                f"{block.where} (in the docs)", f"{block.where} (what `{block.run.command}` prints)",
                                lineterm="")
    return f"{header}: the block differs from what the command prints:\n" + "\n".join(diff)


def runs_of(blocks: Iterable[Block]) -> dict[Run, list[Block]]:
    grouped: dict[Run, list[Block]] = {}
    for block in blocks:
        grouped.setdefault(block.run, []).append(block)
    return grouped


def execute_all(runner: Runner, runs: Sequence[Run], jobs: int) -> dict[Run, RunResult | RunError]:
    def attempt(run: Run) -> RunResult | RunError:
        try:
            return runner.execute(run)
        except RunError as error:
            return error

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return dict(zip(runs, pool.map(attempt, runs)))


def write_blocks(root: Path, blocks_with_text: Sequence[tuple[Block, str]]) -> list[str]:
    """Rewrite the given blocks; the pages they are on, changed."""
    by_doc: dict[str, list[tuple[Block, str]]] = {}
    for block, text in blocks_with_text:
        by_doc.setdefault(block.doc, []).append((block, text))
    for doc, items in by_doc.items():
        path = root / doc
        lines = path.read_text(encoding="utf-8").split("\n")
        for block, text in sorted(items, key=lambda item: item[0].content_start, reverse=True):
            if "\n".join(lines[block.content_start:block.content_end]) != block.content:
                raise MarkerError(f"{block.where}: the page changed while the commands ran; run --write again")
            lines[block.content_start:block.content_end] = text.split("\n")
        path.write_text("\n".join(lines), encoding="utf-8")
    return sorted(by_doc)


# --- the command line ---------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="exit 1 with a diff per block that differs")
    mode.add_argument("--write", action="store_true", help="rewrite the blocks that differ")
    mode.add_argument("--list", action="store_true", help="list the blocks and their commands")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="commands run at once")
    parser.add_argument("--fast", action="store_true", help="skip the runs that export torch models")
    parser.add_argument("docs", nargs="*", type=Path, help="only these pages (default: README.md, docs/*.md, examples/README.md)")
    args = parser.parse_args(argv)
    try:
        blocks = find_blocks(ROOT, [path.resolve() for path in args.docs] or None)
    except MarkerError as error:
        print(f"docs_outputs: {error}", file=sys.stderr)
        return 2
    if args.list:
        for block in blocks:
            print(f"{block.where}  {block.run.label}")
        return 0
    grouped = runs_of(blocks)
    runs = [run for run in grouped if not (args.fast and run.slow)]
    with tempfile.TemporaryDirectory(prefix="docs-outputs-") as workdir:
        results = execute_all(Runner(ROOT, Path(workdir)), runs, args.jobs)
    return _report(results, grouped, write=args.write)


def _report(results: dict[Run, RunResult | RunError], grouped: dict[Run, list[Block]], write: bool) -> int:
    problems, to_write = _compare_all(results, grouped, write)
    if to_write:
        try:
            for doc in write_blocks(ROOT, to_write):
                print(f"rewrote {sum(1 for block, _ in to_write if block.doc == doc)} block(s) in {doc}")
        except MarkerError as error:
            problems.append(str(error))
    for problem in problems:
        print(problem + "\n")
    checked = sum(len(grouped[run]) for run in results)
    outcome = f"{len(to_write)} rewritten, {len(problems)} not" if write else f"{len(problems)} differ"
    print(f"docs_outputs: {checked} blocks from {len(results)} commands: {outcome}")
    return 1 if problems else 0


def _compare_all(results: dict[Run, RunResult | RunError], grouped: dict[Run, list[Block]],
                 write: bool) -> tuple[list[str], list[tuple[Block, str]]]:
    """(what is wrong, for the report; the blocks to rewrite with their new text, under --write).
    A block whose command exited otherwise than its marker says is never rewritten."""
    problems: list[str] = []
    to_write: list[tuple[Block, str]] = []
    for run, result in results.items():
        for block in grouped[run]:
            if isinstance(result, RunError):
                problems.append(f"{block.where}: `{run.command}`: {result}")
                continue
            problem = block_problem(block, result)
            if problem is None:
                continue
            if write and result.exit_status == run.exit_status:
                try:
                    to_write.append((block, keep_shown_durations(block.content, render(block, result))))
                    continue
                except MarkerError as error:
                    problem = f"{block.where}: {error}"
            problems.append(problem)
    return problems, to_write


if __name__ == "__main__":
    sys.exit(main())
