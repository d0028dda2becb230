"""How an alert leaves: an e-mail through the configured SMTP server (the standard library's smtplib) and a Slack-style
incoming-webhook post (httpx), each with a short timeout. A failure raises SendFailed with a reason that names the
server but never a secret: the SMTP password and the webhook address (whoever holds it can post) stay out of every
reason and log line."""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from urllib.parse import urlsplit

import httpx

from core.settings import Settings
from core.store.tables import AlertChannel, IssueChange, IssueSeverity, IssueType

SEND_TIMEOUT_S = 10.0
SUBJECT_PREFIX = "[HaloPSA Sync]"
FLEET = "all partners"  # an issue of no one partner (no live worker)
REDACTED = "[secret]"


class SendFailed(Exception):
    """A notice could not be delivered; `reason` is safe to store and show (no secret in it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Notice:
    """One change of one issue, as a person reads it."""

    partner: str | None  # None: the fleet's issue
    type: IssueType
    change: IssueChange
    severity: IssueSeverity
    detail: str
    at: datetime
    first_seen: datetime | None
    test: bool = False  # `python -m core alerts --test`

    @property
    def partner_label(self) -> str:
        return _one_line(self.partner) if self.partner else FLEET

    @property
    def type_label(self) -> str:
        return type_label(self.type)

    @property
    def headline(self) -> str:
        """"HIGH Auth failed opened: Acme MSP" (outside text not escaped: each channel escapes its own way)."""
        return f"{self.severity.value.upper()} {self.type_label} {self.change.value}: {self.partner_label}"

    def lines(self) -> list[tuple[str, str]]:
        """(label, value) for the body, outside text unescaped."""
        found = _one_line(self.detail) or "No detail was recorded."
        rows = [("What we found" if self.change != IssueChange.RESOLVED else "What was wrong", found),
                ("First seen", when(self.first_seen)),
                ("Recovered at" if self.change == IssueChange.RESOLVED else "Changed at", when(self.at))]
        if self.test:
            rows = [("Test", "a test notice sent by `python -m core alerts --test`; nothing is wrong")]
        return rows


def type_label(issue_type: IssueType) -> str:
    """`no_recent_success` -> "No recent success"."""
    return issue_type.value.replace("_", " ").capitalize()


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "unknown"


def trial_notice(now: datetime) -> Notice:
    return Notice(partner=None, type=IssueType.WORKER_DOWN, change=IssueChange.OPENED, severity=IssueSeverity.LOW,
                  detail="", at=now, first_seen=now, test=True)


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def secrets_of(settings: Settings) -> list[str]:
    """The values no reason or log line may hold: the SMTP password and the webhook address (and its path)."""
    found = [settings.alert_smtp_password or ""]
    if settings.alert_webhook_url:
        parts = urlsplit(settings.alert_webhook_url)
        found += [settings.alert_webhook_url, parts.path + (f"?{parts.query}" if parts.query else "")]
    return sorted((s for s in found if len(s) > 1), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def webhook_host(url: str | None) -> str | None:
    """All of the webhook address that may be shown: its host."""
    return urlsplit(url).hostname if url else None


# ---- e-mail --------------------------------------------------------------------------------------------------------

def email_message(notice: Notice, *, sender: str, recipients: Iterable[str]) -> EmailMessage:
    message = EmailMessage()
    subject = f"{SUBJECT_PREFIX} {'Test notice' if notice.test else notice.headline}"
    message["Subject"], message["From"], message["To"] = subject, sender, ", ".join(recipients)
    message["Date"] = format_datetime(notice.at)
    message["Message-ID"] = make_msgid(domain=sender.partition("@")[2] or None)
    body = [f"{'Test notice' if notice.test else notice.headline}", ""]
    body += [f"{label}: {value}" for label, value in notice.lines()]
    body += ["", "Open the console's Overview page to see the issue and what fixes it."]
    message.set_content("\n".join(body) + "\n")
    return message


def _smtp_reason(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return "it refused the user name and password (check HALO_ALERT_SMTP_USER and HALO_ALERT_SMTP_PASSWORD)"
    if isinstance(exc, smtplib.SMTPNotSupportedError | smtplib.SMTPHeloError) or "STARTTLS" in str(exc):
        return (f"{_describe(exc)} (if the server offers no STARTTLS, set HALO_ALERT_SMTP_STARTTLS=off only for a "
                "server on a trusted network)")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return f"it refused the recipients {', '.join(sorted(exc.recipients))} (check HALO_ALERT_EMAIL_TO)"
    if isinstance(exc, TimeoutError):
        return f"no answer within {SEND_TIMEOUT_S:.0f} s"
    return _describe(exc)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class EmailSender:
    """Sends each notice as one e-mail to HALO_ALERT_EMAIL_TO (STARTTLS unless turned off; port 465: TLS from the
    start; signs in when a user is set)."""

    def __init__(self, settings: Settings) -> None:
        if not (settings.alert_smtp_host and settings.alert_email_from and settings.alert_email_to):
            raise ValueError("e-mail alerts are not configured")
        self.settings = settings
        self.secrets = secrets_of(settings)

    @property
    def server(self) -> str:
        return f"{self.settings.alert_smtp_host}:{self.settings.alert_smtp_port}"

    def __call__(self, notice: Notice) -> None:
        s = self.settings
        assert s.alert_smtp_host and s.alert_email_from
        message = email_message(notice, sender=s.alert_email_from, recipients=s.alert_email_to)
        try:
            if s.alert_smtp_port == 465:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.alert_smtp_host, s.alert_smtp_port, timeout=SEND_TIMEOUT_S,
                                                      context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(s.alert_smtp_host, s.alert_smtp_port, timeout=SEND_TIMEOUT_S)
            with smtp:
                if s.alert_smtp_starttls and s.alert_smtp_port != 465:
                    smtp.starttls(context=ssl.create_default_context())
                if s.alert_smtp_user and s.alert_smtp_password:
                    smtp.login(s.alert_smtp_user, s.alert_smtp_password)
                smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            reason = f"The mail server {self.server} did not take the e-mail: {_smtp_reason(exc)}"
            raise SendFailed(redact(reason, self.secrets)) from None


# ---- webhook -------------------------------------------------------------------------------------------------------

def slack_escape(text: str) -> str:
    """Outside text for Slack mrkdwn: `&`, `<` and `>` escaped (Slack's three control characters), one line."""
    return _one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webhook_text(notice: Notice) -> str:
    if notice.test:
        return "*HaloPSA Sync: test notice.* Alerts reach this channel; nothing is wrong."
    head = (f"*{notice.severity.value.upper()}* {slack_escape(notice.type_label)} {notice.change.value}: "
            f"*{slack_escape(notice.partner_label)}*")
    return "\n".join([head, *(f"{label}: {slack_escape(value)}" for label, value in notice.lines())])


class _Redact(logging.Filter):
    """Takes the webhook address out of httpx's own request log line ("HTTP Request: POST https://…")."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(secret in message for secret in self.secrets):
            record.msg, record.args = redact(message, self.secrets), ()
        return True


class WebhookSender:
    """Posts each notice as Slack's `{"text": …}` to HALO_ALERT_WEBHOOK_URL; any 2xx answer counts as delivered."""

    def __init__(self, settings: Settings) -> None:
        if not settings.alert_webhook_url:
            raise ValueError("webhook alerts are not configured")
        self.url = settings.alert_webhook_url
        self.host = webhook_host(self.url)
        self.secrets = secrets_of(settings)
        logger = logging.getLogger("httpx")
        if not any(isinstance(f, _Redact) and f.secrets == self.secrets for f in logger.filters):
            logger.addFilter(_Redact(self.secrets))

    def __call__(self, notice: Notice) -> None:
        try:
            answer = httpx.post(self.url, json={"text": webhook_text(notice)}, timeout=SEND_TIMEOUT_S)
        except httpx.TimeoutException:
            raise SendFailed(f"The webhook at {self.host} gave no answer within {SEND_TIMEOUT_S:.0f} s") from None
        except httpx.HTTPError as exc:
            raise SendFailed(redact(f"The webhook at {self.host} could not be reached: {_describe(exc)}",
                                    self.secrets)) from None
        if not answer.is_success:
            said = _one_line(answer.text)[:200]
            raise SendFailed(redact(f"The webhook at {self.host} answered HTTP {answer.status_code}"
                                    + (f": {said}" if said else ""), self.secrets))


Sender = Callable[[Notice], None]


def senders_for(settings: Settings) -> dict[AlertChannel, Sender]:
    """The configured channels' senders (none for a channel without its settings)."""
    found: dict[AlertChannel, Sender] = {}
    if settings.alert_smtp_host:
        found[AlertChannel.EMAIL] = EmailSender(settings)
    if settings.alert_webhook_url:
        found[AlertChannel.WEBHOOK] = WebhookSender(settings)
    return found
