"""`python -m core status`: a partner's connection, counts, newest runs and cooldowns as JSON-ready data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from core.access import Principal, require_partner_access
from core.console.formatting import iso
from core.errors import NotFound
from core.store.tables import (
    AGREEMENT_TABLE,
    CONNECTION_TABLE,
    CUSTOMER_TABLE,
    INVOICE_TABLE,
    PARTNER_TABLE,
    RUN_TABLE,
    UNPAID_STATUSES,
)
from core.sync import cooldowns


def partner_status(engine: Engine, principal: Principal, partner_id: int, *, now: datetime,
                   run_limit: int = 20) -> dict[str, Any]:
    """The partner's connection, counts, newest runs and both cooldowns, as plain JSON-ready data."""
    require_partner_access(principal, partner_id)
    inv = INVOICE_TABLE.c
    with engine.connect() as conn:
        partner = conn.execute(select(PARTNER_TABLE).where(PARTNER_TABLE.c.id == partner_id)).first()
        if partner is None:
            raise NotFound("That partner no longer exists.")
        connection = conn.execute(
            select(CONNECTION_TABLE).where(CONNECTION_TABLE.c.partner_id == partner_id)
        ).first()
        invoices, unpaid = conn.execute(
            select(func.count(), func.count().filter(inv.status.in_(UNPAID_STATUSES)))
            .where(inv.partner_id == partner_id)
        ).one()
        customers = conn.scalar(select(func.count()).select_from(CUSTOMER_TABLE)
                                .where(CUSTOMER_TABLE.c.partner_id == partner_id))
        agreements = conn.scalar(select(func.count()).select_from(AGREEMENT_TABLE)
                                 .where(AGREEMENT_TABLE.c.partner_id == partner_id))
        run_rows = conn.execute(
            select(RUN_TABLE).where(RUN_TABLE.c.partner_id == partner_id)
            .order_by(RUN_TABLE.c.started_at.desc(), RUN_TABLE.c.id.desc()).limit(run_limit)
        ).all()
        cooldown_states = cooldowns.states(conn, partner_id, now=now)
    return {
        "partner": partner.name,
        "status": partner.status,
        "integration_role": connection.integration_role if connection else None,
        "invoice_number_field": connection.invoice_number_field if connection else None,
        "app_domain": connection.app_domain if connection else None,
        "client_id": connection.client_id if connection else None,
        "invoices_created_since": connection.invoices_created_since.isoformat()
        if connection and connection.invoices_created_since else None,
        "last_error": connection.last_error if connection else None,
        "counts": {"customers": customers, "invoices": invoices, "unpaid_invoices": unpaid, "agreements": agreements},
        "runs": [run_summary(run) for run in run_rows],
        "cooldowns": {
            "fetch_new_data": _cooldown_json(cooldown_states["fetch_new_data"], now),
            "fetch_unpaid": _cooldown_json(cooldown_states["fetch_unpaid"], now),
        },
    }


def run_summary(run: Any) -> dict[str, Any]:
    return {
        "id": run.id, "kind": run.kind, "trigger": run.trigger, "triggered_by": run.triggered_by,
        "status": run.status, "started_at": iso(run.started_at), "finished_at": iso(run.finished_at),
        "created": run.created, "updated": run.updated, "unchanged": run.unchanged, "rejected": run.rejected,
        "requests": run.requests, "pages": run.pages, "error": run.error,
    }


def _cooldown_json(state: cooldowns.CooldownState, now: datetime) -> dict[str, Any]:
    locked = state.available_at is not None and state.available_at > now
    return {
        "available_at": iso(state.available_at) if locked else None,
        "remaining_s": int(state.remaining(now).total_seconds()) if locked else 0,
        "last_started_at": iso(state.last_started_at),
        "last_actor": state.last_actor,
    }
