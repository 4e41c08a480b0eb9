"""Whose comment is the sticky comment, and when one is created: comment.py against the fake
GitHub API on 127.0.0.1, and the comment modes' predicate on report JSON."""
from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_maccbudget import pr_report
from pytest_maccbudget.action import comment, modes
from tests.test_action import (  # noqa: F401  (github and pr_env are fixtures)
    BOT, INTEGRATION_REFUSED, PR_NUMBER, REPOSITORY, ROOT, FakeGitHub, build_report_json, github, pr_env,
    write_report,
)


def post(report: Path, *args: str) -> None:
    assert comment.main(["--report", str(report), *args]) == 0


def bodies(fake: FakeGitHub) -> list[tuple[str, str]]:
    return [(c["user"]["login"], c["body"]) for c in fake.comments.get(PR_NUMBER, [])]


# --- the token's identity ------------------------------------------------------------------------------


def test_two_runs_with_a_personal_token_leave_one_comment(pr_env: Path, github: tuple[FakeGitHub, str]) -> None:
    fake, _ = github
    fake.user_login = "alice"
    post(pr_env)
    pr_env.write_text("## second report\n")
    post(pr_env)
    assert bodies(fake) == [("alice", comment.MARKER + "\n## second report\n")]
    assert fake.calls().count("GET /user") == 2 and "POST /graphql" not in fake.calls()


def test_a_personal_token_ignores_the_bots_old_comment(pr_env: Path, github: tuple[FakeGitHub, str]) -> None:
    """Before, any bot's marker comment was taken; now a PAT's own comment is the sticky one."""
    fake, _ = github
    fake.user_login = "Alice"
    bots = fake.add_comment(PR_NUMBER, comment.MARKER + "\nfrom the workflow's token", BOT)
    mine = fake.add_comment(PR_NUMBER, comment.MARKER + "\nmine", "alice")  # logins compare case-insensitively
    post(pr_env)
    assert bots["body"].endswith("from the workflow's token")
    assert mine["body"].startswith(comment.MARKER + "\n## Model cost budget")
    assert fake.of_method("POST") == []


def test_another_bots_marker_comment_is_left_alone(pr_env: Path, github: tuple[FakeGitHub, str]) -> None:
    fake, _ = github
    dependabot = fake.add_comment(PR_NUMBER, comment.MARKER + "\nnot ours", "dependabot[bot]")
    post(pr_env)
    post(pr_env)
    assert dependabot["body"] == comment.MARKER + "\nnot ours"
    assert [login for login, _ in bodies(fake)] == ["dependabot[bot]", BOT]
    assert len(fake.of_method("POST")) == 1 and len(fake.of_method("PATCH")) == 1
    assert fake.of_method("PATCH")[0].path.endswith(f"/issues/comments/{fake.comments[PR_NUMBER][1]['id']}")


@pytest.mark.parametrize("viewer", [BOT, "github-actions"])
def test_an_installation_token_updates_its_own_comment(pr_env: Path, github: tuple[FakeGitHub, str],
                                                       viewer: str) -> None:
    """GET /user is refused (403), GraphQL names the bot, with or without the [bot] suffix."""
    fake, _ = github
    fake.viewer_login = viewer
    ours = fake.add_comment(PR_NUMBER, comment.MARKER + "\nold", BOT)
    post(pr_env)
    assert fake.calls()[:2] == ["GET /user", "POST /graphql"]
    assert ours["body"].startswith(comment.MARKER + "\n## Model cost budget")
    assert fake.of_method("POST") == []


def test_without_an_identity_an_existing_marker_comment_is_not_edited(pr_env: Path, github: tuple[FakeGitHub, str],
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    fake, _ = github
    fake.viewer_login = None  # GET /user and GraphQL both refused
    someone = fake.add_comment(PR_NUMBER, comment.MARKER + "\nsomeone's", "dependabot[bot]")
    post(pr_env)
    assert someone["body"].endswith("someone's")
    assert fake.of_method("POST") == [] and fake.of_method("PATCH") == []
    out = capsys.readouterr().out
    assert out.startswith("::warning title=pytest-maccbudget::cannot learn which account the token belongs to")
    assert "by dependabot[bot]" in out and out.count("\n") == 1


def test_without_an_identity_a_comment_is_created_once(pr_env: Path, github: tuple[FakeGitHub, str],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    fake, _ = github
    fake.viewer_login = None
    post(pr_env)
    post(pr_env)  # a second push: no second comment
    assert len(fake.comments[PR_NUMBER]) == 1 and len(fake.of_method("POST")) == 1
    assert "created the budget report comment" in capsys.readouterr().out


def test_a_bad_token_is_a_warning(pr_env: Path, github: tuple[FakeGitHub, str], monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    fake, _ = github
    original = fake._identity
    monkeypatch.setattr(fake, "_identity", lambda method, path, body: (401, {}, {"message": "Bad credentials"})
                        if path == "/user" else original(method, path, body))
    post(pr_env)
    assert capsys.readouterr().out.startswith(
        "::warning title=pytest-maccbudget::the PR comment failed (GET /user: HTTP 401: Bad credentials)")
    assert fake.calls() == ["GET /user"]


def test_403_and_404_say_different_things(pr_env: Path, github: tuple[FakeGitHub, str],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    fake, _ = github
    fake.fail["POST"] = (403, INTEGRATION_REFUSED)
    post(pr_env)
    forbidden = capsys.readouterr().out
    assert forbidden.startswith("::notice title=pytest-maccbudget::cannot write the PR comment (POST ")
    assert "pull-requests: write" in forbidden and "workflow_run" in forbidden
    fake.fail = {"GET": (404, "Not Found")}
    post(pr_env)
    missing = capsys.readouterr().out
    assert missing.startswith(f"::notice title=pytest-maccbudget::cannot find pull request #{PR_NUMBER} of "
                              f"{REPOSITORY} with this token (GET /repos/{REPOSITORY}/issues/{PR_NUMBER}/comments: "
                              "HTTP 404: Not Found)")
    assert "check the pull request number" in missing
    assert "fork" not in missing and "workflow_run" not in missing


# --- the modes ---------------------------------------------------------------------------------------------


def report_files(tmp_path: Path, failed: list[bool]) -> tuple[str, str]:
    json_path, markdown_path = write_report(tmp_path / "report", failed)
    return str(markdown_path), str(json_path)


def test_changed_mode_posts_nothing_for_an_unchanged_pull_request(pr_env: Path, github: tuple[FakeGitHub, str],
                                                                  tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    fake, _ = github
    markdown, json_path = report_files(tmp_path, [False])
    post(Path(markdown), "--json", json_path, "--mode", "changed")
    assert fake.of_method("POST") == []
    assert capsys.readouterr().out.startswith("::notice title=pytest-maccbudget::comment mode `changed`: no model's cost")


def test_changed_mode_keeps_an_existing_comment_current(pr_env: Path, github: tuple[FakeGitHub, str],
                                                        tmp_path: Path) -> None:
    fake, _ = github
    ours = fake.add_comment(PR_NUMBER, comment.MARKER + "\n## ❌ 1 regression (an earlier push)", BOT)
    markdown, json_path = report_files(tmp_path, [False])
    post(Path(markdown), "--json", json_path, "--mode", "changed")
    assert ours["body"] == comment.MARKER + "\n" + Path(markdown).read_text().split("\n", 1)[1].rstrip("\n") + "\n"
    assert "regression (an earlier push)" not in ours["body"]


def test_changed_mode_comments_on_a_change(pr_env: Path, github: tuple[FakeGitHub, str], tmp_path: Path) -> None:
    fake, _ = github
    markdown, json_path = report_files(tmp_path, [False, True])
    post(Path(markdown), "--json", json_path, "--mode", "changed")
    assert len(fake.of_method("POST")) == 1


def test_regressed_mode(pr_env: Path, github: tuple[FakeGitHub, str], tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:
    fake, _ = github
    report = build_report_json([False])
    report["models"][0]["measurement"]["total"]["macs"] = 99  # changed, but cheaper: not a regression
    report["models"][0]["status"] = "tightenable"
    json_path = tmp_path / "cheaper.json"
    json_path.write_text(json.dumps(report))
    post(pr_env, "--json", str(json_path), "--mode", "regressed")
    assert fake.of_method("POST") == []
    assert "comment mode `regressed`: no regression" in capsys.readouterr().out
    markdown, regressed_json = report_files(tmp_path, [True])
    post(Path(markdown), "--json", regressed_json, "--mode", "regressed")
    assert len(fake.of_method("POST")) == 1
    post(pr_env, "--json", str(json_path), "--mode", "regressed")  # fixed on the next push: still updated
    assert fake.comments[PR_NUMBER][0]["body"] == comment.MARKER + "\n" + pr_env.read_text()


def test_without_a_readable_json_the_modes_create_the_comment(pr_env: Path, github: tuple[FakeGitHub, str],
                                                             tmp_path: Path) -> None:
    fake, _ = github
    post(pr_env, "--mode", "changed")
    (tmp_path / "broken.json").write_text("{not json")
    fake.comments.clear()
    post(pr_env, "--json", str(tmp_path / "broken.json"), "--mode", "regressed")
    assert len(fake.of_method("POST")) == 2


def test_the_mode_is_checked_by_argparse(pr_env: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        comment.main(["--report", str(pr_env), "--mode", "sometimes"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize(("text", "mode"), [("changed", "changed"), (" Always ", "always"), ("true", "always"),
                                            ("FALSE", "off"), ("regressed", "regressed"), ("yes", None), ("", None)])
def test_parse_mode(text: str, mode: str) -> None:
    assert modes.parse_mode(text) == mode


def unchanged_report() -> dict[str, Any]:
    """One model, measured exactly at its budget, the base the same: nothing changed."""
    report = build_report_json([False])
    model = report["models"][0]
    model["base"] = copy.deepcopy(model["budget"])
    model["budget_change"] = "unchanged"
    return report


def _set(report: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    target: Any = report["models"][0]
    *parents, last = path.split(".")
    for key in parents:
        target = target[key]
    target[last] = value
    return report


@pytest.mark.parametrize(("change", "why"), [
    (lambda r: _set(r, "failed", True), "a failed model"),
    (lambda r: _set(r, "status", "tightenable"), "a status other than ok"),
    (lambda r: _set(r, "budget_change", "raised"), "a budget raised in the pull request"),
    (lambda r: _set(r, "measurement.total.params", 11), "a total that differs from the budget and base"),
    (lambda r: _set(r, "base.total.macs", 90), "a total that differs from the base only"),
    (lambda r: {**r, "errors": [{"name": "x", "test": "t", "message": "export failed"}]}, "a check that errored"),
])
def test_report_changed_notices_each_kind_of_change(change: Any, why: str) -> None:
    assert not modes.report_changed(unchanged_report())
    assert modes.report_changed(change(unchanged_report())), why


def test_a_total_the_budget_does_not_record_is_no_change() -> None:
    report = unchanged_report()
    for entry in ("budget", "base"):
        del report["models"][0][entry]["total"]["flops"]
    report["models"][0]["measurement"]["total"]["flops"] = 12345
    assert not modes.report_changed(report)


@pytest.mark.parametrize("failed", [[], [False], [True], [True, False, True], [False, False]])
def test_regression_count_agrees_with_the_report_module(failed: list[bool]) -> None:
    report = build_report_json(failed)
    assert modes.regression_count(report) == len(pr_report.regressions(report))


def test_every_status_is_counted_as_the_report_module_counts_it() -> None:
    report = build_report_json([True])
    for status in ("ok", "regressed", "over_limit", "missing", "tightenable", "inputs_changed", "unknown"):
        for failed in (True, False):
            report["models"][0]["status"], report["models"][0]["failed"] = status, failed
            assert modes.regression_count(report) == len(pr_report.regressions(report)), (status, failed)


@pytest.mark.parametrize(("mode", "failed", "expected"), [
    ("always", [False], True), ("changed", [False], False), ("changed", [True], True),
    ("regressed", [False], False), ("regressed", [True], True), ("off", [True], False),
])
def test_wants_new_comment(mode: str, failed: list[bool], expected: bool) -> None:
    assert modes.wants_new_comment(mode, build_report_json(failed)) is expected
    assert modes.wants_new_comment(mode, None) is (mode != "off")


# --- the workflow_run recipe of docs/github-action.md ----------------------------------------------------

DOCS_FILE = Path(__file__).resolve().parents[1] / "docs" / "github-action.md"
EVIL = "@admin <img src=x onerror=alert(1)> [click](https://evil.example) ![i](https://evil.example/p.png)"


def recipe_step(workflow_name: str, step_name: str) -> dict[str, Any]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS_FILE.read_text(encoding="utf-8"), re.S)
    workflows = [yaml.safe_load(block) for block in blocks if "jobs:" in block]
    return next(step for workflow in workflows if workflow["name"] == workflow_name
                for job in workflow["jobs"].values() for step in job["steps"] if step.get("name") == step_name)


def evil_report() -> dict[str, Any]:
    """A report as a fork's code could write it: every string field holds markdown and HTML."""
    report = build_report_json([True])
    model = report["models"][0]
    model["name"] = model["measurement"]["name"] = EVIL
    model["test"] = model["measurement"]["nodeid"] = EVIL + " test"
    model["failures"] = [EVIL + " failure"]
    model["measurement"]["layers"] = {EVIL + " layer": 150}
    model["budget"]["layers"] = {EVIL + " layer": 100}
    report["budget_file"] = EVIL + " file"
    report["unused"] = [EVIL + " unused"]
    report["errors"] = [{"name": EVIL + " error", "test": EVIL, "message": EVIL + " message"}]
    return report


def test_the_fork_recipe_keeps_the_report_json_only_from_a_completed_run(tmp_path: Path) -> None:
    script = recipe_step("Model cost budgets", "Keep the report and the pull request number")["run"]
    json_path, _ = write_report(tmp_path / "out", [True])
    for report_json, files in (("", ["pr-number"]), (str(json_path), ["pr-number", "report.json"])):
        workspace = tmp_path / f"ws-{len(files)}"
        workspace.mkdir()
        subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=workspace, check=True,
                       env={"PATH": os.environ["PATH"], "REPORT_JSON": report_json, "PR_NUMBER": "12"})
        assert sorted(p.name for p in (workspace / "maccbudget-report").iterdir()) == files
        assert (workspace / "maccbudget-report" / "pr-number").read_text() == "12\n"


def test_the_fork_recipes_comment_step_renders_the_json_isolated_from_the_artifact(
        tmp_path: Path, github: tuple[FakeGitHub, str]) -> None:
    """The step's script as the docs give it, in a workspace holding the action's checkout and a
    crafted artifact: a module planted beside it is not imported, the artifact's markdown is not
    posted, and every text of the report reaches the comment escaped."""
    fake, url = github
    fake.pull_heads[12] = "b" * 40
    script = recipe_step("Model cost budgets comment", "Comment on the pull request")["run"]
    workspace = tmp_path / "workspace"
    shutil.copytree(ROOT / "pytest_maccbudget", workspace / "maccbudget-action" / "pytest_maccbudget",
                    ignore=shutil.ignore_patterns("__pycache__"))
    init = workspace / "maccbudget-action" / "pytest_maccbudget" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "', '__version__ = "checkout-'))
    artifact = workspace / "maccbudget-report"
    artifact.mkdir()
    (artifact / "pr-number").write_text("12\n")
    (artifact / "report.json").write_text(pr_report.dump_report(evil_report()))
    (artifact / "report.md").write_text(comment.MARKER + "\n[phishing](https://evil.example)\n")
    for planted in (workspace / "json.py", artifact / "json.py"):
        planted.write_text("raise SystemExit('a planted module ran')\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f'#!/bin/sh\nif [ "$1 $2 $3" = "-m pip install" ]; then exit 0; fi\n'
                                    f'exec {sys.executable} "$@"\n')
    (bin_dir / "python").chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "GITHUB_TOKEN": "ghs_run-token", "HEAD_SHA": "b" * 40,
           "GITHUB_API_URL": url, "GITHUB_REPOSITORY": REPOSITORY, "GITHUB_EVENT_NAME": "workflow_run",
           "PYTHONPATH": str(artifact)}
    done = subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=workspace, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0 and "a planted module ran" not in done.stderr, done.stdout + done.stderr
    assert "created the budget report comment on pull request #12" in done.stdout, done.stdout
    [created] = fake.of_method("POST")
    assert created.headers["user-agent"].startswith("pytest-maccbudget/checkout-")  # the checkout's code ran
    body = created.body["body"]
    report = pr_report.load_report((artifact / "report.json").read_text(), "report.json")
    assert body == comment.build_body(pr_report.render_markdown(report, limit=comment.MAX_BODY_BYTES))
    assert "phishing" not in body
    assert_no_active_markdown(body)


def assert_no_active_markdown(body: str) -> None:
    """No HTML, no link or image, and no @-mention outside code spans, as a markdown parser reads it."""
    markdown_it = pytest.importorskip("markdown_it", reason="the markdown checks need markdown-it-py (test extra)")
    tokens = markdown_it.MarkdownIt("commonmark").enable("table").parse(body)
    inline = [child for token in tokens for child in (token.children or [])]
    kinds = {token.type for token in tokens} | {child.type for child in inline}
    assert "link_open" not in kinds and "image" not in kinds
    assert [t.content for t in tokens + inline if t.type.startswith("html")] == [comment.MARKER + "\n"]
    texts = [child.content for child in inline if child.type == "text"]
    assert not [text for text in texts if re.search(r"@admin", text)]
    assert any(EVIL.split()[0] in child.content for child in inline if child.type == "code_inline")


def test_from_json_without_the_renderer_posts_nothing(github: tuple[FakeGitHub, str], tmp_path: Path) -> None:
    """A python without PyYAML (-S: no site-packages) runs the script from the checkout: a warning,
    no comment, and the artifact's markdown is not posted instead."""
    fake, url = github
    json_path, _ = write_report(tmp_path / "r", [True])
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
            "from pytest_maccbudget.action.comment import main; sys.exit(main())")
    env = {"PATH": os.environ["PATH"], "GITHUB_TOKEN": "t", "GITHUB_API_URL": url, "GITHUB_REPOSITORY": REPOSITORY}
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code, "--from-json", "--json", str(json_path), "--pr",
                           "12"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("::warning title=pytest-maccbudget::cannot render the report from ")
    assert "the renderer needs PyYAML" in done.stdout
    assert fake.requests == []


@pytest.mark.parametrize("argv", [["--from-json"], ["--from-json", "--json", "r.json", "--report", "r.md"], []])
def test_from_json_usage(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        comment.parse_args(argv)
    assert exit_info.value.code == 2
