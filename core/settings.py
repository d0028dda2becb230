"""Configuration: one frozen object built from a mapping (the environment in the app and CLI, a dict in tests)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypedDict
from urllib.parse import urlsplit

from core.halopsa.config import HaloConfig
from core.store.tables import IssueType

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE_URL = f"sqlite:///{PROJECT_ROOT / 'data' / 'console.db'}"


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _megabytes(name: str, value: str | None) -> int | None:
    """A size given in MB (HALO_MAX_PAGE_MB=64) as bytes; None when not given."""
    if not value:
        return None
    try:
        megabytes = float(value)
    except ValueError:
        megabytes = float("nan")
    if not 0 < megabytes < 2**20:  # also refuses nan and inf
        raise ValueError(f"{name} must be a number of megabytes between 0 and 1048576, not {value!r}")
    return max(1, int(megabytes * 2**20))


def _overdue_days(value: str | None, default: int) -> int:
    """HALO_AUTOPAY_OVERDUE_DAYS: a whole number of days from 1 to 3650."""
    if not value:
        return default
    days = int(value) if value.strip().isdecimal() else 0
    if not 1 <= days <= 3650:
        raise ValueError(f"HALO_AUTOPAY_OVERDUE_DAYS must be a whole number of days from 1 to 3650, not {value!r}")
    return days


def _strict_flag(name: str, value: str | None, default: bool) -> bool:
    """An on/off switch that refuses a word it does not know (HALO_ALERT_SMTP_STARTTLS=maybe)."""
    if value is None or value.strip() == "":
        return default
    word = value.strip().lower()
    if word not in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
        raise ValueError(f"{name} must be on or off (1/0, true/false, yes/no), not {value!r}")
    return word in {"1", "true", "yes", "on"}


def _port(name: str, value: str | None, default: int) -> int:
    if not value:
        return default
    port = int(value) if value.strip().isdecimal() else 0
    if not 1 <= port <= 65535:
        raise ValueError(f"{name} must be a port number from 1 to 65535 (587 for STARTTLS, 465 for TLS), not "
                         f"{value!r}")
    return port


def _addresses(name: str, value: str | None) -> tuple[str, ...]:
    """A comma list of e-mail addresses; each must look like one (name@domain)."""
    found = tuple(part.strip() for part in (value or "").split(",") if part.strip())
    for address in found:
        local, at, domain = address.partition("@")
        if not (local and at and "." in domain) or any(c.isspace() or c in "<>,;" for c in address):
            raise ValueError(f"{name} must be e-mail addresses separated by commas (ops@example.com, "
                             f"cs@example.com); {address!r} is not one")
    return found


def _issue_types(name: str, value: str | None) -> tuple[IssueType, ...]:
    """A comma list of issue types to send (empty: every type)."""
    words = [part.strip().lower() for part in (value or "").split(",") if part.strip()]
    known = {kind.value: kind for kind in IssueType}
    unknown = [word for word in words if word not in known]
    if unknown:
        raise ValueError(f"{name} lists unknown issue types {', '.join(map(repr, unknown))}: use a comma list of "
                         f"{', '.join(known)}, or leave it empty for every type")
    return tuple(kind for kind in IssueType if kind.value in words) if words else tuple(IssueType)


def _webhook_url(value: str | None) -> str | None:
    """The alerts' incoming-webhook address. It is a secret (whoever has it can post): never echoed, even here."""
    if not value or not value.strip():
        return None
    try:
        parts = urlsplit(value.strip())
        address_ok = parts.scheme in ("https", "http") and bool(parts.hostname)
    except ValueError:  # "http://[oops/": not an address at all
        address_ok = False
    if not address_ok:
        raise ValueError("HALO_ALERT_WEBHOOK_URL must be the whole incoming-webhook address, starting with https:// "
                         "(e.g. https://hooks.slack.com/services/…); the value given is not one (not shown: it is "
                         "a secret)")
    return value.strip()


class _AlertEmail(TypedDict):
    alert_smtp_host: str | None
    alert_smtp_port: int
    alert_smtp_user: str | None
    alert_smtp_password: str | None
    alert_smtp_starttls: bool
    alert_email_from: str | None
    alert_email_to: tuple[str, ...]
    alert_email_types: tuple[IssueType, ...]


def _alert_email(env: Mapping[str, str]) -> _AlertEmail:
    """The e-mail channel's settings, refusing a half-configured one (a host but nobody to send to, a user but
    no password, recipients but no server)."""
    host = (env.get("HALO_ALERT_SMTP_HOST") or "").strip() or None
    user = (env.get("HALO_ALERT_SMTP_USER") or "").strip() or None
    password = env.get("HALO_ALERT_SMTP_PASSWORD") or None
    sender = _addresses("HALO_ALERT_EMAIL_FROM", env.get("HALO_ALERT_EMAIL_FROM"))
    recipients = _addresses("HALO_ALERT_EMAIL_TO", env.get("HALO_ALERT_EMAIL_TO"))
    if len(sender) > 1:
        raise ValueError("HALO_ALERT_EMAIL_FROM must be one e-mail address, not a list")
    given = {"HALO_ALERT_EMAIL_FROM": sender, "HALO_ALERT_EMAIL_TO": recipients, "HALO_ALERT_SMTP_USER": user,
             "HALO_ALERT_SMTP_PASSWORD": password}
    if host is None and any(given.values()):
        named = " and ".join(name for name, value in given.items() if value)
        raise ValueError(f"HALO_ALERT_SMTP_HOST is not set but {named} is: set the mail server's host name too, or "
                         f"unset {named}")
    missing = [name for name, value in (("HALO_ALERT_EMAIL_FROM", sender), ("HALO_ALERT_EMAIL_TO", recipients))
               if not value]
    if host is not None and missing:
        raise ValueError(f"{' and '.join(missing)} must be set too: e-mail alerts need one sender address "
                         "(HALO_ALERT_EMAIL_FROM) and comma-separated recipients (HALO_ALERT_EMAIL_TO)")
    if bool(user) != bool(password):
        raise ValueError("HALO_ALERT_SMTP_USER and HALO_ALERT_SMTP_PASSWORD go together: set both to sign in to the "
                         "mail server, or neither")
    return _AlertEmail(
        alert_smtp_host=host, alert_smtp_user=user, alert_smtp_password=password,
        alert_email_from=sender[0] if sender else None, alert_email_to=recipients,
        alert_smtp_port=_port("HALO_ALERT_SMTP_PORT", env.get("HALO_ALERT_SMTP_PORT"), 587),
        alert_smtp_starttls=_strict_flag("HALO_ALERT_SMTP_STARTTLS", env.get("HALO_ALERT_SMTP_STARTTLS"), True),
        alert_email_types=_issue_types("HALO_ALERT_EMAIL_TYPES", env.get("HALO_ALERT_EMAIL_TYPES")))


_CLIENT = HaloConfig()


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    db_pool_size: int = 5  # PostgreSQL: connections each process keeps open
    db_max_overflow: int = 10  # PostgreSQL: extra connections a process may open under load
    secret_key: str | None = None
    allow_local_domains: bool = False
    sandbox_enabled: bool = True
    demo_enabled: bool = True
    # the HaloPSA client's share (core.sync.connector.halo_config copies it), with the client's own defaults
    page_size: int = _CLIENT.page_size
    max_page_bytes: int = _CLIENT.max_page_bytes  # HALO_MAX_PAGE_MB
    rate_limit_requests: int = _CLIENT.rate_limit_requests
    rate_limit_window_s: float = _CLIENT.rate_limit_window_s
    http_timeout_s: float = _CLIENT.http_timeout_s
    max_attempts: int = _CLIENT.max_attempts
    backoff_cap_s: float = _CLIENT.backoff_cap_s
    request_deadline_s: float = _CLIENT.request_deadline_s
    longest_wait_s: float = _CLIENT.longest_wait_s
    unpaid_payment_statuses: str = _CLIENT.unpaid_payment_statuses
    cooldown_new_data_s: int = 3600
    cooldown_unpaid_s: int = 43200
    schedule_interval_s: int = 3600
    stale_run_after_s: int = 300
    worker_threads: int = 4
    worker_long_threads: int = 1
    lease_s: float = 60.0
    worker_poll_s: float = 0.5
    session_idle_s: int = 1800  # a console session ends after this long without a page run
    session_lifetime_s: int = 43200  # and this long after sign-in, whatever its use
    autopay_overdue_days: int = 60  # an invoice more overdue than this on its charge date needs the rule's opt-in
    reconcile_daily: bool = False  # HALO_RECONCILE_DAILY: the scheduler reconciles each primary partner once a day
    fixed_now: datetime | None = None
    # alerts (core.health.alerts): a channel without its settings sends nothing; the password and the webhook
    # address are secrets, so they are left out of repr
    alert_smtp_host: str | None = None
    alert_smtp_port: int = 587
    alert_smtp_user: str | None = None
    alert_smtp_password: str | None = field(default=None, repr=False)
    alert_smtp_starttls: bool = True
    alert_email_from: str | None = None
    alert_email_to: tuple[str, ...] = ()
    alert_email_types: tuple[IssueType, ...] = tuple(IssueType)
    alert_webhook_url: str | None = field(default=None, repr=False)
    alert_webhook_types: tuple[IssueType, ...] = tuple(IssueType)

    def now(self) -> datetime:
        """The clock every entry point injects: real UTC time unless HALO_CONSOLE_NOW pins it (replay, tests)."""
        return self.fixed_now or datetime.now(UTC)

    @property
    def sqlite_path(self) -> Path | None:
        prefix = "sqlite:///"
        if self.database_url.startswith(prefix) and len(self.database_url) > len(prefix):
            return Path(self.database_url[len(prefix):])
        return None


def settings_from_mapping(env: Mapping[str, str]) -> Settings:
    """Build settings from environment-like keys; every key is optional."""
    fixed = env.get("HALO_CONSOLE_NOW")
    fixed_now = datetime.fromisoformat(fixed.replace("Z", "+00:00")) if fixed else None
    if fixed_now is not None and fixed_now.tzinfo is None:
        fixed_now = fixed_now.replace(tzinfo=UTC)
    defaults = Settings()
    return Settings(
        database_url=env.get("DATABASE_URL") or defaults.database_url,
        db_pool_size=int(env.get("HALO_DB_POOL_SIZE") or defaults.db_pool_size),
        db_max_overflow=int(env.get("HALO_DB_MAX_OVERFLOW") or defaults.db_max_overflow),
        secret_key=env.get("HALO_CONSOLE_SECRET_KEY") or None,
        allow_local_domains=_flag(env.get("HALO_ALLOW_LOCAL_DOMAINS"), False),
        sandbox_enabled=_flag(env.get("HALO_SANDBOX"), True),
        demo_enabled=_flag(env.get("HALO_DEMO"), True),
        page_size=int(env.get("HALO_PAGE_SIZE", defaults.page_size)),
        max_page_bytes=_megabytes("HALO_MAX_PAGE_MB", env.get("HALO_MAX_PAGE_MB")) or defaults.max_page_bytes,
        rate_limit_requests=int(env.get("HALO_RATE_LIMIT", defaults.rate_limit_requests)),
        rate_limit_window_s=float(env.get("HALO_RATE_WINDOW_S", defaults.rate_limit_window_s)),
        http_timeout_s=float(env.get("HALO_HTTP_TIMEOUT_S", defaults.http_timeout_s)),
        max_attempts=int(env.get("HALO_MAX_ATTEMPTS", defaults.max_attempts)),
        backoff_cap_s=float(env.get("HALO_BACKOFF_CAP_S", defaults.backoff_cap_s)),
        request_deadline_s=float(env.get("HALO_REQUEST_DEADLINE_S", defaults.request_deadline_s)),
        longest_wait_s=float(env.get("HALO_LONGEST_WAIT_S", defaults.longest_wait_s)),
        unpaid_payment_statuses=env.get("HALO_UNPAID_PAYMENT_STATUSES", defaults.unpaid_payment_statuses),
        cooldown_new_data_s=int(env.get("HALO_COOLDOWN_NEW_DATA_S", defaults.cooldown_new_data_s)),
        cooldown_unpaid_s=int(env.get("HALO_COOLDOWN_UNPAID_S", defaults.cooldown_unpaid_s)),
        schedule_interval_s=int(env.get("HALO_SCHEDULE_INTERVAL_S", defaults.schedule_interval_s)),
        stale_run_after_s=int(env.get("HALO_STALE_RUN_AFTER_S", defaults.stale_run_after_s)),
        worker_threads=int(env.get("HALO_WORKER_THREADS", defaults.worker_threads)),
        worker_long_threads=int(env.get("HALO_WORKER_LONG_THREADS", defaults.worker_long_threads)),
        lease_s=float(env.get("HALO_LEASE_S", defaults.lease_s)),
        worker_poll_s=float(env.get("HALO_WORKER_POLL_S", defaults.worker_poll_s)),
        session_idle_s=int(env.get("HALO_SESSION_IDLE_S", defaults.session_idle_s)),
        session_lifetime_s=int(env.get("HALO_SESSION_LIFETIME_S", defaults.session_lifetime_s)),
        autopay_overdue_days=_overdue_days(env.get("HALO_AUTOPAY_OVERDUE_DAYS"), defaults.autopay_overdue_days),
        reconcile_daily=_strict_flag("HALO_RECONCILE_DAILY", env.get("HALO_RECONCILE_DAILY"), False),
        fixed_now=fixed_now,
        **_alert_email(env),
        alert_webhook_url=_webhook_url(env.get("HALO_ALERT_WEBHOOK_URL")),
        alert_webhook_types=_issue_types("HALO_ALERT_WEBHOOK_TYPES", env.get("HALO_ALERT_WEBHOOK_TYPES")),
    )


def load_settings() -> Settings:
    """Settings from the process environment."""
    return settings_from_mapping(os.environ)
