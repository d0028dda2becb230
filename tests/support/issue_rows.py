"""Issues and their events written straight into the tables (the alerts only read them), and the local receivers
alerts are sent to in tests: an SMTP server (aiosmtpd) and an HTTP webhook receiver, both on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy.engine import Engine

from core.settings import Settings
from core.store.tables import (
    ISSUE_EVENT_TABLE,
    ISSUE_TABLE,
    IssueChange,
    IssueOwner,
    IssueSeverity,
    IssueType,
)

FROM = "alerts@console.example"
TO = ("cs@example.com", "ops@example.com")
WEBHOOK_PATH = "/services/T000/B000/XXXXsecretXXXX"


def add_issue(engine: Engine, partner_id: int | None, issue_type: IssueType, *, first_seen: datetime,
              severity: IssueSeverity = IssueSeverity.HIGH, detail: str = "HaloPSA refused the client secret.",
              snoozed_until: datetime | None = None) -> int:
    with engine.begin() as conn:
        key = conn.execute(ISSUE_TABLE.insert().values(
            partner_id=partner_id, type=issue_type, severity=severity, owner=IssueOwner.PARTNER, detail=detail,
            first_seen=first_seen, last_seen=first_seen, snoozed_until=snoozed_until,
            snooze_reason="waiting on the partner" if snoozed_until else None)).inserted_primary_key
    assert key is not None
    return int(key[0])


def add_event(engine: Engine, issue_id: int, change: IssueChange, *, at: datetime,
              severity: IssueSeverity = IssueSeverity.HIGH, detail: str = "HaloPSA refused the client secret.") -> int:
    """One change of an issue, with the issue's partner and type."""
    with engine.begin() as conn:
        issue = conn.execute(ISSUE_TABLE.select().where(ISSUE_TABLE.c.id == issue_id)).one()
        key = conn.execute(ISSUE_EVENT_TABLE.insert().values(
            issue_id=issue_id, partner_id=issue.partner_id, type=issue.type, change=change, severity=severity,
            at=at, detail=detail)).inserted_primary_key
    assert key is not None
    return int(key[0])


def free_port() -> int:
    """A loopback port nothing listens on (connecting to it is refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---- SMTP ----------------------------------------------------------------------------------------------------------

@dataclass
class Inbox:
    """What the local SMTP server received."""

    port: int
    messages: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.messages.append(message_from_bytes(envelope.content))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


@contextmanager
def smtp_server(*, password: str | None = None) -> Iterator[Inbox]:
    """An SMTP server on 127.0.0.1 (no TLS); with `password`, it offers AUTH and takes only that password."""
    inbox = Inbox(free_port())
    kwargs: dict[str, Any] = {}
    if password is not None:
        def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            ok = isinstance(data, LoginPassword) and data.password.decode() == password
            return AuthResult(success=ok, handled=False)
        kwargs = {"authenticator": check, "auth_require_tls": False}  # AUTH offered without TLS: loopback only
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port, **kwargs)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


def email_settings(settings: Settings, port: int, **extra: Any) -> Settings:
    values: dict[str, Any] = {"alert_smtp_host": "127.0.0.1", "alert_smtp_port": port, "alert_smtp_starttls": False,
                              "alert_email_from": FROM, "alert_email_to": TO}
    return replace(settings, **{**values, **extra})


# ---- webhook -------------------------------------------------------------------------------------------------------

@dataclass
class Receiver:
    """What the local webhook receiver got; `status` is what it answers."""

    url: str
    status: int = 200
    posts: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    @property
    def texts(self) -> list[str]:
        return [post["text"] for post in self.posts]


@contextmanager
def webhook_receiver(status: int = 200) -> Iterator[Receiver]:
    receiver = Receiver(url="", status=status)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                receiver.posts.append(json.loads(body))
                receiver.paths.append(self.path)
            answer = b"ok" if receiver.status < 300 else b"internal_error"
            self.send_response(receiver.status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}{WEBHOOK_PATH}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def webhook_settings(settings: Settings, url: str, **extra: Any) -> Settings:
    return replace(settings, alert_webhook_url=url, **extra)
