"""Console sessions. A signed-in browser holds `token.signature` in an HttpOnly cookie; the database holds only the
token's SHA-256, so neither a copy of the database nor a forged cookie signs anyone in. A session ends at sign-out
(revoked for every tab at once), after `idle` without a page run, or `lifetime` after sign-in."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine

from core.access import Principal
from core.errors import format_duration
from core.settings import Settings
from core.store.tables import SESSION_TABLE, USER_TABLE
from core.store.users import principal_for

COOKIE_NAME = "halo_console_session"
_TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often: idleness needs no finer grain
S = SESSION_TABLE.c


class SessionEnd(StrEnum):
    """Why a presented session no longer signs anyone in (what the sign-in page tells the person)."""

    SIGNED_OUT = "signed_out"
    IDLE = "idle"
    EXPIRED = "expired"
    UNKNOWN = "unknown"  # forged, from another database, or never issued


_END_MESSAGES = {
    SessionEnd.SIGNED_OUT: "You signed out. Sign in again to continue.",
    SessionEnd.IDLE: "Your session ended after {idle} without activity. Sign in again to continue.",
    SessionEnd.EXPIRED: "Your session reached its {lifetime} limit. Sign in again to continue.",
    SessionEnd.UNKNOWN: "Your session is not valid here. Sign in again to continue.",
}


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta
    lifetime: timedelta

    def end_message(self, ended: SessionEnd) -> str:
        return _END_MESSAGES[ended].format(idle=format_duration(self.idle), lifetime=format_duration(self.lifetime))

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionPolicy:
        return cls(idle=timedelta(seconds=settings.session_idle_s),
                   lifetime=timedelta(seconds=settings.session_lifetime_s))


class CookieSigner:
    """HMAC-SHA256 over the token with a key of its own (derived from the console's secret key)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, token: str) -> str:
        digest = hmac.new(self._key, token.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, token: str) -> str:
        return f"{token}.{self._mac(token)}"

    def unsign(self, value: str) -> str | None:
        token, _, mac = value.partition(".")
        return token if token and hmac.compare_digest(mac.encode(), self._mac(token).encode()) else None


@dataclass(frozen=True)
class Resumed:
    """A presented cookie: the principal it signs in, or why it does not."""

    principal: Principal | None
    ended: SessionEnd | None = None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(conn: Connection, *, user_id: int, client: str, now: datetime, policy: SessionPolicy) -> str:
    """A new session for the user: its token (a fresh one at every sign-in, never reused)."""
    token = secrets.token_urlsafe(32)
    conn.execute(SESSION_TABLE.insert().values(token_hash=_hash(token), user_id=user_id, created_at=now,
                                               last_seen_at=now, expires_at=now + policy.lifetime, client=client))
    return token


def resume(engine: Engine, token: str, *, now: datetime, policy: SessionPolicy, touch: bool = True) -> Resumed:
    """Who the token signs in, touching its last use unless `touch` is False; or why it no longer does."""
    with engine.begin() as conn:
        row = conn.execute(select(S.last_seen_at, S.expires_at, S.revoked_at, USER_TABLE)
                           .join(USER_TABLE, USER_TABLE.c.id == S.user_id)
                           .where(S.token_hash == _hash(token))).first()
        if row is None:
            return Resumed(None, SessionEnd.UNKNOWN)
        if row.revoked_at is not None:
            return Resumed(None, SessionEnd.SIGNED_OUT)
        if now >= row.expires_at:
            return Resumed(None, SessionEnd.EXPIRED)
        if now - row.last_seen_at >= policy.idle:
            return Resumed(None, SessionEnd.IDLE)
        if touch and now - row.last_seen_at >= _TOUCH_EVERY:
            conn.execute(update(SESSION_TABLE).where(S.token_hash == _hash(token)).values(last_seen_at=now))
        return Resumed(principal_for(row))


def revoke(conn: Connection, token: str, *, now: datetime) -> Principal | None:
    """End the session for every tab that holds it; who it belonged to, or None when it was not live."""
    row = conn.execute(select(USER_TABLE).join(SESSION_TABLE, USER_TABLE.c.id == S.user_id)
                       .where(S.token_hash == _hash(token), S.revoked_at.is_(None))).first()
    if row is None:
        return None
    conn.execute(update(SESSION_TABLE).where(S.token_hash == _hash(token)).values(revoked_at=now))
    return principal_for(row)
