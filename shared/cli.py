"""Operator commands, available as `flask <command>`."""

from __future__ import annotations

from flask import Flask


def register_cli(app: Flask) -> None:
    """Attach the project's commands (Flask-Migrate adds `flask db ...` itself)."""
