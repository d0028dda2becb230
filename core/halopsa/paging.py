"""Paged HaloPSA listings as streams of typed pages (reference 3.1-3.3). No HTTP here: `fetch` does that.

Termination follows what real clients do: stop on a short page, or once `page_no * page_size >= record_count`.
Records can shift between pages while we read (new or edited rows), so ids already seen in the listing are dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any, Generic, Protocol, TypeVar

from core.errors import ProtocolError
from core.halopsa.records import RecordError

log = logging.getLogger(__name__)


class _HasId(Protocol):
    halo_id: int


T = TypeVar("T", bound=_HasId)


class _Ordered(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


K = TypeVar("K", bound=_Ordered)


@dataclass
class Page(Generic[T]):
    records: list[T]
    errors: list[RecordError] = field(default_factory=list)
    page_no: int = 1
    record_count: int | None = None


class IdSet:
    """Ids seen in one listing as a bitmap: HaloPSA ids are dense positive integers, so 100,000 invoices cost
    about 12 KB instead of the ~7 MB a set of ints would hold for the whole listing. Ids beyond the bitmap's
    reach (or non-positive) go to a small overflow set."""

    _MAX_BITS = 1 << 28  # a 32 MB bitmap at most

    def __init__(self) -> None:
        self._bits = bytearray()
        self._overflow: set[int] = set()

    def __contains__(self, value: int) -> bool:
        if 0 < value < self._MAX_BITS:
            index = value >> 3
            return index < len(self._bits) and bool(self._bits[index] & (1 << (value & 7)))
        return value in self._overflow

    def add_new(self, value: int) -> bool:
        """Add `value`; False when it was already there."""
        if 0 < value < self._MAX_BITS:
            index = value >> 3
            bit = 1 << (value & 7)
            bits = self._bits
            if index < len(bits):
                if bits[index] & bit:
                    return False
            else:
                bits.extend(bytes(max(index + 1 - len(bits), len(bits))))
            bits[index] |= bit
            return True
        if value in self._overflow:
            return False
        self._overflow.add(value)
        return True

    def add(self, value: int) -> None:
        if 0 < value < self._MAX_BITS:
            index = value >> 3
            if index >= len(self._bits):
                self._bits.extend(bytes(max(index + 1 - len(self._bits), len(self._bits))))
            self._bits[index] |= 1 << (value & 7)
        else:
            self._overflow.add(value)


def rows_of(body: Any, key: str) -> tuple[list[Any], int | None]:
    """Rows and `record_count` of a list response: a bare array, else `key`, else the first array of objects."""
    if isinstance(body, list):
        return body, None
    if not isinstance(body, dict):
        raise ProtocolError(f"HaloPSA sent a {type(body).__name__} where a list of {key} was expected.")
    count = body.get("record_count")
    count = int(count) if isinstance(count, int | float) and not isinstance(count, bool) else None
    rows = body.get(key)
    if not isinstance(rows, list):
        rows = next((v for v in body.values() if isinstance(v, list) and all(isinstance(row, dict) for row in v)), None)
    if rows is None:
        raise ProtocolError(f"HaloPSA sent a list response without {key!r}; the listing cannot be read.")
    return rows, count


def paginate(
    fetch: Callable[[int, int], Any],
    *,
    key: str,
    parse: Callable[[Any], T],
    page_size: int,
) -> Iterator[Page[T]]:
    """Stream the pages of one listing; `fetch(page_no, page_size)` returns a decoded body.

    A malformed record goes into `page.errors` and the listing carries on. When the first page is shorter than
    asked while `record_count` says there is more, the server caps the page size: adopt its size and carry on.
    """
    size = page_size
    seen = IdSet()
    failed = IdSet()
    page_no = 1
    while True:
        rows, count = rows_of(fetch(page_no, size), key)
        if page_no == 1 and rows and len(rows) < size and count is not None and count > len(rows):
            size = len(rows)
        page: Page[T] = Page(records=[], page_no=page_no, record_count=count)
        fresh = 0
        for raw in rows:
            try:
                record = parse(raw)
            except RecordError as error:
                if error.halo_id is None or error.halo_id not in failed:
                    page.errors.append(error)
                    fresh += 1
                if error.halo_id is not None:
                    failed.add(error.halo_id)
                continue
            if seen.add_new(record.halo_id):
                page.records.append(record)
                fresh += 1
        short = len(rows) < size
        del rows  # the raw page is garbage once parsed: keep only one copy of a page alive while the caller works
        yield page
        if short or (count is not None and page_no * size >= count):
            return
        if count is None and fresh == 0:
            # A full page of nothing new with no count to bound us: the server ignores page_no. Stop, don't spin.
            log.warning("HaloPSA repeated a full page of %s (page %d); stopping the listing", key, page_no)
            return
        page_no += 1


def keep(pages: Iterator[Page[T]], predicate: Callable[[T], bool]) -> Iterator[Page[T]]:
    """The same pages with only the records that pass `predicate` (errors kept)."""
    for page in pages:
        yield replace(page, records=[record for record in page.records if predicate(record)])


def newest_first(pages: Iterator[Page[T]], *, key: Callable[[T], K | None], since: K) -> Iterator[Page[T]]:
    """Records with `key >= since` from a listing the server was asked to sort by `key`, newest first.

    While the order holds, stop after the first page that reaches below `since`. Records without a key are
    dropped and do not count for the order. If a page breaks the order (within itself or against the page
    before), the instance ignored `order`: read on to the end and filter client-side (a full scan bounded by
    the listing's own end), still page by page.
    """
    ordered = True
    previous: K | None = None
    for page in pages:
        keys = [k for k in map(key, page.records) if k is not None]
        if ordered:
            ordered = all(not (a < b) for a, b in pairwise(([previous] if previous is not None else []) + keys))
            if not ordered:
                log.warning("HaloPSA did not sort page %d as asked; scanning the whole listing", page.page_no)
        if keys:
            previous = keys[-1]
        yield replace(page, records=[r for r in page.records if (k := key(r)) is not None and not (k < since)])
        if ordered and keys and min(keys) < since:
            return
