"""OAuth2 client credentials as HaloPSA's authorisation server answers them (reference sections 1.2 and 7)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

_SUBJECTS = (
    "tickets", "calendar", "customers", "crm", "contracts", "suppliers", "items", "projects", "sales", "quotes",
    "sos", "pos", "invoices", "reporting", "software", "softwarelicensing", "kb", "assets", "distributionlists",
    "timesheets",
)  # fmt: skip
KNOWN_SCOPES: frozenset[str] = frozenset(
    {"all", "all:standard", "admin", "all:teams", "admin:webhooks", "editMine:timesheets", "access:chat"}
    | {"access:adpasswordreset", "openid", "email", "profile", "offline_access", "roles"}
    | {f"{verb}:{subject}" for verb in ("read", "edit") for subject in _SUBJECTS}
)
IDENTITY_SCOPES = ("openid", "email", "profile", "offline_access", "roles")
"""Always listed first in a token's `scope`, as observed on a live tenant."""


class InvalidScope(ValueError):
    pass


def requested_scopes(text: str, granted: Iterable[str]) -> tuple[str, ...]:
    """What a token gets: `all` or nothing -> everything granted; a list -> its intersection with the grant.

    Unknown scope strings are refused (OAuth `invalid_scope`), like the real authorisation server.
    """
    asked = text.split()
    unknown = [s for s in asked if s not in KNOWN_SCOPES]
    if unknown:
        raise InvalidScope(f"Unknown scope: {' '.join(unknown)}")
    granted = tuple(granted)
    if not asked or "all" in asked:
        return granted
    if "all" in granted:
        return tuple(asked)
    return tuple(s for s in granted if s in asked)


def allows(scopes: frozenset[str], needed: str) -> bool:
    """`edit:x` implies `read:x`; an application granted `all` may do anything."""
    if needed in scopes or "all" in scopes:
        return True
    verb, _, subject = needed.partition(":")
    return verb == "read" and f"edit:{subject}" in scopes


def _fake_jwt(claims: dict[str, object]) -> str:
    """Token-shaped text (header.claims.signature); nobody verifies the signature."""

    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    signature = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.{signature}"


@dataclass(frozen=True)
class Grant:
    scopes: frozenset[str]
    expires_at: float


class TokenStore:
    """Issued access tokens; a token is valid until its TTL passes on the injected monotonic clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._grants: dict[str, Grant] = {}

    def issue(self, client_id: str, scopes: tuple[str, ...], ttl_s: float) -> tuple[str, str]:
        """A new (access token, id token) pair."""
        token = _fake_jwt({"client_id": client_id, "scope": " ".join(scopes), "jti": str(uuid.uuid4())})
        self._grants[token] = Grant(frozenset(scopes), self._clock() + ttl_s)
        id_token = _fake_jwt({"sub": str(uuid.uuid4()), "aud": client_id, "name": "API Agent"})
        return token, id_token

    def lookup(self, token: str) -> Grant | None:
        grant = self._grants.get(token)
        if grant is not None and self._clock() >= grant.expires_at:
            del self._grants[token]
            return None
        return grant

    def revoke_all(self) -> None:
        self._grants.clear()


def token_segments(auth_path: str) -> list[str]:
    """The lower-cased path segments of the token endpoint of an authorisation server at `auth_path`."""
    return [s.lower() for s in auth_path.split("/") if s] + ["token"]


def token_refusal(status: int) -> tuple[dict[str, str], dict[str, str]]:
    """Body and headers refusing a bearer token (missing, unknown, expired): 401 as documented, with its
    WWW-Authenticate; any other status (400) the bare OAuth error some tenants send instead."""
    if status == 401:
        body = {"error": "invalid_token", "error_description": "The access token is missing, unknown or expired"}
        return body, {"WWW-Authenticate": "Bearer"}
    return {"error": "invalid_token"}, {}
