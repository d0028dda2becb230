"""Signing in and out of the console with a local account: throttled per account and per client, every attempt
audited, a fresh session (and cookie) at every sign-in, and sign-out revoking the session for every tab."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Engine

from core.access import Principal
from core.errors import BadInput, Refused, format_duration
from core.limits import check_length
from core.settings import Settings
from core.store import audit, sign_in_throttle
from core.store.database import stored_setting
from core.store.sessions import CookieSigner, Resumed, SessionEnd, SessionPolicy, open_session, resume, revoke
from core.store.tables import USER_TABLE, AuditAction, ThrottleScope
from core.store.users import authenticate

_SIGNING_KEY_SETTING = "session_cookie_signing_key"


class SignInFailed(BadInput):
    def __init__(self) -> None:
        super().__init__("That e-mail and password do not match an account. Check both and try again.")


class SignInLocked(Refused):
    """Too many recent failures for the account or the client: refused without checking the password."""

    def __init__(self, until: datetime, now: datetime) -> None:
        self.until = until
        super().__init__(f"Too many failed sign-ins for this account or from this address. Sign-in is paused until "
                         f"{until.strftime('%H:%M:%S')} UTC (in {format_duration(until - now)}); try again then.")


@dataclass(frozen=True)
class SignedIn:
    principal: Principal
    cookie: str  # the value of the session cookie to set (HttpOnly, SameSite=Strict)


@dataclass(frozen=True)
class SessionKeys:
    """How this deployment signs cookies and how long sessions live."""

    signer: CookieSigner
    policy: SessionPolicy

    @classmethod
    def load(cls, engine: Engine, settings: Settings) -> SessionKeys:
        """The signing key is made once per database and shared by every console using it, so a cookie signed by one
        replica is good at another; it is not the client-secret key, so a wrong or rotated key there signs nobody
        out."""
        key = stored_setting(engine, _SIGNING_KEY_SETTING, lambda: secrets.token_urlsafe(32))
        return cls(CookieSigner(key.encode()), SessionPolicy.from_settings(settings))


def _checked(email: str, password: str) -> str:
    account = email.strip().lower()
    if not account:
        raise BadInput("Type the e-mail address of your account.", field="email")
    check_length("email", account)
    check_length("password", password)
    return account


def sign_in(engine: Engine, *, email: str, password: str, client: str, now: datetime, keys: SessionKeys,
            replacing: str | None = None) -> SignedIn:
    """A new session for the account, or SignInFailed / SignInLocked (each audited). `replacing` is the cookie the
    browser already held: it is revoked, so a session id is never carried across a sign-in."""
    account = _checked(email, password)
    throttle_keys = {ThrottleScope.ACCOUNT: account, ThrottleScope.CLIENT: client}
    with engine.begin() as conn:
        locked_until = sign_in_throttle.take_attempt(conn, throttle_keys, now=now)
        if locked_until is not None:
            audit.record(conn, actor=account, action=AuditAction.SIGN_IN_LOCKED, now=now,
                         detail=f"refused unchecked from {client}: paused until {locked_until:%Y-%m-%d %H:%M:%S} UTC")
    if locked_until is not None:
        raise SignInLocked(locked_until, now)
    principal = authenticate(engine, account, password)
    with engine.begin() as conn:
        if principal is None:
            audit.record(conn, actor=account, action=AuditAction.SIGN_IN_FAILED, now=now,
                         detail=f"wrong e-mail or password, from {client}")
        else:
            sign_in_throttle.forgive(conn, throttle_keys)
            user_id = conn.execute(select(USER_TABLE.c.id).where(USER_TABLE.c.email == account)).scalar_one()
            token = open_session(conn, user_id=user_id, client=client, now=now, policy=keys.policy)
            if replacing and (old := keys.signer.unsign(replacing)):
                revoke(conn, old, now=now)
            audit.record(conn, actor=account, action=AuditAction.SIGN_IN, now=now, partner_id=principal.partner_id,
                         detail=f"from {client}")
    if principal is None:
        raise SignInFailed()
    return SignedIn(principal, keys.signer.sign(token))


def resume_session(engine: Engine, cookie: str, *, now: datetime, keys: SessionKeys, touch: bool = True) -> Resumed:
    """Who a browser's session cookie signs in (checked against the database at every page run), or why not;
    `touch=False` reads it without counting as activity."""
    token = keys.signer.unsign(cookie)
    if token is None:
        return Resumed(None, SessionEnd.UNKNOWN)
    return resume(engine, token, now=now, policy=keys.policy, touch=touch)


def sign_out(engine: Engine, cookie: str, *, now: datetime, keys: SessionKeys) -> None:
    """End the session for every tab and browser window holding it."""
    token = keys.signer.unsign(cookie)
    if token is None:
        return
    with engine.begin() as conn:
        principal = revoke(conn, token, now=now)
        if principal is not None:
            audit.record(conn, actor=principal.user, action=AuditAction.SIGN_OUT, now=now,
                         partner_id=principal.partner_id)
