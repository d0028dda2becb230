"""The scheduler's tick: which connected primary partners are due for a scheduled sync (or a missing renumbering),
and running them."""

from __future__ import annotations

from contextlib import suppress
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.engine import Connection, Engine

from core.errors import SyncAlreadyQueued
from core.settings import Settings
from core.store.tables import (
    CONNECTION_TABLE,
    JOB_TABLE,
    PARTNER_TABLE,
    RUN_TABLE,
    IntegrationRole,
    RunKind,
    RunTrigger,
)
from core.sync import jobs, window, worker
from core.sync.connector import ClientFactory
from core.sync.runs import RunResult

SCHEDULER_ACTOR = "scheduler"


def clock(engine: Engine, settings: Settings) -> datetime:
    """The scheduler's now: HALO_CONSOLE_NOW when pinned (replays, tests), else the database's clock, so schedulers on
    hosts whose clocks differ agree on who is due."""
    if settings.fixed_now is not None:
        return settings.fixed_now
    with engine.connect() as conn:
        return jobs.lease_now(conn)


def _held_since(now: datetime, interval: timedelta, partner_id: int | None) -> Select[tuple[int, datetime]]:
    """Per partner, the latest moment in the last interval that holds its scheduled sync back: the start of a
    scheduled (or the connect's) attempt, so a failing partner is retried once per interval, not on every tick; or the
    end of a successful sync window (a window ends when its run starts, so both are found through the started_at index
    and only the last interval's runs are read). A time ahead of now (a wrong clock, a replay) is not trusted, or it
    would hold a partner back for ever."""
    run = RUN_TABLE.c
    since = now - interval
    attempt = run.trigger.in_([RunTrigger.SCHEDULE, RunTrigger.CONNECT])
    window_closed = and_(run.status.in_(window.SUCCEEDED), run.kind.in_(window.INCREMENTAL_KINDS),
                         run.window_end > since, run.window_end <= now)
    # an attempt holds from its start; a window from the earlier of its run's start and its end
    held_from = case((attempt, run.started_at), (run.window_end < run.started_at, run.window_end),
                     else_=run.started_at)
    one = [run.partner_id == partner_id] if partner_id is not None else []  # one partner: its own index range
    return (select(run.partner_id, func.max(held_from).label("held_from"))
            .where(*one, run.started_at > since, run.started_at <= now, or_(window_closed, attempt))
            .group_by(run.partner_id))


def next_sync_times(conn: Connection, *, now: datetime, interval: timedelta,
                    partner_id: int | None = None) -> dict[int, datetime]:
    """When each connected primary partner (or only `partner_id`) is next due for a scheduled sync: the moment the
    scheduler's tick at or after it queues the partner (`now` when it is due now). The scheduler and the pages both
    read it, so what a page says is what the scheduler does. One query."""
    held = _held_since(now, interval, partner_id).subquery()
    partner = PARTNER_TABLE.c
    query = (select(partner.id, held.c.held_from)
             .join(CONNECTION_TABLE, CONNECTION_TABLE.c.partner_id == partner.id)
             .outerjoin(held, held.c.partner_id == partner.id)
             .where(CONNECTION_TABLE.c.integration_role == IntegrationRole.PRIMARY)
             .order_by(partner.id))
    if partner_id is not None:
        query = query.where(partner.id == partner_id)
    return {row.id: max(now, row.held_from + interval) if row.held_from is not None else now
            for row in conn.execute(query)}


def due_partners(engine: Engine, *, now: datetime, settings: Settings) -> list[int]:
    """Connected primary partners due now (`next_sync_times`), in id order."""
    with engine.connect() as conn:
        times = next_sync_times(conn, now=now, interval=timedelta(seconds=settings.schedule_interval_s))
    return [partner_id for partner_id, at in times.items() if at <= now]


def _queued_lately(conn: Connection, partner_id: int, *, now: datetime, interval: timedelta,
                   besides: int | None = None) -> bool:
    """A scheduled job of this partner (other than `besides`) was queued within the last interval: another scheduler
    already saw it due. A job stamped after `now` (a clock ahead) does not count, or it would hold the partner back
    for ever."""
    created = JOB_TABLE.c.created_at
    return conn.scalar(select(JOB_TABLE.c.id).where(
        JOB_TABLE.c.partner_id == partner_id, JOB_TABLE.c.kind == RunKind.SCHEDULED, JOB_TABLE.c.id != besides,
        created > now - interval, created <= now).limit(1)) is not None


class _QueuedMeanwhile(Exception):
    """Raised inside the enqueue transaction so it rolls back: another scheduler queued the partner since the look."""


def _unevenly_numbered(engine: Engine) -> list[int]:
    """Partners whose invoices are numbered by another field than the one chosen: an edit whose renumbering was not
    queued because one was just finishing (each edit queues its own otherwise)."""
    connection = CONNECTION_TABLE.c
    with engine.connect() as conn:
        return list(conn.scalars(select(connection.partner_id)
                                 .where(connection.numbered_by != connection.invoice_number_field)))


def enqueue_due(engine: Engine, *, now: datetime, settings: Settings) -> list[int]:
    """Queue a scheduled sync for every due partner, and a renumbering where one is missing; any number of schedulers
    queue each partner once per interval (a partner already queued or running is skipped). Returns the new jobs'
    ids."""
    interval = timedelta(seconds=settings.schedule_interval_s)
    queued = []
    for partner_id in _unevenly_numbered(engine):
        with suppress(SyncAlreadyQueued), engine.begin() as conn:
            queued.append(jobs.enqueue(conn, partner_id=partner_id, kind=RunKind.RENUMBER, trigger=RunTrigger.EDIT,
                                       requested_by=SCHEDULER_ACTOR, now=now))
    for partner_id in due_partners(engine, now=now, settings=settings):
        try:
            with engine.begin() as conn:
                if _queued_lately(conn, partner_id, now=now, interval=interval):
                    continue
                job_id = jobs.enqueue(conn, partner_id=partner_id, kind=RunKind.SCHEDULED,
                                      trigger=RunTrigger.SCHEDULE, requested_by=SCHEDULER_ACTOR, now=now)
                # looked again once written: between the look and the insert another scheduler may have queued the
                # partner and a worker run it to the end (freeing its one-active-job key)
                if _queued_lately(conn, partner_id, now=now, interval=interval, besides=job_id):
                    raise _QueuedMeanwhile
                queued.append(job_id)
        except (SyncAlreadyQueued, _QueuedMeanwhile):
            continue
    return queued


GOLDEN = 0.6180339887498949  # spreads partner ids evenly over the day


def reconcile_slot(partner_id: int, now: datetime) -> datetime:
    """When in `now`'s UTC day the partner's daily reconciliation is due: partners are spread over the day by id, so
    the fleet's full listings never come all at once."""
    day = datetime.combine(now.astimezone(UTC).date(), time(), tzinfo=UTC)
    return day + timedelta(seconds=int((partner_id * GOLDEN) % 1 * 86400))


def _reconciled_since(conn: Connection, partner_id: int, since: datetime, besides: int | None = None) -> bool:
    job = JOB_TABLE.c
    return conn.scalar(select(job.id).where(job.partner_id == partner_id, job.kind == RunKind.RECONCILE,
                                            job.created_at >= since, job.id != besides).limit(1)) is not None


def enqueue_reconciliations(engine: Engine, *, now: datetime, settings: Settings) -> list[int]:
    """With HALO_RECONCILE_DAILY on: queue a reconciliation for each connected primary partner whose slot of the day
    has come and that was not reconciled since (at most one a day each, whatever the number of schedulers)."""
    if not settings.reconcile_daily:
        return []
    with engine.connect() as conn:
        primaries = list(conn.scalars(select(CONNECTION_TABLE.c.partner_id).where(
            CONNECTION_TABLE.c.integration_role == IntegrationRole.PRIMARY).order_by(CONNECTION_TABLE.c.partner_id)))
    queued = []
    for partner_id in primaries:
        slot = reconcile_slot(partner_id, now)
        if slot > now:
            continue
        try:
            with engine.begin() as conn:
                if _reconciled_since(conn, partner_id, slot):
                    continue
                job_id = jobs.enqueue(conn, partner_id=partner_id, kind=RunKind.RECONCILE,
                                      trigger=RunTrigger.SCHEDULE, requested_by=SCHEDULER_ACTOR, now=now)
                if _reconciled_since(conn, partner_id, slot, besides=job_id):
                    raise _QueuedMeanwhile
                queued.append(job_id)
        except (SyncAlreadyQueued, _QueuedMeanwhile):
            continue
    return queued


def tick(engine: Engine, *, now: datetime, settings: Settings, client_factory: ClientFactory) -> list[RunResult]:
    """Queue every due partner and run the queue dry in this thread (the demo's replay, `scheduler --run`)."""
    enqueue_due(engine, now=now, settings=settings)
    enqueue_reconciliations(engine, now=now, settings=settings)
    return worker.drain(engine, settings, client_factory, lease=timedelta(seconds=settings.lease_s))
