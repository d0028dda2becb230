"""HaloPSA tokens and permissions: what the token response means, when to renew it, which scope guards a path.

No HTTP here: `TokenCache` calls the fetch function the client gives it (which goes through the rate budget and
retries like every other request).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from core.errors import AuthError, ProtocolError
from core.halopsa.config import REQUIRED_SCOPES

# Renew this long before the server says the token expires: 10% of its lifetime, at most a minute.
RENEW_FRACTION = 0.1
RENEW_MAX_S = 60.0
DEFAULT_EXPIRES_IN_S = 3600.0

CREDENTIALS_REJECTED = (
    "HaloPSA rejected the client ID or secret. Check both in HaloPSA (Configuration > Integrations > HaloPSA API > "
    "View Applications) and enter them again."
)

_PATH_SCOPES = {
    "client": "read:customers",
    "invoice": "read:invoices",
    "invoicepayment": "read:invoices",
    "clientcontract": "read:contracts",
    "webhook": "admin:webhooks",
}


@dataclass(frozen=True)
class ScopeCheck:
    """Granted permissions vs the ones the console needs; `missing` holds exact required names, sorted.

    `reported` is False when the token response carried no `scope` field: then nothing can be said up front and
    a missing permission only shows when a listing is refused.
    """

    granted: tuple[str, ...]
    missing: tuple[str, ...]
    reported: bool = True

    @property
    def ok(self) -> bool:
        return not self.missing


def check_scopes(granted: Iterable[str] | None, required: Iterable[str] = REQUIRED_SCOPES) -> ScopeCheck:
    """`edit:X` implies `read:X`; `all` grants everything; names compare case-insensitively."""
    if granted is None:
        return ScopeCheck(granted=(), missing=(), reported=False)
    have = {scope.lower() for scope in granted}
    effective = have | {"read:" + scope[len("edit:") :] for scope in have if scope.startswith("edit:")}
    missing = () if "all" in have else tuple(sorted(s for s in required if s.lower() not in effective))
    return ScopeCheck(granted=tuple(sorted(set(granted))), missing=missing)


def scope_for_path(path: str) -> str | None:
    """The read permission guarding an API path such as `Invoice/12` or `/api/ClientContract`."""
    parts = [part for part in path.strip("/").split("/") if part]
    if parts and parts[0].lower() == "api":
        parts = parts[1:]
    return _PATH_SCOPES.get(parts[0].lower()) if parts else None


@dataclass(frozen=True)
class Token:
    access_token: str = field(repr=False)
    token_type: str
    scopes: tuple[str, ...] | None
    renew_at: float

    @property
    def header(self) -> str:
        return f"{self.token_type} {self.access_token}"


def token_from_body(body: Any, *, requested_at: float) -> Token:
    """Read a 2xx token response; expiry counts from when we asked, which errs on the early side."""
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str) or not body["access_token"]:
        raise ProtocolError("HaloPSA's token endpoint answered without an access token; check the App Domain.")
    try:
        expires_in = float(body.get("expires_in") or DEFAULT_EXPIRES_IN_S)
    except (TypeError, ValueError):
        expires_in = DEFAULT_EXPIRES_IN_S
    scope = body.get("scope")
    token_type = str(body.get("token_type") or "Bearer")
    return Token(
        access_token=body["access_token"],
        token_type="Bearer" if token_type.lower() == "bearer" else token_type,
        scopes=tuple(scope.split()) if isinstance(scope, str) else None,
        renew_at=requested_at + expires_in - min(RENEW_MAX_S, RENEW_FRACTION * expires_in),
    )


def rejection(status: int, body_text: str, *, base_url: str, tenant: str | None) -> AuthError:
    """The AuthError for a non-transient token failure. Never quotes the body: it could echo what we sent."""
    if 300 <= status < 400:
        return AuthError(f"HaloPSA answered {base_url}/auth/token with a redirect (HTTP {status}), and the console "
                         "never follows one. Check the App Domain: enter the address you open HaloPSA at.",
                         field="app_domain")
    if status == 404:
        return AuthError(f"HaloPSA has no token endpoint at {base_url}/auth/token. Check the App Domain.",
                         field="app_domain")
    if "tenant" not in body_text.lower():
        return AuthError(CREDENTIALS_REJECTED, field="client_secret")
    if tenant:
        return AuthError(
            f"HaloPSA does not recognise the tenant {tenant!r}. Copy the Tenant from HaloPSA (Configuration > "
            "Integrations > HaloPSA API > API Details) and enter it again.",
            field="tenant",
        )
    return AuthError(
        "HaloPSA needs a tenant for this instance. Copy the Tenant from HaloPSA (Configuration > Integrations > "
        "HaloPSA API > API Details) and enter it with the connection.",
        field="tenant",
    )


class TokenCache:
    """One token per client, fetched on first use and renewed ahead of expiry; safe to share between threads."""

    def __init__(self, *, fetch: Callable[[], Token], clock: Callable[[], float]) -> None:
        self._fetch = fetch
        self._clock = clock
        self._token: Token | None = None
        self._lock = threading.Lock()

    def get(self) -> Token:
        with self._lock:
            if self._token is None or self._clock() >= self._token.renew_at:
                self._token = self._fetch()
            return self._token

    @property
    def current(self) -> Token | None:
        """The token in use, if one was fetched; never fetches."""
        return self._token

    def renew(self, stale: Token | None) -> Token:
        """A fresh token, unless another thread already replaced `stale` (then that newer one). None forces one."""
        with self._lock:
            if self._token is None or stale is None or self._token is stale:
                self._token = self._fetch()
            return self._token
