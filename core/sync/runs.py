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

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine

from core.errors import SyncAlreadyRunning
from core.settings import Settings
from core.store.database import inserted_id
from core.store.tables import ERROR_TABLE, PARTNER_TABLE, RUN_TABLE, RunCounters, RunKind, RunStatus
from core.sync import cooldowns

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


def _worker_is_dead(worker: str | None) -> bool:
    if not worker:
        return False
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _is_stale(run: Any, now: datetime, settings: Settings) -> bool:
    if run is None or run.status not in (RunStatus.RUNNING, RunStatus.RATE_LIMITED):
        return True
    beat = run.heartbeat_at or run.started_at
    return _worker_is_dead(run.worker) or now - beat > timedelta(seconds=settings.stale_run_after_s)


def _interrupt(conn: Connection, run_id: int, partner_id: int, now: datetime) -> None:
    conn.execute(
        update(RUN_TABLE)
        .where(RUN_TABLE.c.id == run_id, RUN_TABLE.c.status.in_([RunStatus.RUNNING, RunStatus.RATE_LIMITED]))
        .values(status=RunStatus.INTERRUPTED, finished_at=now, error_kind="interrupted", error=INTERRUPTED_MESSAGE)
    )
    conn.execute(
        update(PARTNER_TABLE)
        .where(PARTNER_TABLE.c.id == partner_id, PARTNER_TABLE.c.lock_run_id == run_id)
        .values(lock_run_id=None, lock_heartbeat_at=None)
    )


def recover_interrupted(engine: Engine, *, now: datetime, settings: Settings) -> int:
    """Mark runs whose worker is gone as interrupted and release their locks; returns how many."""
    with engine.begin() as conn:
        open_runs = conn.execute(
            select(RUN_TABLE).where(RUN_TABLE.c.status.in_([RunStatus.RUNNING, RunStatus.RATE_LIMITED]))
        ).all()
        stale = [run for run in open_runs if _is_stale(run, now, settings)]
        for run in stale:
            _interrupt(conn, run.id, run.partner_id, now)
        # a lock whose run row is already finished (crash between the two writes) is released too
        conn.execute(
            update(PARTNER_TABLE)
            .where(
                PARTNER_TABLE.c.lock_run_id.is_not(None),
                ~PARTNER_TABLE.c.lock_run_id.in_(
                    select(RUN_TABLE.c.id).where(RUN_TABLE.c.status.in_([RunStatus.RUNNING, RunStatus.RATE_LIMITED]))
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
) -> int:
    """Create a running SyncRun holding the partner's lock (and the cooldown for a manual fetch); returns its id.

    Raises SyncAlreadyRunning or CooldownActive and leaves nothing behind when refused.
    """
    for attempt in range(2):
        try:
            return _insert_locked_run(
                engine, partner_id=partner_id, kind=kind, trigger=trigger, actor=actor, now=now, settings=settings,
                claim_cooldown=claim_cooldown, window_start=window_start,
            )
        except _LockHeld:
            pass
        holder = _lock_holder(engine, partner_id)
        if attempt == 0 and _is_stale(holder, now, settings):
            with engine.begin() as conn:
                if holder is not None:
                    _interrupt(conn, holder.id, partner_id, now)
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
    claim_cooldown: bool, window_start: datetime | None,
) -> int:
    with engine.begin() as conn:
        run_id = inserted_id(conn.execute(
            RUN_TABLE.insert().values(
                partner_id=partner_id, kind=kind, trigger=trigger, triggered_by=actor, status=RunStatus.RUNNING,
                started_at=now, heartbeat_at=now, worker=worker_id(), window_start=window_start, window_end=now,
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
        return conn.execute(select(RUN_TABLE).where(RUN_TABLE.c.id == holder_id)).first()


def save_progress(conn: Connection, run_id: int, partner_id: int, *, now: datetime, **counts: Any) -> None:
    """Heartbeat plus the run's counts so far, in the page's own transaction."""
    conn.execute(update(RUN_TABLE).where(RUN_TABLE.c.id == run_id).values(heartbeat_at=now, **counts))
    conn.execute(
        update(PARTNER_TABLE)
        .where(PARTNER_TABLE.c.id == partner_id, PARTNER_TABLE.c.lock_run_id == run_id)
        .values(lock_heartbeat_at=now)
    )


def set_status(engine: Engine, run_id: int, status: str, *, error: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(RUN_TABLE)
            .where(RUN_TABLE.c.id == run_id, RUN_TABLE.c.finished_at.is_(None))
            .values(status=status, error=error)
        )


def finish_run(
    engine: Engine,
    run_id: int,
    partner_id: int,
    *,
    status: str,
    now: datetime,
    error_kind: str | None = None,
    error: str | None = None,
) -> None:
    """Close the run and release the partner's lock in one transaction."""
    with engine.begin() as conn:
        conn.execute(
            update(RUN_TABLE)
            .where(RUN_TABLE.c.id == run_id)
            .values(status=status, finished_at=now, heartbeat_at=now, error_kind=error_kind, error=error)
        )
        conn.execute(
            update(PARTNER_TABLE)
            .where(PARTNER_TABLE.c.id == partner_id, PARTNER_TABLE.c.lock_run_id == run_id)
            .values(lock_run_id=None, lock_heartbeat_at=None)
        )


def add_record_errors(conn: Connection, run_id: int, partner_id: int, errors: list[Any]) -> None:
    if errors:
        conn.execute(
            ERROR_TABLE.insert(),
            [{"run_id": run_id, "partner_id": partner_id, "entity": e.entity, "halo_id": e.halo_id,
              "reason": e.reason, "excerpt": e.excerpt} for e in errors],
        )
