"""Small builders for rows the tests need: partners with a stored connection, finished runs, auto-pay rules,
agreements and invoices."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy.engine import Engine

from core.halopsa import records
from core.settings import Settings
from core.store import tables, upserts
from core.store.secrets import secret_box
from core.store.tables import (
    AutoPayRule,
    Connection,
    IntegrationRole,
    NumberField,
    Partner,
    PartnerStatus,
    RunKind,
    RunStatus,
)
from core.sync import cooldowns, runs, streams
from tests.support.subtype_names import name_subtypes


def add_partner(
    engine: Engine,
    settings: Settings,
    *,
    name: str = "Acme MSP",
    now: datetime,
    app_domain: str = "https://acme.halopsa.com",
    client_id: str = "client-id",
    client_secret: str = "s3cret-value",
    role: IntegrationRole = IntegrationRole.PRIMARY,
    number_field: NumberField = NumberField.HALO_ID,
    since: date | None = None,
    tenant: str | None = None,
) -> int:
    with engine.begin() as conn:
        partner_id = conn.execute(
            Partner.__table__.insert().values(name=name, status=PartnerStatus.CONNECTED, created_at=now)
        ).inserted_primary_key[0]
        conn.execute(
            Connection.__table__.insert().values(
                partner_id=partner_id, app_domain=app_domain, tenant=tenant, client_id=client_id,
                client_secret_encrypted=secret_box(settings).encrypt(client_secret), invoices_created_since=since,
                invoice_number_field=number_field.value, numbered_by=number_field.value, integration_role=role.value,
                connected_at=now,
            )
        )
        cooldowns.ensure_rows(conn, partner_id)
    return int(partner_id)


def add_run(
    engine: Engine,
    settings: Settings,
    partner_id: int,
    *,
    at: datetime,
    status: RunStatus = RunStatus.SUCCEEDED,
    kind: RunKind = RunKind.SCHEDULED,
    trigger: str = "schedule",
    created: int = 0,
    updated: int = 0,
    invoices_seen: int = 0,
    record_errors: int = 0,
    error: str | None = None,
    error_kind: str | None = None,
) -> int:
    """A finished run started at `at` (one minute long), with its counts and `record_errors` rejected records."""
    run_id = runs.start_run(engine, partner_id=partner_id, partner_name=f"partner {partner_id}", kind=kind,
                            trigger=trigger, actor="tests", now=at, settings=settings)
    errors = [records.RecordError("invoice", 9000 + i, "total is not a number", {"id": 9000 + i})
              for i in range(record_errors)]
    with engine.begin() as conn:
        runs.save_progress(conn, run_id, partner_id, now=at, created=created, updated=updated,
                           invoices_seen=invoices_seen, rejected=record_errors)
        runs.add_record_errors(conn, run_id, partner_id, errors)
    runs.finish_run(engine, run_id, partner_id, status=status, now=at + timedelta(minutes=1), error=error,
                    error_kind=error_kind)
    return run_id


def add_rule(engine: Engine, partner_id: int, subtype_id: int, *, at: datetime, enabled: bool = True,
             label: str | None = None) -> None:
    """An auto-pay rule row for one agreement subtype (by its HaloPSA id), created at `at`."""
    with engine.begin() as conn:
        conn.execute(AutoPayRule.__table__.insert().values(
            partner_id=partner_id, subtype_id=subtype_id, subtype_name=label, enabled=enabled, created_by="tests",
            created_at=at, updated_at=at,
        ))


def add_agreements(engine: Engine, partner_id: int, subtypes: list[str], *, now: datetime) -> dict[str, int]:
    """One agreement per entry, HaloPSA ids 1, 2, … in order, written through the real upserts; each distinct subtype
    name gets a subtype id (1, 2, … in order of first appearance), named by a verified lookup. Returns name -> id."""
    ids = {name: number for number, name in enumerate(dict.fromkeys(subtypes), start=1)}
    agreements = [records.Agreement(halo_id=i, ref=f"AGR-{i}", customer_halo_id=1, subtype_id=ids[name],
                                    type_name="Recurring", start_date=None, end_date=None, active=True,
                                    last_modified=now) for i, name in enumerate(subtypes, start=1)]
    with engine.begin() as conn:
        upserts.upsert_rows(conn, tables.AGREEMENT_TABLE, streams.AGREEMENT_FIELDS,
                            [streams.agreement_row(a) for a in agreements], partner_id=partner_id, now=now)
    name_subtypes(engine, partner_id, {number: name for name, number in ids.items()}, now=now)
    return ids


def add_invoices(engine: Engine, partner_id: int, invoices: list[tuple[int | None, int, int]], *, now: datetime,
                 currency: str = "USD") -> None:
    """Invoices given as (agreement HaloPSA id, amount due in cents, amount paid in cents), written through the
    real upserts (which derive paid / partially paid / unpaid)."""
    build = streams.invoice_row_factory(NumberField.HALO_ID)
    rows = [build(records.Invoice(
        halo_id=5000 + i, invoice_number=str(5000 + i), third_party_number=None, customer_halo_id=1,
        customer_name="Customer 1", agreement_halo_id=agreement, agreement_ref=None, invoice_date=now.date(),
        due_date=now.date(), total_cents=due + paid, amount_paid_cents=paid, amount_due_cents=due, currency=currency,
        posted=True, voided=False, last_modified=now,
    )) for i, (agreement, due, paid) in enumerate(invoices)]
    with engine.begin() as conn:
        upserts.upsert_rows(conn, tables.INVOICE_TABLE, streams.INVOICE_FIELDS, rows, partner_id=partner_id, now=now)


def add_stuck_job(engine: Engine, partner_id: int) -> int:
    """A manual fetch queued and due for longer than the grace a worker gets to claim it (core.health.facts)."""
    from core.health.facts import QUEUED_GRACE
    from core.store.tables import RunTrigger
    from core.sync import jobs

    with engine.begin() as conn:
        return jobs.enqueue(conn, partner_id=partner_id, kind=RunKind.FETCH_NEW_DATA, trigger=RunTrigger.MANUAL,
                            requested_by="cs@example.com", now=jobs.lease_now(conn) - QUEUED_GRACE * 2,
                            not_before=jobs.lease_now(conn) - QUEUED_GRACE * 2)


def add_reconciliation(engine: Engine, partner_id: int, *, at: datetime, drift: dict[int, tables.DriftKind],
                       requested_by: str = "cs@example.com", halo_unpaid: str = "{}", local_unpaid: str = "{}") -> int:
    """A finished reconciliation of the partner that found `drift` (HaloPSA id -> how it differs)."""
    by_kind = {kind.value: sum(1 for found in drift.values() if found == kind) for kind in tables.DriftKind}
    with engine.begin() as conn:
        reconciliation_id = int(conn.execute(tables.RECONCILIATION_TABLE.insert().values(
            partner_id=partner_id, requested_by=requested_by, started_at=at, finished_at=at, requests_estimated=3,
            requests_used=3, halo_invoices=10, local_invoices=10, halo_unpaid=halo_unpaid, local_unpaid=local_unpaid,
            drift=sum(1 for kind in drift.values() if kind != tables.DriftKind.OUTSIDE_SCOPE), **by_kind,
        )).inserted_primary_key[0])
        if drift:
            conn.execute(tables.DRIFT_TABLE.insert(), [
                {"reconciliation_id": reconciliation_id, "partner_id": partner_id, "halo_id": halo_id, "kind": kind,
                 "halo_value": "unpaid", "local_value": "paid"} for halo_id, kind in drift.items()])
    return reconciliation_id
