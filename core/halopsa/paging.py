"""Paged HaloPSA listings as streams of typed pages (reference 3.1-3.3 and 11). No HTTP here: `fetch` does that.

Termination trusts what a page holds, never `record_count` alone (one tenant reports the page's length there): a
page shorter than asked ends the listing, a full one means "ask for the next". The first page is the exception: a
short one may be the tenant's own cap, which a page-length `record_count` hides, so the next page is asked for once
at that size (an empty answer ends the listing). A page longer than asked is the server paging its own way: read
once, and followed only when `record_count` says there is more. Records can shift
between pages while we read (new or edited rows), so ids already seen in the listing are dropped, and a full page of
nothing new ends the listing (a server that ignores `page_no`).

Incremental listings have three methods (`Method`), tried in order from the one a caller starts at: a sorted window
(newest first, stop below the window start), the server's date filter, and a full scan filtered here. A method that
the server refuses (an HTTP error on its first page) or does not honour (rows out of order, rows outside the date
filter) gives way to the next, within the same run; `ListingReport` says which method served the listing, which gave
way and why, and what the listing cost in requests.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from itertools import pairwise
from typing import Any, Generic, Protocol, TypeVar

from core.errors import HaloError, HaloUnavailable, ProtocolError
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
    size_proven: bool = False,
) -> Iterator[Page[T]]:
    """Stream the pages of one listing; `fetch(page_no, page_size)` returns a decoded body.

    A malformed record goes into `page.errors` and the listing carries on. A first page shorter than asked (but not
    empty) may be a server cap, whatever `record_count` says: its size is adopted and the next page asked for; an
    empty or short one then ends the listing. With `size_proven` (a probe saw the tenant serve pages of this size) a
    short first page is the whole listing unless `record_count` says there is more, which saves that request on every
    small listing. A page longer than asked ends the listing unless `record_count` says there is more (then the server
    pages by its own size: adopt it).
    """
    size = page_size
    seen = IdSet()
    failed = IdSet()
    listed = 0
    page_no = 1
    while True:
        rows, count = rows_of(fetch(page_no, size), key)
        if page_no == 1 and rows and len(rows) < size and not (size_proven and (count is None or count <= len(rows))):
            size = len(rows)  # a cap, or the whole listing: the next page tells (record_count may be the page's length)
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
        listed += fresh
        served = len(rows)
        del rows  # the raw page is garbage once parsed: keep only one copy of a page alive while the caller works
        yield page
        if served < size:
            return
        if served > size:
            if count is None or count <= listed:
                return  # the server sent the listing whole (it ignores page_size): never ask for it again
            log.info("HaloPSA sent %d %s for a page of %d; paging by its size", served, key, size)
            size = served
        if fresh == 0:
            # A full page of nothing new: the server ignores page_no. Stop, don't spin (record_count is no bound).
            log.warning("HaloPSA repeated a full page of %s (page %d); stopping the listing", key, page_no)
            return
        page_no += 1


def listing_requests(rows: int, page_size: int) -> int:
    """What reading `rows` rows costs: a full page always asks for the next, so a listing ends on a short or empty
    page; a short first page is taken for a possible cap and asks for one more."""
    size = max(1, page_size)
    return rows // size + 1 + (0 < rows < size)


def keep(pages: Iterator[Page[T]], predicate: Callable[[T], bool]) -> Iterator[Page[T]]:
    """The same pages with only the records that pass `predicate` (errors kept)."""
    for page in pages:
        yield replace(page, records=[record for record in page.records if predicate(record)])


class Method(StrEnum):
    """How an incremental listing is read (reference 11): the cheapest the tenant honours, in this order."""

    SORTED = "sorted"  # ordered newest first by the modification time; stop below the window start
    DATESEARCH = "datesearch"  # the server's date filter from the window start (newer builds), checked here
    SCAN = "scan"  # every record, filtered here


@dataclass
class ListingReport:
    """How one listing was served: by which method, which methods gave way before it and why (in words a person
    can act on), and how many HTTP requests the listing cost (retries, fallbacks and token renewals included)."""

    method: Method | None = None
    dropped: list[tuple[Method, str]] = field(default_factory=list)
    requests: int = 0

    def gave_way(self, method: Method, reason: str) -> None:
        log.warning("listing by %s gave way: %s", method, reason)
        self.dropped.append((method, reason))


class NotHonoured(Exception):
    """The server answered, but not as asked (rows out of order, rows outside the filter): try the next method."""


def newest_first(pages: Iterator[Page[T]], *, key: Callable[[T], K | None], since: K,
                 report: ListingReport | None = None, give_way: bool = False) -> Iterator[Page[T]]:
    """Records with `key >= since` from a listing the server was asked to sort by `key`, newest first.

    While the order holds, stop after the first page that reaches below `since`. Records without a key are
    dropped and do not count for the order. If a page breaks the order (within itself or against the page
    before), the instance ignored `order`: with `give_way`, raise `NotHonoured` so the caller tries another method;
    otherwise read on to the end and filter client-side (a full scan bounded by the listing's own end).
    """
    ordered = True
    previous: K | None = None
    for page in pages:
        keys = [k for k in map(key, page.records) if k is not None]
        if ordered:
            ordered = all(not (a < b) for a, b in pairwise(([previous] if previous is not None else []) + keys))
            if not ordered:
                reason = f"HaloPSA did not sort the listing as asked (page {page.page_no})"
                if give_way:
                    raise NotHonoured(reason)
                if report is not None:
                    report.gave_way(Method.SORTED, reason)
                    report.method = Method.SCAN
        if keys:
            previous = keys[-1]
        yield replace(page, records=[r for r in page.records if (k := key(r)) is not None and not (k < since)])
        if ordered and keys and min(keys) < since:
            return


def date_filtered(pages: Iterator[Page[T]], *, key: Callable[[T], K | None], since: K, outside: K,
                  report: ListingReport) -> Iterator[Page[T]]:
    """Records with `key >= since` from a listing the server was asked to filter by date. A record with a key
    before `outside` shows the filter was ignored: the listing is then read to its end as a full scan (it is one)."""
    honoured = True
    for page in pages:
        if honoured and any((k := key(r)) is not None and k < outside for r in page.records):
            honoured = False
            report.gave_way(Method.DATESEARCH, f"HaloPSA ignored the date filter (page {page.page_no})")
            report.method = Method.SCAN
        yield replace(page, records=[r for r in page.records if (k := key(r)) is not None and not (k < since)])


def not_before(pages: Iterator[Page[T]], *, key: Callable[[T], K | None], start: K) -> Iterator[Page[T]]:
    """A full scan's records with `key >= start`, filtered here; a record without a key is kept (a tenant whose list
    rows lack the modification time is scanned whole, and nothing it lists may be lost)."""
    for page in pages:
        yield replace(page, records=[r for r in page.records if (k := key(r)) is None or not (k < start)])


def refused(error: HaloError) -> bool:
    """An answer that refuses the query itself (a 4xx, or a 5xx or no answer after retries), not the credentials,
    the permissions, the rate limit or an unreadable page: another method may get through."""
    return type(error) in (HaloError, HaloUnavailable)


def cause(error: HaloError) -> str:
    """Why a method gave way, short: the HTTP status when the error names one, else its first sentence."""
    status = re.search(r"\(HTTP (\d{3})\)", error.message)
    return f"HaloPSA answered HTTP {status.group(1)}" if status else error.message.split(". ")[0].rstrip(".")


def with_fallback(
    methods: Sequence[Method],
    attempt: Callable[[Method, bool], Iterator[Page[T]]],
    report: ListingReport,
    *,
    requests: Callable[[], int],
) -> Iterator[Page[T]]:
    """Pages from the first of `methods` the server honours. `attempt(method, last)` opens a listing by that method
    (`last`: no method follows, so it must not give way). A method gives way when it raises `NotHonoured`, or when
    its first page is refused (`refused`); a failure after its first page stops the listing. Records and errors
    already passed on by a method that gave way are not passed on again."""
    first_request = requests()
    passed, failed = IdSet(), IdSet()
    try:
        for index, method in enumerate(methods):
            last = index == len(methods) - 1
            report.method = method
            started = False
            try:
                for page in attempt(method, last):
                    started = True
                    records = [r for r in page.records if passed.add_new(r.halo_id)]
                    errors = [e for e in page.errors if e.halo_id is None or failed.add_new(e.halo_id)]
                    yield replace(page, records=records, errors=errors)
                return
            except NotHonoured as not_honoured:
                if last:
                    raise ProtocolError(f"{not_honoured}; the listing cannot be read.") from None
                report.gave_way(method, str(not_honoured))
            except HaloError as error:
                if last or started or not refused(error):
                    report.method = None
                    raise
                report.gave_way(method, cause(error))
    finally:
        report.requests = requests() - first_request
