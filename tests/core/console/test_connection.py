from datetime import date

import pytest
from sqlalchemy import update

from core.access import Principal
from core.actions.connect import Verification
from core.console import connection as connection_screen
from core.demo import sandbox
from core.errors import AccessDenied, BadInput, HaloUnavailable, InvalidDomain, PermissionMissing
from core.halopsa.auth import rejection
from core.halopsa.config import REQUIRED_SCOPES
from core.store.tables import (
    CONNECTION_TABLE,
    INVOICE_TABLE,
    JOB_TABLE,
    JobState,
    NumberField,
    Role,
    RunKind,
    RunTrigger,
)
from core.sync import jobs
from tests.support.clock import NOW
from tests.support.console_db import fill_partner
from tests.support.factories import add_partner

CS = Principal(role=Role.CS, user="cs@example.com")


def _states(checks):
    return {check.scope: check.granted for check in checks}


def test_setup_steps_name_the_auth_method_login_type_permissions_and_the_qbo_sync():
    text = " ".join(connection_screen.SETUP_STEPS)
    for phrase in ("Client ID and Secret (Services)", "Agent", "QuickBooks Online", *REQUIRED_SCOPES):
        assert phrase in text


def test_a_verification_ticks_granted_and_crosses_missing_permissions_with_a_fix_for_each():
    checks = connection_screen.from_verification(
        Verification(app_domain="https://x.halopsa.com", granted=("read:customers",),
                     missing=("admin:webhooks", "edit:invoices")))
    assert [c.scope for c in checks] == list(REQUIRED_SCOPES)
    crossed = [c for c in checks if c.granted is False]
    assert [c.scope for c in crossed] == ["admin:webhooks", "edit:invoices"]
    assert all(c.fix and c.scope in c.fix and "Permissions tab" in c.fix for c in crossed)
    assert all(c.fix is None for c in checks if c.granted)


def test_a_permission_error_crosses_exactly_what_it_names():
    checks = connection_screen.from_missing(PermissionMissing(["edit:contracts"]).missing)
    assert _states(checks) == {scope: scope != "edit:contracts" for scope in REQUIRED_SCOPES}


@pytest.mark.parametrize(("granted", "missing", "expected"), [
    ("", "", dict.fromkeys(REQUIRED_SCOPES)),
    (" ".join(REQUIRED_SCOPES), "", dict.fromkeys(REQUIRED_SCOPES, True)),
    ("all", "admin:webhooks", {s: s != "admin:webhooks" for s in REQUIRED_SCOPES}),
    ("edit:invoices", "", {s: True if s in ("edit:invoices", "read:invoices") else None for s in REQUIRED_SCOPES}),
])
def test_stored_scopes_give_ticks_crosses_or_unknown(granted, missing, expected):
    assert _states(connection_screen.from_stored(granted, missing)) == expected


@pytest.mark.parametrize(("error", "field"), [
    (InvalidDomain("bad"), "app_domain"),
    (BadInput("x", field="client_id"), "client_id"),
    (rejection(401, "invalid_client", token_url="https://x.halopsa.com/auth/token", tenant=None), "client_secret"),
    (rejection(404, "", token_url="https://tenant-x.halopsa.com/auth/token", tenant=None), "app_domain"),
    (rejection(400, "unknown tenant", token_url="https://x.halopsa.com/auth/token", tenant="t1"), "tenant"),
    (PermissionMissing(["edit:invoices"]), None),
    (HaloUnavailable("down"), None),
])
def test_each_error_lands_under_the_right_field(error, field):
    assert connection_screen.error_field(error) == field


def test_stored_connection_shows_settings_and_scopes_but_never_the_secret(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW, since=date(2026, 1, 1), client_secret="top-secret-value")
    with engine.begin() as conn:
        conn.execute(update(CONNECTION_TABLE).values(granted_scopes=" ".join(REQUIRED_SCOPES),
                                                     missing_scopes="edit:invoices", last_error="lost a permission"))
    stored = connection_screen.stored_connection(engine, CS, partner_id)
    assert stored.app_domain == "https://acme.halopsa.com" and stored.last_error == "lost a permission"
    assert _states(stored.permissions)["edit:invoices"] is False
    assert ("Invoices Created Since", "2026-01-01") in stored.facts
    values = stored.form_values()
    assert values["client_secret"] == "" and values["partner_name"] == "Acme MSP"
    assert "top-secret-value" not in repr(stored) + repr(values)


def test_stored_connection_is_scoped_to_cs_and_the_partner_itself(engine, settings):
    acme = add_partner(engine, settings, now=NOW)
    other = add_partner(engine, settings, name="Other", now=NOW)
    own = Principal(role=Role.PARTNER, user="ap@acme.example", partner_id=acme)
    assert connection_screen.stored_connection(engine, own, acme) is not None
    for principal, partner_id in [(own, other), (Principal(role=Role.PM, user="pm"), acme)]:
        with pytest.raises(AccessDenied):
            connection_screen.stored_connection(engine, principal, partner_id)


def test_a_new_partner_may_not_reuse_an_existing_name(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    with pytest.raises(BadInput) as refused:
        connection_screen.require_new_partner_name(engine, CS, "  Acme   MSP ")
    assert refused.value.field == "partner_name"
    connection_screen.require_new_partner_name(engine, CS, "Brand New MSP")
    with pytest.raises(AccessDenied):  # only customer success connects new partners
        connection_screen.require_new_partner_name(
            engine, Principal(role=Role.PARTNER, user="ap@acme.example", partner_id=partner_id), "Brand New MSP")


def _connected_sandbox(engine, settings, host, name="Sandbox MSP"):
    """A partner connected to the sandbox `host` with its real credentials."""
    client_id, client_secret = sandbox.credentials(host)
    add_partner(engine, settings, name=name, now=NOW, app_domain=f"https://{host}", client_id=client_id,
                client_secret=client_secret)
    return client_secret


def test_a_sandbox_no_partner_uses_shows_its_demo_credentials(engine, settings):
    _connected_sandbox(engine, settings, "taken.sandbox")
    for typed in ("fresh.sandbox", "https://Fresh.sandbox/", "fresh.sandbox."):
        hint = connection_screen.sandbox_hint(engine, typed, settings=settings)
        assert hint.host == "fresh.sandbox" and (hint.client_id, hint.client_secret) == sandbox.credentials(
            "fresh.sandbox")
        assert hint.client_secret in hint.markdown


@pytest.mark.parametrize("typed", ["taken.sandbox", "TAKEN.sandbox", "https://taken.sandbox", "taken.sandbox.",
                                   "https://taken.sandbox:443/"])
def test_a_connected_sandbox_never_shows_its_secret(engine, settings, typed):
    secret = _connected_sandbox(engine, settings, "taken.sandbox")
    hint = connection_screen.sandbox_hint(engine, typed, settings=settings)
    assert hint.client_id is None and hint.client_secret is None
    assert secret not in repr(hint) + hint.markdown and "connected" in hint.markdown


def test_with_the_trainee_sandbox_connected_nothing_typed_shows_no_secret(engine, settings):
    secret = _connected_sandbox(engine, settings, connection_screen.TRAINEE_SANDBOX)
    for typed in (None, "", "acme.halopsa.com", "![x](http://evil.test/[x].sandbox"):
        hint = connection_screen.sandbox_hint(engine, typed, settings=settings)
        assert hint.host == connection_screen.TRAINEE_SANDBOX and hint.client_secret is None
        assert secret not in hint.markdown


def test_a_new_invoice_number_field_is_previewed_with_what_it_renumbers(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)  # numbered by HaloPSA ID
    fill_partner(engine, settings, partner_id, "Acme", 14)  # invoices 7 and 14 have no third-party number
    with engine.begin() as conn:  # two invoices share a third-party number
        conn.execute(update(INVOICE_TABLE).where(INVOICE_TABLE.c.halo_id == 1002)
                     .values(third_party_number="Acme-INV-0001"))
    preview = connection_screen.renumber_preview(engine, CS, partner_id, NumberField.THIRD_PARTY.value)
    assert (preview.invoices, preview.fallbacks, preview.duplicates, preview.running) == (14, 2, 1, None)
    text = " ".join(preview.sentences)
    assert "renumbers all 14 stored invoices of Acme MSP by Third Party Invoice Number instead of HaloPSA ID" in text
    assert "without a single request to HaloPSA: it takes seconds" in text
    assert "2 invoices have no third-party number" in text and "1 third-party number is carried by more" in text
    assert connection_screen.renumber_preview(engine, CS, partner_id, NumberField.HALO_ID.value) is None
    assert connection_screen.renumber_preview(engine, CS, partner_id, "no such field") is None


def test_the_renumber_preview_says_a_running_sync_goes_first_and_counts_with_separators(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW, number_field=NumberField.THIRD_PARTY)
    fill_partner(engine, settings, partner_id, "Acme", 1200)
    with engine.begin() as conn:
        job_id = jobs.enqueue(conn, partner_id=partner_id, partner_name="Acme MSP", kind=RunKind.BACKFILL,
                              trigger=RunTrigger.CONNECT, requested_by="cs@example.com", now=NOW)
        conn.execute(update(JOB_TABLE).where(JOB_TABLE.c.id == job_id).values(state=JobState.RUNNING))
    preview = connection_screen.renumber_preview(engine, CS, partner_id, NumberField.HALO_ID.value)
    text = " ".join(preview.sentences)
    assert "renumbers all 1,200 stored invoices of Acme MSP by HaloPSA ID instead of Third Party" in text
    assert "after the backfill sync of this partner running now ends" in text
    assert "fallback" not in text  # HaloPSA IDs: every invoice has one


def test_a_partner_without_invoices_is_told_nothing_is_renumbered(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    [sentence] = connection_screen.renumber_preview(engine, CS, partner_id, NumberField.THIRD_PARTY.value).sentences
    assert "No invoices are stored yet, so nothing is renumbered" in sentence


def test_the_renumber_preview_is_for_cs_and_the_partner_itself(engine, settings):
    acme = add_partner(engine, settings, now=NOW)
    other = add_partner(engine, settings, name="Other", now=NOW)
    own = Principal(role=Role.PARTNER, user="ap@acme.example", partner_id=acme)
    assert connection_screen.renumber_preview(engine, own, acme, NumberField.THIRD_PARTY.value) is not None
    for principal, partner_id in [(own, other), (Principal(role=Role.PM, user="pm"), acme)]:
        with pytest.raises(AccessDenied):
            connection_screen.renumber_preview(engine, principal, partner_id, NumberField.THIRD_PARTY.value)


def test_a_stored_connection_warns_when_another_partner_shares_its_tenant(engine, settings):
    acme = add_partner(engine, settings, now=NOW)
    assert connection_screen.stored_connection(engine, CS, acme).tenant_warning is None
    add_partner(engine, settings, name="Acme Twin", now=NOW, app_domain="https://ACME.halopsa.com")
    warning = connection_screen.stored_connection(engine, CS, acme).tenant_warning
    assert warning.startswith("Acme Twin is already connected to this HaloPSA tenant")
