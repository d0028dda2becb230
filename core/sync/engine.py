"""The sync engine: backfill, scheduled, Fetch new data and Fetch unpaid invoices for one partner.

Every page is upserted and committed in its own transaction together with the run's counts and heartbeat, so a
crash loses at most the page in flight and a rerun converges. Failures end the run with a readable reason; a manual
fetch that failed for a transient reason gives its cooldown back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Table, func, select, update
from sqlalchemy.engine import Connection as DbConnection
from sqlalchemy.engine import Engine

from core.errors import ConsoleError, CooldownActive, HaloError, PermissionMissing, RateLimited, SecretKeyError
from core.halopsa.records import RecordError
from core.settings import Settings
from core.store import tables, upserts
from core.store.tables import (
    CONNECTION_TABLE,
    PARTNER_TABLE,
    IntegrationRole,
    InvoiceStatus,
    PartnerStatus,
    RunKind,
    RunStatus,
)
from core.sync import cooldowns, runs
from core.sync.connector import ClientFactory

log = logging.getLogger(__name__)

NEW_DATA_WINDOW = timedelta(hours=1)
SCHEDULE_OVERLAP = timedelta(minutes=5)
INCREMENTAL_KINDS = (RunKind.BACKFILL, RunKind.SCHEDULED, RunKind.FETCH_NEW_DATA)
ProgressFn = Callable[[str], None]


@dataclass
class Tally:
    """What a run has done so far; saved with every page."""

    requests: int = 0
    pages: int = 0
    customers_seen: int = 0
    agreements_seen: int = 0
    invoices_seen: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0

    def as_values(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class RunContext:
    engine: Engine
    settings: Settings
    run_id: int
    partner_id: int
    connection: Any
    now: datetime
    client: Any = None
    progress: ProgressFn | None = None
    tally: Tally = field(default_factory=Tally)
    seen_invoice_ids: set[int] = field(default_factory=set)
    started: float = field(default_factory=time.monotonic)

    def moment(self) -> datetime:
        """The run's start on the injected clock plus the real time it has taken (heartbeats, finish)."""
        return self.now + timedelta(seconds=time.monotonic() - self.started)

    def say(self, message: str) -> None:
        if self.progress:
            self.progress(message)


@dataclass(frozen=True)
class RunResult:
    run_id: int
    kind: str
    status: str
    tally: Tally
    error: str | None
    cooldown_refunded: bool = False


_ENTITIES: dict[str, tuple[Table, tuple[str, ...], str]] = {
    "customer": (tables.CUSTOMER_TABLE, upserts.CUSTOMER_FIELDS, "customers_seen"),
    "agreement": (tables.AGREEMENT_TABLE, upserts.AGREEMENT_FIELDS, "agreements_seen"),
    "invoice": (tables.INVOICE_TABLE, upserts.INVOICE_FIELDS, "invoices_seen"),
}


def _row_builder(entity: str, connection: Any) -> Callable[[Any], dict[str, Any]]:
    if entity == "customer":
        return upserts.customer_row
    if entity == "agreement":
        return upserts.agreement_row
    return upserts.invoice_row_factory(connection.invoice_number_field)


def _in_scope(record: Any, since: date | None) -> bool:
    """Invoices Created Since applies to every invoice sync, not only the backfill."""
    return since is None or record.invoice_date is None or record.invoice_date >= since


def _store_page(ctx: RunContext, entity: str, records: list[Any], errors: list[RecordError]) -> None:
    table, fields, seen_counter = _ENTITIES[entity]
    build = _row_builder(entity, ctx.connection)
    if entity == "invoice":
        since = ctx.connection.invoices_created_since
        if since is not None:
            records = [r for r in records if _in_scope(r, since)]
        ctx.seen_invoice_ids.update([r.halo_id for r in records])
    rows = [build(record) for record in records]
    tally = ctx.tally
    tally.pages += 1
    tally.requests = ctx.client.stats.requests
    setattr(tally, seen_counter, getattr(tally, seen_counter) + len(rows))
    tally.rejected += len(errors)
    with ctx.engine.begin() as conn:
        counts = upserts.upsert_rows(
            conn, table, fields, rows, partner_id=ctx.partner_id, now=ctx.now, run_id=ctx.run_id
        )
        tally.created += counts.created
        tally.updated += counts.updated
        tally.unchanged += counts.unchanged
        runs.add_record_errors(conn, ctx.run_id, ctx.partner_id, errors)
        runs.save_progress(conn, ctx.run_id, ctx.partner_id, now=ctx.moment(), status=RunStatus.RUNNING,
                           **tally.as_values())


def _sync_pages(ctx: RunContext, entity: str, pages: Iterable[Any]) -> None:
    for page in pages:
        _store_page(ctx, entity, page.records, page.errors)
        ctx.say(f"{entity.capitalize()}s: {getattr(ctx.tally, _ENTITIES[entity][2]):,} read")


def _refresh_missing_unpaid(ctx: RunContext) -> None:
    """Invoices unpaid here but absent from HaloPSA's unpaid list were paid, voided or deleted there: refetch each."""
    invoice = tables.INVOICE_TABLE.c
    with ctx.engine.connect() as conn:
        local_unpaid = set(
            conn.scalars(
                select(invoice.halo_id).where(
                    invoice.partner_id == ctx.partner_id,
                    invoice.status.in_([InvoiceStatus.UNPAID, InvoiceStatus.PARTIALLY_PAID]),
                )
            )
        )
    missing = sorted(local_unpaid - ctx.seen_invoice_ids)
    if missing:
        ctx.say(f"Checking {len(missing):,} invoices that are no longer unpaid in HaloPSA")
    for start in range(0, len(missing), 100):
        found: list[Any] = []
        gone: list[RecordError] = []
        for halo_id in missing[start:start + 100]:
            record = ctx.client.get_invoice(halo_id)
            if record is None:
                gone.append(RecordError("invoice", halo_id, "no longer exists in HaloPSA; marked voided", {"id": halo_id}))
            else:
                found.append(record)
        _store_page(ctx, "invoice", found, [])
        if gone:
            _mark_deleted(ctx, [e.halo_id for e in gone if e.halo_id is not None], gone)


def _mark_deleted(ctx: RunContext, halo_ids: list[int], notes: list[RecordError]) -> None:
    invoice = tables.INVOICE_TABLE.c
    with ctx.engine.begin() as conn:
        changed = conn.execute(
            update(tables.INVOICE_TABLE)
            .where(invoice.partner_id == ctx.partner_id, invoice.halo_id.in_(halo_ids))
            .values(status=InvoiceStatus.VOIDED, voided=True, amount_due_cents=0, last_changed_run_id=ctx.run_id,
                    synced_at=ctx.now)
        ).rowcount
        ctx.tally.updated += changed
        runs.add_record_errors(conn, ctx.run_id, ctx.partner_id, notes)


def _last_success_end(engine: Engine, partner_id: int) -> tuple[datetime | None, bool]:
    """End of the newest successful incremental window, and whether a backfill ever succeeded."""
    run = tables.RUN_TABLE.c
    with engine.connect() as conn:
        ok = [RunStatus.SUCCEEDED, RunStatus.PARTIAL]
        end = conn.scalar(
            select(run.window_end)
            .where(run.partner_id == partner_id, run.status.in_(ok), run.kind.in_(list(INCREMENTAL_KINDS)))
            .order_by(run.window_end.desc())
            .limit(1)
        )
        backfilled = conn.scalar(
            select(run.id).where(run.partner_id == partner_id, run.status.in_(ok), run.kind == RunKind.BACKFILL).limit(1)
        )
    return end, backfilled is not None


def _work(ctx: RunContext, kind: str, window_start: datetime | None) -> None:
    client = ctx.client
    if kind == RunKind.BACKFILL:
        if ctx.connection.integration_role == IntegrationRole.SECONDARY:
            client.require_scopes()
            return
        ctx.say("Reading customers")
        _sync_pages(ctx, "customer", client.iter_customers())
        ctx.say("Reading agreements")
        _sync_pages(ctx, "agreement", client.iter_agreements())
        ctx.say("Reading invoices")
        _sync_pages(ctx, "invoice", client.iter_invoices(created_since=ctx.connection.invoices_created_since))
    elif kind in (RunKind.SCHEDULED, RunKind.FETCH_NEW_DATA):
        assert window_start is not None
        _sync_pages(ctx, "customer", client.iter_changed_customers(since=window_start))
        if kind == RunKind.SCHEDULED:
            _sync_pages(ctx, "agreement", client.iter_agreements())
        _sync_pages(ctx, "invoice", client.iter_changed_invoices(since=window_start))
    elif kind == RunKind.FETCH_UNPAID:
        ctx.say("Reading unpaid invoices")
        _sync_pages(ctx, "invoice", client.iter_unpaid_invoices())
        _refresh_missing_unpaid(ctx)


def _load_connection(engine: Engine, partner_id: int) -> tuple[Any, Any]:
    with engine.connect() as conn:
        partner = conn.execute(select(PARTNER_TABLE).where(PARTNER_TABLE.c.id == partner_id)).first()
        connection = conn.execute(
            select(CONNECTION_TABLE).where(CONNECTION_TABLE.c.partner_id == partner_id)
        ).first()
    return partner, connection


def _record_outcome(conn: DbConnection, partner_id: int, error: HaloError | None, now: datetime,
                    scopes: Any) -> None:
    """Keep the connection's health current: last error, and the permissions HaloPSA granted this run's token."""
    values: dict[str, Any] = {"last_error": error.message if error else None}
    if error is None:
        values["last_verified_at"] = now
    if scopes is not None and scopes.reported:
        values["granted_scopes"] = " ".join(scopes.granted)
        values["missing_scopes"] = " ".join(scopes.missing)
    if isinstance(error, PermissionMissing):
        values["missing_scopes"] = " ".join(error.missing)
    conn.execute(update(CONNECTION_TABLE).where(CONNECTION_TABLE.c.partner_id == partner_id).values(**values))
    status = PartnerStatus.CONNECTED if error is None or error.transient else PartnerStatus.ERROR
    conn.execute(update(PARTNER_TABLE).where(PARTNER_TABLE.c.id == partner_id).values(status=status))


def plan_window(engine: Engine, partner_id: int, kind: str, now: datetime) -> tuple[str, datetime | None]:
    """The kind that will really run and where its window starts (scheduled without a backfill backfills)."""
    if kind == RunKind.FETCH_NEW_DATA:
        return kind, now - NEW_DATA_WINDOW
    if kind == RunKind.SCHEDULED:
        end, backfilled = _last_success_end(engine, partner_id)
        if not backfilled or end is None:
            return RunKind.BACKFILL, None
        return kind, min(end - SCHEDULE_OVERLAP, now - NEW_DATA_WINDOW)
    return kind, None


def run_sync(
    engine: Engine,
    *,
    partner_id: int,
    kind: str,
    trigger: str,
    actor: str,
    now: datetime,
    settings: Settings,
    client_factory: ClientFactory,
    progress: ProgressFn | None = None,
) -> RunResult:
    """Run one sync for one partner and return how it ended. Raises only when the run was refused before starting
    (SyncAlreadyRunning, CooldownActive); a failed run is recorded and returned with its reason."""
    partner, connection = _load_connection(engine, partner_id)
    manual = trigger == "manual"
    kind, window_start = plan_window(engine, partner_id, kind, now)
    try:
        run_id = runs.start_run(
            engine, partner_id=partner_id, partner_name=partner.name, kind=kind, trigger=trigger, actor=actor,
            now=now, settings=settings, claim_cooldown=manual, window_start=window_start,
        )
    except CooldownActive:
        with engine.begin() as conn:
            cooldowns.record_refusal(conn, partner_id=partner_id, kind=kind)
        raise
    ctx = RunContext(engine=engine, settings=settings, run_id=run_id, partner_id=partner_id,
                     connection=connection, now=now, progress=progress)

    def on_wait(event: Any) -> None:
        """A 429 shows the run as rate limited (not failed) while it waits; pacing waits only report progress."""
        if event.kind == "retry":
            waiting = RunStatus.RATE_LIMITED if event.status_code == 429 else RunStatus.RUNNING
            runs.set_status(engine, run_id, waiting, error=event.reason)
        ctx.say(event.reason)

    error: HaloError | None = None
    scopes = None
    try:
        with client_factory(connection, on_wait) as client:
            ctx.client = client
            _work(ctx, kind, window_start)
            ctx.tally.requests = client.stats.requests
            scopes = client.last_scope_check()
    except HaloError as exc:
        error = exc
    except ConsoleError as exc:
        error = HaloError(exc.message)
        error.kind = exc.kind
        # the console's own encryption key is wrong or missing: not the partner's fault, so its status stays and a
        # manual fetch gets its cooldown back
        error.transient = isinstance(exc, SecretKeyError)
    except Exception:  # an unexpected bug must still end the run readably and release the lock
        log.exception("sync run %s for partner %s crashed", run_id, partner_id)
        error = HaloError(
            "The sync stopped on an unexpected error (details are in the console's log). Try again; if it keeps "
            "failing, contact the console's maintainers with the run number."
        )
        error.transient = True
    refunded = False
    if error is None:
        status = RunStatus.PARTIAL if ctx.tally.rejected else RunStatus.SUCCEEDED
    else:
        status = RunStatus.RATE_LIMITED if isinstance(error, RateLimited) else RunStatus.FAILED
        refunded = manual and error.transient
    message = error.message if error else None
    if refunded:
        message = f"{message} The cooldown was not used: you can run this fetch again now."
    with engine.begin() as conn:
        if refunded:
            cooldowns.refund(conn, partner_id=partner_id, kind=kind, run_id=run_id)
        runs.save_progress(conn, run_id, partner_id, now=ctx.moment(), **ctx.tally.as_values())
        _record_outcome(conn, partner_id, error, now, scopes)
    runs.finish_run(engine, run_id, partner_id, status=status, now=ctx.moment(),
                    error_kind=error.kind if error else None, error=message)
    return RunResult(run_id=run_id, kind=kind, status=status, tally=ctx.tally, error=message, cooldown_refunded=refunded)


def iter_due_partners(engine: Engine, *, now: datetime, settings: Settings) -> Iterator[int]:
    """Connected primary partners whose last successful sync window ended an interval or more ago."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(PARTNER_TABLE.c.id)
            .join(CONNECTION_TABLE, CONNECTION_TABLE.c.partner_id == PARTNER_TABLE.c.id)
            .where(CONNECTION_TABLE.c.integration_role == IntegrationRole.PRIMARY)
            .order_by(PARTNER_TABLE.c.id)
        ).all()
        last_attempt = dict(
            conn.execute(
                select(tables.RUN_TABLE.c.partner_id, func.max(tables.RUN_TABLE.c.started_at))
                .where(tables.RUN_TABLE.c.trigger.in_(["schedule", "connect"]))
                .group_by(tables.RUN_TABLE.c.partner_id)
            ).all()
        )
    interval = timedelta(seconds=settings.schedule_interval_s)
    for row in rows:
        end, _ = _last_success_end(engine, row.id)
        # a failing partner is retried once per interval, not on every scheduler tick
        latest = max((t for t in (end, last_attempt.get(row.id)) if t is not None), default=None)
        if latest is None or now - latest >= interval:
            yield row.id

