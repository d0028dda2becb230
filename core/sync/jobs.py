"""The job queue: every sync asked for is a row. A worker claims queued rows under a lease (`FOR UPDATE SKIP LOCKED`
on PostgreSQL, the same conditional UPDATE on SQLite, whose writers are serialised), renews the lease on a timer,
and every page commit checks the lease epoch in its own transaction (fencing), so a run that lost its lease stops
writing. A live lease is never taken over; an expired one is recovered with its true reason.

Lease times come from the database's clock (`lease_now`), never from the pinned clock a replay or a test injects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, func, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from core.errors import SyncAlreadyQueued
from core.store.tables import JOB_TABLE, RUN_TABLE, JobState, Lane, RunKind, RunStatus, RunTrigger

LONG_KINDS = (RunKind.BACKFILL, RunKind.FETCH_UNPAID, RunKind.RECONCILE)
MAX_ATTEMPTS = 3  # claims whose worker died; hand-backs (a busy partner, a stopping worker) do not count
MAX_RATE_LIMIT_HANDBACKS = 12  # a job waits out at most this many rate windows (an hour at hosted HaloPSA's 5 min)
JOB = JOB_TABLE.c


class LeaseLost(Exception):
    """The run's job is no longer leased to it (expired and recovered, or taken by another worker): stop writing."""


class JobCancelled(Exception):
    """Someone cancelled the job while it ran: the run stops at its next page."""

    def __init__(self, by: str) -> None:
        super().__init__(by)
        self.by = by


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    partner_id: int
    kind: RunKind
    trigger: RunTrigger
    requested_by: str
    lane: Lane
    epoch: int
    attempts: int


def lease_now(conn: Connection) -> datetime:
    """The database's clock: one clock for every process's leases and rate budgets (PostgreSQL's `clock_timestamp()`,
    the moment of the call rather than of the transaction's start; SQLite lives on one host)."""
    if conn.dialect.name == "postgresql":
        moment = conn.scalar(select(func.clock_timestamp()))
        if isinstance(moment, datetime):
            return moment.astimezone(UTC)
    return datetime.now(UTC)


def active_key(partner_id: int, kind: RunKind) -> str:
    return f"{partner_id}:{kind.value}"


def lane_for(kind: RunKind) -> Lane:
    return Lane.LONG if kind in LONG_KINDS else Lane.SHORT


def enqueue(conn: Connection, *, partner_id: int, kind: RunKind, trigger: RunTrigger, partner_name: str = "the partner",
            requested_by: str, now: datetime, not_before: datetime | None = None) -> int:
    """Queue one job in the caller's transaction; raises SyncAlreadyQueued when the partner has one of this kind
    queued or running (the caller's transaction then rolls back whole)."""
    key = active_key(partner_id, kind)
    holder = conn.execute(select(JOB.id, JOB.state, JOB.created_at).where(JOB.active_key == key)).first()
    if holder is not None:
        raise SyncAlreadyQueued(partner_name, kind, holder.state, holder.created_at)
    try:
        result = conn.execute(JOB_TABLE.insert().values(
            partner_id=partner_id, kind=kind, trigger=trigger, requested_by=requested_by, lane=lane_for(kind),
            state=JobState.QUEUED, active_key=key, not_before=not_before or lease_now(conn), created_at=now))
    except IntegrityError:  # another transaction queued the same job between our look and our insert
        raise SyncAlreadyQueued(partner_name, kind, JobState.QUEUED, now) from None
    key_row = result.inserted_primary_key
    assert key_row is not None
    return int(key_row[0])


def claim(engine: Engine, *, owner: str, lane: Lane, limit: int, lease: timedelta) -> list[ClaimedJob]:
    """Lease up to `limit` due jobs of one lane to `owner`; each claim bumps the job's lease epoch."""
    if limit <= 0:
        return []
    with engine.begin() as conn:
        now = lease_now(conn)
        due = (select(JOB.id).where(JOB.state == JobState.QUEUED, JOB.lane == lane, JOB.not_before <= now)
               .order_by(JOB.not_before, JOB.id).limit(limit))
        if conn.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        # A CTE, not `id IN (subquery)`: PostgreSQL may run a LIMIT … SKIP LOCKED subquery again for every row it
        # updates, each time skipping the rows it just locked, and so lease many more than `limit` jobs.
        picked = due.cte("picked")
        rows = conn.execute(
            update(JOB_TABLE)
            .where(JOB.id == picked.c.id, JOB.state == JobState.QUEUED)
            .values(state=JobState.RUNNING, lease_owner=owner, lease_expires_at=now + lease, started_at=now,
                    lease_epoch=JOB.lease_epoch + 1, attempts=JOB.attempts + 1)
            .returning(JOB.id, JOB.partner_id, JOB.kind, JOB.trigger, JOB.requested_by, JOB.lane, JOB.lease_epoch,
                       JOB.attempts)
        ).all()
    return [ClaimedJob(row.id, row.partner_id, RunKind(row.kind), RunTrigger(row.trigger), row.requested_by,
                       Lane(row.lane), row.lease_epoch, row.attempts) for row in rows]


def claim_one(engine: Engine, job_id: int, *, owner: str, lease: timedelta) -> ClaimedJob | None:
    """Lease one given queued job (the command line runs the job it queued itself)."""
    with engine.begin() as conn:
        now = lease_now(conn)
        row = conn.execute(
            update(JOB_TABLE).where(JOB.id == job_id, JOB.state == JobState.QUEUED)
            .values(state=JobState.RUNNING, lease_owner=owner, lease_expires_at=now + lease, started_at=now,
                    lease_epoch=JOB.lease_epoch + 1, attempts=JOB.attempts + 1)
            .returning(JOB.id, JOB.partner_id, JOB.kind, JOB.trigger, JOB.requested_by, JOB.lane, JOB.lease_epoch,
                       JOB.attempts)
        ).first()
    if row is None:
        return None
    return ClaimedJob(row.id, row.partner_id, RunKind(row.kind), RunTrigger(row.trigger), row.requested_by,
                      Lane(row.lane), row.lease_epoch, row.attempts)


def _held(job: ClaimedJob) -> ColumnElement[bool]:
    """The job row as long as `job`'s claim still holds it."""
    return and_(JOB.id == job.id, JOB.lease_epoch == job.epoch, JOB.state == JobState.RUNNING)


def renew(engine: Engine, job: ClaimedJob, *, lease: timedelta) -> bool:
    """Extend the lease; False when it was lost (the run must stop)."""
    with engine.begin() as conn:
        now = lease_now(conn)
        return conn.execute(update(JOB_TABLE).where(_held(job)).values(lease_expires_at=now + lease)).rowcount == 1


def fence(conn: Connection, job: ClaimedJob, *, allow_cancelled: bool = False) -> None:
    """Inside a page's transaction: lock the job row and check the run still holds its lease; raises LeaseLost or
    JobCancelled, so the page's writes roll back."""
    row = conn.execute(
        update(JOB_TABLE).where(_held(job)).values(lease_owner=JOB.lease_owner).returning(JOB.cancel_requested_by)
    ).first()
    if row is None:
        raise LeaseLost(f"job {job.id} lost its lease")
    if row.cancel_requested_by and not allow_cancelled:
        raise JobCancelled(row.cancel_requested_by)


def attach_run(conn: Connection, job: ClaimedJob, run_id: int) -> None:
    conn.execute(update(JOB_TABLE).where(_held(job)).values(run_id=run_id))


def close(conn: Connection, job: ClaimedJob, *, outcome: str, status: RunStatus) -> bool:
    """End a job the caller still holds with its run's status, in the caller's transaction: a run interrupted by its
    worker stopping goes back to the queue (a hand-back, not an attempt), and so does one that ended rate limited
    inside a wait HaloPSA asked for, to start when that wait is over; a cancelled one is cancelled, any other is done.
    False: lease lost."""
    now = lease_now(conn)
    resume = resumes_after(conn, job, status)
    if status == RunStatus.INTERRUPTED or resume is not None:
        values: dict[str, object] = {"state": JobState.QUEUED, "not_before": now + (resume or timedelta()),
                                     "run_id": None, "attempts": JOB.attempts - 1}
    else:
        values = {"state": JobState.CANCELLED if status == RunStatus.CANCELLED else JobState.DONE,
                  "active_key": None, "finished_at": now}
    return conn.execute(update(JOB_TABLE).where(_held(job)).values(
        lease_owner=None, lease_expires_at=None, outcome=outcome, **values)).rowcount == 1


def resumes_after(conn: Connection, job: ClaimedJob, status: RunStatus) -> timedelta | None:
    """How much of the wait HaloPSA asked for is left when the job's run ended rate limited (the job goes back to the
    queue until then): the run keeps the end of that wait (`waiting_until`) and the moment it closed (`heartbeat_at`),
    both on the run's clock, so the difference holds on the queue's clock too. None when the run ended otherwise,
    after its wait (retries ran out), or once the job has waited out MAX_RATE_LIMIT_HANDBACKS windows
    (`out_of_handbacks`): the job is done."""
    if status != RunStatus.RATE_LIMITED or out_of_handbacks(conn, job):
        return None
    run = RUN_TABLE.c
    row = conn.execute(select(run.waiting_until, run.heartbeat_at)
                       .select_from(JOB_TABLE.join(RUN_TABLE, run.id == JOB.run_id)).where(JOB.id == job.id)).first()
    if row is None or row.waiting_until is None or row.heartbeat_at is None:
        return None
    left = _aware(row.waiting_until) - _aware(row.heartbeat_at)
    return left if left > timedelta() else None


def out_of_handbacks(conn: Connection, job: ClaimedJob) -> bool:
    """Whether the job's earlier runs already ended rate limited MAX_RATE_LIMIT_HANDBACKS times (a tenant that never
    lets up must not keep a job cycling through the queue)."""
    run = RUN_TABLE.c
    current = select(JOB.run_id).where(JOB.id == job.id).scalar_subquery()
    earlier = conn.scalar(select(func.count()).select_from(RUN_TABLE).where(
        run.job_id == job.id, run.status == RunStatus.RATE_LIMITED, run.id != current)) or 0
    return earlier >= MAX_RATE_LIMIT_HANDBACKS


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def requeue(engine: Engine, job: ClaimedJob, *, after: timedelta, outcome: str) -> bool:
    """Hand a held job back to the queue, to start again `after` from now (a busy partner). A hand-back is not an
    attempt: only a worker that died counts toward MAX_ATTEMPTS."""
    with engine.begin() as conn:
        now = lease_now(conn)
        return conn.execute(update(JOB_TABLE).where(_held(job)).values(
            state=JobState.QUEUED, lease_owner=None, lease_expires_at=None, not_before=now + after, outcome=outcome,
            attempts=JOB.attempts - 1)
        ).rowcount == 1


def abandon(conn: Connection, job: ClaimedJob, *, outcome: str) -> bool:
    """End a held job that cannot run at all (its partner or connection is gone)."""
    return conn.execute(update(JOB_TABLE).where(_held(job)).values(
        state=JobState.DONE, active_key=None, finished_at=lease_now(conn), lease_owner=None, lease_expires_at=None,
        outcome=outcome)).rowcount == 1


def waiting_job(conn: Connection, partner_id: int, kind: RunKind) -> int | None:
    """The id of the partner's queued (not running) job of this kind, if any."""
    found = conn.scalar(select(JOB.id).where(JOB.active_key == active_key(partner_id, kind),
                                             JOB.state == JobState.QUEUED))
    return None if found is None else int(found)
