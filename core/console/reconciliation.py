"""Reconciliation read models (customer success only): the latest reconciliation of a partner for its Syncs page
(when, cost before and after, counts and unpaid per currency on each side, the differing invoices, what a resync
would read), the cost a new one would have, and the fleet's partners with drift.

Amounts are never summed across currencies: unpaid money is one row per currency, each side beside the other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from core.access import Principal, require_partner_access, require_role
from core.console.formatting import count, currency_label, money_text
from core.errors import NotFound
from core.settings import Settings
from core.store.tables import (
    CONNECTION_TABLE,
    DRIFT_TABLE,
    JOB_TABLE,
    PARTNER_TABLE,
    RECONCILIATION_TABLE,
    DriftKind,
    Role,
    RunKind,
)
from core.sync import jobs, reconcile

KIND_LABELS = {
    DriftKind.MISSING_HERE: "Missing here",
    DriftKind.EXTRA_HERE: "Extra here (deleted in HaloPSA)",
    DriftKind.AMOUNT_DIFFERS: "Amount differs",
    DriftKind.STATUS_DIFFERS: "Status differs",
    DriftKind.OUTSIDE_SCOPE: "Outside Invoices Created Since",
}
ITEM_COLUMNS = ["HaloPSA ID", "Difference", "In HaloPSA", "Stored here", "Resynced (UTC)"]
UNPAID_COLUMNS = ["Currency", "Unpaid in HaloPSA", "Unpaid here", "Due in HaloPSA", "Due here", "Difference"]
FLEET_COLUMNS = ["Partner", "Reconciled (UTC)", "Differing invoices", "Missing here", "Extra here", "Amount differs",
                 "Status differs", "Still open"]
ITEM_LIMIT = 1000  # rows the drill-down shows; the counts say how many there are


def _at(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "not finished"


def _require(principal: Principal, partner_id: int) -> None:
    require_role(principal, Role.CS)
    require_partner_access(principal, partner_id)


@dataclass(frozen=True)
class Latest:
    """The partner's latest reconciliation as its Syncs page shows it."""

    id: int
    run_id: int | None
    finished: bool
    headline: str  # when, by whom, what it cost (estimated before, used after)
    counts: str  # invoices on each side, and what is counted apart
    drift: int
    by_kind: str  # "1 missing here · 1 extra here · ..." (empty without drift)
    unpaid: pd.DataFrame  # UNPAID_COLUMNS, one row per currency
    items: pd.DataFrame  # ITEM_COLUMNS
    more_items: int  # differing invoices beyond the drill-down's rows
    open_drift: int  # what a resync would read again now
    resync_label: str
    resync_note: str  # its cost; beyond the cap, what else to do


def _unpaid_frame(halo: dict[str, list[int]], local: dict[str, list[int]]) -> pd.DataFrame:
    rows = []
    for code in sorted(set(halo) | set(local)):
        h, here = halo.get(code, [0, 0]), local.get(code, [0, 0])
        rows.append({"Currency": currency_label(code or None), "Unpaid in HaloPSA": h[0], "Unpaid here": here[0],
                     "Due in HaloPSA": money_text(h[1]), "Due here": money_text(here[1]),
                     "Difference": money_text(h[1] - here[1])})
    return pd.DataFrame(rows, columns=UNPAID_COLUMNS)


def _by_kind(row: Any) -> str:
    parts = [f"{row.missing_here:,} missing here", f"{row.extra_here:,} extra here (deleted in HaloPSA)",
             f"{row.amount_differs:,} with another amount", f"{row.status_differs:,} with another status"]
    values = (row.missing_here, row.extra_here, row.amount_differs, row.status_differs)
    return " · ".join(part for part, value in zip(parts, values, strict=True) if value)


def _counts(row: Any) -> str:
    apart = [f"{row.halo_outside_scope:,} dated before Invoices Created Since in HaloPSA (not synced, on purpose)"
             if row.halo_outside_scope else "",
             f"{count(row.outside_scope, 'stored invoice')} now dated before Invoices Created Since in HaloPSA"
             if row.outside_scope else "",
             f"{count(row.pending, 'invoice')} changed in HaloPSA since the last sync (the next sync brings them)"
             if row.pending else "",
             f"{count(row.unreadable, 'row')} HaloPSA sent unreadable (see the runs' record errors)"
             if row.unreadable else ""]
    text = f"{row.halo_invoices:,} invoices in HaloPSA, {row.local_invoices:,} stored here (in scope)."
    apart_text = "; ".join(part for part in apart if part)
    return f"{text} Not drift: {apart_text}." if apart_text else text


def _load(conn: Connection, partner_id: int, limit: int | None) -> tuple[Any, list[Any]]:
    """The partner's latest reconciliation row (None when none ran) and its drift items, by kind then id."""
    rec, item = RECONCILIATION_TABLE.c, DRIFT_TABLE.c
    row = conn.execute(select(RECONCILIATION_TABLE).where(rec.partner_id == partner_id)
                       .order_by(rec.started_at.desc(), rec.id.desc()).limit(1)).first()
    if row is None:
        return None, []
    items = conn.execute(select(item.halo_id, item.kind, item.halo_value, item.local_value, item.cleared_at)
                         .where(item.reconciliation_id == row.id).order_by(item.kind, item.halo_id)
                         .limit(limit)).all()
    return row, list(items)


def latest(engine: Engine, principal: Principal, partner_id: int) -> Latest | None:
    """The partner's latest reconciliation (None when none ran)."""
    _require(principal, partner_id)
    item = DRIFT_TABLE.c
    with engine.connect() as conn:
        row, items = _load(conn, partner_id, ITEM_LIMIT)
        if row is None:
            return None
        total_items = conn.scalar(select(func.count()).select_from(DRIFT_TABLE)
                                  .where(item.reconciliation_id == row.id)) or 0
        open_drift = len(reconcile.open_drift(conn, partner_id)) if row.finished_at else 0
    finished = row.finished_at is not None
    used = f"{row.requests_used:,} requests used" if finished else "did not finish (see its run below)"
    headline = (f"Reconciled at {_at(row.started_at)} by {row.requested_by} (run #{row.run_id}): estimated "
                f"{row.requests_estimated:,} HaloPSA requests, {used}.")
    frame = pd.DataFrame([{"HaloPSA ID": str(i.halo_id), "Difference": KIND_LABELS[DriftKind(i.kind)],
                           "In HaloPSA": i.halo_value or "", "Stored here": i.local_value or "",
                           "Resynced (UTC)": i.cleared_at.strftime("%Y-%m-%d %H:%M") if i.cleared_at else ""}
                          for i in items], columns=ITEM_COLUMNS)
    chosen = min(open_drift, reconcile.RESYNC_CAP)
    note = f"Reads each of them again by its id: about {chosen:,} HaloPSA requests."
    if open_drift > reconcile.RESYNC_CAP:
        note += (f" Only the first {reconcile.RESYNC_CAP:,} are read per resync; with this many, Fetch unpaid "
                 "invoices (or a new backfill) costs less.")
    return Latest(id=row.id, run_id=row.run_id, finished=finished, headline=headline,
                  counts=_counts(row) if finished else "", drift=row.drift, by_kind=_by_kind(row),
                  unpaid=_unpaid_frame(json.loads(row.halo_unpaid), json.loads(row.local_unpaid)),
                  items=frame, more_items=max(0, int(total_items) - len(items)), open_drift=open_drift,
                  resync_label=f"Resync {count(chosen, 'invoice')}", resync_note=note)


@dataclass(frozen=True)
class Offer:
    """What "Reconcile now" would cost, and whether one is already queued or running."""

    estimate: str
    busy: str | None  # "queued" / "running", or None


def offer(engine: Engine, principal: Principal, partner_id: int, settings: Settings) -> Offer:
    _require(principal, partner_id)
    with engine.connect() as conn:
        connection = conn.execute(select(CONNECTION_TABLE).where(CONNECTION_TABLE.c.partner_id == partner_id)).first()
        busy = conn.scalar(select(JOB_TABLE.c.state).where(
            JOB_TABLE.c.active_key.in_([jobs.active_key(partner_id, kind)
                                        for kind in (RunKind.RECONCILE, RunKind.RESYNC)])).limit(1))
    if connection is None:
        raise NotFound("This partner has no HaloPSA connection yet. Connect it first.")
    planned = reconcile.estimate(engine, partner_id, connection, settings)
    return Offer(estimate=f"A reconciliation reads HaloPSA and writes nothing here; it costs {planned.text}.",
                 busy=str(busy) if busy else None)


def fleet(engine: Engine, principal: Principal) -> pd.DataFrame:
    """Partners whose latest reconciliation found drift, the most differing first (customer success only)."""
    require_role(principal, Role.CS)
    rec, item, part = RECONCILIATION_TABLE.c, DRIFT_TABLE.c, PARTNER_TABLE.c
    newest = (select(RECONCILIATION_TABLE.c.id).where(rec.finished_at.is_not(None),
                                                      rec.partner_id == part.id)
              .order_by(rec.started_at.desc(), rec.id.desc()).limit(1).correlate(PARTNER_TABLE).scalar_subquery())
    still_open = (select(func.count(item.halo_id.distinct())).where(
        item.reconciliation_id == rec.id, item.cleared_at.is_(None),
        item.kind.in_([kind.value for kind in reconcile.DRIFT_KINDS])).scalar_subquery())
    with engine.connect() as conn:
        rows = conn.execute(
            select(part.name, rec.started_at, rec.drift, rec.missing_here, rec.extra_here, rec.amount_differs,
                   rec.status_differs, still_open.label("still_open"))
            .select_from(PARTNER_TABLE.join(RECONCILIATION_TABLE, rec.id == newest))
            .where(rec.drift > 0).order_by(rec.drift.desc(), part.name)).all()
    return pd.DataFrame([{"Partner": r.name, "Reconciled (UTC)": r.started_at.strftime("%Y-%m-%d %H:%M"),
                          "Differing invoices": r.drift, "Missing here": r.missing_here, "Extra here": r.extra_here,
                          "Amount differs": r.amount_differs, "Status differs": r.status_differs,
                          "Still open": r.still_open} for r in rows], columns=FLEET_COLUMNS)


def _unpaid_json(text: str) -> dict[str, dict[str, Any]]:
    return {code or "none": {"count": entry[0], "amount_due": money_text(entry[1])}
            for code, entry in sorted(json.loads(text).items())}


def report(engine: Engine, principal: Principal, partner_id: int) -> dict[str, Any] | None:
    """The latest reconciliation whole, as plain data (the command line prints it, or writes it as JSON): counts and
    unpaid per currency on each side, the cost, and every differing invoice."""
    _require(principal, partner_id)
    with engine.connect() as conn:
        row, items = _load(conn, partner_id, None)
    if row is None:
        return None
    return {
        "reconciliation": row.id, "run": row.run_id, "started_at": row.started_at.isoformat(),
        "finished_at": row.finished_at.isoformat() if row.finished_at else None, "requested_by": row.requested_by,
        "invoices_created_since": row.invoices_created_since.isoformat() if row.invoices_created_since else None,
        "requests": {"estimated": row.requests_estimated, "used": row.requests_used},
        "halopsa": {"invoices": row.halo_invoices, "unpaid": _unpaid_json(row.halo_unpaid)},
        "stored": {"invoices": row.local_invoices, "unpaid": _unpaid_json(row.local_unpaid)},
        "not_drift": {"dated_before_invoices_created_since": row.halo_outside_scope, "pending": row.pending,
                      "unreadable": row.unreadable},
        "drift": row.drift,
        "differences": {kind.value: [i.halo_id for i in items if i.kind == kind] for kind in DriftKind},
        "items": [{"halo_id": i.halo_id, "kind": DriftKind(i.kind).value, "halopsa": i.halo_value,
                   "stored": i.local_value, "resynced_at": i.cleared_at.isoformat() if i.cleared_at else None}
                  for i in items],
    }
