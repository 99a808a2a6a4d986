"""Every operator command in the README works as written: each `flask --app app ...` and
`python scripts/...` line of its code blocks exists with the options it shows, and the
safe ones run, in the README's order, against a scratch database."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from flask import Flask

from app import create_app
from shared.services.demo import DemoDataService
from tests.conftest import app_config
from tests.support.accounts import PASSWORD, registration
from tests.support.live_server import PROJECT_ROOT, LiveServer
from tests.support.mail import verify_email_at

FLASK = ".venv/bin/flask --app app "
SCRIPT = ".venv/bin/python scripts/"
# Run for real on a scratch database; the others need a database of their own story
# (`db stamp`: one made before migrations) and are only checked to parse.
SAFE = (
    "db upgrade",
    "db downgrade",
    "db current",
    "create-admin",
    "purge-expired-sessions",
    "check-constraints",
    "send-mail",
    "purge-mail",
)


def code_lines(prefix: str) -> list[str]:
    blocks = re.findall(r"^```(?:sh|bash)\n(.*?)^```", (PROJECT_ROOT / "README.md").read_text(), re.M | re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    return [line[len(prefix) :] for line in lines if line.startswith(prefix)]


def arguments(line: str) -> list[str]:
    """The words of a command line: without its comment, `[--json]` (optional) as `--json`."""
    return [re.sub(r"^\[(.*)\]$", r"\1", word) for word in shlex.split(line, comments=True)]


def flask_commands() -> list[list[str]]:
    return [arguments(line) for line in code_lines(FLASK)]


@pytest.fixture
def scratch(tmp_path: Path) -> Flask:
    return create_app(app_config(f"sqlite:///{tmp_path / 'scratch.sqlite3'}"))


def test_the_readme_shows_the_operator_commands() -> None:
    shown = {" ".join(words[:2]) for words in flask_commands()}
    assert {"db upgrade", "db downgrade", "db current", "create-admin --email", "check-constraints --repair"} <= shown


@pytest.mark.parametrize("words", flask_commands(), ids=" ".join)
def test_each_flask_command_of_the_readme_parses(words: list[str], scratch: Flask) -> None:
    result = scratch.test_cli_runner().invoke(args=[*words, "--help"])
    assert result.exit_code == 0, f"flask {' '.join(words)}: {result.output}"


def test_the_safe_flask_commands_of_the_readme_run_in_order_on_a_scratch_database(scratch: Flask) -> None:
    runner = scratch.test_cli_runner()
    ran: list[str] = []
    for words in flask_commands():
        if not " ".join(words).startswith(SAFE) or "--loop" in words:  # a loop never ends
            continue
        with scratch.app_context():  # as `flask --app app` gives every command
            result = runner.invoke(args=words)
        assert result.exit_code == 0, f"flask {' '.join(words)} exited {result.exit_code}: {result.output}"
        ran.append(" ".join(words))
        if words[:2] == ["db", "downgrade"]:  # the next commands expect the schema at head
            assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    assert any(command.startswith("db downgrade") for command in ran)
    assert any(command.startswith("create-admin") for command in ran)


def test_the_real_flask_entry_point_runs_a_readme_command(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}", "ENV_FILE": "none"}
    flask = [str(Path(sys.executable).parent / "flask"), "--app", "app"]
    # `db downgrade -1` as Alembic's docs write it (Click used to say "No such option '-1'").
    for words in (["db", "upgrade"], ["db", "downgrade", "-1"], ["db", "current"]):
        result = subprocess.run(
            [*flask, *words], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"flask {' '.join(words)}: {result.stderr[-2000:]}"


@pytest.mark.parametrize("line", code_lines(SCRIPT))
def test_each_script_line_of_the_readme_parses(line: str) -> None:
    words = arguments(line)
    if "--database-url" in words:  # the README elides the URL
        index = words.index("--database-url")
        words[index + 1] = "sqlite:///unused.sqlite3"
    command = [sys.executable, f"scripts/{words[0]}", *words[1:], "--help"]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, f"{line}: {result.stderr[-2000:]}"


def spa_guide() -> str:
    readme = (PROJECT_ROOT / "README.md").read_text()
    start = readme.index("\n## Building the SPA on this API\n")
    return readme[start : readme.index("\n## ", start + 1)]


def guide_blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", spa_guide(), re.M | re.S)


def test_the_spa_guide_shows_typescript_that_the_suite_checks() -> None:
    """Each TypeScript block of "Building the SPA on this API" is code of tests/typescript, which
    tests/test_typed_clients.py type-checks and runs."""
    sources = {path.name: path.read_text() for path in (PROJECT_ROOT / "tests" / "typescript").glob("*.ts")}
    blocks = guide_blocks("ts")
    assert len(blocks) >= 6
    assert [block[:80] for block in blocks if not any(block in source for source in sources.values())] == []
    shown = "".join(blocks)
    for flow in ("logIn", "logOut", "buy", "payInTheSandbox", "payWithRazorpay", "startTest", "saveAnswers"):
        assert f"function {flow}(" in shown, flow
    for flow in ("submitTest", "reviewTest", "requestPasswordReset", "resetPassword"):
        assert f"function {flow}(" in shown, flow


def test_the_spa_guide_curl_runs_against_a_server_in_the_sandbox(sandbox_server: LiveServer, mariadb: Flask) -> None:
    """The guide's curl blocks, one script in the README's order, as a new student."""
    DemoDataService.seed()
    account = registration()
    assert requests.post(sandbox_server.url("/api/auth/register"), json=account, timeout=30).status_code == 201
    verify_email_at(sandbox_server.url("/api"), account["email"])  # verified accounts can pay
    script = "\n".join(block for block in guide_blocks("sh") if "call " in block or "API=" in block)
    env = {"PATH": "/usr/bin:/bin", "API": sandbox_server.url("/api"), "EMAIL": account["email"], "PASSWORD": PASSWORD}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{sandbox_server.log_tail()}"
    out = result.stdout
    assert '"status": "pending_payment"' in out
    assert '"status": "paid"' in out
    assert f'"cards_created": {mariadb.config["MOCK_TESTS_PER_SUBJECT"]}' in out
    assert "idempotent-replayed: true" in out.lower()
    assert '"status": "completed"' in out
    assert '"correct_option"' in out
    assert out.rstrip().endswith("204")
