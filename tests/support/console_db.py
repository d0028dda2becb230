"""A small console database for page tests: two partners (Acme primary, Globex secondary) filled through the real
upserts and run records, and the password every test account shares."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine

from core.actions.sign_in import SessionKeys, sign_in
from core.halopsa import records
from core.settings import Settings
from core.store import tables, upserts
from core.store.tables import NumberField, RunKind, RunStatus
from core.sync import runs, streams
from tests.support.clock import NOW
from tests.support.subtype_names import name_subtypes

APP = Path(__file__).resolve().parents[2] / "app.py"
PASSWORD = "test-password"
SUBTYPES = {1: "Managed Services", 2: "Backup", 3: "Break-fix"}  # subtype id -> name, from a verified lookup


def session_cookie(engine: Engine, settings: Settings, email: str, *, password: str = PASSWORD) -> str:
    """Sign the account in as the sign-in page does, and return its session cookie (for AppTest, which cannot send
    cookies, to put where ui.auth looks for one)."""
    keys = SessionKeys.load(engine, settings)
    return sign_in(engine, email=email, password=password, client="apptest", now=settings.now(), keys=keys).cookie


def fill_partner(engine: Engine, settings: Settings, partner_id: int, prefix: str, invoices: int) -> None:
    """Customers, agreements, invoices and a few runs for one partner, written through the real upserts."""
    customers = [records.Customer(halo_id=i, name=f"{prefix} Customer {i}", inactive=False,
                                  billing_email=f"ap{i}@{prefix.lower()}.example", currency="USD",
                                  last_modified=NOW) for i in range(1, 6)]
    agreements = [records.Agreement(halo_id=i, ref=f"{prefix}-AGR-{i}", customer_halo_id=i, subtype_id=i % 3 + 1,
                                    type_name="Recurring", start_date=date(2026, 1, 1), end_date=None, active=True,
                                    last_modified=NOW) for i in range(1, 6)]
    build = streams.invoice_row_factory(NumberField.THIRD_PARTY)
    invoice_rows = []
    for i in range(1, invoices + 1):
        paid = 0 if i % 3 else 10000
        invoice_rows.append(build(records.Invoice(
            halo_id=1000 + i, invoice_number=str(1000 + i),
            third_party_number=f"{prefix}-INV-{i:04d}" if i % 7 else None,
            customer_halo_id=i % 5 + 1, customer_name=f"{prefix} Customer {i % 5 + 1}", agreement_halo_id=i % 5 + 1,
            agreement_ref=f"{prefix}-AGR-{i % 5 + 1}", invoice_date=NOW.date() - timedelta(days=i),
            due_date=NOW.date() - timedelta(days=i - 30), total_cents=10000 + i, amount_paid_cents=paid,
            amount_due_cents=10000 + i - paid, currency="USD", posted=True, voided=False, last_modified=NOW,
        )))
    with engine.begin() as conn:
        upserts.upsert_rows(conn, tables.CUSTOMER_TABLE, streams.CUSTOMER_FIELDS,
                            [streams.customer_row(c) for c in customers], partner_id=partner_id, now=NOW)
        upserts.upsert_rows(conn, tables.AGREEMENT_TABLE, streams.AGREEMENT_FIELDS,
                            [streams.agreement_row(a) for a in agreements], partner_id=partner_id, now=NOW)
        upserts.upsert_rows(conn, tables.INVOICE_TABLE, streams.INVOICE_FIELDS, invoice_rows,
                            partner_id=partner_id, now=NOW)
    name_subtypes(engine, partner_id, SUBTYPES, now=NOW)
    for hours_ago, kind, status in [(30, RunKind.BACKFILL, RunStatus.SUCCEEDED),
                                    (3, RunKind.SCHEDULED, RunStatus.PARTIAL),
                                    (2, RunKind.SCHEDULED, RunStatus.FAILED),
                                    (1, RunKind.SCHEDULED, RunStatus.SUCCEEDED)]:
        at = NOW - timedelta(hours=hours_ago)
        run_id = runs.start_run(engine, partner_id=partner_id, partner_name=prefix, kind=kind, trigger="schedule",
                                actor="scheduler", now=at, settings=settings)
        with engine.begin() as conn:
            runs.save_progress(conn, run_id, partner_id, now=at, created=invoices if kind == RunKind.BACKFILL else 2,
                               updated=1, requests=4, pages=3)
        runs.finish_run(engine, run_id, partner_id, status=status, now=at + timedelta(minutes=1),
                        error="HaloPSA did not answer (HTTP 503)." if status == RunStatus.FAILED else None)
