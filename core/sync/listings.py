"""How each of a partner's listings is read from its HaloPSA, remembered between runs (reference 11: tenants differ in
whether they sort by modification time, filter by date, and which unpaid status codes they use).

- Changes (customers, invoices): a sorted window where the tenant sorts; else its date filter; else a full scan. A
  run starts from the remembered method; a method that gives way (an error, rows out of order, a filter ignored)
  is replaced by the one that served the listing, so the next run starts there. A run never fails because of
  sorting: only a listing no method could read fails it.
- Unpaid invoices: HaloPSA's status filter, then the unpaid invoices it missed one by one; or, on a tenant whose
  status codes the filter does not match, the whole listing (never more requests than one full listing). Decided
  from what a whole listing showed (a backfill, or the refresh's own scan).

A remembered method holds only for the tenant it was learnt on, and a probe may set one the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from core.halopsa.client import ListingReport, Method, UnpaidCheck
from core.store.tables import LISTING_TABLE, Listing, ListingMethod
from core.sync.streams import Entity

CHANGES = {Entity.CUSTOMER: Listing.CUSTOMER_CHANGES, Entity.INVOICE: Listing.INVOICE_CHANGES}
_CLIENT_METHOD = {ListingMethod.SORTED: Method.SORTED, ListingMethod.DATESEARCH: Method.DATESEARCH,
                  ListingMethod.SCAN: Method.SCAN}
_WORDS = {
    Method.SORTED: "sorted newest first, stopping at the window start",
    Method.DATESEARCH: "HaloPSA's date filter",
    Method.SCAN: "a full scan",
}
_NAMES = {Method.SORTED: "the sorted listing", Method.DATESEARCH: "the date filter", Method.SCAN: "the full scan"}


def tenant_key(connection: Any) -> str:
    """The HaloPSA a connection reads (its App Domain and tenant): what a remembered method holds for."""
    return f"{str(connection.app_domain).strip().rstrip('/').lower()}|{(connection.tenant or '').strip().lower()}"


def remembered(engine: Engine, partner_id: int, connection: Any) -> dict[Listing, ListingMethod]:
    """The methods remembered for this partner's listings on its current tenant (one read per run)."""
    c = LISTING_TABLE.c
    with engine.connect() as conn:
        rows = conn.execute(select(c.listing, c.method).where(c.partner_id == partner_id,
                                                              c.tenant_key == tenant_key(connection))).all()
    return {row.listing: row.method for row in rows}


def remember(engine: Engine, partner_id: int, connection: Any, listing: Listing, method: ListingMethod, reason: str,
             *, now: datetime) -> None:
    """Set the method of one listing (a run that learnt it, or a probe), replacing what was remembered."""
    c = LISTING_TABLE.c
    values = {"tenant_key": tenant_key(connection), "method": method, "reason": reason[:1000], "decided_at": now}
    with engine.begin() as conn:
        changed = conn.execute(update(LISTING_TABLE).where(c.partner_id == partner_id, c.listing == listing)
                               .values(**values)).rowcount
        if not changed:
            conn.execute(LISTING_TABLE.insert().values(partner_id=partner_id, listing=listing, **values))


def start_method(methods: dict[Listing, ListingMethod], entity: Entity) -> Method:
    """Where a changes listing starts: the remembered method, else the sorted window."""
    stored = methods.get(CHANGES[entity])
    return Method.SORTED if stored is None else _CLIENT_METHOD.get(stored, Method.SORTED)


def learn_changes(engine: Engine, partner_id: int, connection: Any, methods: dict[Listing, ListingMethod],
                  entity: Entity, report: ListingReport, *, now: datetime) -> None:
    """After a changes listing read to its end: remember the method that served it when it differs."""
    if report.method is None:
        return
    method = ListingMethod(report.method.value)
    listing = CHANGES[entity]
    if methods.get(listing, ListingMethod.SORTED) != method:
        remember(engine, partner_id, connection, listing, method, "; ".join(reason for _, reason in report.dropped),
                 now=now)
        methods[listing] = method


def describe_changes(entity: Entity, report: ListingReport) -> str:
    """One sentence for the run's message: the method that served the listing, its cost, and what gave way."""
    assert report.method is not None
    text = f"Changed {entity}s: {_WORDS[report.method]} ({requests_text(report.requests)})"
    if report.dropped:
        text += ", after " + " and ".join(f"{_NAMES[method]} gave way ({reason})" for method, reason in report.dropped)
    return text + "."


@dataclass(frozen=True)
class UnpaidChoice:
    method: ListingMethod
    reason: str


def unpaid_choice(check: UnpaidCheck, page_size: int) -> UnpaidChoice:
    """Status filter or full scan, whichever costs fewer requests for what a whole listing showed."""
    filtered, scan = check.filtered_cost(page_size), check.scan_cost(page_size)
    missed = (f"HaloPSA's unpaid status filter misses {check.missed:,} of {check.open:,} unpaid invoices and lists "
              f"{check.inside:,} invoices")
    if check.prefer_scan(page_size):
        return UnpaidChoice(ListingMethod.SCAN, f"{missed}: a full listing ({requests_text(scan)}) costs less than the "
                                                f"filter and re-reading what it misses ({requests_text(filtered)})")
    return UnpaidChoice(ListingMethod.FILTERED, f"{missed}: the filter ({requests_text(filtered)} with what it misses) "
                                                f"costs no more than a full listing ({requests_text(scan)})")


def learn_unpaid(engine: Engine, partner_id: int, connection: Any, methods: dict[Listing, ListingMethod],
                 check: UnpaidCheck | None, page_size: int, *, now: datetime) -> UnpaidChoice | None:
    """After a whole invoice listing: remember how unpaid invoices are best read on this tenant."""
    if check is None or check.rows == 0:
        return None
    choice = unpaid_choice(check, page_size)
    if methods.get(Listing.UNPAID_INVOICES, ListingMethod.FILTERED) != choice.method:
        remember(engine, partner_id, connection, Listing.UNPAID_INVOICES, choice.method, choice.reason, now=now)
        methods[Listing.UNPAID_INVOICES] = choice.method
    return choice


def requests_text(count: int) -> str:
    return f"{count:,} request" + ("" if count == 1 else "s")
