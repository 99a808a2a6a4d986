"""The outbox and `flask send-mail`, against a real SMTP server (aiosmtpd): mail is written with
the change that caused it, sent only by the worker, retried after failures, and sent once
however many workers run."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from shared.extensions import db
from shared.models import AccountToken, MailKind, MailStatus, OutboxMessage
from shared.models.base import utcnow
from shared.services.base import transactional
from shared.services.mail import MailService
from tests.conftest import server_env
from tests.support.accounts import register, registration
from tests.support.live_server import PROJECT_ROOT
from tests.support.mail import Inbox, free_port, outbox, smtp_server, token_in


@pytest.fixture
def inbox(app: Flask) -> Iterator[Inbox]:
    """A local SMTP server, and the app's mail settings pointing at it for this test."""
    with smtp_server() as server:
        saved = {name: app.config[name] for name in (*server.settings(), "MAIL_RETRY_SECONDS", "MAIL_MAX_ATTEMPTS")}
        app.config.update(server.settings())
        yield server
        app.config.update(saved)


def send_mail(app: Flask, *args: str) -> Any:
    result = app.test_cli_runner().invoke(args=["send-mail", *args])
    assert result.exit_code == 0, result.output
    return result


def test_the_registration_mail_waits_in_the_outbox_and_the_worker_delivers_it(
    app: Flask, client: FlaskClient, inbox: Inbox
) -> None:
    session = register(client, verified=False)
    email = session["user"]["email"]
    assert session["user"]["email_verified_at"] is None
    [queued] = outbox(email)
    assert (queued.kind, queued.status, queued.attempts) == (MailKind.VERIFY_EMAIL, MailStatus.PENDING, 0)
    assert inbox.messages == []  # nothing is sent from inside a request

    assert "Sent 1 message(s)" in send_mail(app).output
    [received] = inbox.to(email)
    assert received["Subject"] == "Verify your email address"
    assert received["From"] == app.config["MAIL_DEFAULT_SENDER"]
    text = received.get_content()
    token = token_in(text)
    assert f"{app.config['FRONTEND_URL']}/verify-email?token={token}\r\n" in text
    [sent] = outbox(email)
    assert (sent.status, sent.attempts, sent.claim) == (MailStatus.SENT, 1, None)
    assert sent.sent_at is not None

    verified = client.post("/api/auth/verify-email", json={"token": token})
    assert verified.status_code == 200, verified.get_json()
    assert verified.get_json()["email"] == email
    me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {session['access_token']}"})
    assert me.get_json()["user"]["email_verified_at"] == verified.get_json()["email_verified_at"]

    assert "Sent 0 message(s)" in send_mail(app).output  # sent once
    assert len(inbox.to(email)) == 1


def test_no_mail_without_the_change_that_causes_it(app: Flask, client: FlaskClient) -> None:
    taken = register(client, verified=False)["user"]
    response = client.post("/api/auth/register", json=registration(phone_number=taken["phone_number"]))
    assert response.status_code == 409
    assert len(outbox()) == 1  # the refused registration's mail rolled back with it

    with pytest.raises(RuntimeError, match="joins the unit of work"):
        MailService.enqueue(MailKind.VERIFY_EMAIL, "someone@example.com", "Hi", "text")


def test_a_refused_message_is_retried_after_a_backoff_then_sent(app: Flask, client: FlaskClient, inbox: Inbox) -> None:
    email = register(client, verified=False)["user"]["email"]
    inbox.fail_next = 1
    result = send_mail(app)
    assert "1 to retry later" in result.output
    [failed] = outbox(email)
    assert (failed.status, failed.attempts, failed.claim) == (MailStatus.PENDING, 1, None)
    assert "451" in failed.last_error
    assert failed.next_attempt_at > utcnow() + timedelta(seconds=app.config["MAIL_RETRY_SECONDS"] - 5)

    assert "Sent 0 message(s)" in send_mail(app).output  # not due yet
    _make_due()
    assert "Sent 1 message(s)" in send_mail(app).output
    [sent] = outbox(email)
    assert (sent.status, sent.attempts, sent.last_error) == (MailStatus.SENT, 2, None)
    assert len(inbox.to(email)) == 1


def test_the_worker_gives_up_after_the_maximum_of_attempts(app: Flask, client: FlaskClient, inbox: Inbox) -> None:
    app.config.update(MAIL_MAX_ATTEMPTS=2, MAIL_RETRY_SECONDS=0)
    email = register(client, verified=False)["user"]["email"]
    inbox.fail_next = 5
    send_mail(app)
    assert outbox(email)[0].status == MailStatus.PENDING
    assert "1 given up" in send_mail(app).output
    [given_up] = outbox(email)
    assert (given_up.status, given_up.attempts) == (MailStatus.FAILED, 2)
    send_mail(app)
    assert inbox.messages == []


def test_an_unreachable_smtp_server_is_a_retry_not_a_crash(app: Flask, client: FlaskClient, inbox: Inbox) -> None:
    app.config["MAIL_PORT"] = free_port()  # nothing listens there
    email = register(client, verified=False)["user"]["email"]
    result = send_mail(app)
    assert "1 to retry later" in result.output
    [waiting] = outbox(email)
    assert waiting.status == MailStatus.PENDING
    assert "ConnectionRefusedError" in waiting.last_error


def test_the_development_default_logs_the_mail_instead_of_sending_it(
    app: Flask, client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    assert app.config["MAIL_BACKEND"] == "log"
    email = register(client, verified=False)["user"]["email"]
    with caplog.at_level(logging.INFO, logger="shared.services.mail"):
        send_mail(app, "--once")
    token = token_in(outbox(email)[0].body)
    assert any(email in record.getMessage() and token in record.getMessage() for record in caplog.records)
    assert outbox(email)[0].status == MailStatus.SENT


def test_a_late_worker_cannot_mark_a_message_another_worker_took_over(app: Flask, inbox: Inbox) -> None:
    _enqueue(1)
    slow_claim, [claimed] = MailService._claim(10)
    _make_due()  # the slow worker's lease ended (it crashed, or hung)
    report = MailService.send_due()
    assert report.sent == 1
    MailService._sent(claimed.id, slow_claim)  # the slow worker comes back: its claim is no longer the row's
    [row] = outbox()
    assert row.status == MailStatus.SENT
    assert row.claim is None
    assert row.attempts == 2
    assert len(inbox.messages) == 1


@pytest.mark.race
def test_concurrent_workers_send_each_message_once(mariadb: Flask) -> None:
    total, workers = 120, 4
    _enqueue(total)
    with smtp_server() as inbox:
        inbox.delay = 0.02  # slow enough that the workers' rounds overlap
        env = {
            **os.environ,
            **server_env(mariadb.config["SQLALCHEMY_DATABASE_URI"], **inbox.settings()),
            "FLASK_APP": "app",
        }
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "flask", "send-mail", "--batch", "3"],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(workers)
        ]
        outputs = [process.communicate(timeout=300)[0] for process in processes]
        assert all(process.returncode == 0 for process in processes), outputs
        received = Counter(message["Message-ID"] for message in inbox.messages)
    assert len(received) == total, outputs
    assert set(received.values()) == {1}, [mid for mid, n in received.items() if n > 1]
    rows = outbox()
    assert {row.status for row in rows} == {MailStatus.SENT}
    assert {row.attempts for row in rows} == {1}
    sent_by_worker = [int(output.rsplit("Sent ", 1)[1].split()[0]) for output in outputs]
    assert sum(sent_by_worker) == total, outputs


@transactional
def _enqueue(count: int) -> None:
    for n in range(count):
        MailService.enqueue(MailKind.VERIFY_EMAIL, f"reader{n}@example.com", f"Message {n}", f"Body {n}")


def _make_due() -> None:
    """Time passes: every pending message is due now."""
    with db.engine.begin() as connection:
        connection.execute(
            update(OutboxMessage)
            .where(OutboxMessage.status == MailStatus.PENDING)
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


def test_purge_mail_forgets_old_sent_mail_and_expired_tokens_only(app: Flask, client: FlaskClient) -> None:
    register(client, verified=False)
    register(client, verified=False)
    send_mail(app)
    _enqueue(1)  # still pending
    old = utcnow() - timedelta(days=31)
    with db.engine.begin() as connection:
        connection.execute(update(OutboxMessage).where(OutboxMessage.id == outbox()[0].id).values(sent_at=old))
        connection.execute(update(AccountToken).where(AccountToken.id == min_token_id()).values(expires_at=old))
    result = app.test_cli_runner().invoke(args=["purge-mail", "--days", "30"])
    assert result.exit_code == 0, result.output
    assert "Purged 1 sent or failed message(s) and 1 expired account token(s)." in result.output
    assert [row.status for row in outbox()] == [MailStatus.SENT, MailStatus.PENDING]


def min_token_id() -> int:
    with db.engine.connect() as connection:
        return connection.execute(select(func.min(AccountToken.id))).scalar_one()
