import pytest
from sqlalchemy import func, select

from core.access import Principal
from core.actions import connect
from core.errors import AuthError
from core.store.tables import INVOICE_TABLE, PARTNER_TABLE, RUN_TABLE, IntegrationRole, Role, RunKind, RunStatus
from core.sync import connector
from halo_emulator import HaloEmulator
from tests.support.clock import NOW

CS = Principal(role=Role.CS, user="cs@example.com")


def _connect(engine, settings, emu, **changes):
    form = connect.ConnectionForm(**{"partner_name": "Acme MSP", "app_domain": "acme", "client_id": emu.client_id,
                                     "client_secret": emu.client_secret, **changes})
    transport = emu.transport()
    return connect.connect_and_backfill(engine, CS, form, now=NOW, settings=settings, transport=transport,
                                        client_factory=connector.stored_client_factory(settings, transport=transport))


def _count(engine, table):
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(table))


def test_a_primary_integration_is_saved_then_backfilled(engine, settings):
    emu = HaloEmulator(seed=3, invoices=120, rate_limit=None)
    progress = []
    form = connect.ConnectionForm(partner_name="Acme MSP", app_domain="acme", client_id=emu.client_id,
                                  client_secret=emu.client_secret)
    transport = emu.transport()
    connected = connect.connect_and_backfill(
        engine, CS, form, now=NOW, settings=settings, transport=transport, progress=progress.append,
        client_factory=connector.stored_client_factory(settings, transport=transport))
    assert connected.verification.ok
    assert connected.backfill is not None
    assert (connected.backfill.kind, connected.backfill.status) == (RunKind.BACKFILL, RunStatus.SUCCEEDED)
    assert _count(engine, INVOICE_TABLE) == len(emu.invoices) == connected.backfill.tally.invoices_seen
    assert progress[0] == "Backfilling customers, agreements and invoices"


def test_a_secondary_integration_is_saved_without_a_backfill(engine, settings):
    emu = HaloEmulator(seed=3, invoices=20, rate_limit=None)
    connected = _connect(engine, settings, emu, integration_role=IntegrationRole.SECONDARY)
    assert connected.backfill is None
    assert _count(engine, RUN_TABLE) == 0 and _count(engine, PARTNER_TABLE) == 1


def test_rejected_credentials_name_the_secret_field_and_save_nothing(engine, settings):
    emu = HaloEmulator(seed=3, invoices=20, rate_limit=None)
    with pytest.raises(AuthError) as refused:
        _connect(engine, settings, emu, client_secret="not-the-secret")
    assert refused.value.field == "client_secret"
    assert _count(engine, PARTNER_TABLE) == 0 and _count(engine, RUN_TABLE) == 0
