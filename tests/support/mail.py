"""Mail in tests: the outbox's rows, the tokens in them, and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import requests
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from flask.testing import FlaskClient
from sqlalchemy import Row, select

from shared.extensions import db
from shared.models import MailKind, OutboxMessage

TOKEN = re.compile(r"^token: (\S+)\r?$", re.MULTILINE)


def token_in(text: str) -> str:
    """The token a mail's text carries (its link has the same one)."""
    match = TOKEN.search(text)
    assert match, f"no token in {text!r}"
    return match.group(1)


def outbox(recipient: str | None = None, kind: MailKind | None = None) -> list[Row[Any]]:
    """The outbox's rows, oldest first, read on a connection of their own (what is committed)."""
    table = OutboxMessage.__table__
    statement = select(table).order_by(table.c.id)
    if recipient is not None:
        statement = statement.where(table.c.recipient == recipient)
    if kind is not None:
        statement = statement.where(table.c.kind == kind.value)
    with db.engine.connect() as connection:
        return list(connection.execute(statement))


def latest_token(recipient: str, kind: MailKind) -> str:
    """The token of the newest mail of this kind to `recipient`, from the outbox."""
    messages = outbox(recipient, kind)
    assert messages, f"no {kind} mail to {recipient} in the outbox"
    return token_in(messages[-1].body)


def verify_email(client: FlaskClient, email: str) -> dict[str, Any]:
    """What the owner does with the verification mail: POST its token."""
    response = client.post("/api/auth/verify-email", json={"token": latest_token(email, MailKind.VERIFY_EMAIL)})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@dataclass
class Inbox:
    """What a local SMTP server received. `fail_next` refuses that many messages (451)."""

    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    fail_next: int = 0
    delay: float = 0.0  # seconds each message takes to accept (connections are served concurrently)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def settings(self) -> dict[str, Any]:
        """The app's mail settings for this server."""
        return {"MAIL_BACKEND": "smtp", "MAIL_SERVER": self.host, "MAIL_PORT": self.port}

    def to(self, recipient: str) -> list[EmailMessage]:
        with self.lock:
            return [message for message in self.messages if message["To"] == recipient]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return "451 Requested action aborted: local error in processing"
            self.messages.append(message_from_bytes(envelope.content, policy=default_policy))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def smtp_server() -> Iterator[Inbox]:
    """aiosmtpd on a free local port, in a thread, for the duration of the block."""
    inbox = Inbox("127.0.0.1", free_port())
    controller = Controller(inbox, hostname=inbox.host, port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


def verify_email_at(api_url: str, email: str) -> None:
    """`verify_email` against a live server (`api_url` ends with /api)."""
    token = latest_token(email, MailKind.VERIFY_EMAIL)
    response = requests.post(f"{api_url}/auth/verify-email", json={"token": token}, timeout=30)
    assert response.status_code == 200, response.text
