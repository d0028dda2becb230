"""Run totals per UTC day (the day a run started), kind and trigger (manual or not), per partner and for the whole
fleet: what the Adoption page charts and tabulates, read without walking every run of the fleet.

Finished runs never change, so the scheduler adds those that finished before a moving mark (`runday_through`, the
tick's now less MARGIN) into `runday` and `fleetrunday` once and moves the mark in the same transaction, on the
condition that it is still where it read it: two schedulers at once add each run once. A read adds the runs past the
mark (still running, or finished since) from `syncrun` itself, so it is exact whether or not a scheduler keeps the
mark moving; a fleet whose mark has never moved is read from its runs alone. MARGIN absorbs clocks: a run stamped
finished more than an hour before its transaction commits would be missed (the Overview's "clock ahead" issue flags
hosts that far apart).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Date, Table, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import ColumnElement, Select

from core.store.tables import FLEET_DAY_TABLE, OK_STATUSES, RUN_DAY_TABLE, RUN_TABLE, SETTING_TABLE, RunTrigger

MARK = "runday_through"
MARGIN = timedelta(hours=1)
KEYS = ["day", "partner_id", "kind", "manual"]  # runday's primary key
FLEET_KEYS = ["day", "kind", "manual"]  # fleetrunday's
TOTALS = ["runs", "finished", "successful", "created", "invoices_read", "empty"]


def _grouped(where: ColumnElement[bool]) -> Select[tuple[int, date, str, bool, int, int, int, int, int, int]]:
    """The runs `where` selects, totalled by partner, started day, kind and whether pressed by hand."""
    run = RUN_TABLE.c
    day = func.date(run.started_at, type_=Date)
    manual = run.trigger == RunTrigger.MANUAL.value
    finished = run.finished_at.is_not(None)
    columns = (run.partner_id, day.label("day"), run.kind, manual.label("manual"), func.count().label("runs"),
               func.count().filter(finished).label("finished"),
               func.count().filter(finished, run.status.in_(OK_STATUSES)).label("successful"),
               func.coalesce(func.sum(run.created), 0).label("created"),
               func.coalesce(func.sum(run.invoices_seen), 0).label("invoices_read"),
               func.count().filter(run.created + run.updated == 0).label("empty"))
    return select(*columns).where(where).group_by(run.partner_id, day, run.kind, manual)


def _mark(conn: Connection) -> datetime | None:
    value = conn.scalar(select(SETTING_TABLE.c.value).where(SETTING_TABLE.c.key == MARK))
    return None if value is None else datetime.fromisoformat(value)


def advance(engine: Engine, now: datetime) -> int:
    """Add the runs finished from the mark up to `now` less MARGIN into `runday` and move the mark there; returns the
    runs added (0 when the mark is already there or another scheduler moved it first)."""
    target = now.astimezone(UTC) - MARGIN
    with engine.begin() as conn:
        mark = _mark(conn)
        if mark is not None and mark >= target:
            return 0
        run = RUN_TABLE.c
        ended = and_(run.finished_at < target, *([run.finished_at >= mark] if mark is not None else
                                                 [run.finished_at.is_not(None)]))
        rows = [dict(row._mapping) for row in conn.execute(_grouped(ended))]
        if not _move_mark(conn, mark, target):
            conn.rollback()
            return 0
        if rows:
            _add(conn, RUN_DAY_TABLE, KEYS, rows)
            _add(conn, FLEET_DAY_TABLE, FLEET_KEYS, _fleet(rows))
        return sum(row["runs"] for row in rows)


def _fleet(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The partners' rows summed by FLEET_KEYS."""
    fleet: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(row[name] for name in FLEET_KEYS)
        into = fleet.setdefault(key, dict(zip(FLEET_KEYS, key, strict=True)) | dict.fromkeys(TOTALS, 0))
        for name in TOTALS:
            into[name] += row[name]
    return list(fleet.values())


def _move_mark(conn: Connection, mark: datetime | None, target: datetime) -> bool:
    """Move the mark from where this tick read it; False when another scheduler moved it meanwhile."""
    if mark is None:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        inserted = conn.execute(dialect.insert(SETTING_TABLE).values(key=MARK, value=target.isoformat())
                                .on_conflict_do_nothing().returning(SETTING_TABLE.c.key))
        return inserted.first() is not None
    moved = conn.execute(update(SETTING_TABLE).where(SETTING_TABLE.c.key == MARK,
                                                    SETTING_TABLE.c.value == mark.isoformat())
                         .values(value=target.isoformat()))
    return bool(moved.rowcount)


def _add(conn: Connection, table: Table, keys: list[str], rows: list[dict[str, Any]]) -> None:
    """Add `rows` into `table`'s totals, row by key."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    conn.execute(statement.on_conflict_do_update(
        index_elements=keys, set_={name: table.c[name] + statement.excluded[name] for name in TOTALS}), rows)


def totals(engine: Engine, first: date, last: date, by: Sequence[str]) -> pd.DataFrame:
    """The fleet's run totals (TOTALS) from `first` to `last` (UTC days a run started, both included), summed by the
    KEYS in `by`: those the scheduler rolled up (the fleet's rows when `by` leaves partners out) and the runs past its
    mark."""
    rolled = (RUN_DAY_TABLE if "partner_id" in by else FLEET_DAY_TABLE).c
    with engine.connect() as conn:
        mark = _mark(conn)
        parts = [] if mark is None else [pd.read_sql(
            select(*(rolled[key] for key in by), *(func.sum(rolled[name]).label(name) for name in TOTALS))
            .where(rolled.day >= first, rolled.day <= last).group_by(*(rolled[key] for key in by)), conn)]
        parts.append(_past(conn, mark, first, last))
    frame = pd.concat([part for part in parts if len(part)] or parts[-1:], ignore_index=True)
    return frame.astype({"manual": bool} if "manual" in by else {}).groupby(list(by), as_index=False)[TOTALS].sum()


def _past(conn: Connection, mark: datetime | None, first: date, last: date) -> pd.DataFrame:
    """The runs past the mark (all when there is none), by every key, within the days. Found through the index on
    finished_at alone, the days picked after: an in-flight run or one finished within MARGIN is a few rows a partner."""
    run = RUN_TABLE.c
    start, end = (datetime.combine(day, time(), tzinfo=UTC) for day in (first, last + timedelta(days=1)))
    where = (and_(run.started_at >= start, run.started_at < end) if mark is None
             else or_(run.finished_at.is_(None), run.finished_at >= mark))
    frame = pd.read_sql(_grouped(where), conn)
    frame["day"] = pd.to_datetime(frame["day"]).dt.date
    return frame[(frame["day"] >= first) & (frame["day"] <= last)]
