"""What a route answers, before encoding: faults may still corrupt it, and encoding happens outside the lock."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Reply:
    status: int
    payload: Any = None
    """JSON-able body, unless `text` is set."""
    text: str | None = None
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    row_text: Callable[[dict[str, Any]], str] | None = None
    """For a listing: encodes one record (through the table's cache); the envelope goes through `dumps`."""

    def body(self) -> bytes:
        if self.text is not None:
            return self.text.encode()
        if self.payload is None:
            return b""
        if self.row_text is not None and isinstance(self.payload, dict):
            return _envelope(self.payload, self.row_text).encode()
        return dumps(self.payload).encode()

    def to_response(self, body: bytes | None = None) -> httpx.Response:
        content = self.body() if body is None else body
        headers = {"content-type": self.content_type, **self.headers} if content else dict(self.headers)
        return httpx.Response(self.status, headers=headers, content=content)


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(value: Any) -> str:
    """Compact JSON; one shared encoder, since `json.dumps` with options builds a new one per call."""
    return _ENCODER.encode(value)


def _envelope(payload: dict[str, Any], row_text: Callable[[dict[str, Any]], str]) -> str:
    parts = []
    for key, value in payload.items():
        text = "[" + ",".join(row_text(row) for row in value) + "]" if isinstance(value, list) else dumps(value)
        parts.append(f"{dumps(key)}:{text}")
    return "{" + ",".join(parts) + "}"


def json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, payload, headers=dict(headers or {}))


def text_reply(
    status: int, text: str, *, content_type: str = "text/plain; charset=utf-8", headers: dict[str, str] | None = None
) -> Reply:
    return Reply(status, text=text, content_type=content_type, headers=dict(headers or {}))
