"""The incremental window, in the spirit of dlt's `Incremental`: which span of HaloPSA's modification times a run
covers, worked out once per run from the partner's last successful window and named as one value."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.engine import Engine

from core.store.tables import RUN_TABLE, RunKind, RunStatus

NEW_DATA_SPAN = timedelta(hours=1)
SCHEDULE_OVERLAP = timedelta(minutes=5)
INCREMENTAL_KINDS = (RunKind.BACKFILL, RunKind.SCHEDULED, RunKind.FETCH_NEW_DATA)
SUCCEEDED = (RunStatus.SUCCEEDED, RunStatus.PARTIAL)


@dataclass(frozen=True)
class Window:
    """Records modified at or after `start` (None: everything, as a backfill reads) up to `end`, the run's start."""

    start: datetime | None
    end: datetime


@dataclass(frozen=True)
class Plan:
    """The kind that will really run (a scheduled sync of a partner never backfilled backfills) and its window."""

    kind: RunKind
    window: Window


def last_success(engine: Engine, partner_id: int, *, now: datetime) -> tuple[datetime | None, bool]:
    """End of the newest successful incremental window up to `now` (a window recorded on a clock ahead of this one
    is not trusted), and whether a backfill ever succeeded."""
    run = RUN_TABLE.c
    with engine.connect() as conn:
        end = conn.scalar(
            select(run.window_end)
            .where(run.partner_id == partner_id, run.status.in_(SUCCEEDED), run.kind.in_(INCREMENTAL_KINDS),
                   run.window_end <= now)
            .order_by(run.window_end.desc())
            .limit(1)
        )
        backfilled = conn.scalar(
            select(run.id)
            .where(run.partner_id == partner_id, run.status.in_(SUCCEEDED), run.kind == RunKind.BACKFILL)
            .limit(1)
        )
    return end, backfilled is not None


def plan(engine: Engine, partner_id: int, kind: RunKind, now: datetime) -> Plan:
    """Fetch new data covers the last hour; a scheduled sync covers the time since its last successful window with
    an overlap (an edit made while the previous run paged is caught), and never less than the last hour."""
    if kind == RunKind.FETCH_NEW_DATA:
        return Plan(kind, Window(now - NEW_DATA_SPAN, now))
    if kind == RunKind.SCHEDULED:
        end, backfilled = last_success(engine, partner_id, now=now)
        if not backfilled or end is None:
            return Plan(RunKind.BACKFILL, Window(None, now))
        return Plan(kind, Window(min(end - SCHEDULE_OVERLAP, now - NEW_DATA_SPAN), now))
    return Plan(kind, Window(None, now))
