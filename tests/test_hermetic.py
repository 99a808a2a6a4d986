"""`make test` passes whatever the shell exports or a `.env` file says (tests/__init__.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from tests.support.hermetic import app_settings
from tests.support.live_server import PROJECT_ROOT

# Settings that, read by the suite, each break some of its tests or the app's start.
HOSTILE = {
    "APP_ENV": "production",
    "DATABASE_URL": "mysql://nobody@192.0.2.1:3306/nothing",
    "JWT_SECRET_KEY": "short",
    "CORS_ORIGINS": "http://evil.example/app",
    "RATELIMIT_ENABLED": "false",
    "RATELIMIT_STORAGE_URI": "redis://192.0.2.1:6379/0",
    "RATELIMIT_LOGIN_PER_ACCOUNT": "1 per hour",
    "RATELIMIT_LOGIN_FAILURES_PER_ACCOUNT_CLIENT": "1000 per minute",
    "MOCK_TESTS_PER_SUBJECT": "3",
    "WORKER_TIMEOUT": "1",
    "MAX_CONTENT_LENGTH": "1024",
    # A proxy that answers nothing: requests to the test servers must not go through it.
    "HTTP_PROXY": "http://192.0.2.1:9",
    "http_proxy": "http://192.0.2.1:9",
    "ALL_PROXY": "http://192.0.2.1:9",
}
# A small part of the suite that reads those settings: rate limits, CORS, card counts, config.
PART = [
    "tests/test_errors.py",
    "tests/test_config.py",
    "tests/test_spa_contract.py",
    "tests/test_purchases.py::test_two_subjects_get_a_hundred_cards_with_card_1_of_each",
    "tests/test_hermetic.py::test_servers_on_this_machine_are_reached_directly",
]
COPIED = shutil.ignore_patterns(
    ".git", ".venv", "node_modules", "__pycache__", ".hypothesis", ".ruff_cache", ".pytest_cache", "instance", ".env"
)


def test_servers_on_this_machine_are_reached_directly() -> None:
    """As the gunicorn tests reach their server (run under an exported HTTP_PROXY above)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert requests.head(f"http://127.0.0.1:{server.server_port}/", timeout=10).status_code == 200
    finally:
        server.shutdown()
        server.server_close()


def test_env_example_lists_every_variable_the_app_reads() -> None:
    read: set[str] = set()
    for path in (PROJECT_ROOT / "shared" / "config.py", PROJECT_ROOT / "gunicorn.conf.py"):
        text = path.read_text()
        read |= set(re.findall(r"_env(?:_int|_bool|_list)?\(\s*\"([A-Z][A-Z0-9_]*)\"", text))
        read |= set(re.findall(r"os\.environ\.get\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']", text))
    assert len(read) > 20
    assert read - app_settings() == set()


def test_a_hostile_environment_and_env_file_change_nothing(tmp_path: Path) -> None:
    """The part of the suite runs in a copy of the project whose `.env` and environment say
    the opposite of what the tests expect; it passes as it does here."""
    project = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT, project, ignore=COPIED)
    (project / ".env").write_text("".join(f"{name}={value}\n" for name, value in HOSTILE.items()))
    env = {**os.environ, **HOSTILE, "REQUIRE_MARIADB": "", "TEST_MARIADB_URL": ""}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "not mariadb", *PART]
    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=300, check=False)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-2000:]
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"\d+ passed", summary), summary
    assert "failed" not in summary
    assert "error" not in summary
