"""Create or update the one sticky pull-request comment that holds the budget report.

    python -m pytest_maccbudget.action.comment --report PATH.md [--json PATH.json] [--pr N --head-sha SHA]

The comment is found by a hidden marker, ``<!-- pytest-maccbudget report -->``, on its first
line: the first comment of the pull request carrying it is edited (PATCH), and a new one is
created (POST) only when none does, so a pull request has one report comment however many
times the workflow runs. The GitHub REST API is called with urllib:

- ``GITHUB_API_URL`` (default https://api.github.com) and ``GITHUB_REPOSITORY`` (owner/name);
- the pull request's number from the event file at ``GITHUB_EVENT_PATH``
  (``pull_request.number``), or ``--pr N`` (the ``workflow_run`` recipe, where the number
  comes from an artifact and ``--head-sha`` makes sure it names the pull request that the
  report was made for);
- the token from ``GITHUB_TOKEN`` (the action passes its ``token`` input there).

A comment must never fail the job or hide the budget verdict, so every problem ends in a
``::notice::`` or ``::warning::`` and exit code 0: not a pull-request event, no token, no
report, a 403 or 404 (the read-only token of a pull request from a fork: the report is in
the step summary), other HTTP errors and network errors. Only bad command-line usage exits
non-zero.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

from .. import __version__
from .commands import MARKER, notice, warning
# GitHub refuses a comment body over 65,536 characters. The body is kept within that many
# UTF-8 bytes, which bounds the length however GitHub counts (code points or UTF-16 units).
MAX_BODY_BYTES = 65_536
TRUNCATION_NOTE = (
    "\n\n---\n"
    "_The report was truncated to fit GitHub's limit of 65,536 characters for a comment. "
    "The full report is in the job summary of this workflow run (and the action's "
    "`report-markdown` output)._\n"
)
FORK_HINT = (
    "A pull request from a fork gets a read-only token, so the report is in the job summary "
    "of this run instead. For pull requests from this repository, give the job "
    "`permissions: pull-requests: write`; for forks, see the workflow_run recipe in "
    "docs/github-action.md."
)
DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
PER_PAGE = 100
MAX_PAGES = 300  # 30,000 comments: a bound on the listing, not a limit anyone meets
TIMEOUT_SECONDS = 30
MAX_ERROR_CHARS = 300

_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_NUMBER = re.compile(r"[1-9][0-9]{0,9}")
_SHA = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")
_NEXT = re.compile(r"""<[^>]*>\s*;\s*rel="?next"?""")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")


class Skip(Exception):
    """No comment is posted; the message says why, shown as ``level`` (notice or warning)."""

    def __init__(self, message: str, level: str = "notice") -> None:
        super().__init__(message)
        self.level = level


class ApiError(Exception):
    """The API answered with an HTTP error status (or with something that is not JSON)."""

    def __init__(self, status: int, method: str, path: str, message: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {message}")
        self.status = status
        self.method = method
        self.path = path
        self.message = message


class NetworkError(Exception):
    """The API could not be reached (DNS, refused connection, timeout, broken response)."""


@dataclass(frozen=True)
class Target:
    """The pull request whose conversation gets the comment."""

    api_url: str  # without a trailing slash
    repository: str  # owner/name
    number: int


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    data: Any


# --- the body -------------------------------------------------------------------------------


def build_body(markdown: str, limit: int = MAX_BODY_BYTES,
               rerender: Optional[Callable[[int], Optional[str]]] = None) -> str:
    """The comment body: the marker line, then ``markdown``, at most ``limit`` UTF-8 bytes.

    A report that is too long is first re-rendered to fit by ``rerender(limit)`` when given
    (the report renderer drops layer rows and charts before anything else); failing that, it
    is cut after a whole line, a code fence (a mermaid block, say) that the cut left open is
    closed so what remains still renders, and a note is added.
    """
    head = MARKER + "\n"
    body = head + strip_marker(markdown).rstrip("\n") + "\n"
    if _size(body) <= limit:
        return body
    smaller = rerender(limit) if rerender is not None else None
    if smaller is not None:
        body = head + strip_marker(smaller).rstrip("\n") + "\n"
        if _size(body) <= limit:
            return body
    markdown = strip_marker(markdown)
    room = limit - _size(head) - _size(TRUNCATION_NOTE)
    kept = _keep_lines(markdown, room - _FENCE_CLOSE_ROOM)
    fence = open_fence(kept)
    if fence is not None:
        kept = kept + ("" if kept.endswith("\n") or not kept else "\n") + fence + "\n"
    return head + kept.rstrip("\n") + TRUNCATION_NOTE


_FENCE_CLOSE_ROOM = 64  # a closing fence line, with room to spare


def strip_marker(markdown: str) -> str:
    """``markdown`` without a leading marker line (the report renderer starts with one)."""
    text = markdown.lstrip("\ufeff")
    stripped = text.lstrip()
    if stripped.startswith(MARKER):
        return stripped[len(MARKER):].lstrip(" \t").lstrip("\r\n")
    return text


def report_renderer(json_path: Optional[Path]) -> Optional[Callable[[int], Optional[str]]]:
    """A function rendering the report JSON at ``json_path`` within a byte limit, or None.

    It uses the package's report renderer, imported only when a report is too long: the
    ``workflow_run`` recipe runs this module from a bare checkout, where the renderer's
    dependencies (PyYAML) may be missing; the renderer then gives None and the markdown is cut.
    """
    if json_path is None:
        return None

    def render(limit: int) -> Optional[str]:
        try:
            from ..pr_report import load_report, render_markdown

            report = load_report(json_path.read_text(encoding="utf-8"), str(json_path))
            return render_markdown(report, limit=limit)
        except (ImportError, OSError, UnicodeDecodeError, ValueError):
            return None

    return render


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _keep_lines(text: str, room: int) -> str:
    """The longest run of whole leading lines of ``text`` within ``room`` UTF-8 bytes."""
    kept: list[str] = []
    used = 0
    for line in text.splitlines(keepends=True):
        size = _size(line)
        if used + size > room:
            if not kept:  # one enormous first line: cut it, at a character boundary
                return line.encode("utf-8")[: max(room, 0)].decode("utf-8", "ignore")
            break
        kept.append(line)
        used += size
    return "".join(kept)


def open_fence(markdown: str) -> Optional[str]:
    """The fence (e.g. "```") that closes a code block still open at the end, else None."""
    opening: Optional[str] = None
    for line in markdown.splitlines():
        match = _FENCE.match(line)
        if match is None:
            continue
        run = match.group(1)
        if opening is None:
            opening = run
        elif run[0] == opening[0] and len(run) >= len(opening) and not line.strip()[len(run):].strip():
            opening = None
    return opening


# --- where to comment -----------------------------------------------------------------------


def pull_request_number(environ: Mapping[str, str], explicit: Optional[str]) -> int:
    """The pull request's number: ``explicit`` (``--pr``), else from the event file."""
    if explicit is not None:
        if not _NUMBER.fullmatch(explicit.strip()):
            raise Skip(f"--pr must be a pull request number, got {explicit[:40]!r}: no PR comment", "warning")
        return int(explicit.strip())
    event = _read_event(environ)
    pull_request = event.get("pull_request")
    if not isinstance(pull_request, dict):
        name = environ.get("GITHUB_EVENT_NAME") or "this event"
        raise Skip(f"{name} is not a pull request event, so there is no PR to comment on; "
                   "the report is in the job summary")
    number = pull_request.get("number")
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise Skip(f"the event's pull_request.number is {number!r}, not a pull request number: no PR comment",
                   "warning")
    return number


def _read_event(environ: Mapping[str, str]) -> dict[str, Any]:
    path = environ.get("GITHUB_EVENT_PATH", "")
    if not path:
        raise Skip("GITHUB_EVENT_PATH is not set (not running in GitHub Actions?), so no PR comment")
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise Skip(f"cannot read the event file {path} ({err}): no PR comment", "warning") from None
    if not isinstance(event, dict):
        raise Skip(f"the event file {path} does not hold a JSON object: no PR comment", "warning")
    return event


def make_target(environ: Mapping[str, str], number: int) -> Target:
    """The API URL and repository from the environment, checked."""
    api_url = (environ.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/")
    if urllib.parse.urlsplit(api_url).scheme not in ("http", "https"):
        raise Skip(f"GITHUB_API_URL {api_url!r} is not an http(s) URL: no PR comment", "warning")
    repository = environ.get("GITHUB_REPOSITORY", "")
    if not _REPOSITORY.fullmatch(repository):
        raise Skip(f"GITHUB_REPOSITORY {repository!r} is not owner/name: no PR comment", "warning")
    return Target(api_url, repository, number)


# --- the API --------------------------------------------------------------------------------


class GitHubClient:
    """Just enough of the REST API, over urllib, for one sticky comment."""

    def __init__(self, api_url: str, token: str, timeout: float = TIMEOUT_SECONDS) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, payload: Optional[dict[str, Any]] = None,
                query: Optional[Mapping[str, Any]] = None) -> Response:
        url = self.api_url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/vnd.github+json")
        request.add_header("X-GitHub-Api-Version", API_VERSION)
        request.add_header("User-Agent", f"pytest-maccbudget/{__version__}")
        if data is not None:
            request.add_header("Content-Type", "application/json; charset=utf-8")
        # Unredirected: urllib does not carry this header to wherever a redirect points.
        request.add_unredirected_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
                status, headers = response.status, response.headers
        except urllib.error.HTTPError as err:
            raise ApiError(err.code, method, path, _error_message(err)) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            raise NetworkError(f"{method} {self.api_url}{path}: {_reason(err)}") from None
        return Response(status, headers, _parse_json(raw, status, method, path))

    def list_comments(self, target: Target) -> Iterator[dict[str, Any]]:
        """The pull request's comments, oldest first, fetched page by page as iterated."""
        path = f"/repos/{target.repository}/issues/{target.number}/comments"
        for page in range(1, MAX_PAGES + 1):
            response = self.request("GET", path, query={"per_page": PER_PAGE, "page": page})
            if not isinstance(response.data, list):
                raise ApiError(response.status, "GET", path, "the answer is not a list of comments")
            yield from (item for item in response.data if isinstance(item, dict))
            if not has_next_page(response.headers.get("Link")):
                return

    def create_comment(self, target: Target, body: str) -> dict[str, Any]:
        path = f"/repos/{target.repository}/issues/{target.number}/comments"
        return _object(self.request("POST", path, {"body": body}), "POST", path)

    def update_comment(self, target: Target, comment_id: int, body: str) -> dict[str, Any]:
        path = f"/repos/{target.repository}/issues/comments/{comment_id}"
        return _object(self.request("PATCH", path, {"body": body}), "PATCH", path)

    def pull_request_head(self, target: Target) -> str:
        path = f"/repos/{target.repository}/pulls/{target.number}"
        pull = _object(self.request("GET", path), "GET", path)
        head = pull.get("head")
        sha = head.get("sha") if isinstance(head, dict) else None
        return sha if isinstance(sha, str) else ""


def has_next_page(link_header: Optional[str]) -> bool:
    """Whether a ``Link`` header announces a next page.

    Only the fact is used: the next page is requested by number from the configured API URL,
    never at the URL the header gives, so the token goes nowhere else.
    """
    return bool(link_header) and any(_NEXT.search(part) for part in link_header.split(","))


def _parse_json(raw: bytes, status: int, method: str, path: str) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(status, method, path, "the answer is not JSON") from None


def _object(response: Response, method: str, path: str) -> dict[str, Any]:
    if not isinstance(response.data, dict):
        raise ApiError(response.status, method, path, "the answer is not a JSON object")
    return response.data


def _error_message(err: urllib.error.HTTPError) -> str:
    try:
        raw = err.read()
    except (OSError, http.client.HTTPException):
        raw = b""
    message = ""
    try:
        data = json.loads(raw.decode("utf-8")) if raw else None
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            message = data["message"]
    except (UnicodeDecodeError, json.JSONDecodeError):
        message = raw.decode("utf-8", "replace")
    return " ".join((message or str(err.reason) or "no message").split())[:MAX_ERROR_CHARS]


def _reason(err: BaseException) -> str:
    reason = getattr(err, "reason", None) or err
    return " ".join(str(reason).split())[:MAX_ERROR_CHARS] or type(err).__name__


# --- the sticky comment ---------------------------------------------------------------------


def find_sticky(comments: Iterable[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """The first comment that starts with the marker and was written by a bot (the token's
    app, github-actions[bot] by default), else None: a person quoting the marker in a review
    comment must not get the report written into a comment they can edit."""
    for comment in comments:
        body = comment.get("body")
        comment_id = comment.get("id")
        usable_id = isinstance(comment_id, int) and not isinstance(comment_id, bool)
        if isinstance(body, str) and body.startswith(MARKER) and usable_id and _by_a_bot(comment):
            return comment
    return None


def _by_a_bot(comment: dict[str, Any]) -> bool:
    user = comment.get("user") or {}
    return user.get("type") == "Bot" or str(user.get("login", "")).endswith("[bot]")


def post_report(client: GitHubClient, target: Target, body: str) -> str:
    """Update the marked comment, or create it; returns a line saying which, with its URL."""
    existing = find_sticky(client.list_comments(target))
    if existing is None:
        return _done("created", target, client.create_comment(target, body))
    return _done("updated", target, client.update_comment(target, existing["id"], body))


def _done(verb: str, target: Target, comment: Mapping[str, Any]) -> str:
    url = comment.get("html_url")
    where = f": {url}" if isinstance(url, str) and url else ""
    return f"{verb} the budget report comment on pull request #{target.number}{where}"


def check_head(client: GitHubClient, target: Target, head_sha: str) -> None:
    """Skip unless the pull request's head is ``head_sha`` (the commit the report is about)."""
    actual = client.pull_request_head(target)
    if actual.lower() != head_sha.lower():
        raise Skip(f"pull request #{target.number}'s head is {actual or 'unknown'}, not {head_sha}, the commit "
                   "the report was made for: no PR comment", "warning")


def read_report(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise Skip(f"there is no report at {path} (pytest stopped before writing it): no PR comment") from None
    except OSError as err:
        raise Skip(f"cannot read the report {path} ({err}): no PR comment", "warning") from None


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    """Post the report; returns what was done. Raises Skip, ApiError or NetworkError."""
    number = pull_request_number(environ, args.pr)
    target = make_target(environ, number)
    token = environ.get("GITHUB_TOKEN", "").strip()
    if not token:
        raise Skip("no token (the action's token input, passed as GITHUB_TOKEN, is empty): no PR comment; "
                   "the report is in the job summary")
    body = build_body(read_report(args.report), rerender=report_renderer(args.json))
    client = GitHubClient(target.api_url, token)
    if args.head_sha:
        check_head(client, target, args.head_sha)
    return post_report(client, target, body)


def explain_api_error(err: ApiError) -> tuple[str, str]:
    """The level and message for an API error: 403/404 are the expected fork case."""
    if err.status in (403, 404):
        where = f"{err.method} {err.path}: HTTP {err.status}: {err.message}"
        return "notice", f"cannot write the PR comment ({where}). {FORK_HINT}"
    return "warning", f"the PR comment failed ({err}); the report is in the job summary"


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_maccbudget.action.comment",
        description="Create or update the sticky pytest-maccbudget report comment on a pull request.")
    parser.add_argument("--report", required=True, type=Path, help="the markdown report to post")
    parser.add_argument("--json", default=None, type=Path,
                        help="the report JSON, to re-render a report that is too long for a comment")
    parser.add_argument("--pr", default=None, help="the pull request number (default: from GITHUB_EVENT_PATH)")
    parser.add_argument("--head-sha", default=None,
                        help="comment only if the pull request's head commit is this one (with --pr)")
    args = parser.parse_args(argv)
    if args.head_sha is not None and not _SHA.fullmatch(args.head_sha):
        parser.error(f"--head-sha must be a full commit SHA, got {args.head_sha!r}")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        print(run(args, os.environ))
    except Skip as skip:
        (warning if skip.level == "warning" else notice)(str(skip))
    except ApiError as err:
        level, message = explain_api_error(err)
        (warning if level == "warning" else notice)(message)
    except NetworkError as err:
        notice(f"cannot reach the GitHub API to write the PR comment ({err}); the report is in the job summary")
    return 0


if __name__ == "__main__":
    sys.exit(main())
