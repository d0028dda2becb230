"""Local accounts: salted scrypt password hashes (standard library), and the Principal each account acts as."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from core.access import Principal
from core.errors import BadInput
from core.store.database import inserted_id
from core.store.tables import USER_TABLE, Role

_N, _R, _P = 2**14, 8, 1
# Compared against when the account does not exist, so a wrong e-mail costs as long as a wrong password.
_DUMMY_HASH = f"scrypt${_N}${_R}${_P}${'00' * 16}${'00' * 32}"


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                               dklen=len(digest) // 2)
    return hmac.compare_digest(candidate.hex(), digest)


def principal_for(user: Any) -> Principal:
    return Principal(role=Role(user.role), user=user.email, partner_id=user.partner_id)


def authenticate(engine: Engine, email: str, password: str) -> Principal | None:
    """The account's Principal when the password matches, else None (same cost either way)."""
    with engine.connect() as conn:
        user = conn.execute(select(USER_TABLE).where(USER_TABLE.c.email == email.strip().lower())).first()
    matched = check_password(password, user.password_hash if user else _DUMMY_HASH)
    return principal_for(user) if user and matched else None


def principal_for_email(engine: Engine, email: str) -> Principal | None:
    """An OIDC-signed-in person acts as the local account with the same e-mail (roles live here, not in the IdP)."""
    with engine.connect() as conn:
        user = conn.execute(select(USER_TABLE).where(USER_TABLE.c.email == email.strip().lower())).first()
    return principal_for(user) if user else None


def add_user(engine: Engine, *, email: str, name: str, role: Role, password: str,
             partner_id: int | None = None) -> int:
    email = email.strip().lower()
    if "@" not in email:
        raise BadInput("An account needs an e-mail address.", field="email")
    if len(password) < 8:
        raise BadInput("A password needs at least 8 characters.", field="password")
    if (role == Role.PARTNER) != (partner_id is not None):
        raise BadInput("Partner accounts, and only they, belong to one partner.", field="partner_id")
    with engine.begin() as conn:
        return (inserted_id(conn.execute(USER_TABLE.insert().values(
            email=email, name=name, role=role.value, partner_id=partner_id, password_hash=hash_password(password),
        ))))
