"""The GitHub Action: action.yml's structure, its scripts run as the runner runs them, and the
PR-comment code against a real HTTP server on 127.0.0.1.

The composite steps are not re-implemented here: ``ActionRun`` reads action.yml, evaluates
each step's ``if:``, ``env:`` and ``with:`` expressions the way the runner does (a small
evaluator for the subset action.yml uses), and runs each ``run:`` script with the runner's bash
command line (``bash --noprofile --norc -eo pipefail FILE``) in a simulated environment:
GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files per step, GITHUB_EVENT_PATH pointing at a
pull_request event file, GITHUB_SHA, RUNNER_TEMP, GITHUB_ACTION_PATH at this repository. The
``actions/cache/restore`` and ``actions/cache/save`` steps are played against a local directory
standing for the cache service (a restore of a key saved before is a hit). A ``python`` shim on
PATH stands in for pip (the real install would replace this checkout's editable install; ``pip
wheel`` leaves a placeholder wheel) and, when a test asks, records pytest's argv; everything
else goes to the real interpreter.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from pytest_maccbudget import pr_report
from pytest_maccbudget.action import comment, outputs, pytest_args
from pytest_maccbudget.budget import Measurement, parse_budget
from pytest_maccbudget.action.commands import command, escape_data

ROOT = Path(__file__).resolve().parents[1]
ACTION_FILE = ROOT / "action.yml"
WORKFLOW_FILE = ROOT / ".github" / "workflows" / "maccbudget.yml"
DOCS_FILE = ROOT / "docs" / "github-action.md"
ACTION = yaml.safe_load(ACTION_FILE.read_text(encoding="utf-8"))
STEPS: list[dict[str, Any]] = ACTION["runs"]["steps"]
PINNED_USES = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
TOKEN = "ghs_test-token"
REPOSITORY = "octo-org/models"
PR_NUMBER = 7
HEAD_SHA = "a" * 40
MERGE_SHA = "c" * 40  # GITHUB_SHA of a pull_request run: the merge commit GitHub made
BOT = "github-actions[bot]"
INTEGRATION_REFUSED = "Resource not accessible by integration"


# --- a runner-style evaluator for the expressions action.yml uses ----------------------------

_TOKEN = re.compile(r"""\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)|(?P<op>==|!=|&&|\|\||[!().,])"""
                    r"""|(?P<name>[A-Za-z_][A-Za-z0-9_-]*))""")


class Expression:
    """Evaluates a GitHub Actions expression: literals, context paths, format(), the status
    functions, !, ==, != (strings compared case-insensitively, mixed types as numbers), && and
    || (which return an operand, as GitHub's do)."""

    def __init__(self, text: str, contexts: Mapping[str, Any], status: Mapping[str, bool]) -> None:
        self.tokens = self._tokenize(text)
        self.pos = 0
        self.contexts = contexts
        self.status = status

    @staticmethod
    def _tokenize(text: str) -> list[tuple[str, str]]:
        tokens, pos = [], 0
        while text[pos:].strip():
            match = _TOKEN.match(text, pos)
            assert match, f"cannot tokenize {text[pos:]!r}"
            kind = match.lastgroup
            tokens.append((kind, match.group(kind)))
            pos = match.end()
        return tokens

    def evaluate(self) -> Any:
        value = self._or()
        assert self.pos == len(self.tokens), f"trailing tokens {self.tokens[self.pos:]}"
        return value

    def _peek(self) -> Optional[str]:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def _take(self, expected: Optional[str] = None) -> tuple[str, str]:
        token = self.tokens[self.pos]
        assert expected is None or token[1] == expected, f"expected {expected!r}, got {token}"
        self.pos += 1
        return token

    def _or(self) -> Any:
        value = self._and()
        while self._peek() == "||":
            self._take()
            right = self._and()
            value = value if truthy(value) else right
        return value

    def _and(self) -> Any:
        value = self._compare()
        while self._peek() == "&&":
            self._take()
            right = self._compare()
            value = right if truthy(value) else value
        return value

    def _compare(self) -> Any:
        value = self._unary()
        if self._peek() in ("==", "!="):
            op = self._take()[1]
            equal = loose_equal(value, self._unary())
            return equal if op == "==" else not equal
        return value

    def _unary(self) -> Any:
        if self._peek() == "!":
            self._take()
            return not truthy(self._unary())
        return self._primary()

    def _primary(self) -> Any:
        kind, text = self._take()
        if text == "(":
            value = self._or()
            self._take(")")
            return value
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return float(text)
        if text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text]
        if self._peek() == "(":
            return self._call(text)
        value: Any = self.contexts.get(text)
        while self._peek() == ".":
            self._take()
            key = self._take()[1]
            value = value.get(key) if isinstance(value, dict) else None
        return value

    def _call(self, name: str) -> Any:
        self._take("(")
        args = []
        while self._peek() != ")":
            args.append(self._or())
            if self._peek() == ",":
                self._take()
        self._take(")")
        if name == "format":
            return re.sub(r"\{(\d+)\}", lambda m: to_text(args[1 + int(m.group(1))]), args[0])
        assert name in self.status, f"unsupported function {name}()"
        return self.status[name]


def truthy(value: Any) -> bool:
    return value not in (None, False, 0, 0.0, "")


def to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _number(value: Any) -> float:
    if value is None or value == "":
        return 0.0
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except ValueError:
        return float("nan")


def loose_equal(left: Any, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()
    if type(left) is type(right):
        return left == right
    return _number(left) == _number(right)


_TEMPLATE = re.compile(r"\$\{\{(.*?)\}\}", re.S)


def interpolate(text: Any, contexts: Mapping[str, Any], status: Mapping[str, bool]) -> str:
    """A YAML value with ``${{ }}`` parts, as the runner renders it."""
    return _TEMPLATE.sub(lambda m: to_text(Expression(m.group(1), contexts, status).evaluate()), to_text(text))


def condition(text: Any, contexts: Mapping[str, Any], status: Mapping[str, bool]) -> bool:
    """A step's ``if:``: with or without ``${{ }}``; no status function means success() && ..."""
    source = to_text(text).strip() or "success()"
    match = _TEMPLATE.fullmatch(source)
    source = match.group(1) if match else source
    if not re.search(r"\b(success|failure|always|cancelled)\(\)", source):
        source = f"success() && ({source})"
    return truthy(Expression(source, contexts, status).evaluate())


# --- the simulated runner ---------------------------------------------------------------------


@dataclass
class StepResult:
    key: str
    skipped: bool
    returncode: Optional[int] = None
    stdout: str = ""
    stderr: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""

    @property
    def outcome(self) -> str:
        return "skipped" if self.skipped else ("success" if self.returncode == 0 else "failure")


def parse_output_file(text: str) -> dict[str, str]:
    """The runner's GITHUB_OUTPUT format: ``name=value`` lines and ``name<<DELIM`` blocks."""
    values, lines, index = {}, text.splitlines(), 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            block = []
            while lines[index] != delimiter:
                block.append(lines[index])
                index += 1
            index += 1
            values[name] = "\n".join(block)
        else:
            name, value = line.split("=", 1)
            values[name] = value
    return values


def step_key(step: Mapping[str, Any]) -> str:
    return step.get("id") or step["name"]


class ActionRun:
    """Runs action.yml's steps, or some of them, in a simulated GitHub Actions job."""

    def __init__(self, tmp_path: Path, with_inputs: Mapping[str, str], *, event_name: str = "pull_request",
                 event: Optional[Mapping[str, Any]] = None, api_url: str = "http://127.0.0.1:9",
                 workspace: Optional[Path] = None, base_ref: str = "main",
                 preset: Optional[Mapping[str, Mapping[str, str]]] = None,
                 extra_env: Optional[Mapping[str, str]] = None, cache_store: Optional[Path] = None) -> None:
        self.tmp = tmp_path
        self.workspace = workspace or tmp_path / "workspace"
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.runner_temp = tmp_path / "runner-temp"
        self.runner_temp.mkdir(exist_ok=True)
        self.cache_store = cache_store or tmp_path / "actions-cache"
        self.cache_store.mkdir(parents=True, exist_ok=True)
        self.event_path = tmp_path / "event.json"
        if event is None:
            event = pull_request_event() if event_name == "pull_request" else {"ref": "refs/heads/main"}
        self.event_path.write_text(json.dumps(event), encoding="utf-8")
        self.shim_dir = make_python_shim(tmp_path)
        self.github = {
            "token": TOKEN, "base_ref": base_ref if event_name.startswith("pull_request") else "",
            "event_name": event_name, "repository": REPOSITORY, "action_path": str(ROOT),
            "workspace": str(self.workspace), "api_url": api_url,
        }
        self.inputs = self._inputs(with_inputs)
        self.steps: dict[str, dict[str, Any]] = {key: {"outputs": dict(values), "outcome": "success"}
                                                 for key, values in (preset or {}).items()}
        self.results: dict[str, StepResult] = {}
        self.saved_keys: list[str] = []
        self.env = self._base_env(api_url, event_name, extra_env or {})

    def _inputs(self, with_inputs: Mapping[str, str]) -> dict[str, str]:
        unknown = set(with_inputs) - set(ACTION["inputs"])
        assert not unknown, f"not inputs of action.yml: {unknown}"
        contexts = {"github": self.github}
        values = {}
        for name, spec in ACTION["inputs"].items():
            if name in with_inputs:
                values[name] = with_inputs[name]
            else:
                values[name] = interpolate(spec.get("default", ""), contexts, {})
        return values

    def _base_env(self, api_url: str, event_name: str, extra: Mapping[str, str]) -> dict[str, str]:
        env = {key: os.environ[key] for key in ("HOME", "LANG", "LC_ALL", "TMPDIR", "PYENV_ROOT") if key in os.environ}
        env.update({
            "PATH": f"{self.shim_dir}{os.pathsep}{os.environ['PATH']}",
            "CI": "true", "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(self.workspace), "GITHUB_EVENT_NAME": event_name,
            "GITHUB_EVENT_PATH": str(self.event_path), "GITHUB_REPOSITORY": REPOSITORY,
            "GITHUB_API_URL": api_url, "GITHUB_BASE_REF": self.github["base_ref"],
            "GITHUB_ACTION_PATH": str(ROOT), "RUNNER_TEMP": str(self.runner_temp),
            "GITHUB_SHA": MERGE_SHA if event_name == "pull_request" else HEAD_SHA,
            "GITHUB_SERVER_URL": "https://github.com", "RUNNER_OS": "Linux", "RUNNER_ARCH": "X64",
            "SHIM_LOG_DIR": str(self.tmp / "shim-log"), "PYTHONDONTWRITEBYTECODE": "1",
        })
        (self.tmp / "shim-log").mkdir(exist_ok=True)
        env.update(extra)
        return env

    def contexts(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "github": self.github, "steps": self.steps,
                "runner": {"temp": str(self.runner_temp)}}

    def status(self) -> dict[str, bool]:
        failed = any(result.outcome == "failure" for result in self.results.values())
        return {"success": not failed, "failure": failed, "always": True, "cancelled": False}

    def run(self, only: Optional[set[str]] = None) -> dict[str, StepResult]:
        for step in STEPS:
            key = step_key(step)
            if only is not None and key not in only:
                continue
            self.results[key] = self._run_step(step, key)
            if step.get("id"):
                self.steps[step["id"]] = {"outputs": self.results[key].outputs, "outcome": self.results[key].outcome}
        return self.results

    def _run_step(self, step: Mapping[str, Any], key: str) -> StepResult:
        if not condition(step.get("if", ""), self.contexts(), self.status()):
            return StepResult(key, skipped=True)
        if "uses" in step:
            return self._run_uses_step(step, key)
        env = dict(self.env)
        env.update({name: interpolate(value, self.contexts(), self.status())
                    for name, value in (step.get("env") or {}).items()})
        output_file = self.tmp / f"output-{len(self.results)}"
        summary_file = self.tmp / f"summary-{len(self.results)}"
        output_file.write_text("")
        summary_file.write_text("")
        env.update(GITHUB_OUTPUT=str(output_file), GITHUB_STEP_SUMMARY=str(summary_file))
        script = self.tmp / f"step-{len(self.results)}.sh"
        script.write_text(step["run"], encoding="utf-8")
        assert step["shell"] == "bash"
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=self.workspace,
                              env=env, capture_output=True, text=True, timeout=600)
        return StepResult(key, False, done.returncode, done.stdout, done.stderr,
                          parse_output_file(output_file.read_text(encoding="utf-8")),
                          summary_file.read_text(encoding="utf-8"))

    def _run_uses_step(self, step: Mapping[str, Any], key: str) -> StepResult:
        """The cache actions, against ``cache_store``: one directory per saved key."""
        action = step["uses"].split("@", 1)[0]
        inputs = {name: interpolate(value, self.contexts(), self.status())
                  for name, value in (step.get("with") or {}).items()}
        if not inputs.get("key") or not inputs.get("path"):
            return StepResult(key, False, 1, stderr="Input required and not supplied: key or path")
        entry = self.cache_store / re.sub(r"[^\w.-]", "_", inputs["key"])
        path = Path(inputs["path"])
        if action == "actions/cache/restore":
            if not entry.is_dir():
                return StepResult(key, False, 0, f"Cache not found for input keys: {inputs['key']}",
                                  outputs={"cache-primary-key": inputs["key"]})
            shutil.copytree(entry, path, dirs_exist_ok=True)
            return StepResult(key, False, 0, f"Cache restored from key: {inputs['key']}",
                              outputs={"cache-hit": "true", "cache-primary-key": inputs["key"],
                                       "cache-matched-key": inputs["key"]})
        assert action == "actions/cache/save", f"step {key!r} uses {action}: the simulation cannot run it"
        if entry.exists():
            return StepResult(key, False, 0, f"Failed to save: cache entry with key {inputs['key']} already exists")
        if not path.exists():
            return StepResult(key, False, 0, "Path Validation Error: no cache is being saved")
        shutil.copytree(path, entry)
        self.saved_keys.append(inputs["key"])
        return StepResult(key, False, 0, f"Cache saved with key: {inputs['key']}")

    def action_outputs(self) -> dict[str, str]:
        return {name: interpolate(spec["value"], self.contexts(), self.status())
                for name, spec in ACTION["outputs"].items()}

    def pip_calls(self) -> list[str]:
        log = self.tmp / "shim-log" / "pip"
        return log.read_text().splitlines() if log.exists() else []

    def pytest_argv(self) -> list[str]:
        return (self.tmp / "shim-log" / "pytest.args").read_bytes().decode().split("\0")[:-1]


def make_python_shim(tmp_path: Path) -> Path:
    """A ``python`` first on PATH: ``-m pip`` is logged and not run (``pip wheel`` leaves a
    placeholder wheel in its --wheel-dir; SHIM_PIP_EXIT makes pip fail); with SHIM_FAKE_PYTEST
    set, ``-m pytest`` logs its argv and cwd and exits with that code; anything else is the
    real python."""
    shim_dir = tmp_path / "shim-bin"
    shim_dir.mkdir(exist_ok=True)
    shim = shim_dir / "python"
    shim.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then
          printf '%s ' "$@" >> "$SHIM_LOG_DIR/pip"; echo >> "$SHIM_LOG_DIR/pip"
          if [ -n "$SHIM_PIP_EXIT" ]; then echo "ERROR: pip failed on purpose"; exit "$SHIM_PIP_EXIT"; fi
          if [ "$3" = "wheel" ]; then
            for arg in "$@"; do
              case "$arg" in --wheel-dir=*) mkdir -p "${{arg#--wheel-dir=}}"
                : > "${{arg#--wheel-dir=}}/pytest_maccbudget-0.1.0-py3-none-any.whl";; esac
            done
          fi
          exit 0
        fi
        if [ "$1" = "-m" ] && [ "$2" = "pytest" ] && [ -n "$SHIM_FAKE_PYTEST" ]; then
          printf '%s\\0' "$@" > "$SHIM_LOG_DIR/pytest.args"
          pwd > "$SHIM_LOG_DIR/pytest.cwd"
          exit "$SHIM_FAKE_PYTEST"
        fi
        exec '{sys.executable}' "$@"
        """))
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return shim_dir


def pull_request_event(number: int = PR_NUMBER) -> dict[str, Any]:
    return {"action": "synchronize", "number": number,
            "pull_request": {"number": number, "head": {"sha": HEAD_SHA, "ref": "feature"},
                             "base": {"ref": "main"}}}


# --- a fake GitHub REST API on 127.0.0.1 -------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


class FakeGitHub:
    """Issue comments of one repository, served over HTTP; every request is recorded.

    The token's identity: ``user_login`` is what GET /user answers (None: 403, as GitHub
    answers an installation token, e.g. GitHub Actions' own); ``viewer_login`` is what the
    GraphQL viewer query answers (None: refused). Comments the token creates are by
    ``token_login()``. ``fail`` makes the REST comment and pull-request endpoints answer an
    error by method; the identity endpoints are not affected."""

    def __init__(self) -> None:
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.requests: list[Recorded] = []
        self.fail: dict[str, tuple[int, str]] = {}  # method -> (status, message)
        self.page_size: Optional[int] = None  # overrides per_page, to make pages with few comments
        self.pull_heads: dict[int, str] = {}
        self.user_login: Optional[str] = None
        self.viewer_login: Optional[str] = BOT
        self.next_id = 1001
        self.lock = threading.Lock()

    def token_login(self) -> str:
        """The token's login as REST names comment authors (a bot's with the [bot] suffix)."""
        if self.user_login:
            return self.user_login
        viewer = self.viewer_login or BOT
        return viewer if viewer.endswith("[bot]") else viewer + "[bot]"

    def add_comment(self, number: int, body: str, login: str = "someone") -> dict[str, Any]:
        kind = "Bot" if login.endswith("[bot]") else "User"
        comment = {"id": self.next_id, "body": body, "user": {"login": login, "type": kind},
                   "html_url": f"https://github.com/{REPOSITORY}/pull/{number}#issuecomment-{self.next_id}"}
        self.next_id += 1
        self.comments.setdefault(number, []).append(comment)
        return comment

    def of_method(self, method: str) -> list[Recorded]:
        """The comment and pull-request requests of one method (the identity calls left out)."""
        return [request for request in self.requests if request.method == method and request.path.startswith("/repos/")]

    def calls(self) -> list[str]:
        return [f"{request.method} {request.path}" for request in self.requests]

    def handle(self, method: str, raw_path: str, headers: Mapping[str, str],
               raw_body: bytes) -> tuple[int, dict[str, str], Any]:
        parts = urlsplit(raw_path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        body = json.loads(raw_body) if raw_body else None
        with self.lock:
            self.requests.append(Recorded(method, parts.path, query, {k.lower(): v for k, v in headers.items()}, body))
            if parts.path in ("/user", "/graphql"):
                return self._identity(method, parts.path, body)
            if method in self.fail:
                status, message = self.fail[method]
                return status, {}, {"message": message}
            return self._route(method, parts.path, query, body)

    def _identity(self, method: str, path: str, body: Any) -> tuple[int, dict[str, str], Any]:
        if path == "/user" and method == "GET":
            if self.user_login is None:
                return 403, {}, {"message": INTEGRATION_REFUSED}
            return 200, {}, {"login": self.user_login, "type": "User"}
        if path == "/graphql" and method == "POST" and body == {"query": "{ viewer { login } }"}:
            if self.viewer_login is None:
                return 403, {}, {"message": INTEGRATION_REFUSED}
            return 200, {}, {"data": {"viewer": {"login": self.viewer_login}}}
        return 404, {}, {"message": "Not Found"}

    def _route(self, method: str, path: str, query: Mapping[str, str], body: Any) -> tuple[int, dict[str, str], Any]:
        prefix = f"/repos/{REPOSITORY}"
        listing = re.fullmatch(rf"{prefix}/issues/(\d+)/comments", path)
        single = re.fullmatch(rf"{prefix}/issues/comments/(\d+)", path)
        pull = re.fullmatch(rf"{prefix}/pulls/(\d+)", path)
        if listing and method == "GET":
            return self._page(int(listing.group(1)), query)
        if listing and method == "POST":
            return 201, {}, self.add_comment(int(listing.group(1)), body["body"], self.token_login())
        if single and method == "PATCH":
            for existing in (c for cs in self.comments.values() for c in cs):
                if existing["id"] == int(single.group(1)):
                    if existing["user"]["login"].lower() != self.token_login().lower():
                        return 403, {}, {"message": INTEGRATION_REFUSED}  # GitHub's answer to editing another's
                    existing["body"] = body["body"]
                    return 200, {}, existing
            return 404, {}, {"message": "Not Found"}
        if pull and method == "GET":
            number = int(pull.group(1))
            return 200, {}, {"number": number, "head": {"sha": self.pull_heads.get(number, HEAD_SHA)}}
        return 404, {}, {"message": "Not Found"}

    def _page(self, number: int, query: Mapping[str, str]) -> tuple[int, dict[str, str], Any]:
        size = self.page_size or int(query.get("per_page", "30"))
        page = int(query.get("page", "1"))
        comments = self.comments.get(number, [])
        items = comments[(page - 1) * size: page * size]
        headers = {}
        if page * size < len(comments):
            # A next link on another host: the client must not follow it, only learn there is a next page.
            headers["Link"] = (f'<https://elsewhere.invalid/repos/{REPOSITORY}/issues/{number}/comments?page={page + 1}>; '
                               f'rel="next", <https://elsewhere.invalid/last>; rel="last"')
        return 200, headers, items


@pytest.fixture
def github() -> Iterator[tuple[FakeGitHub, str]]:
    """A FakeGitHub served on 127.0.0.1 at an ephemeral port; yields it and its base URL."""
    fake = FakeGitHub()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            status, headers, payload = fake.handle(self.command, self.path, self.headers, self.rfile.read(length))
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def pr_env(tmp_path: Path, github: tuple[FakeGitHub, str], monkeypatch: pytest.MonkeyPatch) -> Path:
    """The environment of a pull_request run pointing at the fake API; returns a report file."""
    _, url = github
    event = tmp_path / "event.json"
    event.write_text(json.dumps(pull_request_event()), encoding="utf-8")
    for name, value in {"GITHUB_API_URL": url, "GITHUB_REPOSITORY": REPOSITORY, "GITHUB_EVENT_NAME": "pull_request",
                        "GITHUB_EVENT_PATH": str(event), "GITHUB_TOKEN": TOKEN}.items():
        monkeypatch.setenv(name, value)
    report = tmp_path / "report.md"
    report.write_text("## Model cost budget\n\n| model | status |\n| --- | --- |\n| net | regressed |\n", encoding="utf-8")
    return report


# --- action.yml's structure --------------------------------------------------------------------


def _expressions(value: Any) -> str:
    return json.dumps(value)


def test_every_input_reaches_a_step_through_env_or_with() -> None:
    for name in ACTION["inputs"]:
        reference = re.compile(rf"\binputs\.{re.escape(name)}\b")
        used = [step_key(step) for step in STEPS
                if reference.search(_expressions(step.get("env", {})) + _expressions(step.get("with", {})))]
        assert used, f"input {name!r} is not used by any step's env: or with:"


def test_no_template_expression_inside_any_run_script() -> None:
    for document in (ACTION, yaml.safe_load(WORKFLOW_FILE.read_text(encoding="utf-8"))):
        for step in _all_steps(document):
            if "run" in step:
                assert "${{" not in step["run"], f"${{{{ }}}} inside run: of step {step.get('name')!r}"


def test_run_steps_declare_bash_and_uses_steps_are_local_or_pinned_by_sha() -> None:
    for document in (ACTION, yaml.safe_load(WORKFLOW_FILE.read_text(encoding="utf-8"))):
        for step in _all_steps(document):
            if "run" in step:
                assert step.get("shell") == "bash", f"step {step.get('name')!r} has no shell: bash"
            if "uses" in step:
                uses = step["uses"]
                assert uses.startswith("./") or uses == "./" or PINNED_USES.match(uses), f"{uses} is not pinned by SHA"


def test_pinned_uses_carry_a_version_comment() -> None:
    for path in (ACTION_FILE, WORKFLOW_FILE):
        for line in path.read_text(encoding="utf-8").splitlines():
            match = re.search(r"uses:\s*(\S+)", line)
            if match and not match.group(1).startswith("./"):
                assert re.search(r"#\s*v\d+(\.\d+)*\b", line), f"{path.name}: no version comment on {line.strip()!r}"


def test_every_output_is_set_by_a_step_of_the_action() -> None:
    ids = {step.get("id") for step in STEPS}
    for name, spec in ACTION["outputs"].items():
        match = re.fullmatch(r"\$\{\{\s*steps\.([\w-]+)\.outputs\.([\w-]+)\s*\}\}", spec["value"])
        assert match, f"output {name!r} is not a step output"
        assert match.group(1) in ids
        assert match.group(2) in outputs.OUTPUT_NAMES and match.group(2) == name


def test_the_action_is_composite_and_installs_from_its_own_checkout() -> None:
    assert ACTION["runs"]["using"] == "composite"
    install = next(step for step in STEPS if step.get("id") == "install")
    assert '"$GITHUB_ACTION_PATH"' in install["run"]
    setup = next(step for step in STEPS if "uses" in step)
    assert setup["uses"].startswith("actions/setup-python@")
    assert "use-existing" in setup["if"]


def test_the_dogfood_workflow_runs_the_local_action_on_examples() -> None:
    workflow = yaml.safe_load(WORKFLOW_FILE.read_text(encoding="utf-8"))
    assert workflow["permissions"] == {}
    job = next(iter(workflow["jobs"].values()))
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    steps = job["steps"]
    checkout = steps[0]
    assert checkout["uses"].startswith("actions/checkout@")
    assert checkout["with"] == {"persist-credentials": False}  # the default depth: the action finds the base
    action = next(step for step in steps if step.get("uses") == "./")
    assert action["with"]["working-directory"] == "examples"
    assert any("torch==2.13.0" in step.get("run", "") and "whl/cpu" in step.get("run", "") for step in steps)


def test_docs_workflows_parse_and_follow_the_same_rules() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS_FILE.read_text(encoding="utf-8"), re.S)
    workflows = [yaml.safe_load(block) for block in blocks]
    workflows = [w for w in workflows if isinstance(w, dict) and "jobs" in w]
    assert len(workflows) >= 3  # the quick start and the two workflows of the fork recipe
    for workflow in workflows:
        assert "permissions" in workflow
        for step in _all_steps(workflow):
            if "run" in step:
                assert "${{" not in step["run"] and step.get("shell") == "bash"
            uses = step.get("uses", "")
            if uses and not uses.startswith("OWNER/pytest-maccbudget@"):
                assert PINNED_USES.match(uses), uses
            if uses.startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False
    run_workflow = next(w for w in workflows if "workflow_run" in (w.get(True) or w.get("on") or {}))
    assert not any(step.get("uses", "").startswith("actions/checkout@") and "repository" not in step.get("with", {})
                   for step in _all_steps(run_workflow)), "the workflow_run recipe must not check out the PR's code"


def _all_steps(document: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    if "runs" in document:
        yield from document["runs"]["steps"]
    for job in (document.get("jobs") or {}).values():
        yield from job.get("steps", [])


@pytest.mark.skipif(shutil.which("zizmor") is None, reason="zizmor is not installed")
def test_zizmor_finds_nothing(tmp_path: Path) -> None:
    """action.yml, the dogfood workflow and the docs' workflows (the placeholder pinned)."""
    docs = tmp_path / ".github" / "workflows"
    docs.mkdir(parents=True)
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS_FILE.read_text(encoding="utf-8"), re.S)
    for index, block in enumerate(b for b in blocks if "jobs:" in b):
        (docs / f"docs-{index}.yml").write_text(block.replace("OWNER/pytest-maccbudget@COMMIT_SHA",
                                                              "octo-org/pytest-maccbudget@" + "1" * 40))
    done = subprocess.run(["zizmor", "--offline", "--pedantic", str(ACTION_FILE), str(WORKFLOW_FILE), str(docs)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# --- the expression evaluator used by the simulation ------------------------------------------


def test_inputs_default_to_automatic_base_and_the_changed_comment_mode() -> None:
    assert ACTION["inputs"]["base-ref"]["default"] == ""
    assert ACTION["inputs"]["comment"]["default"] == "changed"


def test_status_conditions_follow_the_runner() -> None:
    contexts = {"steps": {"pytest": {"outputs": {"exit-code": "1"}}}, "inputs": {"python-version": "use-existing"}}
    ok = {"success": True, "failure": False, "always": True, "cancelled": False}
    failed = dict(ok, success=False, failure=True)
    after_pytest = "${{ !cancelled() && steps.pytest.outputs.exit-code != '' }}"
    assert condition(after_pytest, contexts, failed)
    assert not condition(after_pytest, {"steps": {}}, ok)
    assert not condition("inputs.python-version != 'use-existing'", contexts, ok)
    assert not condition("", contexts, failed)


# --- the scripts, run as the composite steps run them ------------------------------------------


def build_report_json(failed: list[bool], layers: int = 1) -> dict[str, Any]:
    """A valid report from the report module: model i regressed (and failed) when failed[i]."""
    entries, measurements = [], []
    for index, bad in enumerate(failed):
        names = [f"block{j}.conv" for j in range(layers)]
        entries.append(f"  net{index}:\n    inputs: {{x: [1, 16]}}\n"
                       f"    total: {{macs: {100 * layers}, flops: {200 * layers}, params: 10, param_bytes: 40, "
                       f"peak_activation_bytes: 64}}\n    layers:\n"
                       + "".join(f"      {name}: {{macs: 100}}\n" for name in names))
        grown = 150 if bad else 100
        measurements.append((Measurement(f"net{index}", f"tests/test_models.py::test_net{index}", {"x": [1, 16]},
                                         {"macs": grown * layers, "flops": 2 * grown * layers, "params": 10,
                                          "param_bytes": 40, "peak_activation_bytes": 64},
                                         {name: grown for name in names}), bad))
    budget = parse_budget("version: 1\nrules: 6\nmodels:\n" + "".join(entries), "macc_budget.yaml")
    return pr_report.build_report(measurements, budget, base_budget=None, base=None, unused=[],
                                  budget_file="macc_budget.yaml")


def write_report(directory: Path, failed: list[bool], layers: int = 1) -> tuple[Path, Path]:
    """The report JSON and markdown as the plugin writes them."""
    directory.mkdir(parents=True, exist_ok=True)
    report = build_report_json(failed, layers)
    json_path, markdown_path = directory / "report.json", directory / "report.md"
    json_path.write_text(pr_report.dump_report(report), encoding="utf-8")
    markdown_path.write_text(pr_report.render_markdown(report), encoding="utf-8")
    return json_path, markdown_path


def after_pytest(tmp_path: Path, exit_code: str, failed: Optional[list[bool]] = None) -> dict[str, dict[str, str]]:
    """Step outputs as the install, pytest and outputs steps leave them (with or without a report)."""
    directory = tmp_path / "runner-temp" / "pytest-maccbudget.abc123"
    if failed is None:
        directory.mkdir(parents=True, exist_ok=True)
        json_path, markdown_path = directory / "report.json", directory / "report.md"
    else:
        json_path, markdown_path = write_report(directory, failed)
    completed = failed is not None and exit_code in ("0", "1")
    reports = {"report-markdown": str(markdown_path), "report-json": str(json_path)}
    return {"install": {"python": str(tmp_path / "shim-bin" / "python")},
            "pytest": {"exit-code": exit_code, "stderr": str(directory / "pytest-stderr.txt"), **reports},
            "outputs": ({"regressions": str(sum(failed or [])), **reports} if completed
                        else {"regressions": "", "report-markdown": "", "report-json": ""})}


def before_pytest(tmp_path: Path, base: str = "origin/main") -> dict[str, dict[str, str]]:
    """Step outputs as the install and base steps leave them."""
    return {"install": {"python": str(tmp_path / "shim-bin" / "python")}, "base": {"ref": base}}


INSTALL_STEPS = {"wheels", "Restore the cached wheels", "install", "Save the wheels"}


def test_install_builds_the_wheels_on_a_miss_and_reuses_them_on_a_hit(tmp_path: Path) -> None:
    """Two jobs sharing the cache: the first builds the wheels and saves them, the second
    restores them and installs without building; pip never reaches an index."""
    store = tmp_path / "cache-service"
    first = ActionRun(tmp_path / "job1", {}, cache_store=store)
    results = first.run(only=INSTALL_STEPS)
    assert [r.outcome for r in results.values()] == ["success"] * 4, results["install"].stdout + results["install"].stderr
    key = results["wheels"].outputs["key"]
    assert re.fullmatch(r"pytest-maccbudget-wheels-Linux-X64-cpython\d+\.\d+-[0-9a-f]{24}", key), key
    wheel_dir = Path(results["wheels"].outputs["dir"])
    assert wheel_dir == first.runner_temp / "pytest-maccbudget-wheels" / key
    assert results["install"].outputs == {"built": "true", "python": str(first.shim_dir / "python")}
    assert first.saved_keys == [key]
    wheel = wheel_dir / "pytest_maccbudget-0.1.0-py3-none-any.whl"
    local = f"--no-index --find-links={wheel_dir}"
    quiet = "-q --disable-pip-version-check --no-input --progress-bar off"
    assert first.pip_calls() == [
        f"-m pip wheel {quiet} --wheel-dir={wheel_dir} {ROOT} ",
        f"-m pip install {quiet} --no-compile {local} {wheel} ",
        # this test environment has pytest-maccbudget installed (editable): the action's replaces it
        f"-m pip install {quiet} --no-compile {local} --force-reinstall --no-deps {wheel} "]
    assert results["install"].stdout.splitlines() == [
        f"pytest-maccbudget 0.1.0: built the wheels (cache miss) and installed in "
        f"{results['install'].stdout.split(' in ')[1].split(' s ')[0]} s ({first.shim_dir / 'python'})"]

    second = ActionRun(tmp_path / "job2", {}, cache_store=store)
    results = second.run(only=INSTALL_STEPS)
    assert results["Restore the cached wheels"].outputs["cache-hit"] == "true"
    assert results["install"].outputs["built"] == "false"
    assert results["Save the wheels"].skipped and second.saved_keys == []
    assert not any(" wheel " in call for call in second.pip_calls())
    assert all("--no-index" in call for call in second.pip_calls())
    assert "used the cached wheels" in results["install"].stdout


def test_install_failure_shows_pips_output_and_one_error(tmp_path: Path) -> None:
    run = ActionRun(tmp_path, {}, extra_env={"SHIM_PIP_EXIT": "1"})
    results = run.run(only=INSTALL_STEPS)
    assert results["install"].returncode == 1
    assert results["Save the wheels"].skipped
    lines = results["install"].stdout.splitlines()
    assert lines[0] == "ERROR: pip failed on purpose"
    assert lines[-1] == f"::error title=pytest-maccbudget::pip could not build the pytest-maccbudget wheels from {ROOT}"


def test_setup_python_is_skipped_for_use_existing(tmp_path: Path) -> None:
    run = ActionRun(tmp_path, {})
    assert run.run(only={"Set up Python"})["Set up Python"].skipped


def test_pytest_step_passes_flags_and_splits_pytest_args_without_a_shell(tmp_path: Path) -> None:
    (tmp_path / "workspace" / "project").mkdir(parents=True)
    run = ActionRun(tmp_path, {"working-directory": "project", "budget-file": "budgets/models.yaml",
                               "pytest-args": """-k "net and not slow" -p no:cacheprovider '$HOME' $(touch pwned)"""},
                    extra_env={"SHIM_FAKE_PYTEST": "1"}, preset=before_pytest(tmp_path, "b" * 40))
    results = run.run(only={"pytest"})
    assert results["pytest"].returncode == 0, results["pytest"].stderr
    argv = run.pytest_argv()
    outputs_ = results["pytest"].outputs
    assert argv == ["-m", "pytest", "--macc-budget", f"--macc-budget-report={outputs_['report-markdown']}",
                    f"--macc-budget-json={outputs_['report-json']}", "--macc-budget-file=budgets/models.yaml",
                    f"--macc-budget-base={'b' * 40}", "-k", "net and not slow", "-p", "no:cacheprovider",
                    "$HOME", "$(touch", "pwned)"]
    assert outputs_["exit-code"] == "1"
    assert Path(outputs_["report-markdown"]).parent.parent == run.runner_temp
    assert outputs_["stderr"] == str(Path(outputs_["report-markdown"]).parent / "pytest-stderr.txt")
    assert (tmp_path / "shim-log" / "pytest.cwd").read_text().strip() == str(tmp_path / "workspace" / "project")
    assert not (tmp_path / "workspace" / "project" / "pwned").exists()


def test_pytest_step_streams_stderr_and_keeps_a_copy(tmp_path: Path) -> None:
    """The real pytest with a usage error: exit 4, its ERROR line in the log and in the file."""
    run = ActionRun(tmp_path, {"pytest-args": "--no-such-option"}, preset=before_pytest(tmp_path, ""))
    result = run.run(only={"pytest"})["pytest"]
    assert result.returncode == 0 and result.outputs["exit-code"] == "4"
    assert "ERROR: usage:" in result.stderr
    assert Path(result.outputs["stderr"]).read_text() == result.stderr


def test_pytest_step_keeps_a_dash_ref_as_a_value_and_omits_empty_inputs(tmp_path: Path) -> None:
    run = ActionRun(tmp_path, {}, extra_env={"SHIM_FAKE_PYTEST": "0"}, preset=before_pytest(tmp_path, "--help"))
    run.run(only={"pytest"})
    argv = run.pytest_argv()
    assert "--macc-budget-base=--help" in argv
    assert not any(arg.startswith("--macc-budget-file") for arg in argv)
    push = ActionRun(tmp_path / "push", {}, event_name="push", extra_env={"SHIM_FAKE_PYTEST": "0"},
                     preset=before_pytest(tmp_path / "push", ""))
    push.run(only={"pytest"})
    assert not any(arg.startswith("--macc-budget-base") for arg in push.pytest_argv())


def test_pytest_step_rejects_unbalanced_quotes_in_pytest_args(tmp_path: Path) -> None:
    run = ActionRun(tmp_path, {"pytest-args": '-k "open'}, extra_env={"SHIM_FAKE_PYTEST": "0"},
                    preset=before_pytest(tmp_path))
    results = run.run(only={"pytest"})
    assert results["pytest"].returncode != 0
    assert "::error title=pytest-maccbudget::cannot split the pytest-args input" in results["pytest"].stderr
    assert "exit-code" not in results["pytest"].outputs


@pytest.mark.parametrize(("event_name", "inputs", "expected"), [
    ("push", {}, ""),
    ("push", {"base-ref": "origin/release"}, "origin/release"),
    ("pull_request_target", {}, "origin/main"),
    ("pull_request", {"base-ref": "v1.2"}, "v1.2"),
])
def test_base_step_outside_automatic_pull_request_finding(tmp_path: Path, event_name: str, inputs: dict[str, str],
                                                          expected: str) -> None:
    run = ActionRun(tmp_path, inputs, event_name=event_name, preset=before_pytest(tmp_path))
    result = run.run(only={"base"})["base"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.outputs == {"ref": expected}


def test_base_step_failure_fails_the_job_before_pytest_with_the_reason_in_the_summary(
        tmp_path: Path, github: tuple[FakeGitHub, str]) -> None:
    """A pull_request run whose workspace is no git checkout: one ::error, the job summary says
    the same, pytest never runs, outputs stay empty and no comment is touched."""
    fake, url = github
    run = ActionRun(tmp_path, {}, api_url=url, extra_env={"SHIM_FAKE_PYTEST": "0"})
    results = run.run()
    base = results["base"]
    assert base.returncode == 1
    [line] = [line for line in base.stdout.splitlines() if line.startswith("::")]
    assert line.startswith("::error title=pytest-maccbudget::") and "run actions/checkout before this action" in line
    assert "no base to compare with" in base.summary and "run actions/checkout before this action" in base.summary
    assert all(results[key].skipped for key in ("pytest", "outputs", "comment", "Fail the job if pytest failed"))
    assert run.action_outputs() == {"regressions": "", "report-markdown": "", "report-json": ""}
    assert not (tmp_path / "shim-log" / "pytest.args").exists() and fake.requests == []


def test_outputs_step_counts_failed_models(tmp_path: Path) -> None:
    run = ActionRun(tmp_path, {}, preset=after_pytest(tmp_path, "1", [True, False, True]))
    results = run.run(only={"outputs"})
    assert results["outputs"].returncode == 0, results["outputs"].stdout + results["outputs"].stderr
    preset = after_pytest(tmp_path, "1", [True, False, True])["pytest"]
    assert run.action_outputs() == {"regressions": "2", "report-markdown": preset["report-markdown"],
                                    "report-json": preset["report-json"]}
    assert results["outputs"].summary == ""


def test_outputs_step_without_a_report_notices_and_says_why_in_the_summary(tmp_path: Path) -> None:
    preset = after_pytest(tmp_path, "4")
    Path(preset["pytest"]["stderr"]).write_text(
        "some warning\nERROR: pytest-maccbudget: --macc-budget-base origin/main: base ref `origin/main` is not known "
        "in this clone\n")
    run = ActionRun(tmp_path, {}, preset=preset)
    results = run.run(only={"outputs"})
    assert results["outputs"].returncode == 0
    expected = ("::notice title=pytest-maccbudget::pytest exited with code 4 (a usage error: a bad option, ini value, "
                "budget file or base) before completing the budget checks: the action's outputs are empty")
    assert results["outputs"].stdout.startswith(expected)
    assert run.action_outputs() == {"regressions": "", "report-markdown": "", "report-json": ""}
    summary = results["outputs"].summary
    assert "the budget checks did not complete" in summary
    assert "```text\nERROR: pytest-maccbudget: --macc-budget-base origin/main: base ref `origin/main` is not known" in summary
    assert "some warning" not in summary


@pytest.mark.parametrize("exit_code", ["2", "5"])
def test_outputs_step_leaves_outputs_empty_when_pytest_did_not_complete_even_with_a_report(
        tmp_path: Path, exit_code: str) -> None:
    run = ActionRun(tmp_path, {}, preset=after_pytest(tmp_path, exit_code, [True]))
    results = run.run(only={"outputs"})
    assert results["outputs"].returncode == 0
    assert run.action_outputs() == {"regressions": "", "report-markdown": "", "report-json": ""}
    assert f"pytest exited with code {exit_code} (" in results["outputs"].stdout
    assert "The pytest log of this step says why." in results["outputs"].summary


def test_steps_after_pytest_are_skipped_when_pytest_did_not_run(tmp_path: Path) -> None:
    run = ActionRun(tmp_path, {}, preset={"install": {"python": "python"}})
    results = run.run(only={"outputs", "comment", "Fail the job if pytest failed"})
    assert all(result.skipped for result in results.values())


def test_comment_step_is_skipped_when_pytest_did_not_complete(tmp_path: Path, github: tuple[FakeGitHub, str]) -> None:
    fake, url = github
    fake.add_comment(PR_NUMBER, comment.MARKER + "\nthe last complete report", BOT)
    run = ActionRun(tmp_path, {}, api_url=url, preset=after_pytest(tmp_path, "4"))
    assert run.run(only={"comment"})["comment"].skipped
    assert fake.requests == [] and fake.comments[PR_NUMBER][0]["body"].endswith("the last complete report")


def test_comment_step_creates_then_updates_one_comment(tmp_path: Path, github: tuple[FakeGitHub, str]) -> None:
    fake, url = github
    preset = after_pytest(tmp_path, "1", [True])
    first = ActionRun(tmp_path, {}, api_url=url, preset=preset).run(only={"comment"})["comment"]
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"created the budget report comment on pull request #{PR_NUMBER}" in first.stdout
    [post] = fake.of_method("POST")
    assert post.path == f"/repos/{REPOSITORY}/issues/{PR_NUMBER}/comments"
    assert post.body["body"].startswith(comment.MARKER + "\n## ❌ pytest-maccbudget: 1 regression")
    assert post.body["body"].count(comment.MARKER) == 1
    assert post.headers["authorization"] == f"Bearer {TOKEN}"  # the token input's default, github.token
    second = ActionRun(tmp_path, {}, api_url=url, preset=preset).run(only={"comment"})["comment"]
    assert "updated the budget report comment" in second.stdout
    assert len(fake.of_method("POST")) == 1
    [patch] = fake.of_method("PATCH")
    assert patch.path == f"/repos/{REPOSITORY}/issues/comments/{fake.comments[PR_NUMBER][0]['id']}"
    assert len(fake.comments[PR_NUMBER]) == 1


def test_comment_step_with_a_custom_token_input(tmp_path: Path, github: tuple[FakeGitHub, str]) -> None:
    fake, url = github
    run = ActionRun(tmp_path, {"token": "pat-123", "comment": "always"}, api_url=url,
                    preset=after_pytest(tmp_path, "0", [False]))
    assert run.run(only={"comment"})["comment"].returncode == 0
    assert {request.headers["authorization"] for request in fake.requests} == {"Bearer pat-123"}


def test_comment_step_403_from_a_fork_is_a_notice_not_a_failure(tmp_path: Path, github: tuple[FakeGitHub, str]) -> None:
    fake, url = github
    fake.fail["POST"] = (403, INTEGRATION_REFUSED)
    run = ActionRun(tmp_path, {}, api_url=url, preset=after_pytest(tmp_path, "1", [True]))
    result = run.run(only={"comment"})["comment"]
    assert result.returncode == 0
    assert result.stdout.startswith("::notice title=pytest-maccbudget::cannot write the PR comment")
    assert f"HTTP 403: {INTEGRATION_REFUSED}" in result.stdout
    assert "job summary" in result.stdout and "workflow_run" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("value", ["false", "False", "off", " OFF "])
def test_comment_step_off(tmp_path: Path, github: tuple[FakeGitHub, str], value: str) -> None:
    fake, url = github
    result = ActionRun(tmp_path, {"comment": value}, api_url=url,
                       preset=after_pytest(tmp_path, "1", [True])).run(only={"comment"})["comment"]
    assert result.returncode == 0 and "no PR comment" in result.stdout
    assert fake.requests == []


@pytest.mark.parametrize(("value", "creates"), [("true", True), (" Always ", True), ("changed", False),
                                                ("REGRESSED", False)])
def test_comment_step_passes_the_mode(tmp_path: Path, github: tuple[FakeGitHub, str], value: str,
                                      creates: bool) -> None:
    """A pull request whose models all match their budgets: only "always" (or "true") comments."""
    fake, url = github
    run = ActionRun(tmp_path, {"comment": value}, api_url=url, preset=after_pytest(tmp_path, "0", [False]))
    result = run.run(only={"comment"})["comment"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(fake.of_method("POST")) == int(creates), result.stdout
    if not creates:
        assert result.stdout.startswith(f"::notice title=pytest-maccbudget::comment mode `{value.strip().lower()}`")


def test_comment_step_rejects_other_values(tmp_path: Path, github: tuple[FakeGitHub, str]) -> None:
    fake, url = github
    result = ActionRun(tmp_path, {"comment": "yes"}, api_url=url,
                       preset=after_pytest(tmp_path, "0", [False])).run(only={"comment"})["comment"]
    assert result.returncode == 1
    assert ("::error title=pytest-maccbudget::the comment input must be changed, regressed, always or off "
            "(or true/false)") in result.stdout
    assert fake.requests == []


def test_comment_step_on_a_push_is_a_notice(tmp_path: Path, github: tuple[FakeGitHub, str]) -> None:
    fake, url = github
    result = ActionRun(tmp_path, {}, event_name="push", api_url=url,
                       preset=after_pytest(tmp_path, "0", [False])).run(only={"comment"})["comment"]
    assert result.returncode == 0
    assert result.stdout.startswith("::notice title=pytest-maccbudget::push is not a pull request event")
    assert fake.requests == []


@pytest.mark.parametrize(("exit_code", "expected"), [("0", 0), ("1", 1), ("4", 4)])
def test_last_step_fails_the_job_with_pytests_exit_code(tmp_path: Path, exit_code: str, expected: int) -> None:
    run = ActionRun(tmp_path, {}, preset=after_pytest(tmp_path, exit_code, [exit_code == "1"]))
    result = run.run(only={"Fail the job if pytest failed"})["Fail the job if pytest failed"]
    assert result.returncode == expected


ALL_STEPS_OUTCOMES = ["skipped", "success", "success", "success", "success", "success", "success", "success",
                      "success", "failure"]  # setup-python .. the last step; Save the wheels saves on the first run


def test_whole_action_with_pytest_stopping_early_leaves_the_comment_and_fails(tmp_path: Path,
                                                                             github: tuple[FakeGitHub, str]) -> None:
    """All steps in order; pytest is the shim (exit 4, writing no report), so the outputs step
    notices, the comment step is skipped (the old comment stays), and the last step fails the job."""
    fake, url = github
    old = fake.add_comment(PR_NUMBER, comment.MARKER + "\nthe last complete report", BOT)
    run = ActionRun(tmp_path, {"base-ref": "origin/main"}, api_url=url, extra_env={"SHIM_FAKE_PYTEST": "4"})
    results = run.run()
    outcomes = [r.outcome for r in results.values()]
    assert outcomes == ["skipped", "success", "success", "success", "success", "success", "success", "success",
                        "skipped", "failure"], outcomes
    assert "before completing the budget checks" in results["outputs"].stdout
    assert run.action_outputs()["regressions"] == ""
    assert fake.requests == [] and old["body"].endswith("the last complete report")
    assert results["Fail the job if pytest failed"].returncode == 4


def test_whole_action_with_a_real_usage_error_says_why_in_the_summary(tmp_path: Path,
                                                                      github: tuple[FakeGitHub, str]) -> None:
    """The real pytest stopping with exit 4: outputs empty, comment untouched, pytest's ERROR line
    in the job summary, the job failed."""
    fake, url = github
    old = fake.add_comment(PR_NUMBER, comment.MARKER + "\nthe last complete report", BOT)
    run = ActionRun(tmp_path, {"base-ref": "origin/main", "pytest-args": "--no-such-option"}, api_url=url)
    results = run.run()
    assert results["pytest"].outputs["exit-code"] == "4"
    assert run.action_outputs() == {"regressions": "", "report-markdown": "", "report-json": ""}
    assert results["comment"].skipped and fake.requests == [] and old["body"].endswith("the last complete report")
    summary = results["outputs"].summary
    assert "pytest exited with code 4 (a usage error" in summary
    assert re.search(r"^ERROR: usage: .*\n.*error: unrecognized arguments: --no-such-option", summary, re.M)
    assert results["Fail the job if pytest failed"].returncode == 4


TINY_TEST = '''\
import pytest

@pytest.mark.macc_budget("tiny", model="tiny.onnx", inputs={"x": [1, 16]})
def test_tiny():
    pass
'''


def _tiny_model(path: Path, width: int) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((16, width), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")], "tiny",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]


def _grown_model_repository(repo: Path, project: Path, feature_width: int = 32) -> None:
    """A git repository whose main branch records the tiny model's budget in ``project`` and
    whose checked-out branch ``feature`` makes the model ``feature_width / 8`` times bigger
    (the same size: it changes a README instead)."""
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_tiny.py").write_text(TINY_TEST)
    _tiny_model(project / "tests" / "tiny.onnx", 8)
    (project / "pytest.ini").write_text("[pytest]\ntestpaths = tests\n")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run([sys.executable, "-m", "pytest", "-q", "--macc-budget-update", "-p", "no:cacheprovider"],
                   cwd=project, check=True, capture_output=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-q", "-m", "base"], cwd=repo, check=True)
    subprocess.run(["git", "checkout", "-q", "-b", "feature"], cwd=repo, check=True)
    if feature_width != 8:
        _tiny_model(project / "tests" / "tiny.onnx", feature_width)
    else:
        (project / "README.md").write_text("docs only\n")
        subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-q", "-am", "the pull request's change"], cwd=repo, check=True)


def test_whole_action_end_to_end_on_a_branch_that_grew_a_model(tmp_path: Path, github: tuple[FakeGitHub, str]) -> None:
    """The real plugin in a throwaway git repository: main records the budget, a branch makes the
    model bigger; the action reports one regression, comments, and fails the job."""
    fake, url = github
    repo = tmp_path / "workspace"
    _grown_model_repository(repo, repo)
    run = ActionRun(tmp_path, {"base-ref": "main", "pytest-args": "-p no:cacheprovider"}, api_url=url, workspace=repo)
    results = run.run()
    assert [r.outcome for r in results.values()] == ALL_STEPS_OUTCOMES
    assert results["pytest"].outputs["exit-code"] == "1", results["pytest"].stdout[-3000:]
    assert run.action_outputs()["regressions"] == "1"
    report = json.loads(Path(run.action_outputs()["report-json"]).read_text())
    assert report["base"]["ref"] == "main" and report["models"][0]["status"] == "regressed"
    budget_lines = (repo / "macc_budget.yaml").read_text().splitlines()
    line = next(number for number, text in enumerate(budget_lines, 1) if text.strip() == "tiny:")
    assert re.search(rf"^::error file=macc_budget\.yaml,line={line},", results["pytest"].stdout, re.M)
    assert "regression" in results["pytest"].summary
    [post] = fake.of_method("POST")
    assert post.body["body"].startswith(comment.MARKER + "\n") and post.body["body"].count(comment.MARKER) == 1
    assert results["Fail the job if pytest failed"].returncode == 1


def test_annotations_land_on_the_repository_path_with_a_working_directory(tmp_path: Path,
                                                                          github: tuple[FakeGitHub, str]) -> None:
    """working-directory: project (as the dogfood workflow's examples/): an annotation must name
    project/macc_budget.yaml, or an absolute path inside the workspace, to land on the diff."""
    _, url = github
    repo = tmp_path / "workspace"
    _grown_model_repository(repo, repo / "project")
    run = ActionRun(tmp_path, {"working-directory": "project", "base-ref": "main", "pytest-args": "-p no:cacheprovider"},
                    api_url=url, workspace=repo)
    results = run.run()
    assert run.action_outputs()["regressions"] == "1", results["pytest"].stdout[-3000:]
    files = re.findall(r"^::error file=([^,]+),", results["pytest"].stdout, re.M)
    assert files and all(name in ("project/macc_budget.yaml", str(repo / "project" / "macc_budget.yaml"))
                         for name in files), files


# --- comment.py against the HTTP server, in process --------------------------------------------


def test_first_run_creates_second_run_updates(pr_env: Path, github: tuple[FakeGitHub, str],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    fake, _ = github
    assert comment.main(["--report", str(pr_env)]) == 0
    [post] = fake.of_method("POST")
    assert post.body["body"] == comment.MARKER + "\n" + pr_env.read_text()
    assert post.headers["accept"] == "application/vnd.github+json"
    assert post.headers["x-github-api-version"] == comment.API_VERSION
    pr_env.write_text("## Model cost budget\n\nall within budget\n")
    assert comment.main(["--report", str(pr_env)]) == 0
    assert len(fake.of_method("POST")) == 1
    [patch] = fake.of_method("PATCH")
    assert patch.path.endswith(f"/issues/comments/{fake.comments[PR_NUMBER][0]['id']}")
    assert fake.comments[PR_NUMBER][0]["body"] == comment.MARKER + "\n## Model cost budget\n\nall within budget\n"
    out = capsys.readouterr().out
    assert "created the budget report comment" in out and "updated the budget report comment" in out


def test_marker_comment_on_page_two_is_updated(pr_env: Path, github: tuple[FakeGitHub, str]) -> None:
    fake, _ = github
    fake.page_size = 2
    for index in range(3):
        fake.add_comment(PR_NUMBER, f"review comment {index}")
    sticky = fake.add_comment(PR_NUMBER, comment.MARKER + "\nold report", "github-actions[bot]")
    fake.add_comment(PR_NUMBER, "later comment")
    assert comment.main(["--report", str(pr_env)]) == 0
    gets = fake.of_method("GET")
    assert [request.query["page"] for request in gets] == ["1", "2"]  # stops at the page with the marker
    assert all(request.query["per_page"] == "100" for request in gets)
    assert fake.of_method("POST") == []
    [patch] = fake.of_method("PATCH")
    assert patch.path.endswith(f"/issues/comments/{sticky['id']}")
    assert sticky["body"].startswith(comment.MARKER + "\n## Model cost budget")


def test_all_pages_are_read_before_creating(pr_env: Path, github: tuple[FakeGitHub, str]) -> None:
    fake, _ = github
    fake.page_size = 2
    for index in range(5):
        fake.add_comment(PR_NUMBER, f"review comment {index}")
    assert comment.main(["--report", str(pr_env)]) == 0
    assert [request.query["page"] for request in fake.of_method("GET")] == ["1", "2", "3"]
    assert len(fake.of_method("POST")) == 1


def test_403_on_post_degrades_to_a_notice(pr_env: Path, github: tuple[FakeGitHub, str],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    fake, _ = github
    fake.fail["POST"] = (403, "Resource not accessible by integration")
    assert comment.main(["--report", str(pr_env)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("::notice title=pytest-maccbudget::cannot write the PR comment (POST ")
    assert "HTTP 403: Resource not accessible by integration" in out
    assert out.count("\n") == 1  # one workflow command, escaped


@pytest.mark.parametrize(("method", "status", "level"), [("GET", 404, "notice"), ("PATCH", 403, "notice"),
                                                         ("GET", 500, "warning"), ("POST", 422, "warning")])
def test_other_api_errors_never_fail(pr_env: Path, github: tuple[FakeGitHub, str], capsys: pytest.CaptureFixture[str],
                                     method: str, status: int, level: str) -> None:
    fake, _ = github
    fake.add_comment(PR_NUMBER, comment.MARKER + "\nold", "github-actions[bot]")
    if method == "POST":
        fake.comments.clear()
    fake.fail[method] = (status, "boom")
    assert comment.main(["--report", str(pr_env)]) == 0
    assert capsys.readouterr().out.startswith(f"::{level} title=pytest-maccbudget::")


def test_non_pull_request_event_is_a_notice(pr_env: Path, github: tuple[FakeGitHub, str], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake, _ = github
    push = tmp_path / "push.json"
    push.write_text(json.dumps({"ref": "refs/heads/main", "after": HEAD_SHA}))
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(push))
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")
    assert comment.main(["--report", str(pr_env)]) == 0
    assert capsys.readouterr().out.startswith("::notice title=pytest-maccbudget::push is not a pull request event")
    assert fake.requests == []


def test_network_error_is_a_notice(pr_env: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("GITHUB_API_URL", f"http://127.0.0.1:{port}")
    assert comment.main(["--report", str(pr_env)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("::notice title=pytest-maccbudget::cannot reach the GitHub API")


@pytest.mark.parametrize(("change", "message"), [
    ({"GITHUB_TOKEN": ""}, "no token"),
    ({"GITHUB_EVENT_PATH": ""}, "GITHUB_EVENT_PATH is not set"),
    ({"GITHUB_REPOSITORY": "not a repo"}, "is not owner/name"),
    ({"GITHUB_API_URL": "file:///etc"}, "is not an http(s) URL"),
])
def test_missing_or_bad_environment_is_not_a_failure(pr_env: Path, github: tuple[FakeGitHub, str],
                                                     monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                     change: dict[str, str], message: str) -> None:
    fake, _ = github
    for name, value in change.items():
        monkeypatch.setenv(name, value)
    assert comment.main(["--report", str(pr_env)]) == 0
    assert message in capsys.readouterr().out
    assert fake.requests == []


def test_missing_report_is_a_notice(pr_env: Path, github: tuple[FakeGitHub, str],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    fake, _ = github
    assert comment.main(["--report", str(pr_env.parent / "nope.md")]) == 0
    assert "there is no report" in capsys.readouterr().out
    assert fake.requests == []


def test_long_report_is_truncated_with_a_note_and_closed_fence(pr_env: Path, github: tuple[FakeGitHub, str]) -> None:
    fake, _ = github
    rows = "".join(f"| layer.{i} | {i * 1000:,} | ±{i % 7}% × |\n" for i in range(4000))
    pr_env.write_text("## Model cost budget\n\n| layer | macs | change |\n| --- | --- | --- |\n" + rows
                      + "\n```mermaid\nxychart-beta\n" + "bar [1, 2, 3]\n" * 5000 + "```\n")
    assert comment.main(["--report", str(pr_env)]) == 0
    body = fake.of_method("POST")[0].body["body"]
    assert len(body.encode("utf-8")) <= comment.MAX_BODY_BYTES
    assert body.startswith(comment.MARKER + "\n## Model cost budget")
    assert body.endswith(comment.TRUNCATION_NOTE)
    assert comment.open_fence(body) is None


def test_too_long_report_is_re_rendered_from_the_json(pr_env: Path, github: tuple[FakeGitHub, str]) -> None:
    fake, _ = github
    json_path, markdown_path = write_report(pr_env.parent / "big", [True] * 150, layers=12)
    assert len(markdown_path.read_bytes()) > comment.MAX_BODY_BYTES
    assert comment.main(["--report", str(markdown_path), "--json", str(json_path)]) == 0
    body = fake.of_method("POST")[0].body["body"]
    report = pr_report.load_report(json_path.read_text(), str(json_path))
    assert body == pr_report.render_markdown(report, limit=comment.MAX_BODY_BYTES)  # the renderer's own cut
    assert len(body.encode()) <= comment.MAX_BODY_BYTES and body.count(comment.MARKER) == 1
    assert comment.TRUNCATION_NOTE not in body
    json_path.write_text("{}")  # an unusable JSON: the markdown is cut instead
    assert comment.main(["--report", str(markdown_path), "--json", str(json_path)]) == 0
    body = fake.comments[PR_NUMBER][0]["body"]
    assert body.endswith(comment.TRUNCATION_NOTE) and len(body.encode()) <= comment.MAX_BODY_BYTES
    assert comment.open_fence(body) is None


def test_the_report_modules_marker_is_the_comments() -> None:
    assert pr_report.MARKER == comment.MARKER
    markdown = pr_report.render_markdown(build_report_json([True]))
    assert comment.build_body(markdown) == markdown.rstrip("\n") + "\n"


def test_workflow_run_mode_checks_the_pull_requests_head(pr_env: Path, github: tuple[FakeGitHub, str],
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    fake, _ = github
    monkeypatch.setenv("GITHUB_EVENT_NAME", "workflow_run")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(pr_env.parent / "event.json"))  # a pull_request body is ignored with --pr
    fake.pull_heads[12] = "b" * 40
    assert comment.main(["--report", str(pr_env), "--pr", "12", "--head-sha", "B" * 40]) == 0
    assert fake.calls() == [f"GET /repos/{REPOSITORY}/pulls/12", "GET /user", "POST /graphql",
                            f"GET /repos/{REPOSITORY}/issues/12/comments", f"POST /repos/{REPOSITORY}/issues/12/comments"]
    assert comment.main(["--report", str(pr_env), "--pr", "12", "--head-sha", "c" * 40]) == 0
    assert "not " + "c" * 40 in capsys.readouterr().out
    assert len(fake.of_method("POST")) == 1 and fake.of_method("PATCH") == []
    assert comment.main(["--report", str(pr_env), "--pr", "12; rm -rf /"]) == 0
    assert "--pr must be a pull request number" in capsys.readouterr().out


def test_bad_head_sha_is_a_usage_error(pr_env: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        comment.main(["--report", str(pr_env), "--pr", "3", "--head-sha", "main"])
    assert exit_info.value.code == 2


# --- small pieces ------------------------------------------------------------------------------


def test_build_body_keeps_a_short_report_whole() -> None:
    assert comment.build_body("# hi\n\n") == comment.MARKER + "\n# hi\n"


def test_build_body_cuts_a_single_huge_line_at_a_character_boundary() -> None:
    body = comment.build_body("é" * 100_000, limit=1000)
    assert len(body.encode()) <= 1000 and body.endswith(comment.TRUNCATION_NOTE)


@pytest.mark.parametrize(("markdown", "fence"), [
    ("text\n```mermaid\nx\n", "```"), ("```\nx\n```\n", None), ("````md\n```\n", "````"),
    ("~~~\nx\n```\n", "~~~"), ("```\nx\n``` not a close\n", "```"),
])
def test_open_fence(markdown: str, fence: Optional[str]) -> None:
    assert comment.open_fence(markdown) == fence


@pytest.mark.parametrize(("link", "expected"), [
    (None, False), ("", False),
    ('<https://api.github.com/x?page=2>; rel="next", <https://api.github.com/x?page=5>; rel="last"', True),
    ('<https://api.github.com/x?page=1>; rel="prev", <https://api.github.com/x?page=1>; rel="first"', False),
])
def test_has_next_page(link: Optional[str], expected: bool) -> None:
    assert comment.has_next_page(link) is expected


def test_workflow_commands_are_escaped() -> None:
    assert escape_data("50%\r\n::error::x") == "50%25%0D%0A::error::x"
    assert command("notice", "a\nb", title="t: x, y") == "::notice title=t%3A x%2C y::a%0Ab"


def test_count_regressions_and_schema_checks(tmp_path: Path) -> None:
    json_path, _ = write_report(tmp_path, [True, True, False])
    assert outputs.count_regressions(json_path) == 2
    report = json.loads(json_path.read_text())
    for bad in ({**report, "schema": "other"}, {**report, "version": 2}, {**report, "models": [{"name": "x"}]}, []):
        json_path.write_text(json.dumps(bad))
        with pytest.raises(outputs.ReportError):
            outputs.count_regressions(json_path)


def test_outputs_main_refuses_a_newline_in_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    json_path, markdown_path = write_report(tmp_path, [False])
    target = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(target))
    assert outputs.main(["--json", str(json_path), "--markdown", str(tmp_path / "a\nregressions=0"),
                         "--exit-code", "0"]) == 1
    assert "would span several lines" in capsys.readouterr().out
    assert not target.exists()
    assert outputs.main(["--json", str(json_path), "--markdown", str(markdown_path), "--exit-code", "0"]) == 0
    assert parse_output_file(target.read_text()) == {"regressions": "0", "report-markdown": str(markdown_path),
                                                     "report-json": str(json_path)}


def test_outputs_main_fails_on_a_malformed_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "report.json"
    bad.write_text("{not json")
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "out"))
    assert outputs.main(["--json", str(bad), "--markdown", str(tmp_path / "report.md"), "--exit-code", "1"]) == 1
    assert capsys.readouterr().out.startswith("::error title=pytest-maccbudget::cannot set the action's outputs")


@pytest.mark.parametrize(("text", "words"), [
    ("", []), ("-k 'a and b' -n 2", ["-k", "a and b", "-n", "2"]),
    ('-m "not slow"  --tb=short', ["-m", "not slow", "--tb=short"]),
    ("$HOME `id` *.py", ["$HOME", "`id`", "*.py"]), ("a\\ b # c", ["a b", "#", "c"]),
])
def test_pytest_args_split_like_a_shell_without_expansion(text: str, words: list[str]) -> None:
    assert pytest_args.split_args(text) == words
    assert pytest_args.encode_words(words).split(b"\0")[:-1] == [w.encode() for w in words]


def test_pytest_args_main_usage(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert pytest_args.main(["-k 'x y'"]) == 0
    assert capsysbinary.readouterr().out == b"-k\0x y\0"
    assert pytest_args.main([]) == 2


def test_a_person_quoting_the_marker_does_not_get_the_report(pr_env: Path, github: tuple[FakeGitHub, str]) -> None:
    fake, _ = github
    mallory = fake.add_comment(PR_NUMBER, "LGTM " + comment.MARKER, "mallory")
    also = fake.add_comment(PR_NUMBER, comment.MARKER + "\nfake report", "mallory")

    assert comment.main(["--report", str(pr_env)]) == 0

    assert [r.method for r in fake.of_method("POST") + fake.of_method("PATCH")] == ["POST"]  # a new bot comment
    assert mallory["body"] == "LGTM " + comment.MARKER and also["body"] == comment.MARKER + "\nfake report"
