"""CSV and JSON exports of invoice rows. CSV cells are neutralised against spreadsheet formula injection."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from sqlalchemy import Select, func, select
from sqlalchemy.engine import Engine

from core.access import Principal, require_partner_access, require_role
from core.console.formatting import money
from core.store.tables import AGREEMENT_TABLE, CUSTOMER_TABLE, INVOICE_TABLE, UNPAID_STATUSES, Role

_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "|", "%")


def safe_cell(value: Any) -> Any:
    """Prefix text that a spreadsheet would run as a formula (OWASP CSV injection) with a single quote.

    Numbers stay numbers: only strings are neutralised, and amounts like "-12.50" are kept readable as text.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value


def write_csv(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    """Write rows as CSV with a header; returns the number of rows."""
    writer: csv.DictWriter[str] | None = None
    count = 0
    for row in rows:
        if writer is None:
            writer = csv.DictWriter(out, fieldnames=list(row))
            writer.writeheader()
        writer.writerow({key: safe_cell(value) for key, value in row.items()})
        count += 1
    return count


def csv_text(rows: Iterable[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    write_csv(rows, buffer)
    return buffer.getvalue()


def write_json(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    """Stream a JSON array without holding every row in memory."""
    out.write("[")
    count = 0
    for row in rows:
        out.write(",\n" if count else "\n")
        out.write(json.dumps(row, ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


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
