"""AppTest harness: a small console database (two partners, one account per role) and a signed-in AppTest."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest

from core import runs, upserts
from core.access import Principal
from core.halopsa import records
from core.models import IntegrationRole, NumberField, Role, RunKind, RunStatus
from core.settings import Settings
from core.users import add_user, principal_for_email
from tests.conftest import NOW
from tests.factories import add_partner

APP = Path(__file__).resolve().parents[2] / "app.py"
PASSWORD = "test-password"
SUBTYPES = ["Managed Services", "Backup", "Break-fix"]


def _fill(engine: Engine, settings: Settings, partner_id: int, prefix: str, invoices: int) -> None:
    """Customers, agreements, invoices and a few runs for one partner, written through the real upserts."""
    customers = [records.Customer(halo_id=i, name=f"{prefix} Customer {i}", inactive=False,
                                  billing_email=f"ap{i}@{prefix.lower()}.example", currency="USD",
                                  last_modified=NOW) for i in range(1, 6)]
    agreements = [records.Agreement(halo_id=i, ref=f"{prefix}-AGR-{i}", customer_halo_id=i, subtype_id=i % 3 + 1,
                                    subtype_name=SUBTYPES[i % 3], type_name="Recurring", start_date=date(2026, 1, 1),
                                    end_date=None, active=True, last_modified=NOW) for i in range(1, 6)]
    build = upserts.invoice_row_factory(NumberField.THIRD_PARTY)
    invoice_rows = []
    for i in range(1, invoices + 1):
        paid = 0 if i % 3 else 10000
        invoice_rows.append(build(records.Invoice(
            halo_id=1000 + i, invoice_number=str(1000 + i), third_party_number=f"{prefix}-INV-{i:04d}" if i % 7 else None,
            customer_halo_id=i % 5 + 1, customer_name=f"{prefix} Customer {i % 5 + 1}", agreement_halo_id=i % 5 + 1,
            agreement_ref=f"{prefix}-AGR-{i % 5 + 1}", invoice_date=NOW.date() - timedelta(days=i),
            due_date=NOW.date() - timedelta(days=i - 30), total_cents=10000 + i, amount_paid_cents=paid,
            amount_due_cents=10000 + i - paid, currency="USD", posted=True, voided=False, last_modified=NOW,
        )))
    with engine.begin() as conn:
        upserts.upsert_rows(conn, upserts.CUSTOMER_TABLE, upserts.CUSTOMER_FIELDS,
                            [upserts.customer_row(c) for c in customers], partner_id=partner_id, now=NOW)
        upserts.upsert_rows(conn, upserts.AGREEMENT_TABLE, upserts.AGREEMENT_FIELDS,
                            [upserts.agreement_row(a) for a in agreements], partner_id=partner_id, now=NOW)
        upserts.upsert_rows(conn, upserts.INVOICE_TABLE, upserts.INVOICE_FIELDS, invoice_rows,
                            partner_id=partner_id, now=NOW)
    for hours_ago, kind, status in [(30, RunKind.BACKFILL, RunStatus.SUCCEEDED), (3, RunKind.SCHEDULED, RunStatus.PARTIAL),
                                    (2, RunKind.SCHEDULED, RunStatus.FAILED), (1, RunKind.SCHEDULED, RunStatus.SUCCEEDED)]:
        at = NOW - timedelta(hours=hours_ago)
        run_id = runs.start_run(engine, partner_id=partner_id, partner_name=prefix, kind=kind, trigger="schedule",
                                actor="scheduler", now=at, settings=settings)
        with engine.begin() as conn:
            runs.save_progress(conn, run_id, partner_id, now=at, created=invoices if kind == RunKind.BACKFILL else 2,
                               updated=1, requests=4, pages=3)
        runs.finish_run(engine, run_id, partner_id, status=status, now=at + timedelta(minutes=1),
                        error="HaloPSA did not answer (HTTP 503)." if status == RunStatus.FAILED else None)


@pytest.fixture
def console(settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> dict[str, Principal]:
    """Acme (primary) and Globex (secondary) with data; returns a principal per account name."""
    acme = add_partner(engine, settings, name="Acme MSP", now=NOW - timedelta(days=2),
                       app_domain="https://acme.halopsa.com", number_field=NumberField.THIRD_PARTY)
    globex = add_partner(engine, settings, name="Globex Partners", now=NOW - timedelta(days=2),
                         app_domain="https://globex.halopsa.com", role=IntegrationRole.SECONDARY)
    _fill(engine, settings, acme, "Acme", 60)
    _fill(engine, settings, globex, "Globex", 20)
    accounts = {"cs": ("cs@example.com", Role.CS, None), "acme": ("ap@acme.example", Role.PARTNER, acme),
                "globex": ("ap@globex.example", Role.PARTNER, globex), "pm": ("pm@example.com", Role.PM, None)}
    for email, role, partner_id in accounts.values():
        add_user(engine, email=email, name=email, role=role, password=PASSWORD, partner_id=partner_id)
    # the fixture's own key: pytest loads tests/conftest.py a second time as `conftest`, with another TEST_KEY
    for key, value in {"DATABASE_URL": settings.database_url, "HALO_CONSOLE_SECRET_KEY": settings.secret_key,
                       "HALO_DEMO": "0", "HALO_ALLOW_LOCAL_DOMAINS": "1",
                       "HALO_CONSOLE_NOW": NOW.isoformat()}.items():
        monkeypatch.setenv(key, value)
    return {name: principal_for_email(engine, email) for name, (email, _, _) in accounts.items()}


@pytest.fixture(autouse=True)
def clear_streamlit_caches() -> Iterator[None]:
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def app_as(console: dict[str, Principal]) -> Callable[..., AppTest]:
    """`app_as("cs")` returns an AppTest signed in as that account, already run once."""

    def make(account: str, *, partner: str | None = None) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=30)
        at.session_state["auth.principal"] = console[account]
        if partner:  # cs picks that account's partner, as the sidebar picker does (AppTest reruns skip the sidebar)
            at.session_state["partner_id"] = console[partner].partner_id
        at.run()
        return at

    return make


@pytest.fixture
def page_as(console: dict[str, Principal]) -> Callable[..., AppTest]:
    """`page_as("pm", "pages/audit.py")` runs one page script alone (no navigation) as that account, already run once:
    how the page guard is tested behind the navigation."""

    def make(account: str, page: str) -> AppTest:
        at = AppTest.from_file(str(APP.parent / page), default_timeout=30)
        at.session_state["auth.principal"] = console[account]
        at.run()
        return at

    return make
