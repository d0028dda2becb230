"""HaloPSA HTTP client: token, permissions, paged listings of typed records.

Requests go through `transport.Sender` (rate budget, retries, wait events); this module decides what the answers
mean: a 401 renews the token once, a second 401 or a 403 names the missing permission, a 404 is "no such record"
(or, on a list, a wrong App Domain), other 4xx stop at once. Secrets never reach a message, a log line or a repr.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime
from functools import cache, partial
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, TypeVar

import httpx

from core.errors import AuthError, HaloError, HaloUnavailable, PermissionMissing, ProtocolError, RateLimited
from core.halopsa import auth, paging
from core.halopsa.auth import ScopeCheck, Token, TokenCache
from core.halopsa.config import HaloConfig
from core.halopsa.network import PinnedBackend, PinnedTransport
from core.halopsa.paging import Page
from core.halopsa.ratelimit import Budget, shared_budget
from core.halopsa.records import Agreement, Customer, Invoice, parse_agreement, parse_customer, parse_invoice
from core.halopsa.transport import ClientEvent, ClientStats, Sender

__all__ = ["ClientEvent", "ClientStats", "HaloClient", "HaloConfig", "Page", "ScopeCheck"]

T = TypeVar("T", bound=Customer | Agreement | Invoice)

DEFAULT_CONFIG = HaloConfig()


@cache
def _tls() -> ssl.SSLContext:
    """One verifying TLS context (certifi's CAs, as httpx's default) for every client of the process: building one per
    client cost more CPU than the rest of a small sync together."""
    return httpx.create_ssl_context()


def _base(url: str) -> str:
    """`https://acme.halopsa.com`, also when given with a trailing slash or the `/api` resource path."""
    base = url.strip().rstrip("/")
    return base[: -len("/api")] if base.lower().endswith("/api") else base


def _lookup_names(rows: list[Any]) -> dict[int, str]:
    """Lookup rows (`id` with `name`, or `value`) -> {id: name}; rows without a positive id or a name are skipped."""
    names: dict[int, str] = {}
    for row in rows:
        if not isinstance(row, dict):
            continue
        halo_id, name = row.get("id"), row.get("name") or row.get("value")
        if not isinstance(halo_id, int) or isinstance(halo_id, bool) or halo_id <= 0:
            continue
        if isinstance(name, str) and name.strip():
            names[halo_id] = name.strip()
    return names


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class HaloClient:
    """One HaloPSA tenant. Thread-safe; close it (or use `with`) to release its connections."""

    def __init__(
        self,
        *,
        base_url: str,
        client_id: str,
        client_secret: str,
        tenant: str | None = None,
        config: HaloConfig = DEFAULT_CONFIG,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        on_event: Callable[[ClientEvent], None] | None = None,
        budget_for: Callable[[str], Budget] | None = None,
    ) -> None:
        """`budget_for` gives the request budget for a tenant key (base URL and tenant); by default the budget is
        shared by the clients of this process only."""
        self.base_url = _base(base_url)
        self.tenant = tenant or None
        self._client_id = client_id
        self._client_secret = client_secret
        self._config = config
        self._clock = clock
        if transport is None:  # each new connection re-checks the App Domain's addresses (no DNS rebinding)
            backend = PinnedBackend(allow_local=config.allow_local_domains)
            transport = PinnedTransport(ssl_context=_tls(), backend=backend)
        # Auth travels in headers only: a jar that accepts no cookies keeps server sessions out of the picture.
        self._http = httpx.Client(
            transport=transport,
            timeout=config.http_timeout_s,
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
            headers={"Accept": "application/json"},
            follow_redirects=False,  # a redirect could point anywhere, loopback included: it is answered, not followed
        )
        self.stats = ClientStats()
        key = f"{self.base_url}|{self.tenant or ''}"
        if budget_for is None:
            budget: Budget = shared_budget(
                key=key, limit=config.rate_limit_requests, window_s=config.rate_limit_window_s, clock=clock
            )
        else:
            budget = budget_for(key)
        self._sender = Sender(
            http=self._http, budget=budget, config=config, sleep=sleep, on_event=on_event, stats=self.stats
        )
        self._tokens = TokenCache(fetch=self._fetch_token, clock=clock)
        self._subtypes: dict[int, str] | None = None

    def __repr__(self) -> str:
        return f"HaloClient(base_url={self.base_url!r}, tenant={self.tenant!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HaloClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- permissions -------------------------------------------------------------------------------------------

    def verify(self) -> ScopeCheck:
        """Fetch a fresh token (the credentials are checked now, not from cache) and compare its scopes."""
        return auth.check_scopes(self._tokens.renew(None).scopes)

    def last_scope_check(self) -> ScopeCheck | None:
        """The permissions of the token this client is using (None before its first request); costs no request."""
        token = self._tokens.current
        return auth.check_scopes(token.scopes) if token else None

    def require_scopes(self) -> ScopeCheck:
        check = self.verify()
        if check.missing:
            raise PermissionMissing(list(check.missing))
        return check

    # -- listings ----------------------------------------------------------------------------------------------

    def iter_customers(self) -> Iterator[Page[Customer]]:
        return self._pages("Client", "clients", parse_customer, {"includeinactive": "true"})

    def iter_changed_customers(self, *, since: datetime) -> Iterator[Page[Customer]]:
        """Customers created or updated at/after `since`, newest first (`alastupdate`, reference 4.1)."""
        params = {"includeinactive": "true", "order": "alastupdate", "orderdesc": "true"}
        pages = self._pages("Client", "clients", parse_customer, params)
        return paging.newest_first(pages, key=lambda c: c.last_modified, since=_aware(since))

    def iter_agreements(self) -> Iterator[Page[Agreement]]:
        """Agreements (HaloPSA contracts) with subtype names from the lookup."""
        parse = partial(parse_agreement, subtype_names=self.subtype_names())
        yield from self._pages("ClientContract", "contracts", parse, {"includeinactive": "true"})

    def iter_invoices(self, *, created_since: date | None = None) -> Iterator[Page[Invoice]]:
        """Every invoice, or those dated on/after `created_since` (newest first, stopping at the boundary)."""
        if created_since is None:
            return self._pages("Invoice", "invoices", parse_invoice, {})
        pages = self._pages("Invoice", "invoices", parse_invoice, {"order": "invoice_date", "orderdesc": "true"})
        return paging.newest_first(pages, key=lambda i: i.invoice_date, since=created_since)

    def iter_changed_invoices(self, *, since: datetime) -> Iterator[Page[Invoice]]:
        """Invoices created or updated at/after `since`: there is no modified-since filter, so sort and stop."""
        pages = self._pages("Invoice", "invoices", parse_invoice, {"order": "last_modified", "orderdesc": "true"})
        return paging.newest_first(pages, key=lambda i: i.last_modified, since=_aware(since))

    def iter_unpaid_invoices(self) -> Iterator[Page[Invoice]]:
        """Amount due > 0 and not voided. The server filter narrows the listing; the check here decides."""
        statuses = self._config.unpaid_payment_statuses.strip()
        params = {"paymentstatuses": statuses} if statuses else {}
        pages = self._pages("Invoice", "invoices", parse_invoice, params)
        return paging.keep(pages, lambda i: i.amount_due_cents > 0 and not i.voided)

    def get_invoice(self, halo_id: int) -> Invoice | None:
        """One invoice; None when HaloPSA has no such id. A malformed record raises RecordError."""
        body = self._get(f"Invoice/{int(halo_id)}", {})
        return None if body is None else parse_invoice(body)

    def subtype_names(self) -> dict[int, str]:
        """Agreement subtype id -> name from the lookup (id UNCONFIRMED, hence configurable); {} when unavailable."""
        if self._subtypes is None:
            self._subtypes = self._read_subtypes()
        return dict(self._subtypes)

    def _read_subtypes(self) -> dict[int, str]:
        try:
            body = self._get("Lookup", {"lookupid": self._config.subtype_lookup_id})
            rows, _ = paging.rows_of(body, "lookup") if body is not None else ([], None)
        except (AuthError, RateLimited, HaloUnavailable):
            raise
        except HaloError:
            return {}  # no such lookup, not permitted, unreadable: agreements fall back to "Subtype N"
        return _lookup_names(rows)

    def _pages(
        self, path: str, key: str, parse: Callable[[Any], T], params: Mapping[str, str | int]
    ) -> Iterator[Page[T]]:
        def fetch(page_no: int, page_size: int) -> Any:
            query = {**params, "pageinate": "true", "page_size": page_size, "page_no": page_no}
            body = self._get(path, query)
            if body is None:
                raise ProtocolError(
                    f"HaloPSA has no /api/{path} listing at {self.base_url} (HTTP 404). Check the App Domain."
                )
            self.stats.pages += 1
            return body

        return paging.paginate(fetch, key=key, parse=parse, page_size=self._config.page_size)

    # -- HTTP --------------------------------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, str | int]) -> Any | None:
        """GET /api/{path} as decoded JSON; None on 404. A 401 renews the token once; a second means no scope."""
        url = f"{self.base_url}/api/{path}"
        token = self._tokens.get()
        for renewed in (False, True):
            build = partial(self._build_get, url, params, token)
            response, body = self._sender.exchange(build, what=f"GET /api/{path}")
            if response.status_code != 401:
                break
            if renewed:
                raise self._denied(path)
            token = self._tokens.renew(token)
        status = response.status_code
        if response.is_success:
            return body
        if status == 404:
            return None
        if status == 403:
            raise self._denied(path)
        raise HaloError(f"HaloPSA refused GET /api/{path} (HTTP {status}). The sync will stop here; try again later.")

    def _build_get(self, url: str, params: Mapping[str, str | int], token: Token) -> httpx.Request:
        return self._http.build_request("GET", url, params=dict(params), headers={"Authorization": token.header})

    def _denied(self, path: str) -> HaloError:
        scope = auth.scope_for_path(path)
        if scope is None:
            return HaloError(f"HaloPSA refused access to /api/{path}; check the API application's permissions.")
        return PermissionMissing([scope])

    def _fetch_token(self) -> Token:
        requested_at = self._clock()
        params = {"tenant": self.tenant} if self.tenant else None
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "scope": "all",
        }

        def build() -> httpx.Request:
            self.stats.token_requests += 1
            return self._http.build_request("POST", f"{self.base_url}/auth/token", params=params, data=form)

        response, body = self._sender.exchange(build, what="the token request")
        if not response.is_success:
            raise auth.rejection(response.status_code, response.text, base_url=self.base_url, tenant=self.tenant)
        return auth.token_from_body(body, requested_at=requested_at)
