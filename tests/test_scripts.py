"""The operator and benchmark scripts still run against the current schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from flask import Flask

from tests.support.databases import sibling_url

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_check_constraints_script_reports_a_sound_database(mariadb: Flask) -> None:
    result = run("scripts/check_constraints.py", "--database-url", mariadb.config["SQLALCHEMY_DATABASE_URI"], "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["ok"] is True


def test_bench_purchase_runs_and_prints_its_ratios(mariadb: Flask) -> None:
    url = sibling_url(mariadb.config["SQLALCHEMY_DATABASE_URI"], "bench")
    result = run("scripts/bench_purchase.py", "--database-url", url, "--repeat", "2")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "20-subject bundle purchase:" in result.stdout
    assert "ours / row-by-row" in result.stdout
