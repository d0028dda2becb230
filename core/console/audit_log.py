"""Read model of the audit log for customer success: filtered, paged, newest first (the writer is core.store.audit);
and its CSV download, formula-safe, bounded and audited as every download is (core.console.exports)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.engine import Engine

from core.access import Principal, require_role
from core.console import exports
from core.console.formatting import iso
from core.errors import BadInput, NotFound, Refused
from core.store.tables import AUDIT_TABLE, PARTNER_TABLE, Role

COLUMNS = ["at", "actor", "partner", "action", "detail"]
NO_PARTNER = "—"  # an event about no partner (a sign-in, a fleet-wide download)


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


@dataclass(frozen=True)
class Filters:
    """Which events: of one partner, one action, one actor, from `since` and before `until` (None: any)."""

    partner_id: int | None = None
    action: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        event = AUDIT_TABLE.c
        equal = [event.partner_id == self.partner_id, event.action == self.action, event.actor == self.actor]
        conditions = [condition for value, condition in zip((self.partner_id, self.action, self.actor), equal,
                                                            strict=True) if value is not None]
        conditions += [event.at >= self.since] if self.since is not None else []
        return conditions + ([event.at < self.until] if self.until is not None else [])

    def describe(self, partner: str | None) -> str:
        """The filters in words for the download's audit event, `partner` being the partner filter's name."""
        words = [f"partner {partner or 'any'}", f"action {action_label(self.action) if self.action else 'any'}",
                 f"actor {self.actor or 'anyone'}"]
        words += [f"{edge} {moment:%Y-%m-%d %H:%M} UTC" for edge, moment in (("from", self.since),
                                                                           ("before", self.until)) if moment]
        return ", ".join(words)


def _events_query(filters: Filters) -> Select[Any]:
    """The matching events with their partner's name, newest first."""
    event, part = AUDIT_TABLE.c, PARTNER_TABLE.c
    return (select(event.at, event.actor, part.name.label("partner"), event.action, event.detail)
            .select_from(AUDIT_TABLE.outerjoin(PARTNER_TABLE, part.id == event.partner_id))
            .where(*filters.conditions())
            .order_by(event.at.desc(), event.id.desc()))


def events(engine: Engine, principal: Principal, *, partner_id: int | None = None, action: str | None = None,
           actor: str | None = None, since: datetime | None = None, until: datetime | None = None,
           limit: int = 100, offset: int = 0) -> tuple[pd.DataFrame, int]:
    """One page of matching events, newest first, and how many match in all. `until` is exclusive."""
    require_role(principal, Role.CS)
    filters = Filters(partner_id, action, actor, since, until)
    with engine.connect() as conn:
        total = int(conn.scalar(select(func.count()).select_from(AUDIT_TABLE).where(*filters.conditions())) or 0)
        frame = pd.read_sql(_events_query(filters).limit(limit).offset(offset), conn)
    frame = frame.reindex(columns=COLUMNS)
    frame["action"] = frame["action"].map(action_label)
    frame["partner"] = frame["partner"].fillna(NO_PARTNER)
    return frame, total


# ---- the CSV download -------------------------------------------------------------------------------------------

def _too_large(rows: int) -> str | None:
    if rows <= exports.MAX_DOWNLOAD_ROWS:
        return None
    return (f"This download would have {rows:,} events; one download holds at most {exports.MAX_DOWNLOAD_ROWS:,}. "
            "Narrow the filters (partner, action, actor or dates) and download each part.")


def download_refusal(engine: Engine, principal: Principal, *, rows: int, now: datetime) -> str | None:
    """What the page says instead of offering the download of `rows` events, or None when it would be accepted."""
    require_role(principal, Role.CS)
    return _too_large(rows) or exports.download_refusal(engine, principal.user, rows=rows, now=now)


def _export_rows(engine: Engine, query: Select[Any]) -> Iterator[dict[str, Any]]:
    with engine.connect() as conn:
        for row in conn.execution_options(yield_per=2000).execute(query):
            yield {"at": iso(row.at), "actor": row.actor, "partner": row.partner or NO_PARTNER,
                   "action": action_label(row.action), "detail": row.detail}


def export_csv(engine: Engine, principal: Principal, filters: Filters, *, now: datetime,
               throttled: bool = False) -> tuple[bytes, int]:
    """Every matching event (all pages) as formula-safe CSV, newest first, and how many; with its "export" audit
    event (the file holds the events up to it, not itself). Refused with nothing written above
    exports.MAX_DOWNLOAD_ROWS events and, when `throttled` (the page's button), past the person's download rate."""
    require_role(principal, Role.CS)
    event = AUDIT_TABLE.c
    with engine.connect() as conn:
        partner = None
        if filters.partner_id is not None:
            partner = conn.scalar(select(PARTNER_TABLE.c.name).where(PARTNER_TABLE.c.id == filters.partner_id))
            if partner is None:
                raise NotFound("That partner no longer exists; pick another, or all partners.")
        found = conn.execute(select(func.count(), func.max(event.id)).where(*filters.conditions())).one()
    rows, last_id = int(found[0]), found[1]
    too_large = _too_large(rows)
    if too_large:
        raise Refused(too_large)
    exports.start_download(engine, principal.user, partner_id=filters.partner_id, rows=rows, now=now,
                           throttled=throttled,
                           detail=f"Audit log CSV: {rows:,} events; filters: {filters.describe(partner)}")
    return exports.csv_file(_export_rows(engine, _events_query(filters).where(event.id <= (last_id or 0))))
