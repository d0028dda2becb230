"""Small builders for rows the tests need (partners with a stored connection)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.engine import Engine

from core import cooldowns
from core.models import Connection, IntegrationRole, NumberField, Partner, PartnerStatus
from core.secrets import secret_box
from core.settings import Settings


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
                invoice_number_field=number_field.value, integration_role=role.value, connected_at=now,
            )
        )
        cooldowns.ensure_rows(conn, partner_id)
    return int(partner_id)
