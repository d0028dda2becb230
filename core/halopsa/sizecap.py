"""The largest answer the client reads (reference 11: a tenant may ignore paging and send a whole listing at once).

A body is read piece by piece, decoded, and refused as soon as it passes the cap, so memory stays bounded whatever
the server sends (a declared length over the cap is refused before a byte is read). A page over the cap is not asked
for again: the same request would bring the same page.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx

from core.errors import ProtocolError

MB = 2**20
ENV_NAME = "HALO_MAX_PAGE_MB"


class PageTooLarge(ProtocolError):
    """An answer larger than the client reads (`max_page_bytes`)."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(
            f"HaloPSA sent an answer larger than {limit // MB} MB for {what}, so the sync stopped reading it. The "
            f"tenant may be ignoring the page size; if its pages really are this large, raise {ENV_NAME} and run the "
            "sync again."
        )
        self.limit = limit


def read_capped(response: httpx.Response, *, limit: int, what: str, pieces: Iterator[bytes] | None = None) -> bytes:
    """Read a streamed `response` whole unless it is larger than `limit` bytes (decoded), then close it and raise
    `PageTooLarge`. `pieces` replaces `response.iter_bytes()` (a caller that watches a deadline between pieces).
    After reading, `response.content` and `response.text` work as for a response read in full."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:  # compressed or not, the body would pass the cap
        response.close()
        raise PageTooLarge(what, limit)
    chunks: list[bytes] = []
    size = 0
    try:
        for piece in response.iter_bytes() if pieces is None else pieces:
            size += len(piece)
            if size > limit:
                raise PageTooLarge(what, limit)
            chunks.append(piece)
    finally:
        response.close()  # read whole, refused or broken off: the connection goes back or away, never leaks
    body = b"".join(chunks)
    response._content = body  # what Response.read() stores; later reads return it
    return body
