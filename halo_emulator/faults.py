"""Injected faults: what a flaky network or a misbehaving HaloPSA does to a client mid-sync.

A rule matches requests by path (case-insensitive, a path or anything below it), optionally by method and page
number; it skips the first `after` matches, then hits the next `times` (None: all). Kinds:

- rate_limit        429 with HaloPSA's text, `Retry-After: retry_after` when set (seconds, or a text such as an
                    HTTP date, sent as it is); without it, the bare-text 429 HaloPSA is known to send
- status            `status` (default 500) with an error body; 502/503 come as a proxy's HTML page
- slow              wait `delay_s`, then answer normally (MockTransport: ReadTimeout at once if the client's
                    read timeout is shorter, so tests never wait)
- timeout           never answer: ReadTimeout in MockTransport mode; over a socket, hold the connection
                    `delay_s` (default 30 s), then close it
- drop              close the connection without a response (MockTransport: RemoteProtocolError)
- truncated         the body cut in half (a 200 that is not valid JSON)
- malformed_json    a 200 with an HTML error page instead of JSON
- malformed_record  one record of a listing page corrupted (`field`, default per entity; set to `value` when given,
                    e.g. a poison 1e20 total or 2**63 id), the rest intact
- token_expiry      the request is answered, then every token expires
- mutate            `on_request(emulator, request)` runs after the request is answered (records changing while
                    a client pages)
- drip              over a socket, the body is sent `bytes_per_s` bytes a second (default 1), so no single read
                    ever waits long while the whole answer takes ages; in process the answer comes at once
- oversize          the answer padded with leading whitespace (still valid JSON) to `size_bytes`, produced in
                    1 MiB pieces and sent chunked, without a Content-Length (a runaway page): costs the emulator
                    no memory, in process or over a socket
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

import httpx

FAULT_KINDS = frozenset(
    {
        "rate_limit", "status", "slow", "timeout", "drop", "truncated", "malformed_json", "malformed_record",
        "token_expiry", "mutate", "drip", "oversize",
    }
)  # fmt: skip
SHORT_CIRCUITS = frozenset({"rate_limit", "status", "timeout", "drop"})
"""Kinds that replace the answer: the request itself is never processed."""
DEFAULT_TIMEOUT_HOLD_S = 30.0
NO_VALUE: Any = object()
"""A malformed_record rule without a `value` (None is a value: a record's field set to null)."""
DRIP = "halo_emulator.drip_bytes_per_s"
"""The response extension that tells the server to drip the body, and how fast."""
OVERSIZE = "halo_emulator.oversize_bytes"
"""The response extension that tells the server to stream the (lazily padded) body chunked."""
DEFAULT_OVERSIZE_BYTES = 300 * 2**20
_PAD = b" " * 2**20
# A field each listing can lose without losing the record's id, so the client can name the bad record.
_DEFAULT_CORRUPT_FIELD = {"invoices": "total", "clients": "name", "contracts": "start_date", "payments": "amount"}
MALFORMED_PAGE = (
    "<!DOCTYPE html><html><head><title>Service Unavailable</title></head>"
    "<body><h1>Service Unavailable</h1><p>The server is temporarily unable to service your request.</p></body></html>"
)


class Dropped(Exception):
    """Close the connection without writing a response."""


class Stalled(Exception):
    """Hold the connection without answering."""

    def __init__(self, delay_s: float) -> None:
        super().__init__(f"stalled for {delay_s} s")
        self.delay_s = delay_s


@dataclass(eq=False)
class FaultRule:
    kind: str
    path: str | None = None
    times: int | None = 1
    after: int = 0
    method: str | None = None
    status: int | None = None
    retry_after: float | str | None = None
    delay_s: float | None = None
    on_page: int | None = None
    field: str | None = None
    bytes_per_s: float | None = None
    size_bytes: int | None = None
    value: Any = NO_VALUE
    """malformed_record: what the field is set to (NO_VALUE: something of the wrong type, per field)."""
    on_request: Callable[[Any, httpx.Request], None] | None = None
    seen: int = dataclass_field(default=0, init=False)
    """Matching requests so far (including skipped ones)."""
    fired: int = dataclass_field(default=0, init=False)
    corrupted_ids: list[Any] = dataclass_field(default_factory=list, init=False)
    """malformed_record: the ids of the records it corrupted."""

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {', '.join(sorted(FAULT_KINDS))}")
        if self.kind == "mutate" and self.on_request is None:
            raise ValueError("a mutate fault needs on_request")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultRule:
        """A rule from a JSON object (the control route); callbacks cannot travel that way."""
        allowed = {"kind", "path", "times", "after", "method", "status", "retry_after", "delay_s", "on_page", "field",
                   "bytes_per_s", "size_bytes", "value"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        return cls(**data)

    def retry_after_headers(self) -> dict[str, str] | None:
        """`Retry-After` as configured: seconds formatted as a number, a text (an HTTP date) as it is; None: none."""
        if self.retry_after is None:
            return None
        value = self.retry_after if isinstance(self.retry_after, str) else f"{self.retry_after:g}"
        return {"Retry-After": value}

    def matches(self, method: str, path: str, page_no: int) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        if self.on_page is not None and self.on_page != page_no:
            return False
        if self.path is None:
            return True
        prefix = self.path.lower().rstrip("/")
        return path == prefix or path.startswith(prefix + "/")

    def hit(self) -> bool:
        """Count a matching request; True if this one is to be hit."""
        self.seen += 1
        if self.seen <= self.after or (self.times is not None and self.fired >= self.times):
            return False
        self.fired += 1
        return True


def corrupt_listing(payload: Any, rule: FaultRule) -> Any:
    """A copy of a listing envelope with its middle record corrupted; anything else is returned unchanged."""
    if not isinstance(payload, dict):
        return payload
    key = next((k for k, v in payload.items() if isinstance(v, list) and v and isinstance(v[0], dict)), None)
    if key is None:
        return payload
    records = list(payload[key])
    index = len(records) // 2
    target = rule.field or _DEFAULT_CORRUPT_FIELD.get(key, "id")
    record = dict(records[index])
    rule.corrupted_ids.append(record.get("id"))
    record[target] = _corrupt_value(target, record.get(target)) if rule.value is NO_VALUE else rule.value
    records[index] = record
    return {**payload, key: records}


def _corrupt_value(name: str, value: Any) -> Any:
    if name == "id" or name == "name":
        return None
    if "date" in name or name in ("last_modified", "alastupdate"):
        return "not-a-date"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "abc"
    return {"unexpected": value}


def oversized(response: httpx.Response, size: int) -> httpx.Response:
    """The same answer padded in front with whitespace to `size` bytes, produced lazily (a 300 MB page costs the
    emulator one 1 MiB buffer); the response streams, so it carries no Content-Length."""
    content = response.content

    def pieces() -> Iterator[bytes]:
        remaining = max(0, size - len(content))
        while remaining > 0:
            piece = _PAD if remaining >= len(_PAD) else _PAD[:remaining]
            remaining -= len(piece)
            yield piece
        yield content

    headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-length"]
    return httpx.Response(response.status_code, headers=headers, content=pieces(), extensions={OVERSIZE: size})
