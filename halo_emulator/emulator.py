"""HaloEmulator: one HaloPSA instance answering `httpx.Request -> httpx.Response`.

A request passes, in order: the configured latency, the request log, the rate limiter (only `/api`, and the token
endpoint if configured), the injected faults, the router. The lock covers state and bookkeeping; sleeping (latency or
a slow fault), encoding the body and mutate callbacks happen outside it, so one slow request never stalls the other
client threads.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import httpx

from halo_emulator.auth import KNOWN_SCOPES, TokenStore
from halo_emulator.config import EmulatorConfig
from halo_emulator.data import generate
from halo_emulator.evolution import Changes, Evolution
from halo_emulator.faults import (
    DEFAULT_OVERSIZE_BYTES,
    DEFAULT_TIMEOUT_HOLD_S,
    DRIP,
    MALFORMED_PAGE,
    SHORT_CIRCUITS,
    Dropped,
    FaultRule,
    Stalled,
    corrupt_listing,
    oversized,
)
from halo_emulator.ratelimit import RollingWindow
from halo_emulator.reply import Reply, json_reply, text_reply
from halo_emulator.routes import Credentials, Router
from halo_emulator.state import InvalidRecord, TenantState
from halo_emulator.table import Table
from halo_emulator.wire import cents, from_seconds, money, to_seconds

_PROXY_PAGES = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


@dataclass(frozen=True)
class LogEntry:
    at: float
    """The emulator's monotonic clock when the request arrived."""
    method: str
    path: str
    query: Mapping[str, str]


@dataclass
class Stats:
    requests: int = 0
    rate_limited: int = 0
    """429s served, by the limiter or by a rate_limit fault."""
    by_path: Counter[str] = field(default_factory=Counter)
    """Requests per path, lower-cased, without a trailing slash."""
    log: list[LogEntry] = field(default_factory=list)

    def entries(self, path: str) -> list[LogEntry]:
        """Logged requests to exactly this path (case-insensitive), e.g. to check paging parameters."""
        wanted = path.lower().rstrip("/")
        return [e for e in self.log if e.path.lower().rstrip("/") == wanted]


class HaloEmulator:
    """One HaloPSA instance. `HaloEmulator(invoices=5000, seed=3)` or `HaloEmulator(EmulatorConfig(...))`."""

    def __init__(self, config: EmulatorConfig | None = None, **overrides: Any) -> None:
        if config is None:
            config = EmulatorConfig(**overrides)
        elif overrides:
            config = replace(config, **overrides)
        self.config = config
        self.stats = Stats()
        self._lock = threading.RLock()
        self._state = TenantState(config, generate(config))
        self._now_s = to_seconds(config.start)
        self._tokens = TokenStore(config.clock)
        self._credentials = Credentials(
            config.resolved_client_id, config.resolved_client_secret, tuple(config.granted_scopes)
        )
        self._router = Router(config, self._state, self._tokens, self._credentials, lambda: self._now_s)
        self._evolution = Evolution(self._state)
        self._limiter = RollingWindow(*config.rate_limit, config.clock) if config.rate_limit else None
        self._faults: list[FaultRule] = []

    # ---- identity and state ----------------------------------------------------------------------------------------

    @property
    def client_id(self) -> str:
        return self._credentials.client_id

    @property
    def client_secret(self) -> str:
        return self._credentials.client_secret

    @property
    def scopes(self) -> tuple[str, ...]:
        return self._credentials.scopes

    @property
    def subtype_lookup_id(self) -> int:
        """The lookup id holding this tenant's agreement subtype names (`GET /api/Lookup?lookupid=…`)."""
        return self.config.lookup_ids[0]

    @property
    def now(self) -> datetime:
        return from_seconds(self._now_s)

    @property
    def clients(self) -> Mapping[int, dict[str, Any]]:
        """Read-only view: id -> wire row. Rows are replaced on change, never edited in place."""
        return self._view(self._state.clients)

    @property
    def contracts(self) -> Mapping[int, dict[str, Any]]:
        return self._view(self._state.contracts)

    @property
    def invoices(self) -> Mapping[int, dict[str, Any]]:
        return self._view(self._state.invoices)

    @property
    def payments(self) -> Mapping[int, dict[str, Any]]:
        return self._view(self._state.payments)

    @property
    def webhooks(self) -> Mapping[str, dict[str, Any]]:
        return self._view(self._state.webhooks)

    def as_sent(self, table: str, row_id: Any) -> dict[str, Any]:
        """A record as the API sends it (`table` is "clients", "contracts", "invoices" or "payments"): the stored row
        with its timestamps in the record's wire form (`timestamp_form`)."""
        with self._lock:
            stored: Table = getattr(self._state, table)
            return stored.present(stored.rows[row_id])

    def _view(self, table: Table) -> Mapping[Any, dict[str, Any]]:
        with self._lock:  # the first look at payments builds them
            return MappingProxyType(table.rows)

    def summary(self) -> dict[str, Any]:
        with self._lock:
            state = self._state
            return {
                "now": self.now.isoformat(),
                "clients": len(state.clients),
                "contracts": len(state.contracts),
                "invoices": len(state.invoices),
                "payments": len(state.payments),
                "webhooks": len(state.webhooks),
                "subtype_lookup_id": self.subtype_lookup_id,
                "requests": self.stats.requests,
                "rate_limited": self.stats.rate_limited,
            }

    # ---- HTTP ------------------------------------------------------------------------------------------------------

    def transport(self, *, before: Callable[[], None] | None = None) -> httpx.MockTransport:
        """An in-process transport; `before` runs ahead of every request (the sandbox catches its clock up there)."""
        if before is None:
            return httpx.MockTransport(self.handle)

        def handle(request: httpx.Request) -> httpx.Response:
            before()
            return self.handle(request)

        return httpx.MockTransport(handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        """The MockTransport handler: connection-level faults become the exceptions httpx would raise."""
        try:
            return self.respond(request)
        except Dropped:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from None
        except Stalled:
            raise httpx.ReadTimeout("The read operation timed out", request=request) from None

    def respond(self, request: httpx.Request) -> httpx.Response:
        """Answer a request; raises `Dropped` or `Stalled` when a fault says there is no answer (server.py)."""
        if self.config.latency_s:
            self.config.sleep(self.config.latency_s)
        path = request.url.path.lower().rstrip("/") or "/"
        query = {k.lower(): v for k, v in request.url.params.multi_items()}
        with self._lock:
            self._log(request, path, query)
            refusal = self._rate_limit(path)
            if refusal is not None:
                return refusal.to_response()
            fired = self._fired(request.method, path, query)
            short = next((rule for rule in fired if rule.kind in SHORT_CIRCUITS), None)
            if short is not None:
                return self._short_circuit(short).to_response()
        for rule in fired:
            if rule.kind == "slow":
                self._wait(request, rule.delay_s or 0.0)
        with self._lock:
            reply = self._router.route(request)
        for rule in fired:
            if rule.kind == "malformed_record":
                reply.payload = corrupt_listing(reply.payload, rule)
            elif rule.kind == "malformed_json":
                reply = text_reply(200, MALFORMED_PAGE, content_type="text/html; charset=utf-8")
        body = reply.body()
        if any(rule.kind == "truncated" for rule in fired):
            body = body[: len(body) // 2]
        response = reply.to_response(body)
        for rule in fired:
            if rule.kind == "token_expiry":
                self.expire_tokens()
            elif rule.kind == "mutate" and rule.on_request is not None:
                rule.on_request(self, request)
            elif rule.kind == "drip":
                response.extensions[DRIP] = rule.bytes_per_s or 1.0
            elif rule.kind == "oversize":
                response = oversized(response, rule.size_bytes or DEFAULT_OVERSIZE_BYTES)
        return response

    def _log(self, request: httpx.Request, path: str, query: Mapping[str, str]) -> None:
        stats = self.stats
        stats.requests += 1
        stats.by_path[path] += 1
        stats.log.append(LogEntry(self.config.clock(), request.method, request.url.path, dict(query)))

    def _rate_limit(self, path: str) -> Reply | None:
        counted = path.startswith("/api/") or (path == "/auth/token" and self.config.count_token_requests)
        if self._limiter is None or not counted:
            return None
        retry_after = self._limiter.admit()
        if retry_after is None:
            return None
        headers = {"Retry-After": str(retry_after)} if self.config.retry_after_header else None
        self.stats.rate_limited += 1
        return text_reply(429, self.config.rate_limit_text, headers=headers)

    def _fired(self, method: str, path: str, query: Mapping[str, str]) -> list[FaultRule]:
        try:
            page_no = int(query.get("page_no", "1"))
        except ValueError:
            page_no = 1
        return [rule for rule in self._faults if rule.matches(method, path, page_no) and rule.hit()]

    def _short_circuit(self, rule: FaultRule) -> Reply:
        headers = rule.retry_after_headers()
        if rule.kind == "rate_limit":
            self.stats.rate_limited += 1
            return text_reply(429, self.config.rate_limit_text, headers=headers)
        if rule.kind == "drop":
            raise Dropped
        if rule.kind == "timeout":
            raise Stalled(rule.delay_s or DEFAULT_TIMEOUT_HOLD_S)
        status = rule.status or 500
        if status in _PROXY_PAGES:
            page = f"<html><head><title>{status} {_PROXY_PAGES[status]}</title></head><body><h1>{status} {_PROXY_PAGES[status]}</h1></body></html>"  # noqa: E501
            return text_reply(status, page, content_type="text/html", headers=headers)
        return json_reply(status, {"ClassName": "System.Exception", "Message": "An error has occurred."}, headers)

    def _wait(self, request: httpx.Request, delay_s: float) -> None:
        """A slow answer. In-process clients state their read timeout; if it is shorter, time out without waiting."""
        read_timeout = (request.extensions.get("timeout") or {}).get("read")
        if read_timeout is not None and delay_s >= read_timeout:
            raise Stalled(delay_s)
        self.config.sleep(delay_s)

    # ---- faults ----------------------------------------------------------------------------------------------------

    def add_fault(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._faults.append(rule)
        return rule

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def faults(self) -> tuple[FaultRule, ...]:
        return tuple(self._faults)

    # ---- the API application ---------------------------------------------------------------------------------------

    def set_scopes(self, scopes: Iterable[str]) -> None:
        """Change the application's permissions; tokens issued from now on carry them (existing ones keep theirs)."""
        granted = tuple(scopes)
        unknown = [s for s in granted if s not in KNOWN_SCOPES]
        if unknown:
            raise ValueError(f"unknown scopes: {', '.join(unknown)}")
        with self._lock:
            self._credentials.scopes = granted

    def rotate_secret(self, new_secret: str) -> None:
        """A new client secret: the old one is refused from now on and every issued token is revoked."""
        with self._lock:
            self._credentials.client_secret = new_secret
            self._tokens.revoke_all()

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens.revoke_all()

    # ---- the clock and direct changes ------------------------------------------------------------------------------

    def advance(self, to: datetime) -> Changes:
        """Move the clock forward to `to`, applying that stretch's invoices, payments and edits."""
        to_s = to_seconds(to if to.tzinfo else to.replace(tzinfo=UTC))
        with self._lock:
            if to_s < self._now_s:
                raise ValueError(f"the clock cannot go back (now {self.now.isoformat()}, asked {to.isoformat()})")
            changes = self._evolution.advance(self._now_s, to_s)
            self._now_s = to_s
            return changes

    def _stamp_s(self, modified_at: datetime | None) -> int:
        """When a change is stamped: now, or `modified_at` (a change HaloPSA stamps with an earlier time, as an import
        or a back-dated edit does, so no later incremental listing by modification time sees it)."""
        if modified_at is None:
            return self._now_s
        return to_seconds(modified_at if modified_at.tzinfo else modified_at.replace(tzinfo=UTC))

    def add_invoice(self, client_id: int | None = None, *, modified_at: datetime | None = None,
                    **fields: Any) -> dict[str, Any]:
        """A new posted invoice at the current time, or stamped `modified_at` (first active customer and $100.00
        unless given)."""
        with self._lock:
            if client_id is None:
                client_id = self._state.active_clients()[0]
            body = {"client_id": client_id, "total": 100.0, "posted": True, **fields}
            return self._state.create_invoice(body, self._stamp_s(modified_at), strict=True)

    def edit_invoice(self, invoice_id: int, *, modified_at: datetime | None = None, **fields: Any) -> dict[str, Any]:
        """Change an invoice's fields, stamped now or `modified_at` (see `_stamp_s`)."""
        with self._lock:
            return self._state.update_invoice(invoice_id, fields, self._stamp_s(modified_at), strict=True)

    def void_invoice(self, invoice_id: int) -> dict[str, Any]:
        with self._lock:
            return self._state.void_invoice(invoice_id, self._now_s)

    def delete_invoice(self, invoice_id: int) -> dict[str, Any]:
        """Delete an invoice in HaloPSA: gone from listings, 404 on its single read; returns the row it had."""
        with self._lock:
            return self._state.delete_invoice(invoice_id)

    def pay_invoice(self, invoice_id: int, amount: float | None = None, **fields: Any) -> dict[str, Any]:
        """Record a payment (the whole amount due unless given); returns the payment row."""
        with self._lock:
            invoice = self._state.invoices.get(invoice_id)
            if invoice is None:
                raise InvalidRecord("invoice_id", f"No invoice with id {invoice_id}")
            due = money(cents(invoice["amountdue"]))
            body = {"invoice_id": invoice_id, "amount": due if amount is None else amount, **fields}
            return self._state.record_payment(body, self._now_s, strict=True)

    def add_client(self, name: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            return self._state.create_client({"name": name, **fields}, self._now_s, strict=True)

    def edit_client(self, client_id: int, **fields: Any) -> dict[str, Any]:
        with self._lock:
            return self._state.update_client(client_id, fields, self._now_s, strict=True)

    def add_contract(self, client_id: int, **fields: Any) -> dict[str, Any]:
        with self._lock:
            return self._state.create_contract({"client_id": client_id, **fields}, self._now_s, strict=True)

    def edit_contract(self, contract_id: int, **fields: Any) -> dict[str, Any]:
        with self._lock:
            return self._state.update_contract(contract_id, fields, self._now_s, strict=True)
