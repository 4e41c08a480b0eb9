"""How each model's recorded totals moved over the budget file's first-parent history.

``budget_history(repo_dir, "macc_budget.yaml")`` lists the commits on the first-parent line
of HEAD (or ``rev``) that changed the budget file, with one ``git log`` run, reads the file at
each of them through GitPython's object database (one long-lived ``git cat-file`` process,
not one process per commit) and keeps, per model, the commits at which its ``total`` changed:
its first appearance, every change, its removal. First parent only, so a merged pull request
is one step, whatever its branch did on the way.

A version of the file that does not parse (an older format, conflict markers) is skipped and
named in ``History.notes``; a shallow clone's history stops at the shallow boundary, and the
notes say where. ``trend_phrase`` sums a model's points up in one line for a report.

Pure logic plus git reading: no pytest, torch or onnx. git (GitPython) is imported inside
functions, so importing this module works without git. The revision reaches git as an
argument-vector element (no shell) after a check that it cannot be read as an option; the
path reaches it as a literal pathspec. Every failure is a ``HistoryError`` whose message is
one line saying what is wrong and what to do.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, NamedTuple, Optional, Sequence, Union

from .budget import TOTAL_METRICS, BudgetError, format_metric, parse_budget
from .gitrepo import first_line, git_stderr_line, import_git, open_repo, repo_relative_path, rev_parse, shallow_commits
from .units import plural

if TYPE_CHECKING:
    from git import Repo

__all__ = [
    "ADDED", "CHANGED", "REMOVED", "START", "History", "HistoryError", "HistoryPoint", "ModelHistory",
    "SkippedCommit", "budget_history", "trend_phrase",
]

# HistoryPoint.kind values
ADDED = "added"        # the model got an entry (first appearance, or back after a removal)
CHANGED = "changed"    # some recorded total differs from the previous point
REMOVED = "removed"    # the model's entry (or the whole file) is gone
START = "start"        # the oldest commit a shallow clone has: what came before is not known

METRIC_LABELS = {
    "macs": "MACs", "flops": "FLOPs", "params": "params", "param_bytes": "parameter bytes",
    "peak_activation_bytes": "peak activation memory",
}
SHALLOW_HINT = "fetch more with `git fetch --deepen=N`"
PURPOSE = "the history"
_LOG_FORMAT = "%H%x00%h%x00%cI%x00%s"  # %s never holds a newline: one commit per line
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SYMLINK_MODE = 0o120000

Totals = Mapping[str, Optional[int]]


class HistoryError(Exception):
    """The history cannot be read; the message is one line saying what to do."""


@dataclass(frozen=True)
class HistoryPoint:
    """One commit at which a model's recorded totals changed."""

    commit: str    # 40 hex digits
    short: str     # git's abbreviation of it, as in `git log --oneline`
    date: str      # committer date, ISO 8601 with its offset: "2026-11-02T10:00:00+00:00"
    subject: str   # first line of the commit message, as written (untrusted text)
    kind: str      # ADDED, CHANGED, REMOVED or START
    totals: Totals  # every metric of budget.TOTAL_METRICS; None when not recorded (or REMOVED)
    previous: Optional[Totals] = None  # the totals at the point before; None for ADDED and START

    @property
    def day(self) -> str:
        """The date without the time: "2026-11-02"."""
        return self.date[:10]

    def change(self, metric: str) -> Optional[int]:
        """This point's value minus the previous point's; None unless both are recorded."""
        new = self.totals.get(metric)
        old = None if self.previous is None else self.previous.get(metric)
        return None if new is None or old is None else new - old


@dataclass(frozen=True)
class ModelHistory:
    """One model's points: its first appearance, every change of its totals, its removal."""

    name: str
    points: tuple[HistoryPoint, ...]  # oldest first
    earlier: int = 0                  # older points left out by `last`


@dataclass(frozen=True)
class SkippedCommit:
    """A commit whose budget file could not be read: its numbers are not in the history."""

    commit: str
    short: str
    date: str
    subject: str
    reason: str  # one line, e.g. the BudgetError: "macc_budget.yaml:4: invalid YAML: ..."


@dataclass(frozen=True)
class History:
    budget_path: str                     # the file's path inside the repository (POSIX)
    rev: str                             # as given, e.g. "HEAD"
    commit: str                          # what rev resolved to
    file_commits: int                    # commits on the first-parent line that changed the file
    models: Mapping[str, ModelHistory]   # by model name, sorted
    skipped: tuple[SkippedCommit, ...] = ()  # oldest first
    shallow_boundary: Optional[str] = None   # the commit a shallow clone's history stops at

    @property
    def notes(self) -> tuple[str, ...]:
        """One line per skipped commit, then the shallow boundary if the history stops there."""
        notes = [f"skipped commit {skip.short} ({skip.date[:10]}): {skip.reason}" for skip in self.skipped]
        if self.shallow_boundary is not None:
            notes.append(f"history ends at a shallow clone boundary at {self.shallow_boundary[:12]}: {SHALLOW_HINT}")
        return tuple(notes)


class _LogEntry(NamedTuple):
    commit: str
    short: str
    date: str
    subject: str


class _Unreadable(Exception):
    """The budget file at one commit cannot be read; the message says why."""


ModelTotals = dict[str, dict[str, int]]  # model name -> its recorded totals, at one commit


# --- the API -----------------------------------------------------------------------------


def budget_history(repo_dir: Union[Path, str], budget_path: Union[Path, str], *, rev: str = "HEAD",
                   models: Optional[Iterable[str]] = None, last: Optional[int] = None,
                   max_commits: Optional[int] = None) -> History:
    """Per model, the commits of ``rev``'s first-parent history at which its totals changed.

    ``repo_dir`` is any directory inside the working tree; ``budget_path`` is absolute or
    relative to it. ``models`` (names, or one name) keeps only those models; names never
    recorded are left out, not an error. ``last`` keeps each model's ``last`` most recent
    points. ``max_commits`` reads only that many of the newest versions of the file (each is
    parsed, so this bounds the cost in a long history); what came before them is then unknown,
    as before a shallow clone's boundary. Raises HistoryError.
    """
    _check_rev(rev)
    wanted = None if models is None else {models} if isinstance(models, str) else set(models)
    if last is not None and last < 1:
        raise ValueError(f"last must be a positive number of points, got {last}")
    git = import_git(HistoryError, PURPOSE)
    start = Path(os.path.abspath(repo_dir))
    repo = open_repo(git, start, HistoryError, PURPOSE)
    try:
        return _read_history(git, repo, repo_relative_path(repo, start, Path(budget_path), HistoryError), rev, wanted, last,
                             max_commits)
    except git.CommandError as err:
        raise HistoryError(f"git failed while reading the history: {git_stderr_line(err)}") from None
    finally:
        repo.close()


def trend_phrase(points: Sequence[HistoryPoint], metric: str = "macs") -> str:
    """One line of plain text (numbers, short SHAs and dates only: nothing to escape), e.g.
    "MACs 31.3 M → 32.1 M → 33.0 M over the last 3 changes (since a1b2c3d, 2026-11-02)"."""
    if metric not in METRIC_LABELS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(TOTAL_METRICS)}")
    label = METRIC_LABELS[metric]
    if not points:
        return f"{label}: no recorded changes"
    values = " → ".join(_point_value(point, metric) for point in points)
    first = points[0]
    if len(points) == 1:
        return f"{label} {values} since {first.short} ({first.day})"
    return f"{label} {values} over the last {plural(len(points), 'change')} (since {first.short}, {first.day})"


def _point_value(point: HistoryPoint, metric: str) -> str:
    return REMOVED if point.kind == REMOVED else format_metric(metric, point.totals.get(metric))


# --- from commits to points --------------------------------------------------------------


def _read_history(git: Any, repo: Repo, rel_path: str, rev: str, wanted: Optional[set[str]],
                  last: Optional[int], max_commits: Optional[int]) -> History:
    commit = _resolve_rev(git, repo, rev)
    entries = _log_entries(repo, commit, rel_path)
    if not entries:
        raise HistoryError(f"`{rel_path}` is not in the first-parent history of `{rev}` ({commit[:12]}): "
                           "commit the budget file first, or give the path of a committed one")
    oldest = entries[-1].commit  # git log lists newest first
    boundary = oldest if oldest in shallow_commits(repo) else None
    cut = max_commits is not None and len(entries) > max_commits
    states, skipped = _read_states(repo, entries[:max_commits] if cut else entries, rel_path)
    names = sorted({name for _, state in states for name in state})
    histories = (_model_history(name, states, boundary is None and not cut, last) for name in names
                 if wanted is None or name in wanted)
    return History(budget_path=rel_path, rev=rev, commit=commit, file_commits=len(entries),
                   models={history.name: history for history in histories}, skipped=tuple(skipped),
                   shallow_boundary=boundary)


def _model_history(name: str, states: Sequence[tuple[_LogEntry, ModelTotals]], start_known: bool,
                   last: Optional[int]) -> ModelHistory:
    points = _model_points(name, states, start_known)
    kept = points if last is None else points[-last:]
    return ModelHistory(name=name, points=tuple(kept), earlier=len(points) - len(kept))


def _model_points(name: str, states: Sequence[tuple[_LogEntry, ModelTotals]],
                  start_known: bool) -> list[HistoryPoint]:
    """A point wherever the model's totals differ from the last readable state before. When
    the history is cut by a shallow clone, what was before its oldest commit is unknown."""
    points: list[HistoryPoint] = []
    before: Optional[dict[str, int]] = None  # None: no entry
    known = start_known
    for entry, state in states:
        now = state.get(name)
        if known and now == before:
            continue
        if known or now is not None:
            points.append(_point(entry, _kind(before, now, known), before, now))
        before, known = now, True
    return points


def _kind(before: Optional[Mapping[str, int]], now: Optional[Mapping[str, int]], known: bool) -> str:
    if not known:
        return START
    if now is None:
        return REMOVED
    return ADDED if before is None else CHANGED


def _point(entry: _LogEntry, kind: str, before: Optional[Mapping[str, int]],
           now: Optional[Mapping[str, int]]) -> HistoryPoint:
    return HistoryPoint(commit=entry.commit, short=entry.short, date=entry.date, subject=entry.subject,
                        kind=kind, totals=_all_metrics(now),
                        previous=None if before is None else _all_metrics(before))


def _all_metrics(totals: Optional[Mapping[str, int]]) -> dict[str, Optional[int]]:
    return {metric: (totals or {}).get(metric) for metric in TOTAL_METRICS}


# --- reading the file at each commit -----------------------------------------------------


def _read_states(repo: Repo, entries: Sequence[_LogEntry],
                 rel_path: str) -> tuple[list[tuple[_LogEntry, ModelTotals]], list[SkippedCommit]]:
    """Oldest first: each readable commit's totals per model, and the commits skipped."""
    states: list[tuple[_LogEntry, ModelTotals]] = []
    skipped: list[SkippedCommit] = []
    parsed: dict[str, ModelTotals] = {}  # by blob SHA: a reverted file is parsed once
    for entry in reversed(entries):
        try:
            states.append((entry, _totals_at(repo, entry.commit, rel_path, parsed)))
        except _Unreadable as err:
            skipped.append(SkippedCommit(*entry, reason=str(err)))
    return states, skipped


def _totals_at(repo: Repo, commit: str, rel_path: str, parsed: dict[str, ModelTotals]) -> ModelTotals:
    try:
        blob = repo.commit(commit).tree / rel_path
    except KeyError:  # deleted at this commit: every model is removed
        return {}
    if blob.hexsha not in parsed:
        parsed[blob.hexsha] = _parse_totals(_blob_text(blob, rel_path), rel_path)
    return parsed[blob.hexsha]


def _blob_text(blob: Any, rel_path: str) -> str:
    if blob.type != "blob" or blob.mode == _SYMLINK_MODE:
        what = "a symbolic link" if blob.type == "blob" else f"a {blob.type}"
        raise _Unreadable(f"`{rel_path}` is {what} there, not a budget file")
    try:
        data = blob.data_stream.read()
    except ValueError as err:  # the object is missing from the object database
        raise _Unreadable(f"cannot read `{rel_path}` ({first_line(str(err))})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _Unreadable(f"`{rel_path}` is not UTF-8 text ({err.reason} at byte {err.start})") from None


def _parse_totals(text: str, rel_path: str) -> ModelTotals:
    try:
        budget = parse_budget(text, Path(rel_path))
    except BudgetError as err:
        raise _Unreadable(first_line(str(err))) from None
    return {name: dict(entry.total) for name, entry in budget.models.items()}


# --- git ---------------------------------------------------------------------------------


def _check_rev(rev: str) -> None:
    """Reject revisions that are empty, could be read as git options, or hold control characters."""
    if not isinstance(rev, str) or not rev.strip():
        raise HistoryError("the revision is empty: pass a branch, tag or commit, e.g. `HEAD`")
    if rev.startswith("-"):
        raise HistoryError(f"invalid revision {rev!r}: a revision cannot start with '-'")
    if _CONTROL.search(rev):
        raise HistoryError(f"invalid revision {rev!r}: it contains control characters")


def _resolve_rev(git: Any, repo: Repo, rev: str) -> str:
    commit = rev_parse(git, repo, f"{rev}^{{commit}}")
    if commit is not None:
        return commit
    if rev == "HEAD":
        raise HistoryError(f"HEAD of {repo.working_tree_dir} has no commits yet: commit the budget file first")
    if rev_parse(git, repo, f"{rev}^{{object}}") is not None:
        raise HistoryError(f"revision `{rev}` does not name a commit: pass a branch, tag or commit")
    raise HistoryError(f"unknown revision `{rev}`: pass a branch, tag or commit of this repository")


def _log_entries(repo: Repo, commit: str, rel_path: str) -> list[_LogEntry]:
    """Newest first: the first-parent commits from ``commit`` whose budget file differs from
    their first parent's (merges included, as one step)."""
    output = repo.git.log("--first-parent", f"--format={_LOG_FORMAT}", commit, "--", f":(literal){rel_path}")
    # split("\n"), not splitlines(): a subject may hold \x1c or \u2028, which splitlines() splits at
    return [_LogEntry(*line.split("\x00", 3)) for line in output.split("\n") if line]


