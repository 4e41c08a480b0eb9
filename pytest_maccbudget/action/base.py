"""Find what the action compares with: the ``--macc-budget-base`` of the pytest step.

    python -m pytest_maccbudget.action.base        (run in the action's working directory)

appends ``ref=<value>`` to ``$GITHUB_OUTPUT`` (empty: no base comparison):

- the ``base-ref`` input (``INPUT_BASE_REF``), when it is set, as given;
- in a ``pull_request`` run, the first parent of the merge commit GitHub made for the pull
  request (``GITHUB_SHA``, which actions/checkout checks out by default): the tip of the base
  branch that the pull request would land on. The plugin takes the merge-base of HEAD and it,
  which is that commit. actions/checkout's default clone holds the merge commit alone
  (``fetch-depth: 1``); its parents are then fetched, one commit deep:
  ``git fetch --no-tags --depth=2 origin <GITHUB_SHA>``, with the credentials actions/checkout
  persisted or, when there are none (``persist-credentials: false``), the action's token
  (``INPUT_TOKEN``) as an HTTP header given to git through ``GIT_CONFIG_*`` variables, never
  on a command line, and only for a remote on ``GITHUB_SERVER_URL``;
- in other events with a base branch (``pull_request_target``), ``origin/<base branch>``;
- otherwise nothing.

When a pull request's base cannot be found, one ``::error`` says why and what to change in
the workflow, the job summary says the same, and the exit code is 1: the job fails before
pytest runs, rather than comparing with nothing.
"""
from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

from .commands import error
from .outputs import format_outputs, write_outputs

FETCH_TIMEOUT_SECONDS = 300
GIT_TIMEOUT_SECONDS = 60
REMOTE = "origin"
DEEPEN_FIX = "check out with `fetch-depth: 2` in actions/checkout, so that the base is in the clone already"
_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_AUTH_FAILURES = re.compile(
    r"authentication failed|could not read (username|password)|returned error: 40[134]|repository .* not found"
    r"|permission denied|access denied", re.I)
_NETWORK_FAILURES = re.compile(
    r"could not resolve host|failed to connect|connection (refused|timed out|reset)|timed out|network is unreachable",
    re.I)


class BaseError(Exception):
    """The base cannot be found; the message says why and what to change (one line)."""


@dataclass(frozen=True)
class Context:
    """What the run says about itself (the runner's GITHUB_* variables and the action's inputs)."""

    event_name: str
    sha: str  # GITHUB_SHA: the merge commit in a pull_request run
    base_branch: str  # GITHUB_BASE_REF
    server_url: str  # GITHUB_SERVER_URL, e.g. https://github.com
    base_ref_input: str
    token: str

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "Context":
        def value(name: str, default: str = "") -> str:
            return environ.get(name, default).strip()

        return cls(event_name=value("GITHUB_EVENT_NAME"), sha=value("GITHUB_SHA").lower(),
                   base_branch=value("GITHUB_BASE_REF"), server_url=value("GITHUB_SERVER_URL", "https://github.com"),
                   base_ref_input=value("INPUT_BASE_REF"), token=value("INPUT_TOKEN"))


class Git:
    """git, run without a shell in one directory; every failure is a BaseError or a result."""

    def __init__(self, directory: Path, environ: Mapping[str, str]) -> None:
        self.directory = directory
        self.environ = dict(environ)

    def run(self, args: Sequence[str], extra_env: Optional[Mapping[str, str]] = None,
            timeout: float = GIT_TIMEOUT_SECONDS) -> subprocess.CompletedProcess[str]:
        env = {**self.environ, "GIT_TERMINAL_PROMPT": "0", "GCM_INTERACTIVE": "never", **(extra_env or {})}
        try:
            return subprocess.run(["git", *args], cwd=self.directory, env=env, capture_output=True, text=True,
                                  errors="replace", timeout=timeout, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise BaseError("git is not installed (or not on PATH), so the pull request's base cannot be found: "
                            "install git, or set the action's `base-ref` input") from None
        except subprocess.TimeoutExpired:
            raise BaseError(f"`git {' '.join(args[:3])}` did not finish within {timeout:.0f} s: {DEEPEN_FIX}") from None

    def output(self, args: Sequence[str]) -> Optional[str]:
        """git's stripped stdout, or None when git fails."""
        done = self.run(args)
        return done.stdout.strip() if done.returncode == 0 else None


# --- choosing the base --------------------------------------------------------------------------


def find_base(context: Context, git: Git) -> str:
    """The value for ``--macc-budget-base`` (empty: none); raises BaseError."""
    if context.base_ref_input:
        return context.base_ref_input
    if context.event_name == "pull_request":
        return pull_request_base(context, git)
    if context.base_branch:
        return f"{REMOTE}/{context.base_branch}"
    return ""


def pull_request_base(context: Context, git: Git) -> str:
    """The first parent of the pull request's merge commit, fetched when the clone lacks it."""
    head = head_commit(git)
    if head != context.sha:
        return checked_out_elsewhere(context, git, head)
    parents = commit_parents(git, head)
    if len(parents) != 2:
        raise BaseError(
            f"HEAD {head[:12]} (GITHUB_SHA) is not a merge commit ({plural(len(parents), 'parent')}), so it does "
            f"not say which base the pull request merges into: set the action's `base-ref` input, e.g. "
            f"`{REMOTE}/{context.base_branch or 'main'}`, and check out with `fetch-depth: 0`")
    if not resolves(git, "HEAD^1"):
        fetch_parents(context, git)
        if not resolves(git, "HEAD^1"):
            raise BaseError(f"`git fetch --no-tags --depth=2 {REMOTE} {context.sha}` did not bring the merge "
                            f"commit's parents into this clone: {DEEPEN_FIX}")
    return parents[0]


def checked_out_elsewhere(context: Context, git: Git, head: str) -> str:
    """HEAD is not the merge commit (actions/checkout got a ``ref:``): a full clone still has
    ``origin/<base>`` and the history to the merge-base; a shallow one cannot say."""
    fallback = f"{REMOTE}/{context.base_branch}"
    if context.base_branch and not is_shallow(git) and resolves(git, fallback):
        return fallback
    raise BaseError(
        f"HEAD is {head[:12]}, not the merge commit {context.sha[:12] or '(GITHUB_SHA is not set)'} that GitHub made "
        "for this pull request, so its base is unknown: check out the pull request's default ref (no `ref:` in "
        "actions/checkout), or use `fetch-depth: 0` in actions/checkout, or set the action's `base-ref` input")


def head_commit(git: Git) -> str:
    done = git.run(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"])
    sha = done.stdout.strip().lower()
    if done.returncode != 0 or not _FULL_SHA.fullmatch(sha):
        reason = first_line(done.stderr) or "HEAD has no commit"
        if "dubious ownership" in reason:  # a container job whose user does not own the checkout
            raise BaseError(f"git refuses the checkout at {git.directory} ({reason}): mark it safe with "
                            f"`git config --global --add safe.directory {git.directory}` before this action")
        raise BaseError(f"{git.directory} is not a git checkout with a commit ({reason}): run actions/checkout "
                        "before this action")
    return sha


def commit_parents(git: Git, sha: str) -> list[str]:
    """The parents recorded in the commit object itself: they are there even in a shallow
    clone, where git pretends the commit has none."""
    raw = git.output(["cat-file", "commit", sha]) or ""
    parents = []
    for line in raw.splitlines():
        if not line:  # the headers end at the first empty line
            break
        if line.startswith("parent "):
            parents.append(line[len("parent "):].strip().lower())
    return parents


def resolves(git: Git, rev: str) -> bool:
    return git.output(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"]) is not None


def is_shallow(git: Git) -> bool:
    return git.output(["rev-parse", "--is-shallow-repository"]) == "true"


# --- fetching the merge commit's parents --------------------------------------------------------


def fetch_parents(context: Context, git: Git) -> None:
    """Deepen the clone at the merge commit by one: its parents (the base tip and the pull
    request's head) come in, each as a new shallow boundary."""
    url = git.output(["remote", "get-url", REMOTE])
    if not url:
        raise BaseError(f"this clone has no remote `{REMOTE}` to fetch the pull request's base from: {DEEPEN_FIX}, "
                        "or set the action's `base-ref` input")
    command = ["-c", "protocol.version=2", "fetch", "--no-tags", "--no-recurse-submodules", "--depth=2", REMOTE,
               context.sha]
    persisted = has_persisted_header(git, url)
    auth = {} if persisted else token_config(context, url, git.environ)
    done = git.run(command, extra_env={**auth, "LC_ALL": "C"}, timeout=FETCH_TIMEOUT_SECONDS)
    if done.returncode != 0:
        credentials = "persisted" if persisted else ("token" if auth else "none")
        raise BaseError(fetch_failure(context, done.stderr, credentials))


def has_persisted_header(git: Git, url: str) -> bool:
    """Whether git already sends an extra HTTP header (actions/checkout's persisted credentials,
    in .git/config or, since checkout v6, in a file it includes) to ``url``."""
    return git.output(["config", "--get-urlmatch", "http.extraheader", url]) is not None


def token_config(context: Context, url: str, environ: Mapping[str, str]) -> dict[str, str]:
    """``GIT_CONFIG_*`` variables that make git send the token to the GitHub server, the way
    actions/checkout configures it; empty without a token or for a remote elsewhere."""
    server = server_origin(context.server_url)
    if not context.token or server is None or server_origin(url) != server:
        return {}
    credential = base64.b64encode(f"x-access-token:{context.token}".encode("utf-8")).decode("ascii")
    index = _config_count(environ)
    return {"GIT_CONFIG_COUNT": str(index + 1), f"GIT_CONFIG_KEY_{index}": f"http.{server}/.extraheader",
            f"GIT_CONFIG_VALUE_{index}": f"AUTHORIZATION: basic {credential}"}


DEFAULT_PORTS = {"http": 80, "https": 443}


def server_origin(url: str) -> Optional[str]:
    """``https://github.com`` for any http(s) URL on that server, else None."""
    parts = urllib.parse.urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:  # a port that is not a number
        return None
    shown_port = f":{port}" if port and port != DEFAULT_PORTS[scheme] else ""
    return f"{scheme}://{parts.hostname.lower()}{shown_port}"


def _config_count(environ: Mapping[str, str]) -> int:
    """GIT_CONFIG_COUNT already set by the workflow: ours goes after those entries."""
    value = environ.get("GIT_CONFIG_COUNT", "").strip()
    return int(value) if value.isdigit() else 0


CREDENTIALS_SENT = {
    "persisted": "the credentials actions/checkout persisted",
    "token": "the action's `token` input",
    "none": "a request without credentials (actions/checkout kept none, and the `token` input is empty or the "
            "remote is not on GITHUB_SERVER_URL)",
}


def fetch_failure(context: Context, stderr: str, credentials: str) -> str:
    """The error for a failed fetch; ``credentials`` is what was sent (a CREDENTIALS_SENT key)."""
    command = f"`git fetch --no-tags --depth=2 {REMOTE} {context.sha}`"
    lead = f"cannot fetch the pull request's base into this shallow clone: {command} failed ({git_reason(stderr)})"
    if _AUTH_FAILURES.search(stderr):
        return (f"{lead}; the server refused {CREDENTIALS_SENT[credentials]}: give the job `contents: read` and "
                f"keep actions/checkout's default `persist-credentials`, or pass a token that can read the "
                f"repository as the action's `token` input, or {DEEPEN_FIX}")
    if _NETWORK_FAILURES.search(stderr):
        return f"{lead}; the server could not be reached: {DEEPEN_FIX}"
    return f"{lead}: {DEEPEN_FIX}, or set the action's `base-ref` input"


def git_reason(stderr: str) -> str:
    """git's own words, one line: its ``fatal:``/``remote:`` lines, else its first line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    chosen = [line for line in lines if line.startswith(("fatal:", "remote:", "error:"))] or lines[:1]
    return "; ".join(chosen[:3])[:300] or "no message"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


# --- the step -------------------------------------------------------------------------------------


def summary_markdown(message: str) -> str:
    """The job summary for a base that cannot be found."""
    return ("## ❌ pytest-maccbudget: no base to compare with\n\n"
            f"{markdown_text(message)}\n\n"
            "The budget checks did not run: without the base, growth in this pull request could not be told "
            "from growth that is already on the base branch.\n")


def markdown_text(text: str) -> str:
    """``text`` safe in a markdown paragraph: no HTML, and its code spans kept."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def append_summary(markdown: str, environ: Mapping[str, str]) -> None:
    target = environ.get("GITHUB_STEP_SUMMARY", "")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(markdown)


def main(argv: Optional[Sequence[str]] = None) -> int:
    if argv:
        print("usage: python -m pytest_maccbudget.action.base (configured by INPUT_* and GITHUB_* variables)",
              file=sys.stderr)
        return 2
    environ = os.environ
    context = Context.from_environ(environ)
    try:
        ref = find_base(context, Git(Path.cwd(), environ))
    except BaseError as err:
        error(str(err))
        append_summary(summary_markdown(str(err)), environ)
        return 1
    write_outputs(format_outputs({"ref": ref}), environ)
    print(describe(context, ref))
    return 0


def describe(context: Context, ref: str) -> str:
    if not ref:
        return "no base: the budget is compared with the budget file of this commit only"
    if context.base_ref_input:
        return f"base: {ref} (the base-ref input)"
    if _FULL_SHA.fullmatch(ref):
        branch = f" `{context.base_branch}`" if context.base_branch else ""
        return f"base: {ref}, the tip of the base branch{branch} that the pull request merges into"
    return f"base: {ref}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
