"""Small hand-written HaloPSA fakes for the client's unit tests: precise fault sequences, a fake clock, no waiting."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from core.halopsa.client import ClientEvent, HaloClient
from core.halopsa.config import REQUIRED_SCOPES, HaloConfig
from tests.support.clock import FakeClock

SECRET = "s3cr3t-Do-Not-Leak-42"
CLIENT_ID = "0b8f6a43-1c1e-4f55-9b7e-3f0d2a1c9e77"

Reply = httpx.Response | Callable[[httpx.Request], httpx.Response] | Exception

_hosts = itertools.count(1)


def invoice_row(halo_id: int, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": halo_id,
        "invoicenumber": str(halo_id),
        "client_id": 1,
        "total": 100.0,
        "amountpaid": 0.0,
        "amountdue": 100.0,
        "voided": False,
        "invoice_date": "2025-01-01T00:00:00",
        "last_modified": "2025-01-01T00:00:00",
    }
    row.update(fields)
    return row


@dataclass
class FakeHalo:
    """Routes like HaloPSA: token endpoint plus `/api/<Entity>` lists that honour paging and (optionally) order.

    `queue(path, *replies)` scripts the next replies for a path (a Response, a handler or an exception to raise),
    served before the normal answer: that is how tests inject 429s, 5xx, timeouts and 401s.
    """

    lists: dict[str, tuple[str, list[dict[str, Any]]]] = field(default_factory=dict)
    scope: str | None = " ".join(REQUIRED_SCOPES)
    expires_in: float = 3600
    page_size_cap: int = 10_000
    honour_order: bool = True
    with_record_count: bool = True
    requests: list[httpx.Request] = field(default_factory=list)
    clock: Callable[[], float] | None = None
    times: list[float] = field(default_factory=list)  # when each request arrived, by `clock`
    tokens_issued: int = 0
    scripted: dict[str, deque[Reply]] = field(default_factory=lambda: defaultdict(deque))

    def queue(self, path: str, *replies: Reply) -> None:
        self.scripted[path.lower()].extend(replies)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def api_requests(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path.lower() == path.lower()]

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.clock is not None:
            self.times.append(self.clock())
        path = request.url.path.lower()
        script = self.scripted.get(path)
        if script:
            reply = script.popleft()
            if isinstance(reply, Exception):
                raise reply
            return reply if isinstance(reply, httpx.Response) else reply(request)
        if path == "/auth/token":
            self.tokens_issued += 1
            body: dict[str, Any] = {"token_type": "Bearer", "access_token": f"tok-{self.tokens_issued}"}
            body["expires_in"] = self.expires_in
            if self.scope is not None:
                body["scope"] = self.scope
            return httpx.Response(200, json=body)
        entity = path.removeprefix("/api/")
        if entity in self.lists:
            return self._list(request, *self.lists[entity])
        return httpx.Response(404, text="Not found")

    def _list(self, request: httpx.Request, key: str, rows: list[dict[str, Any]]) -> httpx.Response:
        params = request.url.params
        ordered = list(rows)
        if self.honour_order and "order" in params:
            ordered.sort(key=lambda r: r.get(params["order"]) or "", reverse=params.get("orderdesc") == "true")
        size = min(int(params.get("page_size", 50)), self.page_size_cap)
        page_no = int(params.get("page_no", 1))
        chunk = ordered[(page_no - 1) * size : page_no * size]
        body: dict[str, Any] = {key: chunk}
        if self.with_record_count:
            body["record_count"] = len(rows)
        return httpx.Response(200, content=json.dumps(body).encode(), headers={"content-type": "application/json"})


def make_client(
    fake: FakeHalo,
    clock: FakeClock | None = None,
    *,
    events: list[ClientEvent] | None = None,
    tenant: str | None = None,
    base_url: str | None = None,
    **config: Any,
) -> HaloClient:
    """A client with a fake clock unless one is given, on a fresh host name (its own rate budget) unless told."""
    clock = clock or FakeClock()
    return HaloClient(
        base_url=base_url or f"https://tenant{next(_hosts)}.halopsa.test",
        client_id=CLIENT_ID,
        client_secret=SECRET,
        tenant=tenant,
        config=HaloConfig(**config),
        transport=fake.transport(),
        sleep=clock.sleep,
        clock=clock,
        on_event=events.append if events is not None else None,
    )


def emulator_client(
    emulator: Any,
    clock: FakeClock | None = None,
    *,
    base_url: str | None = None,
    transport: httpx.BaseTransport | None = None,
    secret: str | None = None,
    tenant: str | None = None,
    events: list[ClientEvent] | None = None,
    **config: Any,
) -> HaloClient:
    """A client of a HaloEmulator: in process (its MockTransport) unless a base_url of a served one (on loopback, so
    local domains allowed) is given."""
    clock = clock or FakeClock()
    return HaloClient(
        base_url=base_url or f"https://emulated{next(_hosts)}.sandbox",
        client_id=emulator.client_id,
        client_secret=emulator.client_secret if secret is None else secret,
        tenant=tenant,
        config=HaloConfig(**{"allow_local_domains": base_url is not None, **config}),
        transport=transport if transport is not None or base_url else emulator.transport(),
        sleep=clock.sleep,
        clock=clock,
        on_event=events.append if events is not None else None,
    )
