"""The sync engine: backfill, scheduled, Fetch new data and Fetch unpaid invoices for one partner, in three steps:
`start` (plan the window, take the partner's lock and, for a manual fetch, the cooldown), `work` (read HaloPSA stream
by stream, one transaction per page) and `finish` (record the outcome, give a transient failure's cooldown back).

Every page is upserted and committed in its own transaction together with the run's counts and heartbeat, so a
crash loses at most the page in flight and a rerun converges. A failure is a value (`Failure`), never an exception
patched with attributes; the run ends with its readable reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection as DbConnection
from sqlalchemy.engine import Engine

from core.errors import (
    ConsoleError,
    CooldownActive,
    ErrorKind,
    HaloError,
    NotFound,
    PermissionMissing,
    SecretKeyError,
)
from core.halopsa import paging
from core.halopsa.auth import ScopeCheck
from core.halopsa.client import HaloClient, ListingReport
from core.halopsa.records import RecordError
from core.halopsa.transport import ClientEvent
from core.settings import Settings
from core.store import upserts
from core.store.tables import (
    CONNECTION_TABLE,
    INVOICE_TABLE,
    PARTNER_TABLE,
    UNPAID_STATUSES,
    IntegrationRole,
    Listing,
    ListingMethod,
    NumberField,
    PartnerStatus,
    RunCounters,
    RunKind,
    RunStatus,
    RunTrigger,
)
from core.sync import cooldowns, jobs, listings, probes, reconcile, runs, subtypes, window
from core.sync.connector import ClientFactory
from core.sync.jobs import ClaimedJob, JobCancelled
from core.sync.runs import ProgressFn, RunResult
from core.sync.streams import (
    AGREEMENTS,
    CUSTOMERS,
    DELETED_INVOICE,
    DELETED_NOTE,
    INVOICES,
    NUMBER_FIELD_LABELS,
    Entity,
    Stream,
    renumbered,
)

log = logging.getLogger(__name__)

CRASHED_MESSAGE = (
    "The sync stopped on an unexpected error (details are in the console's log). Try again; if it keeps failing, "
    "contact the console's maintainers with the run number."
)
REFUNDED_NOTE = "The cooldown was not used: you can run this fetch again now."
STOPPING_MESSAGE = ("The worker running this sync was stopped; the sync was queued again and continues on the next "
                    "worker. Nothing is lost.")
GAVE_UP_WAITING = (f"HaloPSA kept asking to wait through {jobs.MAX_RATE_LIMIT_HANDBACKS} rate windows in a row, so "
                   "this sync stopped with what it read kept; the next scheduled sync starts again.")
LEASE_LOST_MESSAGE = ("This sync lost its lease (its worker was too slow to renew it) and stopped writing; another "
                      "worker runs it again.")


class WorkerStopping(Exception):
    """The worker is shutting down: the run stops after the page it is on and its job goes back to the queue."""
REFETCH_BATCH = 100


@dataclass(frozen=True)
class Failure:
    """Why a run failed: what kind of failure, the sentence shown, and whether it is transient (a manual fetch gets
    its cooldown back and the partner keeps its status)."""

    kind: ErrorKind
    message: str
    transient: bool
    missing_scopes: tuple[str, ...] = ()

    @classmethod
    def of(cls, exc: Exception) -> Failure:
        if isinstance(exc, JobCancelled):
            return cls(ErrorKind.CANCELLED, f"Cancelled by {exc.by}.", True)
        if isinstance(exc, WorkerStopping):
            return cls(ErrorKind.INTERRUPTED, STOPPING_MESSAGE, True)
        if isinstance(exc, HaloError):
            missing = tuple(exc.missing) if isinstance(exc, PermissionMissing) else ()
            return cls(exc.kind, exc.message, exc.transient, missing)
        if isinstance(exc, ConsoleError):
            # the console's own encryption key is wrong or missing: not the partner's fault, so its status stays and
            # a manual fetch gets its cooldown back
            return cls(exc.kind, exc.message, isinstance(exc, SecretKeyError))
        return cls(ErrorKind.CRASHED, CRASHED_MESSAGE, True)


@dataclass
class RunContext:
    engine: Engine
    settings: Settings
    run_id: int
    partner_id: int
    kind: RunKind
    manual: bool
    connection: Any
    window: window.Window
    progress: ProgressFn | None = None
    job: ClaimedJob | None = None
    stopping: threading.Event | None = None
    client: HaloClient | None = None
    tally: RunCounters = field(default_factory=RunCounters)
    seen_invoice_ids: set[int] = field(default_factory=set)
    seen_subtype_ids: set[int] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)  # how each listing was read and what it cost: the run's message
    started: float = field(default_factory=time.monotonic)

    @property
    def now(self) -> datetime:
        return self.window.end

    def moment(self) -> datetime:
        """The run's start on the injected clock plus the real time it has taken (heartbeats, finish)."""
        return self.now + timedelta(seconds=time.monotonic() - self.started)

    def say(self, message: str, *, stored: bool = True) -> None:
        """Tell whoever watches: the caller's callback, and the run row the Syncs page reads."""
        if stored:
            runs.say(self.engine, self.run_id, message)
        if self.progress:
            self.progress(message)

    def on_client_event(self, event: ClientEvent) -> None:
        """A wait shows on the run until it ends: a 429 as rate limited (not failed), a retry or pacing as running."""
        waiting = RunStatus.RATE_LIMITED if event.status_code == 429 else RunStatus.RUNNING
        runs.set_status(self.engine, self.run_id, waiting, error=event.reason,
                        waiting_until=self.moment() + timedelta(seconds=event.seconds))
        self.say(event.reason, stored=False)

    def check_stop(self) -> None:
        if self.stopping is not None and self.stopping.is_set():
            raise WorkerStopping


# --- start ---------------------------------------------------------------------------------------------------------

def _load(engine: Engine, partner_id: int) -> tuple[Any, Any]:
    with engine.connect() as conn:
        partner = conn.execute(select(PARTNER_TABLE).where(PARTNER_TABLE.c.id == partner_id)).first()
        connection = conn.execute(
            select(CONNECTION_TABLE).where(CONNECTION_TABLE.c.partner_id == partner_id)
        ).first()
    return partner, connection


def start(engine: Engine, *, partner_id: int, kind: RunKind, trigger: RunTrigger, actor: str, now: datetime,
          settings: Settings, progress: ProgressFn | None = None, job: ClaimedJob | None = None,
          stopping: threading.Event | None = None) -> RunContext:
    """Open the run: raises SyncAlreadyRunning or CooldownActive (the refusal counted) and leaves nothing behind.
    A job's manual fetch claimed its cooldown when it was queued; a run outside the queue claims it here."""
    partner, connection = _load(engine, partner_id)
    if partner is None or connection is None:
        raise NotFound("This partner has no HaloPSA connection any more, so there is nothing to sync. Connect it "
                       "again on the Connection page.")
    manual = trigger == RunTrigger.MANUAL
    planned = window.plan(engine, partner_id, kind, now)
    try:
        run_id = runs.start_run(
            engine, partner_id=partner_id, partner_name=partner.name, kind=planned.kind, trigger=trigger,
            actor=actor, now=now, settings=settings, claim_cooldown=manual and job is None,
            window_start=planned.window.start, job_id=job.id if job else None,
            # a cancel asked before the run starts is met at its first page, as any other
            guard=(lambda conn: jobs.fence(conn, job, allow_cancelled=True)) if job else None,
        )
    except CooldownActive:
        with engine.begin() as conn:
            cooldowns.record_refusal(conn, partner_id=partner_id, kind=planned.kind, actor=actor, now=now)
        raise
    if job is not None:
        with engine.begin() as conn:
            jobs.attach_run(conn, job, run_id)
    return RunContext(engine=engine, settings=settings, run_id=run_id, partner_id=partner_id, kind=planned.kind,
                      manual=manual, connection=connection, window=planned.window, progress=progress, job=job,
                      stopping=stopping)


# --- work ----------------------------------------------------------------------------------------------------------

def _numbered_by(conn: DbConnection, partner_id: int) -> NumberField:
    """Inside a page's transaction: the field the stored invoices are numbered by, read under a share lock on the
    connection row, so a renumbering (which updates that row first) either finished before this page or waits for it."""
    return NumberField(conn.execute(
        select(CONNECTION_TABLE.c.numbered_by).where(CONNECTION_TABLE.c.partner_id == partner_id)
        .with_for_update(read=True)
    ).scalar_one())


def _store_page(ctx: RunContext, stream: Stream, found: list[Any], errors: list[RecordError]) -> None:
    found = stream.keep(ctx.connection, found)
    if stream.entity == Entity.INVOICE:
        ctx.seen_invoice_ids.update([record.halo_id for record in found])
    elif stream.entity == Entity.AGREEMENT:
        ctx.seen_subtype_ids.update(record.subtype_id for record in found if record.subtype_id is not None)
    tally = ctx.tally
    tally.pages += 1
    if ctx.client is not None:
        runs.count_requests(tally, ctx.client.stats)
    setattr(tally, stream.seen_counter, getattr(tally, stream.seen_counter) + len(found))
    tally.rejected += len(errors)
    message = f"{stream.entity.capitalize()}s: {getattr(tally, stream.seen_counter):,} read"
    with ctx.engine.begin() as conn:
        if ctx.job is not None:
            jobs.fence(conn, ctx.job)
        build = stream.row_builder(_numbered_by(conn, ctx.partner_id))
        rows = [build(record) for record in found]
        counts = upserts.upsert_rows(
            conn, stream.table, stream.fields, rows, partner_id=ctx.partner_id, now=ctx.now, run_id=ctx.run_id
        )
        tally.created += counts.created
        tally.updated += counts.updated
        tally.unchanged += counts.unchanged
        runs.add_record_errors(conn, ctx.run_id, ctx.partner_id, errors)
        runs.save_progress(conn, ctx.run_id, ctx.partner_id, now=ctx.moment(), status=RunStatus.RUNNING,
                           message=message, waiting_until=None, **tally.model_dump())
    ctx.say(message, stored=False)


def _sync_pages(ctx: RunContext, stream: Stream, pages: Iterable[Any]) -> None:
    for page in pages:
        _store_page(ctx, stream, page.records, page.errors)
        ctx.check_stop()
    if stream.entity == Entity.AGREEMENT:  # always read whole: every subtype id the tenant's agreements use
        _check_subtype_lookup(ctx)


def _check_subtype_lookup(ctx: RunContext) -> None:
    """Check the partner's subtype lookup (when one is set) against the subtype ids the agreements showed; a lookup
    that is not verified is named in the run's message, with why."""
    assert ctx.client is not None
    result = subtypes.check(ctx.engine, ctx.client, ctx.partner_id, ctx.seen_subtype_ids, now=ctx.now)
    if result is not None and not result.verified:
        ctx.notes.append(f"Agreement subtype names: {result.finding}")


def _local_unpaid(ctx: RunContext) -> set[int]:
    invoice = INVOICE_TABLE.c
    with ctx.engine.connect() as conn:
        return set(conn.scalars(
            select(invoice.halo_id).where(invoice.partner_id == ctx.partner_id, invoice.status.in_(UNPAID_STATUSES))
        ))


def _sync_changes(ctx: RunContext, client: HaloClient, stream: Stream, since: datetime,
                  methods: dict[Listing, ListingMethod]) -> None:
    """What changed since the window start, by the method this tenant honours (remembered, revised when one gives
    way); the run's message says which served and what it cost."""
    assert stream.list_changed is not None
    report = ListingReport()
    start = listings.start_method(methods, stream.entity)
    _sync_pages(ctx, stream, stream.list_changed(client, since, start, report))
    listings.learn_changes(ctx.engine, ctx.partner_id, ctx.connection, methods, stream.entity, report, now=ctx.now)
    ctx.notes.append(listings.describe_changes(stream.entity, report))
    if report.dropped:  # an answer the probe did not foresee: the next run checks the tenant again
        probes.mark_stale(ctx.engine, ctx.partner_id, f"run {ctx.run_id} met an answer the last check did not "
                                                      f"foresee ({report.dropped[0][1]})")


def _refresh_unpaid(ctx: RunContext, client: HaloClient, methods: dict[Listing, ListingMethod]) -> None:
    """Fetch unpaid invoices for no more requests than one full invoice listing: HaloPSA's status filter, then what it
    missed one by one; or the whole listing where the filter does not fit the tenant's status codes (remembered from
    the last whole listing), or where it missed more than a whole listing costs."""
    page_size = client.page_size
    with ctx.engine.connect() as conn:
        stored = conn.scalar(select(func.count()).select_from(INVOICE_TABLE)
                             .where(INVOICE_TABLE.c.partner_id == ctx.partner_id)) or 0
    budget = paging.listing_requests(stored, page_size)  # a full listing, as far as the stored invoices tell
    first_request = client.stats.requests
    if methods.get(Listing.UNPAID_INVOICES) == ListingMethod.SCAN:
        how = "the whole invoice listing, as HaloPSA's unpaid status filter does not fit this tenant"
        _scan_unpaid(ctx, client, _local_unpaid(ctx))
    else:
        ctx.say("Reading unpaid invoices")
        _sync_pages(ctx, INVOICES, client.iter_unpaid_invoices())
        missing = _local_unpaid(ctx) - ctx.seen_invoice_ids
        if len(missing) > budget:  # re-reading them one by one would cost more than the whole listing
            how = (f"HaloPSA's unpaid status filter left out {len(missing):,} invoices unpaid here, more than reading "
                   "the whole listing costs, so the whole listing was read instead")
            _scan_unpaid(ctx, client, missing)
        else:
            how = (f"HaloPSA's unpaid status filter, then {len(missing):,} invoices it no longer lists re-read one "
                   "by one")
            _refresh_missing_unpaid(ctx, client, missing)
    listings.learn_unpaid(ctx.engine, ctx.partner_id, ctx.connection, methods, client.unpaid_check, page_size,
                          now=ctx.now)
    spent = client.stats.requests - first_request
    ctx.notes.append(f"Unpaid invoices: {how} ({listings.requests_text(spent)}).")


def _scan_unpaid(ctx: RunContext, client: HaloClient, known: set[int]) -> None:
    """Every invoice, keeping those unpaid there and those unpaid here (`known`); an invoice unpaid here that the
    whole listing lacks is then re-read by its id (deleted in HaloPSA when that finds nothing)."""
    ctx.say("Reading every invoice for the unpaid ones")
    _sync_pages(ctx, INVOICES, client.iter_unpaid_invoices(filtered=False, known=known))
    _refresh_missing_unpaid(ctx, client, _local_unpaid(ctx) - ctx.seen_invoice_ids)


def _refresh_missing_unpaid(ctx: RunContext, client: HaloClient, absent: set[int]) -> None:
    """Invoices unpaid here but absent from HaloPSA's unpaid list were paid, voided or deleted there: refetch each."""
    missing = sorted(absent)
    if missing:
        ctx.say(f"Checking {len(missing):,} invoices that are no longer unpaid in HaloPSA")
    _refetch(ctx, client, missing)


def _refetch(ctx: RunContext, client: HaloClient, halo_ids: list[int]) -> set[int]:
    """Read these invoices again one by one (a request each) and store them a batch at a time; one HaloPSA no longer
    has is marked deleted, one it sends unreadable is rejected with its reason (never fatal). Returns the ids stored
    or marked deleted."""
    done: set[int] = set()
    for first in range(0, len(halo_ids), REFETCH_BATCH):
        found: list[Any] = []
        gone: list[RecordError] = []
        rejected: list[RecordError] = []
        for halo_id in halo_ids[first:first + REFETCH_BATCH]:
            try:
                record = client.get_invoice(halo_id)
            except RecordError as error:
                rejected.append(error)
                continue
            if record is None:
                gone.append(RecordError(Entity.INVOICE, halo_id, DELETED_NOTE, {"id": halo_id}))
            else:
                found.append(record)
        _store_page(ctx, INVOICES, found, rejected)
        done.update(record.halo_id for record in found)
        if gone:
            deleted = [e.halo_id for e in gone if e.halo_id is not None]
            _mark_deleted(ctx, deleted, gone)
            done.update(deleted)
    return done


def _resync(ctx: RunContext, client: HaloClient) -> None:
    """Read again by id exactly the invoices the latest reconciliation found differing (at most RESYNC_CAP), store
    them as a sync does, and clear their drift items."""
    with ctx.engine.connect() as conn:
        differing = reconcile.open_drift(conn, ctx.partner_id)
    chosen = differing[:reconcile.RESYNC_CAP]
    ctx.say(f"Reading {len(chosen):,} differing invoices again")
    done = _refetch(ctx, client, chosen)
    with ctx.engine.begin() as conn:
        if ctx.job is not None:
            jobs.fence(conn, ctx.job)
        cleared = reconcile.clear(conn, ctx.partner_id, sorted(done), run_id=ctx.run_id, now=ctx.now)
    note = (f"Resync: {len(done):,} of {len(differing):,} differing invoices read again ({cleared:,} drift items "
            "cleared).")
    if len(differing) > len(chosen):
        note += (f" {len(differing) - len(chosen):,} more wait: resync again, or run Fetch unpaid invoices (or a "
                 "backfill) when many differ, as it costs less than reading each one.")
    ctx.notes.append(note)


def _mark_deleted(ctx: RunContext, halo_ids: list[int], notes: list[RecordError]) -> None:
    invoice = INVOICE_TABLE.c
    with ctx.engine.begin() as conn:
        changed = conn.execute(
            update(INVOICE_TABLE)
            .where(invoice.partner_id == ctx.partner_id, invoice.halo_id.in_(halo_ids))
            .values(**DELETED_INVOICE, last_changed_run_id=ctx.run_id, synced_at=ctx.now)
        ).rowcount
        ctx.tally.updated += changed
        runs.add_record_errors(conn, ctx.run_id, ctx.partner_id, notes)


def _renumber(ctx: RunContext) -> None:
    """Number every stored invoice by the connection's Invoice Number Field, and make it the field pages are written
    by, in one transaction: the connection row is updated first, so a page being written finishes before (and is
    renumbered here) or waits and is written by the new field."""
    connection = CONNECTION_TABLE.c
    with ctx.engine.begin() as conn:
        if ctx.job is not None:
            jobs.fence(conn, ctx.job)
        field = NumberField(conn.execute(
            update(CONNECTION_TABLE).where(connection.partner_id == ctx.partner_id)
            .values(numbered_by=connection.invoice_number_field).returning(connection.numbered_by)
        ).scalar_one())
        ctx.tally.updated = conn.execute(
            update(INVOICE_TABLE).where(INVOICE_TABLE.c.partner_id == ctx.partner_id).values(**renumbered(field))
        ).rowcount
        message = f"Renumbered {ctx.tally.updated:,} invoices by {NUMBER_FIELD_LABELS[field]}"
        runs.save_progress(conn, ctx.run_id, ctx.partner_id, now=ctx.moment(), status=RunStatus.RUNNING,
                           message=message, waiting_until=None, **ctx.tally.model_dump())
    ctx.say(message, stored=False)


def _know_the_tenant(ctx: RunContext, client: HaloClient, methods: dict[Listing, ListingMethod]) -> None:
    """Use what the last probe found on this tenant, probing first when none ran on it, one was asked for, or a run
    met an answer it did not foresee."""
    found = probes.stored(ctx.engine, ctx.partner_id, ctx.connection)
    reason = "it was asked for" if ctx.kind == RunKind.PROBE else probes.due(found)
    if reason is None:
        assert found is not None
        client.adopt(found.result.profile(client.config))
        return
    ctx.say("Checking what this HaloPSA supports")
    result = probes.run(ctx.engine, ctx.partner_id, ctx.connection, client, methods, now=ctx.now)
    client.adopt(result.profile(client.config))
    ctx.notes.append(f"Checked what this HaloPSA supports ({listings.requests_text(result.requests)}) because "
                     f"{reason}.")


def work(ctx: RunContext, client: HaloClient) -> None:
    """Read HaloPSA for the run's kind and window, storing page by page."""
    ctx.client = client
    methods = listings.remembered(ctx.engine, ctx.partner_id, ctx.connection)
    secondary = ctx.connection.integration_role == IntegrationRole.SECONDARY
    if ctx.kind == RunKind.BACKFILL and secondary:
        client.require_scopes()
        return
    _know_the_tenant(ctx, client, methods)
    if ctx.kind == RunKind.BACKFILL:
        for stream in (CUSTOMERS, AGREEMENTS, INVOICES):
            ctx.say(f"Reading {stream.entity}s")
            _sync_pages(ctx, stream, stream.list_all(client, ctx.connection))
        choice = listings.learn_unpaid(ctx.engine, ctx.partner_id, ctx.connection, methods, client.unpaid_check,
                                       client.page_size, now=ctx.now)
        if choice is not None and choice.method == ListingMethod.SCAN:
            ctx.notes.append(f"Fetch unpaid invoices will read every invoice of this tenant: {choice.reason}.")
    elif ctx.kind in (RunKind.SCHEDULED, RunKind.FETCH_NEW_DATA):
        since = ctx.window.start
        assert since is not None, "an incremental run always has a window start"
        for stream in (CUSTOMERS, AGREEMENTS, INVOICES):
            if stream.list_changed is not None:
                _sync_changes(ctx, client, stream, since, methods)
            elif ctx.kind == RunKind.SCHEDULED:
                _sync_pages(ctx, stream, stream.list_all(client, ctx.connection))
    elif ctx.kind == RunKind.FETCH_UNPAID:
        _refresh_unpaid(ctx, client, methods)
    elif ctx.kind == RunKind.RECONCILE:
        reconcile.compare(ctx, client)
    elif ctx.kind == RunKind.RESYNC:
        _resync(ctx, client)
    runs.count_requests(ctx.tally, client.stats)


# --- finish --------------------------------------------------------------------------------------------------------

def _record_outcome(conn: DbConnection, partner_id: int, failure: Failure | None, now: datetime,
                    scopes: ScopeCheck | None) -> None:
    """Keep the connection's health current: last error, and the permissions HaloPSA granted this run's token."""
    values: dict[str, Any] = {"last_error": failure.message if failure else None}
    if failure is None:
        values["last_verified_at"] = now
    if scopes is not None and scopes.reported:
        values["granted_scopes"] = " ".join(scopes.granted)
        values["missing_scopes"] = " ".join(scopes.missing)
    if failure is not None and failure.missing_scopes:
        values["missing_scopes"] = " ".join(failure.missing_scopes)
    conn.execute(update(CONNECTION_TABLE).where(CONNECTION_TABLE.c.partner_id == partner_id).values(**values))
    status = PartnerStatus.CONNECTED if failure is None or failure.transient else PartnerStatus.ERROR
    conn.execute(update(PARTNER_TABLE).where(PARTNER_TABLE.c.id == partner_id).values(status=status))


def _status_of(ctx: RunContext, failure: Failure | None) -> RunStatus:
    if failure is None:
        return RunStatus.PARTIAL if ctx.tally.rejected else RunStatus.SUCCEEDED
    return {ErrorKind.RATE_LIMITED: RunStatus.RATE_LIMITED, ErrorKind.CANCELLED: RunStatus.CANCELLED,
            ErrorKind.INTERRUPTED: RunStatus.INTERRUPTED}.get(failure.kind, RunStatus.FAILED)


def finish(ctx: RunContext, failure: Failure | None, scopes: ScopeCheck | None) -> RunResult:
    """Close the run with its outcome, and its job, in one transaction that checks the lease first (a run that lost
    it writes nothing). A manual fetch that failed transiently, or was cancelled before it stored anything, gets its
    cooldown back; a job whose worker is stopping goes back to the queue, keeping the cooldown for its rerun."""
    status = _status_of(ctx, failure)
    stored_nothing = ctx.tally.created + ctx.tally.updated == 0
    # a stopping worker's job goes back to the queue and its rerun serves the press: the cooldown stays taken
    refunded = failure is not None and ctx.manual and failure.transient and failure.kind != ErrorKind.INTERRUPTED and (
        failure.kind != ErrorKind.CANCELLED or stored_nothing)
    message = failure.message if failure else None
    try:
        with ctx.engine.begin() as conn:
            if ctx.job is not None:
                jobs.fence(conn, ctx.job, allow_cancelled=True)
            notes = {"message": " ".join(ctx.notes)} if ctx.notes else {}  # how it read HaloPSA, at what cost
            runs.save_progress(conn, ctx.run_id, ctx.partner_id, now=ctx.moment(), **ctx.tally.model_dump(), **notes)
            resume = jobs.resumes_after(conn, ctx.job, status) if ctx.job is not None else None
            if resume is not None:  # handed back until HaloPSA's wait is over: that rerun serves the press
                refunded = False
                message = f"{message} {_resumes_note(ctx, resume)}"
            elif ctx.job is not None and status == RunStatus.RATE_LIMITED and jobs.out_of_handbacks(conn, ctx.job):
                message = f"{message} {GAVE_UP_WAITING}"
            if refunded:
                message = f"{message} {REFUNDED_NOTE}"
                cooldowns.refund(conn, partner_id=ctx.partner_id, kind=ctx.kind, run_id=ctx.run_id,
                                 job_id=ctx.job.id if ctx.job else None)
            if ctx.kind != RunKind.RENUMBER and (
                    failure is None or failure.kind not in (ErrorKind.CANCELLED, ErrorKind.INTERRUPTED)):
                # a renumbering, a cancel or a stopping worker says nothing about the partner's HaloPSA
                _record_outcome(conn, ctx.partner_id, failure, ctx.now, scopes)
            runs.close_run(conn, ctx.run_id, ctx.partner_id, status=status, now=ctx.moment(),
                           error_kind=failure.kind if failure else None, error=message)
            if ctx.job is not None:
                jobs.close(conn, ctx.job, outcome=message or status.value, status=status)
    except jobs.LeaseLost:
        log.warning("run %s lost its lease before finishing; another worker owns its job now", ctx.run_id)
        status, message, refunded = RunStatus.INTERRUPTED, LEASE_LOST_MESSAGE, False
    return RunResult(run_id=ctx.run_id, kind=ctx.kind, status=status, tally=ctx.tally, error=message,
                     cooldown_refunded=refunded)


def _resumes_note(ctx: RunContext, after: timedelta) -> str:
    at = ctx.moment() + after
    return (f"The sync continues by itself after {at:%H:%M:%S} UTC, from where it stopped; the fetch's cooldown "
            "stays with it.")


def run_sync(engine: Engine, *, partner_id: int, kind: RunKind, trigger: RunTrigger, actor: str, now: datetime,
             settings: Settings, client_factory: ClientFactory, progress: ProgressFn | None = None,
             job: ClaimedJob | None = None, stopping: threading.Event | None = None) -> RunResult:
    """Run one sync for one partner and return how it ended. Raises only when the run was refused before starting
    (SyncAlreadyRunning, CooldownActive); a failed run is recorded and returned with its reason."""
    ctx = start(engine, partner_id=partner_id, kind=kind, trigger=trigger, actor=actor, now=now, settings=settings,
                progress=progress, job=job, stopping=stopping)
    failure: Failure | None = None
    scopes: ScopeCheck | None = None
    try:
        if ctx.kind == RunKind.RENUMBER:  # reads nothing from HaloPSA
            _renumber(ctx)
        else:
            with client_factory(ctx.connection, ctx.on_client_event) as client:
                try:
                    work(ctx, client)
                    scopes = client.last_scope_check()
                finally:  # every request sent, retries and refused ones too, also when the run fails
                    runs.count_requests(ctx.tally, client.stats)
    except jobs.LeaseLost:
        log.warning("run %s lost its lease mid-run and stopped writing", ctx.run_id)
        return RunResult(run_id=ctx.run_id, kind=ctx.kind, status=RunStatus.INTERRUPTED, tally=ctx.tally,
                         error=LEASE_LOST_MESSAGE)
    except Exception as exc:  # an unexpected bug must still end the run readably and release the lock
        if not isinstance(exc, (ConsoleError, JobCancelled, WorkerStopping)):
            log.exception("sync run %s for partner %s crashed", ctx.run_id, partner_id)
        failure = Failure.of(exc)
    return finish(ctx, failure, scopes)
