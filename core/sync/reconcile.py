"""Reconciliation: compare a partner's invoices in HaloPSA with the stored copy, read-only (a RECONCILE run writes no
invoice), and the bookkeeping of the targeted resync that reads the differing ones again (a RESYNC run, in the engine).

A reconciliation reads HaloPSA's invoice listing once, whole (the same client, probe results and rate budget as the
syncs; the cheapest full read: one listing's pages), page by page, and compares each row by id with a dict of the
stored invoices (id -> amounts, currency, status, modification time, date): nothing but that dict and the current
page is held. It records the counts and unpaid count and amount per currency on each side, and one drift item per
differing invoice:

- missing here: in HaloPSA and in scope, never stored (e.g. modified before the last sync window: no incremental
  listing saw it);
- extra here: stored, absent from HaloPSA's listing (deleted there);
- amount or status differs: edited in HaloPSA outside every sync window;
- outside scope: stored, but HaloPSA now dates it before the connection's Invoices Created Since (reported, never
  resynced).

Not drift: invoices HaloPSA dates before Invoices Created Since that were never stored (counted apart), invoices
changed in HaloPSA after the last successful sync window (the next sync brings them: counted as pending), rows HaloPSA
sent that cannot be read (counted as unreadable; the syncs reject them too).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from core.console.formatting import money_in
from core.halopsa import paging
from core.halopsa.probe import ASKED
from core.halopsa.records import Invoice, RecordError
from core.settings import Settings
from core.store.database import inserted_id
from core.store.tables import (
    DRIFT_TABLE,
    INVOICE_TABLE,
    RECONCILIATION_TABLE,
    RUN_TABLE,
    UNPAID_STATUSES,
    DriftKind,
    InvoiceStatus,
    RunStatus,
)
from core.sync import jobs, probes, runs, window
from core.sync.connector import halo_config
from core.sync.streams import in_scope, invoice_status

if TYPE_CHECKING:
    from core.halopsa.client import HaloClient
    from core.sync.engine import RunContext

DRIFT_KINDS = (DriftKind.MISSING_HERE, DriftKind.EXTRA_HERE, DriftKind.AMOUNT_DIFFERS, DriftKind.STATUS_DIFFERS)
RESYNC_CAP = 500  # invoices one targeted resync reads by id (one request each); beyond: a full fetch costs less
PROBE_REQUESTS = 8  # about what a check of the tenant costs, when a run has to make one first
_DELETED = InvoiceStatus.DELETED.value
_ITEM_BATCH = 1000


class Stored(NamedTuple):
    """One stored invoice as the comparison needs it."""

    total_cents: int
    amount_due_cents: int
    currency: str | None
    status: str
    modified: datetime | None
    invoice_date: date | None


@dataclass(frozen=True)
class Estimate:
    """What a reconciliation of the partner will cost, from what is stored: one full listing of the invoices HaloPSA
    is expected to list at the tenant's page size, plus a check of the tenant when none is stored for it. `at_least`:
    HaloPSA also lists invoices dated before Invoices Created Since, which are never stored; until a reconciliation
    has counted them the estimate is a floor."""

    requests: int
    rows: int
    page_size: int
    probe_first: bool
    at_least: bool = False

    @property
    def text(self) -> str:
        probe = f", plus about {PROBE_REQUESTS} to check the tenant first" if self.probe_first else ""
        floor = ("at least " if self.at_least else "about ")
        older = ("; HaloPSA's invoices dated before Invoices Created Since add a page per "
                 f"{self.page_size}, counted by this first reconciliation") if self.at_least else ""
        return (f"{floor}{self.requests:,} HaloPSA requests: one read of its whole invoice listing ({self.rows:,} "
                f"invoices known, {self.page_size} a page{probe}{older})")


def estimate(engine: Engine, partner_id: int, connection: Any, settings: Settings) -> Estimate:
    """The request cost of reconciling the partner now, stated before it runs."""
    found = probes.stored(engine, partner_id, connection)
    profile = found.result.profile(halo_config(settings)) if found else None
    page_size = min(settings.page_size, ASKED)  # a larger page was never seen served: tenants cap at 100
    if profile is not None:
        page_size = profile.page_size if profile.page_size_proven else min(profile.page_size, ASKED)
    invoice, rec = INVOICE_TABLE.c, RECONCILIATION_TABLE.c
    with engine.connect() as conn:
        stored = conn.scalar(select(func.count()).select_from(INVOICE_TABLE).where(
            invoice.partner_id == partner_id, invoice.status != _DELETED)) or 0
        # what HaloPSA listed last time that is not stored on purpose (dated before Invoices Created Since)
        outside = conn.scalar(select(rec.halo_outside_scope + rec.unreadable).where(
            rec.partner_id == partner_id, rec.finished_at.is_not(None))
            .order_by(rec.started_at.desc(), rec.id.desc()).limit(1))
    rows = int(stored) + int(outside or 0)
    probe_first = probes.due(found) is not None
    requests = paging.listing_requests(rows, page_size) + (PROBE_REQUESTS if probe_first else 0)
    at_least = outside is None and connection.invoices_created_since is not None
    return Estimate(requests, rows, page_size, probe_first, at_least)


# ---- the comparison ------------------------------------------------------------------------------------------------

Unpaid = dict[str, list[int]]  # currency ("" when none) -> [count, cents due]


def _add_unpaid(unpaid: Unpaid, currency: str | None, due_cents: int) -> None:
    entry = unpaid.setdefault(currency or "", [0, 0])
    entry[0] += 1
    entry[1] += due_cents


def _amounts(total: int, due: int, currency: str | None) -> str:
    return f"{money_in(total, currency)} total, {money_in(due, currency)} due"


@dataclass
class Comparison:
    """The running comparison of one reconciliation: counts, unpaid per currency, and the differing ids."""

    since: date | None
    last_window_end: datetime | None
    stored: dict[int, Stored]
    halo_invoices: int = 0
    halo_outside_scope: int = 0
    pending: int = 0
    halo_unpaid: Unpaid = field(default_factory=dict)
    seen: set[int] = field(default_factory=set)
    unreadable: set[int] = field(default_factory=set)
    unreadable_rows: int = 0
    items: list[tuple[int, DriftKind, str | None, str | None]] = field(default_factory=list)

    def _pending(self, modified: datetime | None, local: Stored | None) -> bool:
        """Changed in HaloPSA after the last successful sync window (and after the stored copy): the next sync reads
        it, so it is not drift yet."""
        if modified is None or self.last_window_end is None or modified < self.last_window_end:
            return False
        return local is None or local.modified is None or modified > local.modified

    def add(self, record: Invoice) -> None:
        halo_id = record.halo_id
        self.seen.add(halo_id)
        local = self.stored.get(halo_id)
        status = invoice_status(voided=record.voided, amount_due_cents=record.amount_due_cents,
                                amount_paid_cents=record.amount_paid_cents, credit=record.credit,
                                posted=record.posted).value
        if not in_scope(record, self.since):
            if local is not None and local.status != _DELETED:
                self.items.append((halo_id, DriftKind.OUTSIDE_SCOPE, f"dated {record.invoice_date}",
                                   f"dated {local.invoice_date}" if local.invoice_date else "no date"))
            else:
                self.halo_outside_scope += 1
            return
        self.halo_invoices += 1
        if status in UNPAID_STATUSES:
            _add_unpaid(self.halo_unpaid, record.currency, record.amount_due_cents)
        amounts = (record.total_cents, record.amount_due_cents, record.currency)
        if local is None:
            if self._pending(record.last_modified, None):
                self.pending += 1
            else:
                self.items.append((halo_id, DriftKind.MISSING_HERE, f"{status}, {_amounts(*amounts)}", None))
            return
        amount_differs = amounts != (local.total_cents, local.amount_due_cents, local.currency)
        status_differs = status != local.status
        if not (amount_differs or status_differs):
            return
        if self._pending(record.last_modified, local):
            self.pending += 1
            return
        if amount_differs:
            self.items.append((halo_id, DriftKind.AMOUNT_DIFFERS, _amounts(*amounts),
                               _amounts(local.total_cents, local.amount_due_cents, local.currency)))
        if status_differs:
            self.items.append((halo_id, DriftKind.STATUS_DIFFERS, status, local.status))

    def add_unreadable(self, halo_ids: Iterable[int | None]) -> None:
        for halo_id in halo_ids:
            self.unreadable_rows += 1
            if halo_id is not None:
                self.unreadable.add(halo_id)

    def finish(self) -> tuple[int, Unpaid]:
        """The stored side, once the listing is read: invoices stored (in scope, not deleted) that HaloPSA did not
        list are extra here; returns the stored count in scope and its unpaid per currency."""
        count, unpaid = 0, Unpaid()
        for halo_id, local in self.stored.items():
            if local.status == _DELETED:
                continue
            if self.since is None or local.invoice_date is None or local.invoice_date >= self.since:
                count += 1
                if local.status in UNPAID_STATUSES:
                    _add_unpaid(unpaid, local.currency, local.amount_due_cents)
            if halo_id not in self.seen and halo_id not in self.unreadable:
                amounts = _amounts(local.total_cents, local.amount_due_cents, local.currency)
                self.items.append((halo_id, DriftKind.EXTRA_HERE, "not in HaloPSA's listing",
                                   f"{local.status}, {amounts}"))
        return count, unpaid


def stored_invoices(conn: Connection, partner_id: int) -> dict[int, Stored]:
    invoice = INVOICE_TABLE.c
    rows = conn.execute(select(invoice.halo_id, invoice.total_cents, invoice.amount_due_cents, invoice.currency,
                               invoice.status, invoice.halo_last_modified, invoice.invoice_date)
                        .where(invoice.partner_id == partner_id))
    return {row[0]: Stored(row[1], row[2], row[3], str(row[4]), row[5], row[6]) for row in rows}


def _begin(ctx: RunContext, planned: Estimate) -> int:
    with ctx.engine.begin() as conn:
        actor = conn.scalar(select(RUN_TABLE.c.triggered_by).where(RUN_TABLE.c.id == ctx.run_id)) or ""
        return inserted_id(conn.execute(insert(RECONCILIATION_TABLE).values(
            partner_id=ctx.partner_id, run_id=ctx.run_id, job_id=ctx.job.id if ctx.job else None,
            requested_by=actor, started_at=ctx.now,
            invoices_created_since=ctx.connection.invoices_created_since, requests_estimated=planned.requests)))


def _progress(ctx: RunContext, message: str, errors: list[RecordError]) -> None:
    """The run's counts and heartbeat after a page, with the rows it could not read kept as the run's record errors
    (a reconciliation that met none is a clean run, as a sync is)."""
    with ctx.engine.begin() as conn:
        if ctx.job is not None:
            jobs.fence(conn, ctx.job)
        runs.add_record_errors(conn, ctx.run_id, ctx.partner_id, errors)
        runs.save_progress(conn, ctx.run_id, ctx.partner_id, now=ctx.moment(), status=RunStatus.RUNNING,
                           message=message, waiting_until=None, **ctx.tally.model_dump())
    ctx.say(message, stored=False)


def compare(ctx: RunContext, client: HaloClient) -> int:
    """Run one reconciliation for the run's partner: read HaloPSA's invoice listing once and compare; records the
    reconciliation and its drift items in one transaction at the end. Returns the reconciliation's id."""
    planned = estimate(ctx.engine, ctx.partner_id, ctx.connection, ctx.settings)
    reconciliation_id = _begin(ctx, planned)
    first_request = client.stats.requests
    last_end, _ = window.last_success(ctx.engine, ctx.partner_id, now=ctx.now)
    with ctx.engine.connect() as conn:
        stored = stored_invoices(conn, ctx.partner_id)
    found = Comparison(ctx.connection.invoices_created_since, last_end, stored)
    ctx.say("Reading HaloPSA's invoice listing to compare")
    for page in client.iter_invoices():
        for record in page.records:
            found.add(record)
        found.add_unreadable(error.halo_id for error in page.errors)
        ctx.tally.pages += 1
        ctx.tally.invoices_seen += len(page.records)
        ctx.tally.rejected += len(page.errors)
        runs.count_requests(ctx.tally, client.stats)
        _progress(ctx, f"Invoices compared: {ctx.tally.invoices_seen:,}", page.errors)
        ctx.check_stop()
    local_count, local_unpaid = found.finish()
    used = client.stats.requests - first_request
    _record(ctx, reconciliation_id, found, local_count, local_unpaid, used)
    ctx.notes.append(summary(found, used, planned))
    return reconciliation_id


def _record(ctx: RunContext, reconciliation_id: int, found: Comparison, local_count: int, local_unpaid: Unpaid,
            used: int) -> None:
    by_kind = dict.fromkeys(DriftKind, 0)
    for _, kind, _, _ in found.items:
        by_kind[kind] += 1
    drift = len({halo_id for halo_id, kind, _, _ in found.items if kind in DRIFT_KINDS})
    rows = [{"reconciliation_id": reconciliation_id, "partner_id": ctx.partner_id, "halo_id": halo_id, "kind": kind,
             "halo_value": halo_value, "local_value": local_value}
            for halo_id, kind, halo_value, local_value in sorted(found.items, key=lambda item: (item[1], item[0]))]
    with ctx.engine.begin() as conn:
        if ctx.job is not None:
            jobs.fence(conn, ctx.job)
        for first in range(0, len(rows), _ITEM_BATCH):
            conn.execute(insert(DRIFT_TABLE), rows[first:first + _ITEM_BATCH])
        conn.execute(update(RECONCILIATION_TABLE).where(RECONCILIATION_TABLE.c.id == reconciliation_id).values(
            finished_at=ctx.moment(), requests_used=used, halo_invoices=found.halo_invoices,
            local_invoices=local_count, halo_outside_scope=found.halo_outside_scope, pending=found.pending,
            unreadable=found.unreadable_rows, halo_unpaid=json.dumps(found.halo_unpaid, sort_keys=True),
            local_unpaid=json.dumps(local_unpaid, sort_keys=True), drift=drift,
            **{kind.value: by_kind[kind] for kind in DriftKind}))


def summary(found: Comparison, used: int, planned: Estimate) -> str:
    drift = len({halo_id for halo_id, kind, _, _ in found.items if kind in DRIFT_KINDS})
    verdict = "no invoice differs" if drift == 0 else f"{drift:,} invoices differ"
    return (f"Reconciliation: {found.halo_invoices:,} invoices in HaloPSA compared, {verdict}; "
            f"{used:,} requests (estimated {planned.requests:,}).")


# ---- the targeted resync ------------------------------------------------------------------------------------------

def latest_id(conn: Connection, partner_id: int) -> int | None:
    """The partner's latest finished reconciliation."""
    rec = RECONCILIATION_TABLE.c
    return conn.scalar(select(rec.id).where(rec.partner_id == partner_id, rec.finished_at.is_not(None))
                       .order_by(rec.started_at.desc(), rec.id.desc()).limit(1))


def open_drift(conn: Connection, partner_id: int) -> list[int]:
    """The ids of the latest reconciliation's drift not cleared yet (each once, in id order)."""
    latest = latest_id(conn, partner_id)
    if latest is None:
        return []
    item = DRIFT_TABLE.c
    return list(conn.scalars(select(item.halo_id).where(
        item.reconciliation_id == latest, item.cleared_at.is_(None), item.kind.in_([k.value for k in DRIFT_KINDS]))
        .group_by(item.halo_id).order_by(item.halo_id)))


def clear(conn: Connection, partner_id: int, halo_ids: Sequence[int], *, run_id: int, now: datetime) -> int:
    """Mark the latest reconciliation's open drift items of these invoices cleared by a resync run."""
    latest = latest_id(conn, partner_id)
    if latest is None or not halo_ids:
        return 0
    item = DRIFT_TABLE.c
    cleared = 0
    for first in range(0, len(halo_ids), _ITEM_BATCH):
        cleared += conn.execute(update(DRIFT_TABLE).where(
            item.reconciliation_id == latest, item.cleared_at.is_(None), item.kind.in_([k.value for k in DRIFT_KINDS]),
            item.halo_id.in_(list(halo_ids[first:first + _ITEM_BATCH]))).values(
            cleared_at=now, cleared_by_run=run_id)).rowcount
    return cleared
