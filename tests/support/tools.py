"""Tools some tests need beyond Python packages: Debian's chromium, the npm packages of
tests/typescript. `.ci/run` and `make test` install them; a local run without them skips
those tests, and a CI run (CI=true) fails."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")


def require_tool(path: Path, what: str, how: str = "run `make test` (it installs it)") -> Path:
    if not path.exists():
        message = f"{what} is missing at {path}: {how}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: a missing tool is a failure)")
        pytest.skip(message)
    return path
