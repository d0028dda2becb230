"""Read models for the CLI and the pages, always scoped by a Principal (the access check lives here)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, Table, func, select
from sqlalchemy.engine import Engine

from core.access import Principal, require_partner_access, require_role, scope_partner_ids
from core.errors import NotFound, format_duration
from core.store.tables import Agreement, Connection, Customer, IntegrationRole, InvoiceStatus, Partner, Role, RunStatus
from core.store.upserts import INVOICE_TABLE
from core.sync import cooldowns
from core.sync.runs import RUN_TABLE

PARTNER_TABLE: Table = Partner.__table__  # type: ignore[attr-defined]
CONNECTION_TABLE: Table = Connection.__table__  # type: ignore[attr-defined]
CUSTOMER_TABLE: Table = Customer.__table__  # type: ignore[attr-defined]
AGREEMENT_TABLE: Table = Agreement.__table__  # type: ignore[attr-defined]
UNPAID_STATUSES = (InvoiceStatus.UNPAID.value, InvoiceStatus.PARTIALLY_PAID.value)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 UTC with a Z, or None."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def money(cents: int | None) -> str | None:
    """Integer cents -> "1234.50" (exact; never through float)."""
    if cents is None:
        return None
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"


def amount(cents: int | None) -> Decimal | None:
    """Integer cents -> Decimal with two places, for DataFrames a table formats (exact; never through float)."""
    return None if cents is None else Decimal(cents).scaleb(-2)


def partner_id_by_name(engine: Engine, principal: Principal, name: str) -> int:
    """Resolve a partner name the principal may see; the same answer for "missing" and "not yours"."""
    with engine.connect() as conn:
        partner_id = conn.scalar(select(PARTNER_TABLE.c.id).where(PARTNER_TABLE.c.name == name))
    if partner_id is None or (principal.role != Role.CS and principal.partner_id != partner_id):
        raise NotFound(f"No partner named “{name}”. Check the spelling, or connect it first with `connect`.")
    return int(partner_id)


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
            select(func.count(), func.count().filter(inv.status.in_(UNPAID_STATUSES))).where(inv.partner_id == partner_id)
        ).one()
        customers = conn.scalar(select(func.count()).select_from(CUSTOMER_TABLE)
                                .where(CUSTOMER_TABLE.c.partner_id == partner_id))
        agreements = conn.scalar(select(func.count()).select_from(AGREEMENT_TABLE)
                                 .where(AGREEMENT_TABLE.c.partner_id == partner_id))
        run_rows = conn.execute(
            select(RUN_TABLE).where(RUN_TABLE.c.partner_id == partner_id)
            .order_by(RUN_TABLE.c.started_at.desc(), RUN_TABLE.c.id.desc()).limit(run_limit)
        ).all()
        cooldown_states = cooldowns.states(conn, partner_id)
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


def invoices_query(partner_id: int, *, unpaid_only: bool) -> Select[Any]:
    """Invoices with their customer and agreement (subtype) joined in SQL, ordered by due date."""
    inv, cust, agr = INVOICE_TABLE.c, CUSTOMER_TABLE.c, AGREEMENT_TABLE.c
    query = (
        select(
            inv.halo_id, inv.display_number, inv.number_is_fallback, inv.invoice_number, inv.third_party_number,
            func.coalesce(cust.name, inv.customer_name).label("customer"), inv.customer_halo_id,
            inv.invoice_date, inv.due_date, inv.total_cents, inv.amount_paid_cents, inv.amount_due_cents,
            inv.currency, func.coalesce(inv.agreement_ref, agr.ref).label("agreement_ref"),
            agr.subtype_name.label("agreement_subtype"), inv.status,
        )
        .select_from(
            INVOICE_TABLE.outerjoin(
                CUSTOMER_TABLE, (cust.partner_id == inv.partner_id) & (cust.halo_id == inv.customer_halo_id)
            ).outerjoin(AGREEMENT_TABLE, (agr.partner_id == inv.partner_id) & (agr.halo_id == inv.agreement_halo_id))
        )
        .where(inv.partner_id == partner_id)
        .order_by(inv.due_date, inv.halo_id)
    )
    if unpaid_only:
        query = query.where(inv.status.in_(UNPAID_STATUSES))
    return query


def invoice_export_rows(engine: Engine, principal: Principal, partner_id: int, *,
                        unpaid_only: bool = False) -> Iterator[dict[str, Any]]:
    """Invoice rows as export-ready dicts (amounts as two-decimal strings), streamed in due-date order."""
    require_partner_access(principal, partner_id)
    require_role(principal, Role.CS, Role.PARTNER)
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=2000).execute(invoices_query(partner_id, unpaid_only=unpaid_only))
        for row in result:
            yield {
                "halo_id": row.halo_id,
                "number": row.display_number,
                "number_is_fallback": row.number_is_fallback,
                "customer": row.customer,
                "invoice_date": row.invoice_date.isoformat() if row.invoice_date else None,
                "due_date": row.due_date.isoformat() if row.due_date else None,
                "total": money(row.total_cents),
                "amount_paid": money(row.amount_paid_cents),
                "amount_due": money(row.amount_due_cents),
                "currency": row.currency,
                "agreement_ref": row.agreement_ref,
                "agreement_subtype": row.agreement_subtype,
                "status": row.status,
            }


def partner_choices(engine: Engine, principal: Principal) -> list[tuple[int, str]]:
    """(id, name) of the partners this principal may pick: all for cs, its own for a partner user, none for pm."""
    with engine.connect() as conn:
        rows = conn.execute(select(PARTNER_TABLE.c.id, PARTNER_TABLE.c.name).order_by(PARTNER_TABLE.c.name)).all()
    allowed = set(scope_partner_ids(principal, [row.id for row in rows]))
    return [(row.id, row.name) for row in rows if row.id in allowed]


def ago(delta: timedelta) -> str:
    """How long ago, in plain words: "12 min ago", "5 h ago", "3 days ago"."""
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return "just now"
    if minutes < 60:
        return f"{minutes} min ago"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h ago"
    return f"{hours // 24} days ago"


def freshness_line(engine: Engine, principal: Principal, partner_id: int, *, now: datetime,
                   schedule_interval: timedelta) -> str:
    """Plain words: when invoices were last updated, the next automatic sync, and when manual fetches open."""
    require_partner_access(principal, partner_id)
    run = RUN_TABLE.c
    with engine.connect() as conn:
        role = conn.scalar(select(CONNECTION_TABLE.c.integration_role).where(CONNECTION_TABLE.c.partner_id == partner_id))
        last_ok = conn.scalar(
            select(func.max(run.finished_at)).where(
                run.partner_id == partner_id, run.status.in_([RunStatus.SUCCEEDED, RunStatus.PARTIAL])
            )
        )
        states = cooldowns.states(conn, partner_id)
    if role is None:
        return "Not connected to HaloPSA yet."
    if role != IntegrationRole.PRIMARY:
        return "HaloPSA is the secondary integration: invoices come from the primary one."
    parts = [f"Invoices updated {ago(now - last_ok)}" if last_ok else "Invoices not synced yet"]
    if last_ok:
        next_at = max(last_ok + schedule_interval, now)
        parts.append(f"next automatic sync ≈ {next_at:%H:%M} UTC")
    unpaid = states["fetch_unpaid"]
    if unpaid.available_at and unpaid.available_at > now:
        parts.append(f"Fetch unpaid invoices available in {format_duration(unpaid.available_at - now)}")
    else:
        parts.append("Fetch unpaid invoices available now")
    return " · ".join(parts)
