"""What the database should hold for an emulator tenant, computed independently from its wire rows."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from core.store.tables import AGREEMENT_TABLE, INVOICE_TABLE
from halo_emulator import HaloEmulator

UNPAID = ("unpaid", "partially_paid")


def cents(value: Any) -> int:
    return int((Decimal(str(value)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def expected_status(row: dict[str, Any]) -> str:
    if row.get("voided"):
        return "voided"
    if cents(row["total"]) < 0:
        return "credit"
    if not row.get("posted"):
        return "draft"
    if cents(row["amountdue"]) <= 0:
        return "paid"
    return "partially_paid" if cents(row.get("amountpaid") or 0) > 0 else "unpaid"


def expected_invoice(row: dict[str, Any], contracts: dict[int, dict[str, Any]], number_field: str) -> dict[str, Any]:
    third = (row.get("thirdpartyinvoicenumber") or "").strip() or None
    number = third if number_field == "third_party" and third else str(row["id"])
    contract = contracts.get(row.get("contract_id") or 0)
    return {
        "halo_id": row["id"], "number": number, "total": cents(row["total"]), "amount_due": cents(row["amountdue"]),
        "amount_paid": cents(row.get("amountpaid") or 0), "status": expected_status(row),
        "due_date": (row.get("duedate") or "")[:10] or None,
        "agreement_ref": (row.get("contract_ref") or None) if contract else None,
        "agreement_subtype_id": (contract["subtype"] or None) if contract else None,
    }


def expected_invoices(emu: HaloEmulator, number_field: str = "halo_id") -> dict[int, dict[str, Any]]:
    contracts = dict(emu.contracts)
    return {i: expected_invoice(row, contracts, number_field) for i, row in emu.invoices.items()}


def expected_unpaid_invoices(emu: HaloEmulator) -> dict[int, dict[str, Any]]:
    """What Fetch unpaid invoices stores for a partner never synced before: every invoice with money due that is not
    voided (unpaid, partly paid, and drafts stored as such), with no agreement subtype (it reads no agreements)."""
    expected = expected_invoices(emu)
    return {i: {**row, "agreement_subtype_id": None} for i, row in expected.items()
            if row["amount_due"] > 0 and row["status"] != "voided"}


def stored_invoices(engine: Engine, partner_id: int) -> dict[int, dict[str, Any]]:
    inv, agr = INVOICE_TABLE.c, AGREEMENT_TABLE.c
    query = (
        select(inv.halo_id, inv.display_number, inv.total_cents, inv.amount_due_cents, inv.amount_paid_cents,
               inv.status, inv.due_date, inv.agreement_ref, agr.subtype_id)
        .select_from(INVOICE_TABLE.outerjoin(
            AGREEMENT_TABLE, (agr.partner_id == inv.partner_id) & (agr.halo_id == inv.agreement_halo_id)))
        .where(inv.partner_id == partner_id)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    assert len(rows) == len({r.halo_id for r in rows}), "duplicate invoices stored"
    return {
        r.halo_id: {"halo_id": r.halo_id, "number": r.display_number, "total": r.total_cents,
                    "amount_due": r.amount_due_cents, "amount_paid": r.amount_paid_cents, "status": r.status,
                    "due_date": r.due_date.isoformat() if r.due_date else None,
                    "agreement_ref": r.agreement_ref, "agreement_subtype_id": r.subtype_id}
        for r in rows
    }


def differences(expected: dict[int, dict[str, Any]], stored: dict[int, dict[str, Any]]) -> list[str]:
    """Human-readable differences, empty when the database equals HaloPSA."""
    problems = [f"missing invoice {i}" for i in sorted(expected.keys() - stored.keys())]
    problems += [f"extra invoice {i}" for i in sorted(stored.keys() - expected.keys())]
    for halo_id in sorted(expected.keys() & stored.keys()):
        if expected[halo_id] != stored[halo_id]:
            problems.append(f"invoice {halo_id}: expected {expected[halo_id]} stored {stored[halo_id]}")
    return problems
