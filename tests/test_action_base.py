"""The action finds a pull request's base in actions/checkout's default clone.

Every clone here is made the way actions/checkout makes it in a pull_request run: ``git init``,
``git remote add origin URL``, a depth-1 fetch of the merge commit GitHub published as
``refs/pull/7/merge``, and a checkout of it. The origin is served over file:// or, where
credentials matter, over HTTP by ``git http-backend`` behind a server on 127.0.0.1 that
demands one Authorization header with the right token.
"""
from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

import pytest

from pytest_maccbudget.action import base
from pytest_maccbudget.action.base import BaseError, Context, Git
from tests.test_action import (  # noqa: F401  (github is a fixture)
    GIT, PR_NUMBER, ActionRun, FakeGitHub, _grown_model_repository, github,
)

ISOLATED_GIT = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0"}
TOKEN = "ghs_fetch-token"


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ISOLATED_GIT.items():
        monkeypatch.setenv(name, value)
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_CONFIG_COUNT"):
        monkeypatch.delenv(name, raising=False)


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def publish_merge(origin: Path) -> tuple[str, str]:
    """GitHub's merge of ``feature`` into ``main`` as refs/pull/7/merge; returns (merge, base tip)."""
    base_tip = git("rev-parse", "main", cwd=origin)
    git("checkout", "-q", "--detach", "main", cwd=origin)
    git("merge", "-q", "--no-ff", "-m", f"Merge pull request #{PR_NUMBER}", "feature", cwd=origin)
    merge = git("rev-parse", "HEAD", cwd=origin)
    git("update-ref", f"refs/pull/{PR_NUMBER}/merge", merge, cwd=origin)
    git("checkout", "-q", "main", cwd=origin)
    return merge, base_tip


def checkout_like_actions(url: str, workspace: Path, sha: str, depth: int = 1,
                          extraheader: Optional[tuple[str, str]] = None) -> None:
    """actions/checkout's commands for a pull_request run (fetch-depth: ``depth``); with
    ``extraheader`` (key, value) its persisted credentials, as checkout v5 keeps them."""
    workspace.mkdir(parents=True, exist_ok=True)
    git("init", "-q", cwd=workspace)
    git("remote", "add", "origin", url, cwd=workspace)
    git("config", "--local", "gc.auto", "0", cwd=workspace)
    if extraheader is not None:
        git("config", "--local", *extraheader, cwd=workspace)
    depth_flag = [f"--depth={depth}"] if depth else []
    git("-c", "protocol.version=2", "fetch", "--no-tags", "--prune", "--no-recurse-submodules", *depth_flag, "origin",
        f"+{sha}:refs/remotes/pull/{PR_NUMBER}/merge", cwd=workspace)
    git("checkout", "-q", "--force", f"refs/remotes/pull/{PR_NUMBER}/merge", cwd=workspace)


@pytest.fixture(scope="module")
def pull_request(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str]]:
    """An origin whose feature branch grew the tiny model, its merge published; returns (origin,
    merge, base tip). Built once per module (it runs the plugin); tests only read from it."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in ISOLATED_GIT.items():
            patch.setenv(name, value)
        origin = tmp_path_factory.mktemp("pull-request") / "origin"
        origin.mkdir()
        _grown_model_repository(origin, origin)
        merge, base_tip = publish_merge(origin)
    yield origin, merge, base_tip


def context(sha: str, **changes: str) -> Context:
    values = {"event_name": "pull_request", "sha": sha, "base_branch": "main", "server_url": "https://github.com",
              "base_ref_input": "", "token": ""}
    values.update(changes)
    return Context(**values)


def shallow_commits(workspace: Path) -> set[str]:
    shallow = workspace / ".git" / "shallow"
    return set(shallow.read_text().split()) if shallow.exists() else set()


# --- the whole action on a default checkout -----------------------------------------------------------


def run_action(tmp_path: Path, workspace: Path, merge: str, url: str) -> ActionRun:
    run = ActionRun(tmp_path, {"pytest-args": "-p no:cacheprovider"}, api_url=url, workspace=workspace,
                    extra_env={"GITHUB_SHA": merge, **ISOLATED_GIT})
    run.run()
    return run


def test_default_checkout_of_a_pull_request_that_grew_a_model_fails_the_job(
        tmp_path: Path, pull_request: tuple[Path, str, str], github: tuple[FakeGitHub, str]) -> None:
    """No fetch-depth, no base-ref: the action fetches the merge commit's parents, compares with
    the base branch's tip, reports the regression against it, comments, and fails the job."""
    fake, url = github
    origin, merge, base_tip = pull_request
    workspace = tmp_path / "workspace"
    checkout_like_actions(f"file://{origin}", workspace, merge)
    assert shallow_commits(workspace) == {merge}

    run = run_action(tmp_path, workspace, merge, url)

    results = run.results
    assert [r.outcome for r in results.values()][-5:] == ["success", "success", "success", "success", "failure"], \
        results["base"].stdout + results["base"].stderr + results["pytest"].stdout[-2000:]
    assert results["base"].outputs == {"ref": base_tip}
    assert base_tip in shallow_commits(workspace) and merge not in shallow_commits(workspace)
    report = json.loads(Path(run.action_outputs()["report-json"]).read_text())
    assert report["base"] == {"ref": base_tip, "commit": base_tip, "branch": "main"}  # GITHUB_BASE_REF names it
    assert report["models"][0]["status"] == "regressed" and report["models"][0]["budget_change"] == "unchanged"
    assert run.action_outputs()["regressions"] == "1"
    [post] = fake.of_method("POST")
    assert f"(base `main` @ `{base_tip[:7]}`)" in post.body["body"]
    assert f"at `{base_tip}`, the tip of `main` this pull request merges into" in post.body["body"]
    assert results["Fail the job if pytest failed"].returncode == 1


def test_default_checkout_of_a_pull_request_without_cost_changes_passes_without_a_comment(
        tmp_path: Path, github: tuple[FakeGitHub, str]) -> None:
    """A docs-only pull request: the checks pass against the base, and the default comment mode
    (changed) posts nothing."""
    fake, url = github
    origin = tmp_path / "origin"
    origin.mkdir()
    _grown_model_repository(origin, origin, feature_width=8)
    merge, base_tip = publish_merge(origin)
    workspace = tmp_path / "workspace"
    checkout_like_actions(f"file://{origin}", workspace, merge)

    run = run_action(tmp_path, workspace, merge, url)

    results = run.results
    assert all(r.outcome in ("success", "skipped") for r in results.values()), results["pytest"].stdout[-2000:]
    assert results["base"].outputs == {"ref": base_tip}
    assert run.action_outputs()["regressions"] == "0"
    report = json.loads(Path(run.action_outputs()["report-json"]).read_text())
    assert report["base"]["commit"] == base_tip and report["models"][0]["status"] == "ok"
    assert fake.of_method("POST") == [] and fake.of_method("PATCH") == []
    assert "comment mode `changed`" in results["comment"].stdout


# --- find_base in process ---------------------------------------------------------------------------------


class RecordingGit(Git):
    """Git that remembers every command line and the extra environment it was given."""

    def __init__(self, directory: Path, environ: Mapping[str, str]) -> None:
        super().__init__(directory, environ)
        self.calls: list[tuple[list[str], dict[str, str]]] = []

    def run(self, args: Sequence[str], extra_env: Optional[Mapping[str, str]] = None,
            timeout: float = base.GIT_TIMEOUT_SECONDS) -> subprocess.CompletedProcess[str]:
        self.calls.append((list(args), dict(extra_env or {})))
        return super().run(args, extra_env, timeout)

    def fetches(self) -> list[tuple[list[str], dict[str, str]]]:
        return [(args, env) for args, env in self.calls if "fetch" in args]


def test_a_deep_enough_clone_is_not_fetched(tmp_path: Path, pull_request: tuple[Path, str, str]) -> None:
    origin, merge, base_tip = pull_request
    for depth in (2, 0):  # fetch-depth: 2, and a full clone
        workspace = tmp_path / f"depth-{depth}"
        checkout_like_actions(f"file://{origin}", workspace, merge, depth=depth)
        recorder = RecordingGit(workspace, os.environ)
        assert base.find_base(context(merge), recorder) == base_tip
        assert recorder.fetches() == []


def test_the_fetch_deepens_by_one_commit_and_no_more(tmp_path: Path, pull_request: tuple[Path, str, str]) -> None:
    origin, merge, base_tip = pull_request
    workspace = tmp_path / "workspace"
    checkout_like_actions(f"file://{origin}", workspace, merge)
    recorder = RecordingGit(workspace, os.environ)
    assert base.find_base(context(merge), recorder) == base_tip
    [(args, _)] = recorder.fetches()
    assert args == ["-c", "protocol.version=2", "fetch", "--no-tags", "--no-recurse-submodules", "--depth=2",
                    "origin", merge]
    head = git("rev-parse", f"refs/remotes/pull/{PR_NUMBER}/merge^2", cwd=workspace)
    assert shallow_commits(workspace) == {base_tip, head}  # the parents are the new boundary
    assert git("rev-list", "--count", "HEAD", cwd=workspace) == "3"
    assert git("for-each-ref", "--format=%(refname)", cwd=workspace) == f"refs/remotes/pull/{PR_NUMBER}/merge"


@pytest.mark.parametrize(("inputs", "expected"), [({"base_ref_input": "v1.0"}, "v1.0"),
                                                  ({"event_name": "pull_request_target"}, "origin/main"),
                                                  ({"event_name": "push", "base_branch": ""}, "")])
def test_other_events_and_an_explicit_ref_need_no_git(tmp_path: Path, inputs: dict[str, str], expected: str) -> None:
    recorder = RecordingGit(tmp_path, os.environ)  # not a repository: git would fail
    assert base.find_base(context("c" * 40, **inputs), recorder) == expected
    assert recorder.calls == []


def test_head_other_than_the_merge_commit(tmp_path: Path, pull_request: tuple[Path, str, str]) -> None:
    """actions/checkout with `ref: <the PR head>`: a shallow clone cannot say; a full one has origin/main."""
    origin, merge, _ = pull_request
    head = git("rev-parse", "feature", cwd=origin)
    shallow = tmp_path / "shallow"
    checkout_like_actions(f"file://{origin}", shallow, head)
    with pytest.raises(BaseError) as excinfo:
        base.find_base(context(merge), Git(shallow, os.environ))
    message = str(excinfo.value)
    assert message.startswith(f"HEAD is {head[:12]}, not the merge commit {merge[:12]}")
    assert "no `ref:` in actions/checkout" in message and "`fetch-depth: 0`" in message

    full = tmp_path / "full"
    full.mkdir()
    git("clone", "-q", f"file://{origin}", str(full / "repo"), cwd=tmp_path)
    git("checkout", "-q", "--detach", head, cwd=full / "repo")
    assert base.find_base(context(merge), Git(full / "repo", os.environ)) == "origin/main"


def test_a_head_that_is_not_a_merge_commit(tmp_path: Path, pull_request: tuple[Path, str, str]) -> None:
    origin, _, _ = pull_request
    head = git("rev-parse", "feature", cwd=origin)
    workspace = tmp_path / "workspace"
    checkout_like_actions(f"file://{origin}", workspace, head)
    with pytest.raises(BaseError) as excinfo:
        base.find_base(context(head), Git(workspace, os.environ))
    assert f"HEAD {head[:12]} (GITHUB_SHA) is not a merge commit (1 parent)," in str(excinfo.value)
    assert "set the action's `base-ref` input, e.g. `origin/main`" in str(excinfo.value)


def test_not_a_checkout(tmp_path: Path) -> None:
    with pytest.raises(BaseError) as excinfo:
        base.find_base(context("c" * 40), Git(tmp_path, os.environ))
    assert str(excinfo.value).startswith(f"{tmp_path} is not a git checkout with a commit")
    assert str(excinfo.value).endswith("run actions/checkout before this action")


def test_parents_are_read_from_the_commit_object_of_a_shallow_clone(tmp_path: Path,
                                                                    pull_request: tuple[Path, str, str]) -> None:
    origin, merge, base_tip = pull_request
    workspace = tmp_path / "workspace"
    checkout_like_actions(f"file://{origin}", workspace, merge)
    assert not base.resolves(Git(workspace, os.environ), "HEAD^1")  # git itself sees no parent
    assert base.commit_parents(Git(workspace, os.environ), merge) == [base_tip, git("rev-parse", "feature", cwd=origin)]


# --- credentials: git http-backend behind a server that checks them -------------------------------------


def basic(token: str) -> str:
    return "basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()


class GitServer:
    """Serves the bare repositories under ``root`` over smart HTTP; every request must carry
    exactly one Authorization header equal to ``basic(token)``, or gets a 401."""

    def __init__(self, root: Path, token: str) -> None:
        self.root = root
        self.token = token
        self.authorizations: list[list[str]] = []

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        authorizations = request.headers.get_all("Authorization") or []
        self.authorizations.append(authorizations)
        if len(authorizations) != 1 or authorizations[0].lower() != basic(self.token).lower():
            request.send_response(401)
            request.send_header("WWW-Authenticate", 'Basic realm="git"')
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        path, _, query = request.path.partition("?")
        env = {"GIT_PROJECT_ROOT": str(self.root), "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path,
               "QUERY_STRING": query, "REQUEST_METHOD": method, "REMOTE_ADDR": "127.0.0.1",
               "CONTENT_TYPE": request.headers.get("Content-Type", ""), "PATH": os.environ["PATH"],
               "GIT_PROTOCOL": request.headers.get("Git-Protocol", ""), **ISOLATED_GIT,
               "HTTP_CONTENT_ENCODING": request.headers.get("Content-Encoding", "")}
        done = subprocess.run(["git", "http-backend"], input=self._body(request), env=env, capture_output=True)
        head, _, body = done.stdout.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        request.send_response(status)
        for name, value in headers:
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    @staticmethod
    def _body(request: BaseHTTPRequestHandler) -> bytes:
        if request.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return request.rfile.read(int(request.headers.get("Content-Length") or 0))
        chunks = []
        while True:
            size = int(request.rfile.readline().split(b";")[0], 16)
            if size == 0:
                request.rfile.readline()
                return b"".join(chunks)
            chunks.append(request.rfile.read(size))
            request.rfile.readline()


@pytest.fixture
def served(tmp_path: Path, pull_request: tuple[Path, str, str]) -> Iterator[tuple[GitServer, str]]:
    """The pull request's origin as a bare mirror on http://127.0.0.1:PORT/origin.git."""
    origin, _, _ = pull_request
    root = tmp_path / "served"
    root.mkdir()
    git("clone", "-q", "--mirror", str(origin), str(root / "origin.git"), cwd=tmp_path)
    server_state = GitServer(root, TOKEN)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server_state.handle(self, "GET")

        def do_POST(self) -> None:
            server_state.handle(self, "POST")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def http_checkout(tmp_path: Path, server_url: str, merge: str, persist: bool) -> Path:
    """actions/checkout over HTTP with its token; with persist-credentials: false it removes the
    header after the checkout, as checkout does."""
    workspace = tmp_path / "workspace"
    key = f"http.{server_url}/.extraheader"
    checkout_like_actions(f"{server_url}/origin.git", workspace, merge, extraheader=(key, f"AUTHORIZATION: {basic(TOKEN)}"))
    if not persist:
        git("config", "--local", "--unset-all", key, cwd=workspace)
    return workspace


def test_persisted_credentials_are_used_as_they_are(tmp_path: Path, pull_request: tuple[Path, str, str],
                                                    served: tuple[GitServer, str]) -> None:
    server, server_url = served
    _, merge, base_tip = pull_request
    workspace = http_checkout(tmp_path, server_url, merge, persist=True)
    recorder = RecordingGit(workspace, os.environ)
    found = base.find_base(context(merge, server_url=server_url, token=TOKEN), recorder)
    assert found == base_tip
    [(_, env)] = recorder.fetches()
    assert not any(name.startswith("GIT_CONFIG") for name in env)  # a second header would be refused
    assert all(len(headers) == 1 for headers in server.authorizations)


def test_without_persisted_credentials_the_token_input_is_sent_through_the_environment(
        tmp_path: Path, pull_request: tuple[Path, str, str], served: tuple[GitServer, str]) -> None:
    server, server_url = served
    _, merge, base_tip = pull_request
    workspace = http_checkout(tmp_path, server_url, merge, persist=False)
    recorder = RecordingGit(workspace, os.environ)
    found = base.find_base(context(merge, server_url=server_url, token=TOKEN), recorder)
    assert found == base_tip
    [(args, env)] = recorder.fetches()
    assert env["GIT_CONFIG_COUNT"] == "1" and env["GIT_CONFIG_KEY_0"] == f"http.{server_url}/.extraheader"
    assert env["GIT_CONFIG_VALUE_0"] == f"AUTHORIZATION: {basic(TOKEN)}"
    assert not any(TOKEN in arg or basic(TOKEN).split()[1] in arg for call, _ in recorder.calls for arg in call)
    assert not base.has_persisted_header(Git(workspace, os.environ), f"{server_url}/origin.git")  # nothing written
    assert server.authorizations[-1] == [basic(TOKEN)]


def test_a_refused_token_names_the_fix(tmp_path: Path, pull_request: tuple[Path, str, str],
                                       served: tuple[GitServer, str]) -> None:
    _, server_url = served
    _, merge, _ = pull_request
    workspace = http_checkout(tmp_path, server_url, merge, persist=False)
    with pytest.raises(BaseError) as excinfo:
        base.find_base(context(merge, server_url=server_url, token="ghs_wrong"), Git(workspace, os.environ))
    message = str(excinfo.value)
    assert message.startswith(f"cannot fetch the pull request's base into this shallow clone: `git fetch --no-tags "
                              f"--depth=2 origin {merge}` failed (")
    assert "the server refused the action's `token` input" in message
    assert message.endswith("check out with `fetch-depth: 2` in actions/checkout, so that the base is in the clone "
                            "already")
    assert "ghs_wrong" not in message


def test_the_token_goes_to_the_github_server_only(tmp_path: Path, pull_request: tuple[Path, str, str],
                                                  served: tuple[GitServer, str]) -> None:
    server, server_url = served
    _, merge, _ = pull_request
    workspace = http_checkout(tmp_path, server_url, merge, persist=False)
    recorder = RecordingGit(workspace, os.environ)
    with pytest.raises(BaseError) as excinfo:
        base.find_base(context(merge, server_url="https://github.com", token=TOKEN), recorder)
    assert "the server refused a request without credentials" in str(excinfo.value)
    [(_, env)] = recorder.fetches()
    assert not any(name.startswith("GIT_CONFIG") for name in env)
    assert server.authorizations[-1] == []


def test_an_unreachable_server_names_the_fix(tmp_path: Path, pull_request: tuple[Path, str, str]) -> None:
    origin, merge, _ = pull_request
    workspace = tmp_path / "workspace"
    checkout_like_actions(f"file://{origin}", workspace, merge)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    git("remote", "set-url", "origin", f"http://127.0.0.1:{port}/origin.git", cwd=workspace)
    with pytest.raises(BaseError) as excinfo:
        base.find_base(context(merge), Git(workspace, os.environ))
    assert "the server could not be reached: check out with `fetch-depth: 2`" in str(excinfo.value)


# --- small pieces -----------------------------------------------------------------------------------------


def test_token_config_follows_existing_git_config_entries() -> None:
    ctx = context("c" * 40, token=TOKEN)
    assert base.token_config(ctx, "https://github.com/o/r", {"GIT_CONFIG_COUNT": "2"}) == {
        "GIT_CONFIG_COUNT": "3", "GIT_CONFIG_KEY_2": "http.https://github.com/.extraheader",
        "GIT_CONFIG_VALUE_2": f"AUTHORIZATION: {basic(TOKEN)}"}
    assert base.token_config(ctx, "https://GitHub.com:443/o/r.git", {})["GIT_CONFIG_COUNT"] == "1"
    assert base.token_config(ctx, "git@github.com:o/r.git", {}) == {}
    assert base.token_config(ctx, "https://evil.example/o/r", {}) == {}
    assert base.token_config(context("c" * 40), "https://github.com/o/r", {}) == {}


def test_main_writes_the_output_or_the_error_and_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    output, summary = tmp_path / "output", tmp_path / "summary"
    for name, value in {"GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_EVENT_NAME": "push",
                        "INPUT_BASE_REF": "origin/release"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    assert base.main([]) == 0
    assert output.read_text() == "ref=origin/release\n"
    assert capsys.readouterr().out == "base: origin/release (the base-ref input)\n"
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")
    monkeypatch.setenv("INPUT_BASE_REF", "")
    monkeypatch.setenv("GITHUB_SHA", "c" * 40)
    assert base.main([]) == 1
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith("::error title=pytest-maccbudget::") and line.endswith("before this action")
    assert summary.read_text().startswith("## ❌ pytest-maccbudget: no base to compare with\n")
    assert output.read_text() == "ref=origin/release\n"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_a_checkout_owned_by_another_user_names_safe_directory(tmp_path: Path,
                                                               pull_request: tuple[Path, str, str]) -> None:
    origin, merge, _ = pull_request
    workspace = tmp_path / "workspace"
    checkout_like_actions(f"file://{origin}", workspace, merge)
    for path in [workspace, *workspace.rglob("*")]:
        os.lchown(path, 65534, 65534)
    with pytest.raises(BaseError) as excinfo:
        base.find_base(context(merge), Git(workspace, os.environ))
    assert str(excinfo.value).endswith(f"`git config --global --add safe.directory {workspace}` before this action")
