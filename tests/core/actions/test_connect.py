import httpx
import pytest
from sqlalchemy import func, select

from core.access import Principal
from core.actions import connect
from core.errors import AuthError, BadInput
from core.store.tables import (
    AUDIT_TABLE,
    CONNECTION_TABLE,
    INVOICE_TABLE,
    PARTNER_TABLE,
    RUN_TABLE,
    AuditAction,
    IntegrationRole,
    Role,
    RunKind,
    RunStatus,
)
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


@pytest.mark.parametrize("moved", [{"app_domain": "elsewhere"}, {"tenant": "another"}])
def test_a_stored_secret_is_never_sent_to_another_host_or_tenant(engine, settings, moved):
    emu = HaloEmulator(seed=3, invoices=20, rate_limit=None)
    connected = _connect(engine, settings, emu, integration_role=IntegrationRole.SECONDARY)
    sent: list[httpx.Request] = []
    capture = httpx.MockTransport(lambda request: sent.append(request) or httpx.Response(200, json={}))
    form = connect.ConnectionForm(**{"partner_name": "Acme MSP", "app_domain": "acme", "client_id": emu.client_id,
                                     "client_secret": "", "integration_role": IntegrationRole.SECONDARY, **moved})

    with pytest.raises(BadInput) as refused:
        connect.connect(engine, CS, form, now=NOW, settings=settings, transport=capture)

    assert refused.value.field == "client_secret" and "enter the Client Secret again" in refused.value.message
    assert sent == []  # nothing left for the other host, let alone the stored secret
    with engine.connect() as conn:
        stored = conn.execute(select(CONNECTION_TABLE.c.app_domain, CONNECTION_TABLE.c.tenant)
                              .where(CONNECTION_TABLE.c.partner_id == connected.partner_id)).one()
    assert tuple(stored) == ("https://acme.halopsa.com", None)


def test_every_verification_is_audited_with_who_which_partner_and_domain_failed_ones_too(engine, settings):
    emu = HaloEmulator(seed=3, invoices=20, rate_limit=None)
    with pytest.raises(AuthError):
        _connect(engine, settings, emu, client_secret="not-the-secret", integration_role=IntegrationRole.SECONDARY)
    connected = _connect(engine, settings, emu, integration_role=IntegrationRole.SECONDARY)
    with pytest.raises(AuthError):  # a failed edit of the saved partner
        _connect(engine, settings, emu, client_secret="wrong-again", integration_role=IntegrationRole.SECONDARY)

    with engine.connect() as conn:
        events = conn.execute(select(AUDIT_TABLE.c.actor, AUDIT_TABLE.c.partner_id, AUDIT_TABLE.c.detail)
                              .where(AUDIT_TABLE.c.action == AuditAction.VERIFY_CONNECTION)
                              .order_by(AUDIT_TABLE.c.id)).all()
    assert [(actor, partner) for actor, partner, _ in events] == [
        (CS.user, None), (CS.user, None), (CS.user, connected.partner_id)]
    details = [detail for _, _, detail in events]
    assert details[0].startswith("Acme MSP at https://acme.halopsa.com: failed: ")
    assert details[1].startswith("Acme MSP at https://acme.halopsa.com: all permissions granted; checked what it "
                                 "supports (")
    assert details[2].startswith("Acme MSP at https://acme.halopsa.com: failed: ")
    assert not any(secret in detail for detail in details
                   for secret in (emu.client_secret, "not-the-secret", "wrong-again"))
