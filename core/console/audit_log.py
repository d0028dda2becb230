"""Read model of the audit log for customer success: filtered, paged, newest first (the writer is core.store.audit)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from core.access import Principal, require_role
from core.errors import BadInput
from core.store.tables import AUDIT_TABLE, PARTNER_TABLE, Role

COLUMNS = ["at", "actor", "partner", "action", "detail"]


def action_label(action: str) -> str:
    """`edit_connection` -> `Edit connection`."""
    return action.replace("_", " ").capitalize()


def day_bounds(first: date | None, last: date | None) -> tuple[datetime | None, datetime | None]:
    """Whole UTC days from `first` to `last` (both included) as `since`/`until` for `events`."""
    if first and last and last < first:
        raise BadInput("The “to” date is before the “from” date. Pick a later “to” date.", field="until")
    since = datetime.combine(first, time(), tzinfo=UTC) if first else None
    until = datetime.combine(last + timedelta(days=1), time(), tzinfo=UTC) if last else None
    return since, until


def page_count(total: int, limit: int) -> int:
    """Pages needed for `total` events at `limit` per page (at least one, so an empty log still has page 1)."""
    return max(1, -(-total // limit))


@dataclass(frozen=True)
class FilterOptions:
    actions: list[str]
    actors: list[str]


def filter_options(engine: Engine, principal: Principal) -> FilterOptions:
    """The actions and actors that occur in the log, for the filter pickers."""
    require_role(principal, Role.CS)
    event = AUDIT_TABLE.c
    with engine.connect() as conn:
        actions = list(conn.scalars(select(event.action).distinct().order_by(event.action)))
        actors = list(conn.scalars(select(event.actor).distinct().order_by(event.actor)))
    return FilterOptions(actions=actions, actors=actors)


def events(engine: Engine, principal: Principal, *, partner_id: int | None = None, action: str | None = None,
           actor: str | None = None, since: datetime | None = None, until: datetime | None = None,
           limit: int = 100, offset: int = 0) -> tuple[pd.DataFrame, int]:
    """One page of matching events, newest first, and how many match in all. `until` is exclusive."""
    require_role(principal, Role.CS)
    event, part = AUDIT_TABLE.c, PARTNER_TABLE.c
    conditions = []
    if partner_id is not None:
        conditions.append(event.partner_id == partner_id)
    if action is not None:
        conditions.append(event.action == action)
    if actor is not None:
        conditions.append(event.actor == actor)
    if since is not None:
        conditions.append(event.at >= since)
    if until is not None:
        conditions.append(event.at < until)
    page = (
        select(event.at, event.actor, part.name.label("partner"), event.action, event.detail)
        .select_from(AUDIT_TABLE.outerjoin(PARTNER_TABLE, part.id == event.partner_id))
        .where(*conditions)
        .order_by(event.at.desc(), event.id.desc())
        .limit(limit)
        .offset(offset)
    )
    with engine.connect() as conn:
        total = int(conn.scalar(select(func.count()).select_from(AUDIT_TABLE).where(*conditions)) or 0)
        frame = pd.read_sql(page, conn)
    frame = frame.reindex(columns=COLUMNS)
    frame["action"] = frame["action"].map(action_label)
    frame["partner"] = frame["partner"].fillna("—")
    return frame, total
