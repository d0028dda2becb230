"""Which partners a principal may pick, and the freshness line every partner screen shows under its title."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from core.access import Principal, require_partner_access, scope_partner_ids
from core.console.formatting import ago
from core.errors import NotFound, format_duration
from core.store.tables import (
    CONNECTION_TABLE,
    PARTNER_TABLE,
    RUN_TABLE,
    IntegrationRole,
    Role,
    RunKind,
    RunStatus,
)
from core.sync import cooldowns, scheduler


def partner_id_by_name(engine: Engine, principal: Principal, name: str) -> int:
    """Resolve a partner name the principal may see; the same answer for "missing" and "not yours"."""
    with engine.connect() as conn:
        partner_id = conn.scalar(select(PARTNER_TABLE.c.id).where(PARTNER_TABLE.c.name == name))
    if partner_id is None or (principal.role != Role.CS and principal.partner_id != partner_id):
        raise NotFound(f"No partner named “{name}”. Check the spelling, or connect it first with `connect`.")
    return int(partner_id)


def partner_choices(engine: Engine, principal: Principal) -> list[tuple[int, str]]:
    """(id, name) of the partners this principal may pick: all for cs, its own for a partner user, none for pm."""
    with engine.connect() as conn:
        rows = conn.execute(select(PARTNER_TABLE.c.id, PARTNER_TABLE.c.name).order_by(PARTNER_TABLE.c.name)).all()
    allowed = set(scope_partner_ids(principal, [row.id for row in rows]))
    return [(row.id, row.name) for row in rows if row.id in allowed]


def freshness_line(engine: Engine, principal: Principal, partner_id: int, *, now: datetime,
                   schedule_interval: timedelta) -> str:
    """Plain words: when invoices were last updated, the next automatic sync, and when manual fetches open."""
    require_partner_access(principal, partner_id)
    run = RUN_TABLE.c
    with engine.connect() as conn:
        role = conn.scalar(
            select(CONNECTION_TABLE.c.integration_role).where(CONNECTION_TABLE.c.partner_id == partner_id)
        )
        last_ok = conn.scalar(
            select(func.max(run.finished_at)).where(
                run.partner_id == partner_id, run.status.in_([RunStatus.SUCCEEDED, RunStatus.PARTIAL]),
                run.kind != RunKind.RECONCILE,  # a reconciliation reads HaloPSA and updates no invoice
            )
        )
        states = cooldowns.states(conn, partner_id, now=now)
        next_at = scheduler.next_sync_times(conn, now=now, interval=schedule_interval, partner_id=partner_id).get(
            partner_id)
    if role is None:
        return "Not connected to HaloPSA yet."
    if role != IntegrationRole.PRIMARY:
        return "HaloPSA is the secondary integration: invoices come from the primary one."
    parts = [f"Invoices updated {ago(now - last_ok)}" if last_ok else "Invoices not synced yet"]
    if next_at is not None:  # the scheduler's own rule: the same time however late the page is looked at
        parts.append(f"next automatic sync ≈ {next_at:%H:%M} UTC" if next_at > now
                     else "next automatic sync: due now, starts within a few minutes")
    unpaid = states["fetch_unpaid"]
    if unpaid.available_at and unpaid.available_at > now:
        parts.append(f"Fetch unpaid invoices available in {format_duration(unpaid.available_at - now)}")
    else:
        parts.append("Fetch unpaid invoices available now")
    return " · ".join(parts)
