from dataclasses import replace

import httpx
import pytest
from sqlalchemy import func, select

from core.access import Principal
from core.actions import connect
from core.errors import AccessDenied, AuthError, BadInput, HaloUnavailable, RateLimited
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
from halo_emulator import FaultRule, HaloEmulator
from tests.support.clock import NOW

CS = Principal(role=Role.CS, user="cs@example.com")


def _connect(engine, settings, emu, *, progress=None, again=None, **changes):
    form = connect.ConnectionForm(**{"partner_name": "Acme MSP", "app_domain": "acme", "client_id": emu.client_id,
                                     "client_secret": emu.client_secret, **changes})
    transport = emu.transport()
    told = {"again": again} if again else {}
    return connect.connect_and_backfill(engine, CS, form, now=NOW, settings=settings, transport=transport,
                                        client_factory=connector.stored_client_factory(settings, transport=transport),
                                        progress=progress, **told)


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
    assert progress == [*connect.STEPS, "Backfilling customers, agreements and invoices", *progress[6:]]


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


def _failing_token(emu):
    """HaloPSA answers every token request 503 (a flaky instance)."""
    emu.add_fault(FaultRule(kind="status", status=503, path="/auth/token", times=10**9))


def test_a_connect_that_fails_says_nothing_was_saved_not_that_a_sync_will_retry(engine, settings):
    emu = HaloEmulator(seed=3, invoices=20, rate_limit=None)
    _failing_token(emu)
    quick = replace(settings, max_attempts=2, backoff_cap_s=0.01)
    with pytest.raises(HaloUnavailable) as refused:
        _connect(engine, quick, emu, again="press Continue to try again")
    message = refused.value.message
    assert message.startswith("HaloPSA did not answer (HTTP 503) after 2 attempts; it may be down.")
    assert message.endswith(" Nothing was saved; press Continue to try again.")
    assert "sync" not in message
    assert _count(engine, PARTNER_TABLE) == 0 and _count(engine, RUN_TABLE) == 0
    with engine.connect() as conn:  # the audit says what the person was told
        detail = conn.scalar(select(AUDIT_TABLE.c.detail).where(AUDIT_TABLE.c.action == AuditAction.VERIFY_CONNECTION))
    assert detail.endswith("Nothing was saved; press Continue to try again.")


def test_a_rate_limited_connect_says_when_to_try_again(engine, settings):
    emu = HaloEmulator(seed=3, invoices=20, rate_limit=None)
    emu.add_fault(FaultRule(kind="status", status=429, path="/auth/token", times=10**9, retry_after=120))
    with pytest.raises(RateLimited) as refused:
        _connect(engine, settings, emu)
    assert refused.value.message == (
        "HaloPSA is rate limiting this tenant and asked to wait 2 min (Retry-After: 120). Nothing was saved; try "
        "again after 2 min.")


def test_each_step_of_a_connect_is_announced_retries_too(engine, settings):
    emu = HaloEmulator(seed=3, invoices=20, rate_limit=None)
    emu.add_fault(FaultRule(kind="status", status=503, path="/auth/token", times=1))
    progress: list[str] = []
    _connect(engine, replace(settings, backoff_cap_s=0.01), emu, progress=progress.append,
             integration_role=IntegrationRole.SECONDARY)
    assert [step for step in progress if step in connect.STEPS] == list(connect.STEPS)
    retry = progress.index(connect.STEP_TOKEN) + 1
    assert progress[retry].startswith("HaloPSA answered HTTP 503; retrying in ")
    assert progress[retry + 1] == connect.STEP_PERMISSIONS


def test_a_check_verifies_and_probes_but_saves_nothing_and_is_audited(engine, settings):
    emu = HaloEmulator(seed=3, invoices=20, rate_limit=None)
    form = connect.ConnectionForm(partner_name="Acme MSP", app_domain="acme", client_id=emu.client_id,
                                  client_secret=emu.client_secret)
    progress: list[str] = []
    checked = connect.check_connection(engine, CS, form, now=NOW, settings=settings, transport=emu.transport(),
                                       progress=progress.append)
    assert checked.verification.ok and checked.verification.probe is not None
    assert checked.tenant_warning is None
    assert progress == [connect.STEP_DOMAIN, connect.STEP_TOKEN, connect.STEP_PERMISSIONS, connect.STEP_PROBE]
    assert _count(engine, PARTNER_TABLE) == 0 and _count(engine, CONNECTION_TABLE) == 0
    with engine.connect() as conn:
        [detail] = conn.execute(select(AUDIT_TABLE.c.detail)
                                .where(AUDIT_TABLE.c.action == AuditAction.VERIFY_CONNECTION)).scalars().all()
    assert detail.startswith("Acme MSP at https://acme.halopsa.com: all permissions granted; checked what it supports")
    assert detail.endswith("(a check: nothing saved)")


def test_a_check_of_a_stored_connection_uses_its_secret_and_changes_nothing(engine, settings):
    emu = HaloEmulator(seed=3, invoices=20, rate_limit=None)
    connected = _connect(engine, settings, emu, integration_role=IntegrationRole.SECONDARY)
    with engine.connect() as conn:
        before = conn.execute(select(CONNECTION_TABLE)).one()
    form = connect.ConnectionForm(partner_name="Acme MSP", app_domain="acme", client_id=emu.client_id,
                                  client_secret="", integration_role=IntegrationRole.PRIMARY,
                                  invoice_number_field="third_party")
    checked = connect.check_connection(engine, CS, form, now=NOW.replace(year=2027), settings=settings,
                                       transport=emu.transport())
    assert checked.verification.ok
    with engine.connect() as conn:
        assert conn.execute(select(CONNECTION_TABLE)).one() == before
        assert _count(engine, RUN_TABLE) == 0
    assert connected.partner_id == before.partner_id


def test_a_check_that_fails_says_so_without_a_sync(engine, settings):
    emu = HaloEmulator(seed=3, invoices=20, rate_limit=None)
    _failing_token(emu)
    form = connect.ConnectionForm(partner_name="Acme MSP", app_domain="acme", client_id=emu.client_id,
                                  client_secret=emu.client_secret)
    with pytest.raises(HaloUnavailable) as refused:
        connect.check_connection(engine, CS, form, now=NOW, settings=replace(settings, max_attempts=1),
                                 transport=emu.transport(), again="press Test connection to try again")
    assert refused.value.message.endswith(" Nothing was saved; press Test connection to try again.")


def test_connecting_a_tenant_another_partner_uses_warns_and_still_saves(engine, settings):
    emu = HaloEmulator(seed=3, invoices=20, rate_limit=None)
    first = _connect(engine, settings, emu, integration_role=IntegrationRole.SECONDARY)
    assert first.tenant_warning is None
    second = _connect(engine, settings, emu, partner_name="Acme Again", app_domain="ACME.halopsa.com",
                      integration_role=IntegrationRole.SECONDARY)
    assert second.tenant_warning is not None and "Acme MSP" in second.tenant_warning
    assert "same App Domain and Client ID" in second.tenant_warning
    assert _count(engine, PARTNER_TABLE) == 2  # a warning, not a refusal


def test_the_shared_tenant_warning_names_partners_only_to_customer_success(engine, settings):
    emu = HaloEmulator(seed=3, invoices=20, rate_limit=None)
    acme = _connect(engine, settings, emu, integration_role=IntegrationRole.SECONDARY).partner_id
    other = _connect(engine, settings, emu, partner_name="Globex", integration_role=IntegrationRole.SECONDARY)
    shared = {"app_domain": "https://acme.halopsa.com", "client_id": emu.client_id}
    assert "Globex" in connect.shared_tenant(engine, CS, partner_id=acme, **shared)
    own = Principal(role=Role.PARTNER, user="ap@acme.example", partner_id=acme)
    told = connect.shared_tenant(engine, own, partner_id=acme, **shared)
    assert told is not None and "Globex" not in told and told.startswith("Another partner is already connected")
    assert connect.shared_tenant(engine, CS, partner_id=None, app_domain="https://acme.halopsa.com",
                                 client_id="another-client") is None
    assert connect.shared_tenant(engine, CS, partner_id=other.partner_id, app_domain="https://other.halopsa.com",
                                 client_id=emu.client_id) is None
    with pytest.raises(AccessDenied):
        connect.shared_tenant(engine, Principal(role=Role.PM, user="pm"), partner_id=None, **shared)
