"""HaloPSA HTTP client: token, permissions, paged listings of typed records.

Requests go through `transport.Sender` (rate budget, retries, wait events); this module decides what the answers
mean: a 401 renews the token once, a second 401 or a 403 names the missing permission, a 404 is "no such record"
(or, on a list, a wrong App Domain), other 4xx stop at once. Secrets never reach a message, a log line or a repr.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache, partial
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, TypeVar

import httpx

from core.errors import AuthError, HaloError, HaloUnavailable, PermissionMissing, ProtocolError, RateLimited
from core.halopsa import auth, lookups, paging
from core.halopsa.auth import ScopeCheck, Token, TokenCache
from core.halopsa.config import HaloConfig, TenantProfile
from core.halopsa.deadline import DeadlineBackend
from core.halopsa.lookups import SubtypeLookup
from core.halopsa.network import PinnedBackend, PinnedTransport
from core.halopsa.paging import ListingReport, Method, Page
from core.halopsa.ratelimit import Budget, shared_budget
from core.halopsa.records import (
    Agreement,
    Customer,
    Invoice,
    name_currency,
    parse_agreement,
    parse_customer,
    parse_invoice,
)
from core.halopsa.transport import ClientEvent, ClientStats, Sender

__all__ = ["ClientEvent", "ClientStats", "HaloClient", "HaloConfig", "ListingReport", "Method", "Page", "ScopeCheck",
           "SubtypeLookup", "UnpaidCheck"]

T = TypeVar("T", bound=Customer | Agreement | Invoice)

DEFAULT_CONFIG = HaloConfig()
CHANGE_METHODS = (Method.SORTED, Method.DATESEARCH, Method.SCAN)
SORT_OR_SCAN = (Method.SORTED, Method.SCAN)  # listings without a date filter (customers, invoices by date)
DATESEARCH_MARGIN = timedelta(hours=12)
"""`start_date` goes this long before the window start: a tenant reading it in its own zone (UTC-12 at the latest) or
as a date still covers the window; the rows before it are filtered here."""
DATESEARCH_IGNORED = timedelta(days=2)
"""A row modified this long before the window start shows the date filter was ignored (no zone or date-only reading
of `start_date` reaches that far back)."""


@cache
def _tls() -> ssl.SSLContext:
    """One verifying TLS context (certifi's CAs, as httpx's default) for every client of the process: building one per
    client cost more CPU than the rest of a small sync together."""
    return httpx.create_ssl_context()


def _base(url: str) -> str:
    """`https://acme.halopsa.com`, also when given with a trailing slash or the `/api` resource path."""
    base = url.strip().rstrip("/")
    return base[: -len("/api")] if base.lower().endswith("/api") else base


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def wire_time(moment: datetime) -> str:
    """A moment as HaloPSA writes one: UTC without a zone designator."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def _customer_modified(customer: Customer) -> datetime | None:
    return customer.last_modified


def _invoice_modified(invoice: Invoice) -> datetime | None:
    return invoice.last_modified


def _invoice_dated(invoice: Invoice) -> date | None:
    return invoice.invoice_date


def _is_open(invoice: Invoice) -> bool:
    """What an unpaid refresh must see: an amount due, not voided."""
    return invoice.amount_due_cents > 0 and not invoice.voided


def _codes(statuses: str) -> frozenset[int] | None:
    """The `paymentstatuses` filter as numbers; None when there is no filter (every row is inside it)."""
    codes = frozenset(int(part) for part in statuses.split(",") if part.strip().lstrip("-").isdigit())
    return codes or None


@dataclass
class UnpaidCheck:
    """What one whole invoice listing showed about the server's unpaid filter (`paymentstatuses`, whose codes no
    source documents): how many rows it would list, and how many unpaid invoices it would miss (each of which a
    filtered refresh then re-reads by itself). Counts only; the codes never leave this module."""

    rows: int = 0
    open: int = 0
    inside: int = 0
    missed: int = 0

    def note(self, *, inside: bool, open_: bool) -> None:
        self.rows += 1
        self.open += open_
        self.inside += inside
        self.missed += open_ and not inside

    def filtered_cost(self, page_size: int) -> int:
        """Requests of a filtered refresh: the filtered listing, then one per unpaid invoice it misses."""
        return paging.listing_requests(self.inside, page_size) + self.missed

    def scan_cost(self, page_size: int) -> int:
        """Requests of reading the whole listing (a full page always asks for the next)."""
        return paging.listing_requests(self.rows, page_size)

    def prefer_scan(self, page_size: int) -> bool:
        return self.filtered_cost(page_size) > self.scan_cost(page_size)


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
        token_url: str | None = None,
    ) -> None:
        """`budget_for` gives the request budget for a tenant key (base URL and tenant); by default the budget is
        shared by the clients of this process only. `token_url` is the token endpoint when it is already known (a
        probe's result); by default it is discovered from `/api/AuthInfo` on the first token request."""
        self.base_url = _base(base_url)
        self.tenant = tenant or None
        self._client_id = client_id
        self._client_secret = client_secret
        self._config = config
        self._clock = clock
        if transport is None:  # each new connection re-checks the App Domain's addresses (no DNS rebinding)
            backend = PinnedBackend(allow_local=config.allow_local_domains)  # and ends by each request's deadline
            transport = PinnedTransport(ssl_context=_tls(), backend=DeadlineBackend(backend))
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
        self._page_size = config.page_size
        self._page_size_proven = False
        self._unpaid_statuses = config.unpaid_payment_statuses
        # where tokens come from, and the tenant AuthInfo named: given, or discovered by the first token request
        self._token_endpoint: tuple[str, str | None] | None = (token_url, None) if token_url else None
        self._token_discovered = False
        self._currencies: dict[int, str] | None = None
        self._unpaid_check: UnpaidCheck | None = None

    def __repr__(self) -> str:
        return f"HaloClient(base_url={self.base_url!r}, tenant={self.tenant!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HaloClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def config(self) -> HaloConfig:
        return self._config

    def adopt(self, profile: TenantProfile) -> None:
        """Use what a probe found on this tenant (token endpoint, page size, unpaid codes); before the first request."""
        self._token_endpoint = (profile.token_url, None)
        self._page_size = profile.page_size
        self._page_size_proven = profile.page_size_proven
        self._unpaid_statuses = profile.unpaid_payment_statuses

    @property
    def page_size(self) -> int:
        """The rows a listing asks for per page."""
        return self._page_size

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

    def iter_changed_customers(self, *, since: datetime, method: Method = Method.SORTED,
                               report: ListingReport | None = None) -> Iterator[Page[Customer]]:
        """Customers created or updated at/after `since` (`alastupdate`, reference 4.1): newest first where the tenant
        sorts by it, else a full scan (customers have no date filter)."""
        return self._changes("Client", "clients", parse_customer, {"includeinactive": "true"}, order="alastupdate",
                             datesearch=None, modified=_customer_modified, since=_aware(since), start=method,
                             report=report)

    def iter_agreements(self) -> Iterator[Page[Agreement]]:
        """Agreements (HaloPSA contracts), each with its subtype id (names: `subtype_lookup`)."""
        return self._pages("ClientContract", "contracts", parse_agreement, {"includeinactive": "true"})

    def iter_invoices(self, *, created_since: date | None = None,
                      report: ListingReport | None = None) -> Iterator[Page[Invoice]]:
        """Every invoice, or those dated on/after `created_since` (newest first, stopping at the boundary, or a full
        scan where the tenant does not sort by date). A whole listing also checks the unpaid filter (`unpaid_check`)."""
        if created_since is None:
            return self._all_invoices({})
        return self._changes("Invoice", "invoices", parse_invoice, {}, order="invoice_date", datesearch=None,
                             modified=_invoice_dated, since=created_since, start=Method.SORTED, report=report)

    def iter_changed_invoices(self, *, since: datetime, method: Method = Method.SORTED,
                              report: ListingReport | None = None) -> Iterator[Page[Invoice]]:
        """Invoices created or updated at/after `since`, by `method` or the next one the tenant honours (sorted by
        `last_modified`, then `datesearch=last_modified`, then a full scan); `report` says which served and the cost."""
        return self._changes("Invoice", "invoices", parse_invoice, {}, order="last_modified",
                             datesearch="last_modified", modified=_invoice_modified, since=_aware(since), start=method,
                             report=report)

    def iter_unpaid_invoices(self, *, filtered: bool = True,
                             known: Collection[int] = frozenset()) -> Iterator[Page[Invoice]]:
        """Amount due > 0 and not voided, decided here, and the invoices of `known` (unpaid when last read) as they
        are now. `filtered`: the server's `paymentstatuses` filter narrows the listing first; otherwise the whole
        listing is read (a tenant whose status codes differ, see `unpaid_check`)."""
        statuses = self._unpaid_statuses.strip()
        if filtered and statuses:
            pages = self._pages("Invoice", "invoices", parse_invoice, {"paymentstatuses": statuses})
        else:
            pages = self._all_invoices({})
        return paging.keep(pages, lambda invoice: _is_open(invoice) or invoice.halo_id in known)

    @property
    def unpaid_check(self) -> UnpaidCheck | None:
        """What the last whole invoice listing this client read showed about the unpaid filter (None: none read)."""
        return self._unpaid_check

    def _all_invoices(self, params: Mapping[str, str | int]) -> Iterator[Page[Invoice]]:
        """Every invoice, noting per row whether the unpaid filter would list it; the note is kept once the listing
        has been read to its end."""
        check = UnpaidCheck()
        codes = _codes(self._unpaid_statuses)

        def parse(raw: Any) -> Invoice:
            invoice = parse_invoice(raw)
            check.note(inside=codes is None or raw.get("paymentstatus") in codes, open_=_is_open(invoice))
            return invoice

        yield from self._pages("Invoice", "invoices", parse, params)
        self._unpaid_check = check

    def _changes(
        self, path: str, key: str, parse: Callable[[Any], T], params: Mapping[str, str], *, order: str,
        datesearch: str | None, modified: Callable[[T], Any], since: datetime | date, start: Method,
        report: ListingReport | None,
    ) -> Iterator[Page[T]]:
        """Records with `key >= since`, read by `start` or the next method the tenant honours (see paging)."""
        available: tuple[Method, ...] = CHANGE_METHODS if datesearch else SORT_OR_SCAN
        methods = available[available.index(start):] if start in available else available[-1:]
        report = ListingReport() if report is None else report

        def attempt(method: Method, _last: bool) -> Iterator[Page[T]]:
            if method == Method.SORTED:
                pages = self._pages(path, key, parse, {**params, "order": order, "orderdesc": "true"})
                # an unsorted listing is a whole listing: read on as the scan when that is what comes next
                scan_next = methods[methods.index(method) + 1] == Method.SCAN
                return paging.newest_first(pages, key=modified, since=since, report=report, give_way=not scan_next)
            if method == Method.DATESEARCH and datesearch and isinstance(since, datetime):
                query = {**params, "datesearch": datesearch, "start_date": wire_time(since - DATESEARCH_MARGIN)}
                pages = self._pages(path, key, parse, query)
                return paging.date_filtered(pages, key=modified, since=since, outside=since - DATESEARCH_IGNORED,
                                            report=report)
            return paging.not_before(self._pages(path, key, parse, params), key=modified, start=since)

        return paging.with_fallback(methods, attempt, report, requests=lambda: self.stats.requests)

    def get_invoice(self, halo_id: int) -> Invoice | None:
        """One invoice; None when HaloPSA has no such id. A malformed record raises RecordError."""
        body = self._get(f"Invoice/{int(halo_id)}", {})
        return None if body is None else parse_invoice(body, self.currency_code)

    def subtype_lookup(self, lookup_id: int, subtype_ids: Collection[int]) -> SubtypeLookup:
        """The agreement subtype names lookup `lookup_id` holds, taken only when it is verified (its rows are that
        lookup's and name every id of `subtype_ids`, those found on the agreements; see core.halopsa.lookups). A
        lookup HaloPSA does not have, refuses or answers unreadably is not verified, with why; an expired token, a
        rate limit or HaloPSA being down raise as on any request."""
        try:
            body = self._get("Lookup", {"lookupid": lookup_id})
            if body is None:
                return lookups.unreadable(lookup_id, "HaloPSA has no such lookup (HTTP 404).")
            rows, _ = paging.rows_of(body, "lookup")
        except (AuthError, RateLimited, HaloUnavailable):
            raise
        except HaloError as exc:
            return lookups.unreadable(lookup_id, exc.message)
        return lookups.verify(rows, lookup_id=lookup_id, subtype_ids=subtype_ids)

    def currency_code(self, currency_id: int) -> str | None:
        """The ISO code of HaloPSA's currency `currency_id` (an invoice's `currency_code`), from `/api/Currency`, read
        once per client and only when a row lacks the code; None when unknown or the list is unavailable."""
        if self._currencies is None:
            self._currencies = self._read_currencies()
        return self._currencies.get(currency_id)

    def _read_currencies(self) -> dict[int, str]:
        try:
            body = self._get("Currency", {})
            rows, _ = paging.rows_of(body, "currencies") if body is not None else ([], None)
        except (AuthError, RateLimited, HaloUnavailable):
            raise
        except HaloError:
            return {}  # not there, not permitted, unreadable: such invoices keep no currency (never the symbol)
        codes: dict[int, str] = {}
        for row in rows:
            if isinstance(row, dict) and type(row.get("id")) is int and isinstance(row.get("code"), str):
                codes[row["id"]] = row["code"]
        return codes

    def _pages(
        self, path: str, key: str, parse: Callable[[Any], T], params: Mapping[str, str | int]
    ) -> Iterator[Page[T]]:
        def fetch(page_no: int, page_size: int) -> Any:
            return self._page(path, params, page_size=page_size, page_no=page_no)

        pages = paging.paginate(fetch, key=key, parse=parse, page_size=self._page_size,
                                size_proven=self._page_size_proven)
        return self._named_currencies(pages) if path == "Invoice" else pages

    def _page(self, path: str, params: Mapping[str, str | int], *, page_size: int, page_no: int) -> Any:
        """One decoded page of a listing (always `pageinate=true`: without it HaloPSA ignores the paging asked)."""
        body = self._get(path, {**params, "pageinate": "true", "page_size": page_size, "page_no": page_no})
        if body is None:
            raise ProtocolError(
                f"HaloPSA has no /api/{path} listing at {self.base_url} (HTTP 404). Check the App Domain."
            )
        self.stats.pages += 1
        return body

    def sample(self, path: str, key: str, params: Mapping[str, str | int], *, page_size: int,
               page_no: int = 1) -> list[Any]:
        """The raw rows of one page of a listing, unparsed (a probe looks at what rows carry)."""
        rows, _ = paging.rows_of(self._page(path, params, page_size=page_size, page_no=page_no), key)
        return rows

    def token_endpoint(self) -> tuple[str, bool]:
        """The token URL, and whether `/api/AuthInfo` named it (asked now when not known yet)."""
        self._tokens.get()  # finds the endpoint first, under the token cache's lock
        assert self._token_endpoint is not None
        return self._token_endpoint[0], self._token_discovered

    def currency_codes(self) -> tuple[str, ...]:
        """The ISO codes of the tenant's currencies (`/api/Currency`), sorted; () when unavailable."""
        if self._currencies is None:
            self._currencies = self._read_currencies()
        return tuple(sorted(set(self._currencies.values())))

    def _named_currencies(self, pages: Iterator[Page[T]]) -> Iterator[Page[T]]:
        """Invoice pages, each invoice whose row had no ISO code named by its currency id (see `currency_code`)."""
        for page in pages:
            for record in page.records:
                if isinstance(record, Invoice):
                    name_currency(record, self.currency_code)
            yield page

    # -- HTTP --------------------------------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, str | int]) -> Any | None:
        """GET /api/{path} as decoded JSON; None on 404. A 401, or a 400 refusing the token (some tenants answer an
        expired token so), renews the token once; a second 401 means no scope, a second such 400 a refused token."""
        url = f"{self.base_url}/api/{path}"
        token = self._tokens.get()
        for renewed in (False, True):
            build = partial(self._build_get, url, params, token)
            response, body = self._sender.exchange(build, what=f"GET /api/{path}")
            oauth_400 = response.status_code == 400 and auth.is_token_refusal(400, response.text, response.headers)
            if response.status_code != 401 and not oauth_400:
                break
            if renewed:
                raise auth.refused_again(f"GET /api/{path}") if oauth_400 else self._denied(path)
            token = self._tokens.renew(token)
        status = response.status_code
        if response.is_success:
            return body
        if status == 404:
            return None
        if status == 403:
            raise self._denied(path)
        raise HaloError(f"HaloPSA refused GET /api/{path} (HTTP {status}).",
                        next_step="The sync will stop here; try again later.")

    def _build_get(self, url: str, params: Mapping[str, str | int], token: Token) -> httpx.Request:
        return self._http.build_request("GET", url, params=dict(params), headers={"Authorization": token.header})

    def _denied(self, path: str) -> HaloError:
        scope = auth.scope_for_path(path)
        if scope is None:
            return HaloError(f"HaloPSA refused access to /api/{path}; check the API application's permissions.")
        return PermissionMissing([scope])

    def _token_target(self) -> tuple[str, str | None]:
        """Where tokens come from and the tenant AuthInfo names: asked once per client (under the token cache's
        lock), falling back to `{host}/auth/token` when the route is absent, refused or its answer unusable."""
        if self._token_endpoint is None:
            found: tuple[str, str | None] | None = None
            try:
                build = partial(self._http.build_request, "GET", f"{self.base_url}/api/AuthInfo")
                response, body = self._sender.exchange(build, what="GET /api/AuthInfo", attempts=1)
                if response.is_success:
                    found = auth.discovered_endpoint(body, base_url=self.base_url)
            except HaloError:  # not there, rate limited, down, not JSON: the token request says what is wrong
                found = None
            self._token_endpoint = found or (auth.fallback_token_url(self.base_url), None)
            self._token_discovered = found is not None
        return self._token_endpoint

    def _fetch_token(self) -> Token:
        token_url, named_tenant = self._token_target()
        requested_at = self._clock()
        tenant = self.tenant or named_tenant  # one typed in wins
        params = {"tenant": tenant} if tenant else None
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "scope": "all",
        }

        def build() -> httpx.Request:
            self.stats.token_requests += 1
            return self._http.build_request("POST", token_url, params=params, data=form)

        response, body = self._sender.exchange(build, what="the token request")
        if not response.is_success:
            raise auth.rejection(response.status_code, response.text, token_url=token_url, tenant=self.tenant)
        return auth.token_from_body(body, requested_at=requested_at)
