"""Create or update the one sticky pull-request comment that holds the budget report.

    python -m pytest_maccbudget.action.comment (--report PATH.md [--json PATH.json] | --from-json --json PATH.json)
        [--mode always|changed|regressed] [--pr N --head-sha SHA]

The comment is ours when it starts with a hidden marker, ``<!-- pytest-maccbudget report -->``,
AND was written by the token's own identity: ``GET /user`` names it for a personal token;
an installation token (GitHub Actions' own, a GitHub App's) cannot call that, and GraphQL's
``viewer`` names it instead (``github-actions[bot]``). The first such comment is edited
(PATCH); a new one is created (POST) only when there is none, so a pull request has one
report comment however many times the workflow runs, and a comment by anyone else, marker or
not, is never edited. When the identity cannot be learned at all, nothing is edited: a report
comment is created only if the pull request has no marker comment yet, so pushes do not pile
up comments (that existing comment then keeps its old report, with a warning).

``--mode`` decides whether a pull request without our comment gets one (``modes``): always,
only when something changed against the base, or only on a regression. An existing comment
is updated in every mode. The GitHub REST API is called with urllib:

- ``GITHUB_API_URL`` (default https://api.github.com) and ``GITHUB_REPOSITORY`` (owner/name);
- the pull request's number from the event file at ``GITHUB_EVENT_PATH``
  (``pull_request.number``), or ``--pr N`` (the ``workflow_run`` recipe, where the number
  comes from an artifact and ``--head-sha`` makes sure it names the pull request that the
  report was made for);
- the token from ``GITHUB_TOKEN`` (the action passes its ``token`` input there).

``--from-json`` renders the body from the report JSON with the package's own renderer
(``pr_report``: the schema is validated and every name and message escaped) and ignores any
markdown: the ``workflow_run`` recipe uses it, because there the markdown file comes from a
pull request's run, which a fork's code could have rewritten. It needs the renderer's one
dependency, PyYAML; without it nothing is posted.

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
from .modes import wants_new_comment
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
BOT_SUFFIX = "[bot]"
VIEWER_QUERY = "{ viewer { login } }"
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
    graphql_url: str = ""  # GITHUB_GRAPHQL_URL; empty: derived from api_url


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
    """The API URLs and repository from the environment, checked."""
    api_url = _http_url(environ, "GITHUB_API_URL", DEFAULT_API_URL)
    repository = environ.get("GITHUB_REPOSITORY", "")
    if not _REPOSITORY.fullmatch(repository):
        raise Skip(f"GITHUB_REPOSITORY {repository!r} is not owner/name: no PR comment", "warning")
    return Target(api_url, repository, number, _http_url(environ, "GITHUB_GRAPHQL_URL", graphql_url_for(api_url)))


def _http_url(environ: Mapping[str, str], name: str, default: str) -> str:
    url = (environ.get(name) or default).rstrip("/")
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise Skip(f"{name} {url!r} is not an http(s) URL: no PR comment", "warning")
    return url


def graphql_url_for(api_url: str) -> str:
    """GitHub's GraphQL endpoint beside a REST API URL (GitHub Enterprise Server: /api/graphql)."""
    if api_url.endswith("/api/v3"):
        return api_url[: -len("/v3")] + "/graphql"
    return api_url + "/graphql"


# --- the API --------------------------------------------------------------------------------


class GitHubClient:
    """Just enough of the REST API, over urllib, for one sticky comment."""

    def __init__(self, api_url: str, token: str, timeout: float = TIMEOUT_SECONDS) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, payload: Optional[dict[str, Any]] = None,
                query: Optional[Mapping[str, Any]] = None, base_url: Optional[str] = None) -> Response:
        url = (base_url or self.api_url) + path + ("?" + urllib.parse.urlencode(query) if query else "")
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

    def user_login(self) -> str:
        """The token's login from ``GET /user``; ApiError 403 for an installation token."""
        user = _object(self.request("GET", "/user"), "GET", "/user")
        return _login(user.get("login"), "GET", "/user")

    def viewer_login(self, target: Target) -> str:
        """The token's login from GraphQL, which installation tokens may ask."""
        url = target.graphql_url or graphql_url_for(self.api_url)
        answer = _object(self.request("POST", "", {"query": VIEWER_QUERY}, base_url=url), "POST", "/graphql")
        data = answer.get("data")
        viewer = data.get("viewer") if isinstance(data, dict) else None
        if not isinstance(viewer, dict):
            raise ApiError(200, "POST", "/graphql", _graphql_error(answer) or "no viewer in the answer")
        return _login(viewer.get("login"), "POST", "/graphql")

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


def _graphql_error(answer: Mapping[str, Any]) -> str:
    """The first message of a GraphQL answer's ``errors``, or ""."""
    errors = answer.get("errors")
    first = errors[0] if isinstance(errors, list) and errors else None
    message = first.get("message") if isinstance(first, dict) else None
    return " ".join(message.split())[:MAX_ERROR_CHARS] if isinstance(message, str) else ""


def _login(value: Any, method: str, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ApiError(200, method, path, "the answer names no login")
    return value.strip()


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


def learn_identity(client: GitHubClient, target: Target) -> Optional[str]:
    """The token's login as comment authors are named (``github-actions[bot]``), or None when
    the API will not say. Only a network failure is raised: the comment fails with it anyway."""
    try:
        return client.user_login()
    except ApiError as err:
        if err.status not in (403, 404):  # 401: a bad token, which every call would meet
            raise
    try:
        login = client.viewer_login(target)
    except ApiError:
        return None
    # Only installation tokens are refused GET /user, and those are bots, which REST names with
    # the suffix; GraphQL has been seen to answer with it, and is not relied on to.
    return login if login.lower().endswith(BOT_SUFFIX) else login + BOT_SUFFIX


def is_marked(comment: Mapping[str, Any]) -> bool:
    """A report comment: the marker first, and an id that can be edited."""
    body = comment.get("body")
    comment_id = comment.get("id")
    usable_id = isinstance(comment_id, int) and not isinstance(comment_id, bool)
    return isinstance(body, str) and body.startswith(MARKER) and usable_id


def author(comment: Mapping[str, Any]) -> str:
    user = comment.get("user")
    login = user.get("login") if isinstance(user, dict) else None
    return login if isinstance(login, str) else ""


def find_sticky(comments: Iterable[dict[str, Any]], identity: str) -> Optional[dict[str, Any]]:
    """The first report comment written by ``identity`` (logins compare case-insensitively),
    else None: another bot's or a person's marker comment is never ours."""
    wanted = identity.lower()
    return next((c for c in comments if is_marked(c) and author(c).lower() == wanted), None)


@dataclass(frozen=True)
class Plan:
    """What to post: the body, and whether a pull request without our comment gets one."""

    body: str
    create: bool
    why_not: str  # the notice when it does not


def post_report(client: GitHubClient, target: Target, plan: Plan) -> str:
    """Update our comment, or create it; returns a line saying which, with its URL."""
    identity = learn_identity(client, target)
    comments = client.list_comments(target)
    if identity is None:
        return _post_without_identity(client, target, plan, comments)
    existing = find_sticky(comments, identity)
    if existing is not None:
        return _done("updated", target, client.update_comment(target, existing["id"], plan.body))
    if not plan.create:
        raise Skip(plan.why_not)
    return _done("created", target, client.create_comment(target, plan.body))


def _post_without_identity(client: GitHubClient, target: Target, plan: Plan,
                           comments: Iterable[dict[str, Any]]) -> str:
    """Never edit (the comment could be anyone's); create only where no report comment is, so
    that a run per push does not add a comment per push."""
    marked = next((c for c in comments if is_marked(c)), None)
    if marked is not None:
        raise Skip(f"cannot learn which account the token belongs to (GET /user and the GraphQL viewer were "
                   f"refused), so the report comment by {author(marked) or 'an unknown account'} on pull request "
                   f"#{target.number} was not updated: it could be someone else's. The current report is in the job "
                   "summary; a token that may call GET /user (a personal token) or GraphQL lets the comment "
                   "be updated", "warning")
    if not plan.create:
        raise Skip(plan.why_not)
    return _done("created", target, client.create_comment(target, plan.body))


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


def read_report_json(path: Optional[Path]) -> Optional[dict[str, Any]]:
    """The report JSON as a dict, or None when there is none or it cannot be read."""
    if path is None:
        return None
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return report if isinstance(report, dict) else None


def render_from_json(path: Path) -> str:
    """The report rendered by the package's renderer from the JSON alone, within a comment's size."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise Skip(f"there is no report at {path} (pytest did not complete the checks): no PR comment") from None
    except (OSError, UnicodeDecodeError) as err:
        raise Skip(f"cannot read the report {path} ({err}): no PR comment", "warning") from None
    try:
        from ..pr_report import load_report, render_markdown
    except ImportError as err:
        raise Skip(f"cannot render the report from {path}: the renderer needs PyYAML ({err}); install it "
                   "(`python -m pip install pyyaml`) before this step: no PR comment", "warning") from None
    try:
        return render_markdown(load_report(text, str(path)), limit=MAX_BODY_BYTES)
    except ValueError as err:
        raise Skip(f"the report is not a valid pytest-maccbudget report ({err}): no PR comment", "warning") from None


def make_plan(args: argparse.Namespace) -> Plan:
    if args.from_json:
        body = build_body(render_from_json(args.json))
    else:
        body = build_body(read_report(args.report), rerender=report_renderer(args.json))
    report = read_report_json(args.json)
    why_not = {
        "changed": "comment mode `changed`: no model's cost or budget differs from the base, so no comment was "
                   "created; the report is in the job summary",
        "regressed": "comment mode `regressed`: no regression, so no comment was created; the report is in the job "
                     "summary",
    }.get(args.mode, "")
    return Plan(body, wants_new_comment(args.mode, report), why_not)


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    """Post the report; returns what was done. Raises Skip, ApiError or NetworkError."""
    number = pull_request_number(environ, args.pr)
    target = make_target(environ, number)
    token = environ.get("GITHUB_TOKEN", "").strip()
    if not token:
        raise Skip("no token (the action's token input, passed as GITHUB_TOKEN, is empty): no PR comment; "
                   "the report is in the job summary")
    plan = make_plan(args)
    client = GitHubClient(target.api_url, token)
    if args.head_sha:
        check_head(client, target, args.head_sha)
    return post_report(client, target, plan)


def explain_api_error(err: ApiError, target: Optional[Target] = None) -> tuple[str, str]:
    """The level and message for an API error. 403 and 404 are expected: a token that may not
    write (a fork's), and a pull request or repository the token cannot see."""
    where = f"{err.method} {err.path}: HTTP {err.status}: {err.message}"
    if err.status == 403:
        return "notice", f"cannot write the PR comment ({where}). {FORK_HINT}"
    if err.status == 404:
        what = f"pull request #{target.number} of {target.repository}" if target else "the pull request"
        return "notice", (f"cannot find {what} with this token ({where}): check the pull request number, and that "
                          "the token can read the repository (the job's own GITHUB_TOKEN can; a token of another "
                          "repository or account may not). The report is in the job summary")
    return "warning", f"the PR comment failed ({err}); the report is in the job summary"


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_maccbudget.action.comment",
        description="Create or update the sticky pytest-maccbudget report comment on a pull request.")
    parser.add_argument("--report", default=None, type=Path, help="the markdown report to post")
    parser.add_argument("--json", default=None, type=Path,
                        help="the report JSON: decides the changed and regressed modes, and re-renders a report "
                             "that is too long for a comment")
    parser.add_argument("--from-json", action="store_true",
                        help="render the comment from --json with the package's renderer, ignoring any markdown "
                             "(for a report from an untrusted run; needs PyYAML)")
    parser.add_argument("--mode", default="always", choices=("always", "changed", "regressed"),
                        help="when a pull request without the comment gets one (an existing one is always updated)")
    parser.add_argument("--pr", default=None, help="the pull request number (default: from GITHUB_EVENT_PATH)")
    parser.add_argument("--head-sha", default=None,
                        help="comment only if the pull request's head commit is this one (with --pr)")
    args = parser.parse_args(argv)
    if args.from_json and (args.json is None or args.report is not None):
        parser.error("--from-json renders --json: give --json, and no --report")
    if not args.from_json and args.report is None:
        parser.error("give --report (or --from-json with --json)")
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
        level, message = explain_api_error(err, _target_or_none(args))
        (warning if level == "warning" else notice)(message)
    except NetworkError as err:
        notice(f"cannot reach the GitHub API to write the PR comment ({err}); the report is in the job summary")
    return 0


def _target_or_none(args: argparse.Namespace) -> Optional[Target]:
    try:
        return make_target(os.environ, pull_request_number(os.environ, args.pr))
    except Skip:
        return None


if __name__ == "__main__":
    sys.exit(main())
