"""Sync run records and the per-partner run lock.

A run starts in one transaction: insert the SyncRun, take the partner's lock with a conditional UPDATE, and (manual
fetches) claim the cooldown. If any step is refused the transaction rolls back and nothing is left behind. A run whose
worker died (same host, process gone) or whose heartbeat is stale is marked interrupted and its lock released, so a
crash never blocks the partner.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.engine import Connection, Engine

from core.errors import ErrorKind, SyncAlreadyRunning
from core.halopsa.transport import ClientStats
from core.settings import Settings
from core.store.database import inserted_id
from core.store.tables import (
    ERROR_TABLE,
    JOB_TABLE,
    PARTNER_TABLE,
    RUN_TABLE,
    JobState,
    RunCounters,
    RunKind,
    RunStatus,
)
from core.sync import cooldowns

OPEN_STATUSES = (RunStatus.RUNNING, RunStatus.RATE_LIMITED)
INTERRUPTED_MESSAGE = (
    "The sync stopped unexpectedly (the process ended before it finished). Nothing is lost: the next sync picks up "
    "where this one stopped."
)


ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class RunResult:
    """How a run ended, as the one who asked for it is told."""

    run_id: int
    kind: RunKind
    status: RunStatus
    tally: RunCounters
    error: str | None
    cooldown_refunded: bool = False


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def process_is_gone(owner: str | None) -> bool:
    """`host:pid[:tag]` names a process of this host that has exited (never true for another host's process)."""
    if not owner:
        return False
    host, _, pid = ":".join(owner.split(":")[:2]).rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _with_job_state() -> Select[Any]:
    """Runs with their job's state, to tell a run whose job still runs from one left behind."""
    return (select(RUN_TABLE, JOB_TABLE.c.state.label("job_state"))
            .select_from(RUN_TABLE.outerjoin(JOB_TABLE, JOB_TABLE.c.id == RUN_TABLE.c.job_id)))


def _is_stale(run: Any, now: datetime, settings: Settings) -> bool:
    """A run of a job lives as long as its job runs: an expired lease is recovered through the job
    (`worker.recover_expired`, which takes the job from its owner, so a paused owner that comes back can neither
    renew nor write); interrupting the run alone would free the partner while that owner may still write. A run
    started outside the queue lives while its process does and its heartbeat is fresh."""
    if run is None or run.status not in OPEN_STATUSES:
        return True
    if run.job_id is not None:
        return bool(run.job_state != JobState.RUNNING)
    beat = run.heartbeat_at or run.started_at
    return process_is_gone(run.worker) or now - beat > timedelta(seconds=settings.stale_run_after_s)


def interrupt(conn: Connection, run_id: int, partner_id: int, now: datetime,
              message: str = INTERRUPTED_MESSAGE) -> None:
    """Close an open run as interrupted with the reason it stopped, and release the partner's lock."""
    conn.execute(
        update(RUN_TABLE)
        .where(RUN_TABLE.c.id == run_id, RUN_TABLE.c.status.in_(OPEN_STATUSES))
        .values(status=RunStatus.INTERRUPTED, finished_at=now, error_kind=ErrorKind.INTERRUPTED, error=message,
                waiting_until=None)
    )
    conn.execute(
        update(PARTNER_TABLE)
        .where(PARTNER_TABLE.c.id == partner_id, PARTNER_TABLE.c.lock_run_id == run_id)
        .values(lock_run_id=None, lock_heartbeat_at=None)
    )


def recover_interrupted(engine: Engine, *, now: datetime, settings: Settings) -> int:
    """Mark runs whose worker is gone as interrupted and release their locks; returns how many."""
    with engine.begin() as conn:
        open_runs = conn.execute(_with_job_state().where(RUN_TABLE.c.status.in_(OPEN_STATUSES))).all()
        stale = [run for run in open_runs if _is_stale(run, now, settings)]
        for run in stale:
            interrupt(conn, run.id, run.partner_id, now)
        # a lock whose run row is already finished (crash between the two writes) is released too
        conn.execute(
            update(PARTNER_TABLE)
            .where(
                PARTNER_TABLE.c.lock_run_id.is_not(None),
                ~PARTNER_TABLE.c.lock_run_id.in_(
                    select(RUN_TABLE.c.id).where(RUN_TABLE.c.status.in_(OPEN_STATUSES))
                ),
            )
            .values(lock_run_id=None, lock_heartbeat_at=None)
        )
    return len(stale)


def start_run(
    engine: Engine,
    *,
    partner_id: int,
    partner_name: str,
    kind: str,
    trigger: str,
    actor: str,
    now: datetime,
    settings: Settings,
    claim_cooldown: bool = False,
    window_start: datetime | None = None,
    job_id: int | None = None,
    guard: Callable[[Connection], None] | None = None,
) -> int:
    """Create a running SyncRun holding the partner's lock (and the cooldown for a manual fetch); returns its id.

    Raises SyncAlreadyRunning or CooldownActive and leaves nothing behind when refused; so does whatever `guard`
    raises, which runs first in the same transaction (a job's fence: a run is never created for a job its worker
    no longer holds).
    """
    for attempt in range(2):
        try:
            return _insert_locked_run(
                engine, partner_id=partner_id, kind=kind, trigger=trigger, actor=actor, now=now, settings=settings,
                claim_cooldown=claim_cooldown, window_start=window_start, job_id=job_id, guard=guard,
            )
        except _LockHeld:
            pass
        holder = _lock_holder(engine, partner_id)
        if attempt == 0 and _is_stale(holder, now, settings):
            with engine.begin() as conn:
                if holder is not None:
                    interrupt(conn, holder.id, partner_id, now)
                else:
                    conn.execute(update(PARTNER_TABLE).where(PARTNER_TABLE.c.id == partner_id)
                                 .values(lock_run_id=None, lock_heartbeat_at=None))
            continue
        raise SyncAlreadyRunning(partner_name, holder.kind if holder else kind, holder.started_at if holder else now)
    raise AssertionError("unreachable")


class _LockHeld(Exception):
    """Raised inside the start transaction so it rolls back when another run holds the lock."""


def _insert_locked_run(
    engine: Engine, *, partner_id: int, kind: str, trigger: str, actor: str, now: datetime, settings: Settings,
    claim_cooldown: bool, window_start: datetime | None, job_id: int | None,
    guard: Callable[[Connection], None] | None,
) -> int:
    with engine.begin() as conn:
        if guard is not None:
            guard(conn)
        run_id = inserted_id(conn.execute(
            RUN_TABLE.insert().values(
                partner_id=partner_id, kind=kind, trigger=trigger, triggered_by=actor, status=RunStatus.RUNNING,
                started_at=now, heartbeat_at=now, worker=worker_id(), window_start=window_start, window_end=now,
                job_id=job_id,
            )
        ))
        taken = conn.execute(
            update(PARTNER_TABLE)
            .where(PARTNER_TABLE.c.id == partner_id, PARTNER_TABLE.c.lock_run_id.is_(None))
            .values(lock_run_id=run_id, lock_heartbeat_at=now)
        ).rowcount
        if taken != 1:
            raise _LockHeld
        if claim_cooldown:
            cooldowns.claim(conn, partner_id=partner_id, kind=kind, run_id=run_id, actor=actor, now=now,
                            settings=settings)
        return int(run_id)


def _lock_holder(engine: Engine, partner_id: int) -> Any:
    with engine.connect() as conn:
        holder_id = conn.scalar(select(PARTNER_TABLE.c.lock_run_id).where(PARTNER_TABLE.c.id == partner_id))
        if holder_id is None:
            return None
        return conn.execute(_with_job_state().where(RUN_TABLE.c.id == holder_id)).first()


def count_requests(tally: RunCounters, stats: ClientStats) -> None:
    """The client's requests so far into a run's tally: all of them, and the retries and the 429s among them."""
    tally.requests, tally.retries, tally.rate_limited = stats.requests, stats.retries, stats.rate_limited_responses


def save_progress(conn: Connection, run_id: int, partner_id: int, *, now: datetime, **counts: Any) -> None:
    """Heartbeat plus the run's counts so far, in the page's own transaction."""
    conn.execute(update(RUN_TABLE).where(RUN_TABLE.c.id == run_id).values(heartbeat_at=now, **counts))
    conn.execute(
        update(PARTNER_TABLE)
        .where(PARTNER_TABLE.c.id == partner_id, PARTNER_TABLE.c.lock_run_id == run_id)
        .values(lock_heartbeat_at=now)
    )


def set_status(engine: Engine, run_id: int, status: RunStatus, *, error: str | None = None,
               waiting_until: datetime | None = None) -> None:
    """What an open run is doing now: running, or waiting on HaloPSA (rate limited, retrying) until when."""
    with engine.begin() as conn:
        conn.execute(
            update(RUN_TABLE)
            .where(RUN_TABLE.c.id == run_id, RUN_TABLE.c.status.in_(OPEN_STATUSES))
            .values(status=status, error=error, message=error, waiting_until=waiting_until)
        )


def say(engine: Engine, run_id: int, message: str) -> None:
    """The run's latest progress line, for whoever watches it (the Syncs page reads it from here)."""
    with engine.begin() as conn:
        conn.execute(update(RUN_TABLE).where(RUN_TABLE.c.id == run_id, RUN_TABLE.c.status.in_(OPEN_STATUSES))
                     .values(message=message))


def close_run(conn: Connection, run_id: int, partner_id: int, *, status: RunStatus, now: datetime,
              error_kind: ErrorKind | None = None, error: str | None = None) -> bool:
    """Close a still-open run and release the partner's lock, in the caller's transaction. A run already closed
    (interrupted by recovery, say) keeps what it says: False, nothing written. A run ending rate limited keeps the
    end of the wait HaloPSA asked for (`waiting_until`): its job is handed back until then (`jobs.close`)."""
    waited = {} if status == RunStatus.RATE_LIMITED else {"waiting_until": None}
    closed = conn.execute(
        update(RUN_TABLE)
        .where(RUN_TABLE.c.id == run_id, RUN_TABLE.c.status.in_(OPEN_STATUSES))
        .values(status=status, finished_at=now, heartbeat_at=now, error_kind=error_kind, error=error, **waited)
    ).rowcount == 1
    conn.execute(
        update(PARTNER_TABLE)
        .where(PARTNER_TABLE.c.id == partner_id, PARTNER_TABLE.c.lock_run_id == run_id)
        .values(lock_run_id=None, lock_heartbeat_at=None)
    )
    return closed


def finish_run(engine: Engine, run_id: int, partner_id: int, *, status: RunStatus, now: datetime,
               error_kind: ErrorKind | None = None, error: str | None = None) -> bool:
    """`close_run` in a transaction of its own."""
    with engine.begin() as conn:
        return close_run(conn, run_id, partner_id, status=status, now=now, error_kind=error_kind, error=error)


def add_record_errors(conn: Connection, run_id: int, partner_id: int, errors: list[Any]) -> None:
    if errors:
        conn.execute(
            ERROR_TABLE.insert(),
            [{"run_id": run_id, "partner_id": partner_id, "entity": e.entity, "halo_id": e.halo_id,
              "reason": e.reason, "excerpt": e.excerpt} for e in errors],
        )
