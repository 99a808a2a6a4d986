"""Operator commands, available as `flask <command>`."""

from __future__ import annotations

import logging
import sys
import time
from datetime import timedelta

import click
import marshmallow as ma
from flask import Flask, current_app
from flask_migrate.cli import db as migrate_commands

from shared.config import normalise_database_url
from shared.constraint_check import run
from shared.errors import ProblemError
from shared.schemas.base import Schema
from shared.schemas.fields import Email, Name, Password, PhoneNumber, normalise_email
from shared.services.accounts import AccountTokenService, AuthService, UserService
from shared.services.cards import MockTestService
from shared.services.demo import DEMO_ADMIN, DEMO_STUDENT, DemoDataService
from shared.services.idempotency import IdempotencyService
from shared.services.mail import MailService, SendReport
from shared.services.purchases import PurchaseService


class AdminSchema(Schema):
    email = Email(required=True)
    password = Password(required=True)
    full_name = Name(required=True)
    phone_number = PhoneNumber(load_default=None)


def _fail(message: str) -> None:
    raise click.ClickException(message)


@click.command("create-admin")
@click.option("--email", required=True, help="Login email of the admin.")
@click.option("--password", required=True, help="10-128 characters, at least one letter and one digit.")
@click.option("--phone", default=None, help="Phone number (needed later to upgrade to a customer).")
@click.option("--name", default="Administrator", show_default=True, help="Full name.")
def create_admin_command(email: str, password: str, phone: str | None, name: str) -> None:
    """Create an admin account."""
    raw = {"email": email, "password": password, "full_name": name}
    if phone:
        raw["phone_number"] = phone
    try:
        data = AdminSchema().load(raw)
    except ma.ValidationError as exc:
        problems = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.messages.items())
        _fail(f"Invalid admin data: {problems}")
    try:
        user = AuthService.create_admin(data)
    except ProblemError as exc:
        _fail(str(exc.detail))
    click.echo(f"Created admin {user.email} (id {user.id}).")


@click.command("purge-expired-sessions")
def purge_expired_sessions_command() -> None:
    """Delete sessions whose tokens have all expired (also under its old name, purge-revoked-tokens)."""
    click.echo(f"Purged {AuthService.purge_expired_sessions()} expired sessions.")


@click.command("seed-demo")
@click.option("--if-empty", is_flag=True, help="Only when the catalog is empty (what `make run` uses).")
def seed_demo_command(if_empty: bool) -> None:
    """Load the demo catalog and the demo accounts (idempotent)."""
    if if_empty and not DemoDataService.is_empty():
        click.echo("The catalog is not empty; demo data not loaded.")
        return
    click.echo(str(DemoDataService.seed()))
    for account in (DEMO_ADMIN, DEMO_STUDENT):
        click.echo(f"  login: {account['email']} / {account['password']}")


@click.command("check-constraints")
@click.option("--database-url", default=None, help="Database to inspect (default: the app's DATABASE_URL).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
@click.option("--repair", is_flag=True, help="Create the missing cards of purchased subjects, then check again.")
def check_constraints_command(database_url: str | None, as_json: bool, repair: bool) -> None:
    """Prove the test-card constraint fix on a live database (exit 0 ok, 1 problems, 2 unreachable)."""
    url = normalise_database_url(database_url) if database_url else current_app.config["SQLALCHEMY_DATABASE_URI"]
    code = run(url, current_app.config["MOCK_TESTS_PER_SUBJECT"], as_json, echo=click.echo, repair=repair)
    sys.exit(code)


@click.command("reconcile-payments")
def reconcile_payments_command() -> None:
    """Ask the provider about pending and recently failed checkouts: fulfil the paid ones whose
    webhook never came, expire the abandoned ones (safe to run twice, or concurrently; cron it)."""
    report = PurchaseService.reconcile()
    click.echo(
        f"Checked {report.checked} checkout(s): {report.fulfilled} fulfilled, {report.expired} expired, "
        f"{len(report.failed)} could not be checked."
    )
    for problem in report.failed:
        click.echo(f"  {problem}")
    if report.failed:
        sys.exit(1)


@click.command("purge-idempotency-keys")
def purge_idempotency_keys_command() -> None:
    """Delete Idempotency-Key records older than 24 hours."""
    click.echo(f"Purged {IdempotencyService.purge_expired()} expired idempotency keys.")


@click.command("finalize-overdue")
@click.option("--batch", default=500, show_default=True, help="Cards finalised per transaction.")
def finalize_overdue_command(batch: int) -> None:
    """Finalise the tests nobody submitted by their deadline plus the grace (run it every minute)."""
    click.echo(f"Finalised {MockTestService.finalize_overdue(batch)} overdue test(s).")


@click.command("set-user-active")
@click.option("--email", required=True, help="Login email of the account.")
@click.option("--active/--inactive", default=None, help="Reactivate, or deactivate and end its sessions.")
def set_user_active_command(email: str, active: bool | None) -> None:
    """Reactivate or deactivate an account as PATCH /api/users/{id} does (never the last active admin)."""
    if active is None:
        _fail("Say --active or --inactive.")
        return
    try:
        UserService.set_active(None, UserService.id_of(normalise_email(email)), active)
    except ProblemError as exc:
        _fail(str(exc.detail))
    click.echo(f"{email}: {'active' if active else 'deactivated, every session ended'}.")


def _send_round(batch: int | None) -> SendReport | None:
    try:
        return MailService.send_due(batch)
    except Exception:  # a database hiccup ends a round, not the worker
        logging.getLogger(__name__).exception("send-mail: this round failed; trying again next round")
        return None


@click.command("send-mail")
@click.option("--once", "mode", flag_value="once", default=True, help="Send what is due now, then exit (cron).")
@click.option("--loop", "mode", flag_value="loop", help="Keep sending, checking every --interval seconds.")
@click.option("--interval", default=5.0, show_default=True, help="Seconds between rounds with --loop.")
@click.option("--batch", type=int, default=None, help="Messages claimed per round (default: MAIL_BATCH_SIZE).")
def send_mail_command(mode: str, interval: float, batch: int | None) -> None:
    """Send the due messages of the outbox (MAIL_BACKEND: smtp, or log). Safe to run several
    at once, on several hosts: each message is claimed by one worker; failures are retried
    with backoff up to MAIL_MAX_ATTEMPTS times."""
    totals = SendReport()
    full_batch = batch or current_app.config["MAIL_BATCH_SIZE"]
    while True:
        report = _send_round(batch)
        if report is not None:
            for name in ("claimed", "sent", "retrying", "failed", "released"):
                setattr(totals, name, getattr(totals, name) + getattr(report, name))
            for error in report.errors:
                click.echo(f"  {error}", err=True)
        if mode == "once":
            # A full batch may mean more is due: keep going until a round finds less.
            if report is not None and report.claimed >= full_batch:
                continue
            break
        if report is None or report.claimed == 0:
            time.sleep(interval)
    click.echo(
        f"Sent {totals.sent} message(s); {totals.retrying} to retry later, {totals.failed} given up, "
        f"{totals.released} left for the next round."
    )
    if report is None:
        sys.exit(1)


@click.command("purge-mail")
@click.option("--days", default=30, show_default=True, help="Keep what is younger than this.")
def purge_mail_command(days: int) -> None:
    """Delete outbox messages sent (or given up on) and account tokens expired more than --days ago (daily)."""
    age = timedelta(days=days)
    click.echo(
        f"Purged {MailService.purge(age)} sent or failed message(s) and "
        f"{AccountTokenService.purge(age)} expired account token(s)."
    )


def register_cli(app: Flask) -> None:
    """Attach the project's commands (Flask-Migrate adds `flask db ...` itself)."""
    for command in (
        create_admin_command,
        purge_expired_sessions_command,
        purge_idempotency_keys_command,
        seed_demo_command,
        check_constraints_command,
        finalize_overdue_command,
        reconcile_payments_command,
        set_user_active_command,
        send_mail_command,
        purge_mail_command,
    ):
        app.cli.add_command(command)
    app.cli.add_command(purge_expired_sessions_command, "purge-revoked-tokens")  # cron jobs of old deployments
    # `flask db downgrade -1`, as Alembic's docs write it: Click would read `-1` as an unknown
    # option ("No such option '-1'"); passed on, it is the revision argument.
    migrate_commands.commands["downgrade"].context_settings["ignore_unknown_options"] = True
