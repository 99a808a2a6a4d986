"""Mail: an outbox written inside the caller's transaction, sent later by `flask send-mail`.

A request never talks to a mail server: `MailService.enqueue` adds a row to
`outbox_messages` in the unit of work of the change that caused it (a registration, a reset
request), so the mail exists exactly when the change committed. `MailService.send_due`
(the `flask send-mail` command) sends what is due:

1. claim: one short transaction picks due messages (`SELECT ... FOR UPDATE SKIP LOCKED` on
   MariaDB, so concurrent workers take different rows without waiting; SQLite has one
   writer at a time), stamps them with a random claim and pushes `next_attempt_at` to the
   end of a lease, and commits;
2. send each message outside any transaction, through SMTP (smtplib) or the log;
3. mark it sent, or due again after a backoff (failed after MAIL_MAX_ATTEMPTS), only where
   the claim is still ours.

A worker that dies mid-batch leaves its messages claimed until the lease ends; then
another worker sends them. A worker stops sending when its lease is about to end and
gives the rest back, so two workers never send one message twice. Each message carries a
Message-ID made from its row id, the same on every attempt.
"""

from __future__ import annotations

import logging
import secrets
import smtplib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any, Protocol

from flask import current_app
from sqlalchemy import delete, or_, select, update

from shared.extensions import db
from shared.models import MailKind, MailStatus, OutboxMessage
from shared.models.base import utcnow
from shared.services.base import in_unit_of_work, retry_on_lock_conflict, transactional

log = logging.getLogger(__name__)

LONGEST_BACKOFF = timedelta(hours=6)


@dataclass
class SendReport:
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    released: int = 0
    errors: list[str] = field(default_factory=list)


class Sender(Protocol):
    def send(self, message: EmailMessage) -> None: ...
    def close(self) -> None: ...


class LogSender:
    """MAIL_BACKEND=log: development's mail server is the log."""

    def send(self, message: EmailMessage) -> None:
        log.info(
            "mail (MAIL_BACKEND=log, not sent) to %s: %s\n%s",
            message["To"],
            message["Subject"],
            message.get_content(),
        )

    def close(self) -> None:
        pass


class SmtpSender:
    """MAIL_BACKEND=smtp: one connection for a batch, opened again after a failure."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.connection: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        config = self.config
        host, port, timeout = config["MAIL_SERVER"], config["MAIL_PORT"], config["MAIL_TIMEOUT"]
        connection = (
            smtplib.SMTP_SSL(host, port, timeout=timeout)
            if config["MAIL_USE_SSL"]
            else smtplib.SMTP(host, port, timeout=timeout)
        )
        try:
            if config["MAIL_USE_TLS"]:
                connection.starttls()
            if config["MAIL_USERNAME"]:
                connection.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"] or "")
        except BaseException:
            connection.close()
            raise
        return connection

    def send(self, message: EmailMessage) -> None:
        if self.connection is None:
            self.connection = self._connect()
        try:
            self.connection.send_message(message)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            try:
                connection.quit()
            except (smtplib.SMTPException, OSError):
                connection.close()


def mail_sender(config: dict[str, Any]) -> Sender:
    return SmtpSender(config) if config["MAIL_BACKEND"] == "smtp" else LogSender()


@dataclass(frozen=True)
class _Claimed:
    id: int
    recipient: str
    subject: str
    body: str
    attempts: int
    created_at: datetime


class MailService:
    @staticmethod
    def enqueue(kind: MailKind, recipient: str, subject: str, body: str) -> OutboxMessage:
        """Write a message to the outbox, in the caller's transaction: it is sent once that
        commits, and never if it rolls back."""
        if not in_unit_of_work():
            raise RuntimeError("MailService.enqueue joins the unit of work of the change that causes the mail")
        now = utcnow()
        message = OutboxMessage(
            kind=kind,
            recipient=recipient,
            subject=subject,
            body=body,
            status=MailStatus.PENDING,
            created_at=now,
            attempts=0,
            next_attempt_at=now,
        )
        db.session.add(message)
        db.session.flush()
        return message

    @staticmethod
    @transactional
    def purge(older_than: timedelta) -> int:
        """Forget messages sent, or given up on, longer ago than `older_than`."""
        cutoff = utcnow() - older_than
        done = or_(
            (OutboxMessage.status == MailStatus.SENT) & (OutboxMessage.sent_at < cutoff),
            (OutboxMessage.status == MailStatus.FAILED) & (OutboxMessage.next_attempt_at < cutoff),
        )
        return db.session.execute(delete(OutboxMessage).where(done)).rowcount or 0

    @staticmethod
    def send_due(limit: int | None = None) -> SendReport:
        """Claim a batch of due messages, send them, record each outcome (one round of
        `flask send-mail`)."""
        config = current_app.config
        report = SendReport()
        claim, messages = MailService._claim(limit or config["MAIL_BATCH_SIZE"])
        report.claimed = len(messages)
        if not messages:
            return report
        # Stop while a message still has 3 x MAIL_TIMEOUT of the lease: never send after it.
        send_until = utcnow() + timedelta(seconds=config["MAIL_LEASE_SECONDS"] - 3 * config["MAIL_TIMEOUT"])
        sender = mail_sender(config)
        try:
            for index, message in enumerate(messages):
                if utcnow() >= send_until:
                    report.released = MailService._release(claim, [m.id for m in messages[index:]])
                    break
                try:
                    sender.send(MailService._email(message, config))
                except (smtplib.SMTPException, OSError, ValueError) as exc:
                    error = f"{type(exc).__name__}: {exc}"[:500]
                    report.errors.append(f"message {message.id}: {error}")
                    if MailService._failed(message, claim, error):
                        report.failed += 1
                    else:
                        report.retrying += 1
                else:
                    MailService._sent(message.id, claim)
                    report.sent += 1
        finally:
            sender.close()
        return report

    @staticmethod
    @retry_on_lock_conflict
    @transactional
    def _claim(limit: int) -> tuple[str, list[_Claimed]]:
        now = utcnow()
        claim = secrets.token_hex(16)
        due = (OutboxMessage.status == MailStatus.PENDING, OutboxMessage.next_attempt_at <= now)
        ids = list(
            db.session.execute(
                select(OutboxMessage.id)
                .where(*due)
                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
                .limit(limit)
                .with_for_update(skip_locked=True)  # SQLite: a plain SELECT (one writer at a time)
            ).scalars()
        )
        if not ids:
            return claim, []
        lease = timedelta(seconds=current_app.config["MAIL_LEASE_SECONDS"])
        # `due` again: on SQLite another worker may have claimed some of them since the SELECT.
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), *due)
            .values(claim=claim, claimed_at=now, next_attempt_at=now + lease, attempts=OutboxMessage.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        rows = db.session.execute(
            select(
                OutboxMessage.id,
                OutboxMessage.recipient,
                OutboxMessage.subject,
                OutboxMessage.body,
                OutboxMessage.attempts,
                OutboxMessage.created_at,
            )
            .where(OutboxMessage.claim == claim)
            .order_by(OutboxMessage.id)
        )
        return claim, [_Claimed(*row) for row in rows]

    @staticmethod
    def _email(message: _Claimed, config: dict[str, Any]) -> EmailMessage:
        sender = config["MAIL_DEFAULT_SENDER"]
        domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
        email = EmailMessage()
        email["From"] = sender
        email["To"] = message.recipient
        email["Subject"] = message.subject
        email["Date"] = formatdate(localtime=False)
        # The same on every attempt: a receiver that got it twice can tell.
        email["Message-ID"] = f"<outbox-{message.id}.{message.created_at:%Y%m%d%H%M%S}@{domain}>"
        email.set_content(message.body)
        return email

    @staticmethod
    @transactional
    def _sent(message_id: int, claim: str) -> None:
        done = db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.claim == claim)
            .values(status=MailStatus.SENT, sent_at=utcnow(), claim=None, last_error=None)
            .execution_options(synchronize_session=False)
        ).rowcount
        if not done:
            log.error("outbox message %s was sent after its claim %s had ended", message_id, claim)

    @staticmethod
    @transactional
    def _failed(message: _Claimed, claim: str, error: str) -> bool:
        """Record the failure: due again after a backoff, or failed for good. True: given up."""
        config = current_app.config
        give_up = message.attempts >= config["MAIL_MAX_ATTEMPTS"]
        backoff = min(timedelta(seconds=config["MAIL_RETRY_SECONDS"] * 2 ** (message.attempts - 1)), LONGEST_BACKOFF)
        values: dict[str, Any] = {"claim": None, "last_error": error}
        if give_up:
            values["status"] = MailStatus.FAILED
        else:
            values["next_attempt_at"] = utcnow() + backoff
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message.id, OutboxMessage.claim == claim)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        log.warning("outbox message %s, attempt %s: %s%s", message.id, message.attempts, error, give_up * " (gave up)")
        return give_up

    @staticmethod
    @transactional
    def _release(claim: str, message_ids: list[int]) -> int:
        """Give back what this worker will not send in time: due now, the attempt not counted."""
        return (
            db.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(message_ids), OutboxMessage.claim == claim)
                .values(claim=None, next_attempt_at=utcnow(), attempts=OutboxMessage.attempts - 1)
                .execution_options(synchronize_session=False)
            ).rowcount
            or 0
        )
