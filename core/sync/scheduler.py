"""The scheduler's tick: which connected primary partners are due for a scheduled sync, and running them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from core.errors import ConsoleError
from core.settings import Settings
from core.store.tables import CONNECTION_TABLE, PARTNER_TABLE, RUN_TABLE, IntegrationRole, RunKind, RunTrigger
from core.sync import engine as sync_engine
from core.sync import window
from core.sync.connector import ClientFactory
from core.sync.runs import RunResult

SCHEDULER_ACTOR = "scheduler"


def iter_due_partners(engine: Engine, *, now: datetime, settings: Settings) -> Iterator[int]:
    """Connected primary partners whose last successful sync window ended an interval or more ago."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(PARTNER_TABLE.c.id)
            .join(CONNECTION_TABLE, CONNECTION_TABLE.c.partner_id == PARTNER_TABLE.c.id)
            .where(CONNECTION_TABLE.c.integration_role == IntegrationRole.PRIMARY)
            .order_by(PARTNER_TABLE.c.id)
        ).all()
        # .all(): the (partner, started) rows; a Result itself has keys(), so dict() would take it for a mapping
        last_attempt: dict[int, datetime] = dict(
            conn.execute(
                select(RUN_TABLE.c.partner_id, func.max(RUN_TABLE.c.started_at))
                .where(RUN_TABLE.c.trigger.in_([RunTrigger.SCHEDULE, RunTrigger.CONNECT]))
                .group_by(RUN_TABLE.c.partner_id)
            ).all()
        )
    interval = timedelta(seconds=settings.schedule_interval_s)
    for row in rows:
        end, _ = window.last_success(engine, row.id)
        # a failing partner is retried once per interval, not on every scheduler tick
        latest = max((t for t in (end, last_attempt.get(row.id)) if t is not None), default=None)
        if latest is None or now - latest >= interval:
            yield row.id


def tick(engine: Engine, *, now: datetime, settings: Settings, client_factory: ClientFactory,
         on_refused: Callable[[ConsoleError], None] | None = None) -> list[RunResult]:
    """Run a scheduled sync for every due partner; a partner whose manual fetch is running waits for the next tick."""
    results = []
    for partner_id in list(iter_due_partners(engine, now=now, settings=settings)):
        try:
            results.append(sync_engine.run_sync(
                engine, partner_id=partner_id, kind=RunKind.SCHEDULED, trigger=RunTrigger.SCHEDULE,
                actor=SCHEDULER_ACTOR, now=now, settings=settings, client_factory=client_factory))
        except ConsoleError as exc:
            if on_refused is not None:
                on_refused(exc)
    return results
