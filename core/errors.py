"""One exception tree for the whole core; every error carries a message a person can act on.

ConsoleError                      base: .message is safe to show (never holds a secret)
├── BadInput                      the caller gave something unusable; nothing was saved   (CLI exit 2)
│   ├── InvalidDomain
│   ├── NotFound                  no such partner / run / rule
│   └── NotAllowedForRole         e.g. manual fetch on a secondary integration
├── Refused                       valid request refused for now                             (CLI exit 3)
│   ├── CooldownActive            .available_at, .remaining
│   └── SyncAlreadyRunning
├── AccessDenied                  the principal may not see or do this                      (CLI exit 2)
├── SecretKeyError                stored secrets cannot be decrypted with the configured key
└── HaloError                     HaloPSA or the sync failed                                (CLI exit 4)
    ├── AuthError                 client id / secret rejected, or tenant unknown
    ├── PermissionMissing         .missing: scopes the API application lacks
    ├── RateLimited               .retry_after seconds
    ├── HaloUnavailable           5xx, timeouts, dropped connections after retries
    └── ProtocolError             a response we cannot read (not JSON, wrong shape)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum


class ErrorKind(StrEnum):
    """What went wrong, as stored on a failed run (`SyncRun.error_kind`) and read by the Overview's next steps."""

    ERROR = "error"
    BAD_INPUT = "bad_input"
    INVALID_DOMAIN = "invalid_domain"
    NOT_FOUND = "not_found"
    NOT_ALLOWED = "not_allowed"
    ACCESS_DENIED = "access_denied"
    SECRET_KEY = "secret_key"
    REFUSED = "refused"
    COOLDOWN = "cooldown"
    ALREADY_RUNNING = "already_running"
    ALREADY_QUEUED = "already_queued"
    CANCELLED = "cancelled"
    HALO = "halo"
    AUTH = "auth"
    PERMISSIONS = "permissions"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    PROTOCOL = "protocol"
    CRASHED = "crashed"
    INTERRUPTED = "interrupted"


class ConsoleError(Exception):
    """Base error: `message` is written for a customer-success person and never holds a secret; `field` names the
    form field it concerns (None: the form as a whole), so no caller ever matches on message text."""

    exit_code = 4
    kind = ErrorKind.ERROR

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class BadInput(ConsoleError):
    exit_code = 2
    kind = ErrorKind.BAD_INPUT


class InvalidDomain(BadInput):
    kind = ErrorKind.INVALID_DOMAIN

    def __init__(self, message: str) -> None:
        super().__init__(message, field="app_domain")


class NotFound(BadInput):
    kind = ErrorKind.NOT_FOUND


class NotAllowedForRole(BadInput):
    kind = ErrorKind.NOT_ALLOWED


class AccessDenied(ConsoleError):
    exit_code = 2
    kind = ErrorKind.ACCESS_DENIED


class SecretKeyError(ConsoleError):
    exit_code = 2
    kind = ErrorKind.SECRET_KEY


class Refused(ConsoleError):
    exit_code = 3
    kind = ErrorKind.REFUSED


def format_duration(delta: timedelta) -> str:
    """`7 h 12 min`, `42 min`, `35 s`: rounded up so a countdown never shows 0 while still locked."""
    seconds = max(0, int(-(-delta.total_seconds() // 1)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs and minutes < 10 else f"{minutes} min"
    return f"{secs} s"


class CooldownActive(Refused):
    kind = ErrorKind.COOLDOWN

    def __init__(self, action_label: str, available_at: datetime, now: datetime) -> None:
        self.available_at = available_at
        self.remaining = available_at - now
        super().__init__(
            f"{action_label} was run recently; it is available again in {format_duration(self.remaining)}, "
            f"at {available_at.strftime('%Y-%m-%d %H:%M:%S')} UTC."
        )


class SyncAlreadyRunning(Refused):
    kind = ErrorKind.ALREADY_RUNNING

    def __init__(self, partner_name: str, run_kind: str, started_at: datetime) -> None:
        self.started_at = started_at
        super().__init__(
            f"A {run_kind.replace('_', ' ')} sync for {partner_name} is already running "
            f"(started {started_at.strftime('%Y-%m-%d %H:%M:%S')} UTC). Wait for it to finish, then try again."
        )


class SyncAlreadyQueued(Refused):
    kind = ErrorKind.ALREADY_QUEUED

    def __init__(self, partner_name: str, run_kind: str, state: str, since: datetime) -> None:
        self.since = since
        waiting = "is already running" if state == "running" else "is already queued"
        super().__init__(
            f"A {run_kind.replace('_', ' ')} sync for {partner_name} {waiting} (since "
            f"{since.strftime('%Y-%m-%d %H:%M:%S')} UTC). Its progress shows on the Syncs page; wait for it to finish."
        )


class HaloError(ConsoleError):
    """`next_step`, when given, ends the message with what happens next (a sync: "The sync will retry on its next
    run"); a caller that is not a sync says its own instead (`retold`), e.g. a connect that saved nothing."""

    exit_code = 4
    kind = ErrorKind.HALO
    transient = False

    def __init__(self, message: str, *, field: str | None = None, next_step: str = "") -> None:
        super().__init__(f"{message} {next_step}" if next_step else message, field=field)
        self.cause = message
        self.next_step = next_step

    def retold(self, next_step: str) -> HaloError:
        """The same error (same class, same attributes) saying `next_step` instead of its own; itself when it names
        no next step (its message is about something else: a credential, a permission)."""
        if not self.next_step:
            return self
        told = type(self).__new__(type(self))
        told.__dict__.update(self.__dict__)
        Exception.__init__(told, f"{self.cause} {next_step}")
        told.message, told.next_step = f"{self.cause} {next_step}", next_step
        return told


class AuthError(HaloError):
    kind = ErrorKind.AUTH


class PermissionMissing(HaloError):
    kind = ErrorKind.PERMISSIONS

    def __init__(self, missing: list[str]) -> None:
        self.missing = sorted(missing)
        super().__init__(
            f"The API application lacks: {', '.join(self.missing)}. In HaloPSA open Configuration > Integrations > "
            "HaloPSA API > View Applications, tick these permissions on the application's Permissions tab, save, "
            "then try again."
        )


class RateLimited(HaloError):
    kind = ErrorKind.RATE_LIMITED
    transient = True

    def __init__(self, retry_after: float | None, message: str | None = None, *, next_step: str = "") -> None:
        self.retry_after = retry_after
        wait = f"retrying in {retry_after:.0f} s" if retry_after else "try again in a few minutes"
        super().__init__(message or f"HaloPSA is rate limiting this tenant; {wait}.", next_step=next_step)


class HaloUnavailable(HaloError):
    kind = ErrorKind.UNAVAILABLE
    transient = True


class ProtocolError(HaloError):
    kind = ErrorKind.PROTOCOL
    transient = True
