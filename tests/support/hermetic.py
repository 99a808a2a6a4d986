"""The suite depends on nothing the shell or a `.env` file says (tests/test_hermetic.py)."""

from __future__ import annotations

import os
import re

from shared.config import PROJECT_ROOT

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def app_settings() -> set[str]:
    """Every variable the app reads: `.env.example` lists them all (tests/test_hermetic.py checks)."""
    text = (PROJECT_ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def isolate_from_environment() -> None:
    """Drop the app's variables, and read no `.env` (ENV_FILE=none, in the servers tests
    start too); tests set what they need (tests/conftest.py: app_config)."""
    for name in app_settings():
        os.environ.pop(name, None)
    os.environ["ENV_FILE"] = "none"
    os.environ["APP_ENV"] = "testing"
    # The suite talks only to servers on this machine (gunicorn, MariaDB, Redis, a page for
    # chromium): a proxy the shell names would carry requests to 127.0.0.1 away from them.
    for name in PROXY_VARIABLES:
        os.environ.pop(name, None)
