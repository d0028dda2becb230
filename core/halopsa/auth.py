"""HaloPSA tokens and permissions: what the token response means, when to renew it, which scope guards a path, where
the authorisation server is, and which refusals mean "this token is no longer good".

No HTTP here: `TokenCache` calls the fetch function the client gives it (which goes through the rate budget and
retries like every other request).

Two things real tenants do that the documentation does not say (reference 11): some answer an expired token with an
OAuth-style HTTP 400 instead of 401 (n8n issue 16857), so such a 400 renews the token once like a 401; and the
authorisation server is found from `GET /api/AuthInfo` (`auth_url`, `tenant_id`, as HaloAPI reads them), falling
back to `{host}/auth/token` when that route is absent or its answer unusable.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

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

# OAuth `error` codes that say the bearer token itself is bad (RFC 6750 `invalid_token`; `invalid_grant` and
# `expired_token` as other servers word it), as opposed to a bad parameter or record.
TOKEN_ERRORS = frozenset({"invalid_token", "invalid_grant", "expired_token"})
_EXPIRED_WORDS = re.compile(r"\btoken\b[^.]{0,40}\bexpired\b|\bexpired\b[^.]{0,40}\btoken\b", re.IGNORECASE)

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


def is_token_refusal(status: int, body_text: str, headers: Mapping[str, str]) -> bool:
    """Whether an HTTP 400 to an API call refuses the bearer token (expired or invalid) rather than the request: an
    OAuth `error` code about the token, a `WWW-Authenticate` challenge naming `invalid_token`, or words saying the
    token expired. A validation error (`{"[0].id": ...}`, a bad parameter) is not one."""
    if status != 400:
        return False
    if "invalid_token" in headers.get("WWW-Authenticate", "").lower():
        return True
    text = body_text[:4000]
    try:
        body = orjson.loads(text)
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str) and error.strip().lower() in TOKEN_ERRORS:
        return True
    return bool(_EXPIRED_WORDS.search(text))


def refused_again(what: str) -> AuthError:
    """A token HaloPSA issued a moment ago refused again with an OAuth-style 400."""
    return AuthError(
        f"HaloPSA refused a token it had just issued for {what} (HTTP 400: invalid or expired token). In HaloPSA open "
        "Configuration > Integrations > HaloPSA API > View Applications, check the API application is active and "
        "its login type is Client ID and Secret (Services), then try again.",
        field="client_secret",
    )


def fallback_token_url(base_url: str) -> str:
    """The token endpoint most tenants have: `{host}/auth/token`."""
    return f"{base_url}/auth/token"


def discovered_endpoint(body: Any, *, base_url: str) -> tuple[str, str | None] | None:
    """The token URL and tenant named by an `/api/AuthInfo` answer, or None when it names no usable server.

    `auth_url` must be an absolute http(s) address, and https whenever the App Domain is: the client secret goes
    there. Another host is allowed (the authorisation server can live apart from the API, reference 1.1); every
    connection to it passes the same address checks as the App Domain's.
    """
    if not isinstance(body, dict) or not isinstance(body.get("auth_url"), str):
        return None
    try:
        url = httpx.URL(body["auth_url"].strip())
    except (httpx.InvalidURL, TypeError, ValueError):
        return None
    secure = httpx.URL(base_url).scheme == "https"
    if url.scheme not in ("http", "https") or not url.host or (secure and url.scheme != "https"):
        return None
    path = url.path.rstrip("/")
    token_url = str(url.copy_with(path=path if path.lower().endswith("/token") else f"{path}/token", query=None,
                                  fragment=None))
    tenant = body.get("tenant_id")
    return token_url, tenant.strip() if isinstance(tenant, str) and tenant.strip() else None


def rejection(status: int, body_text: str, *, token_url: str, tenant: str | None) -> AuthError:
    """The AuthError for a non-transient token failure. Never quotes the body: it could echo what we sent."""
    if 300 <= status < 400:
        return AuthError(f"HaloPSA answered {token_url} with a redirect (HTTP {status}), and the console "
                         "never follows one. Check the App Domain: enter the address you open HaloPSA at.",
                         field="app_domain")
    if status == 404:
        return AuthError(f"HaloPSA has no token endpoint at {token_url}. Check the App Domain.",
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
