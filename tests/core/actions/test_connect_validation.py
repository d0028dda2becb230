from datetime import date

import pytest

from core.access import Principal
from core.actions import connect
from core.errors import AccessDenied, BadInput
from core.store.tables import Role
from tests.support.clock import NOW
from tests.support.factories import add_partner

CS = Principal(role=Role.CS, user="cs@example.com")
GOOD = {"partner_name": "Acme MSP", "app_domain": "acme", "client_id": "3f1c-client", "client_secret": "sec",
        "invoices_created_since": "2025-01-01"}


def validate(engine, settings, principal=CS, **changes):
    form = connect.ConnectionForm(**{**GOOD, **changes})
    return connect.validate_form(engine, principal, form, settings=settings, today=NOW.date())


def test_a_good_form_is_cleaned(engine, settings):
    clean = validate(engine, settings)
    assert clean.app_domain == "https://acme.halopsa.com"
    assert clean.invoices_created_since == date(2025, 1, 1)
    assert clean.partner_id is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"partner_name": "  "}, "partner_name"),
        ({"app_domain": ""}, "app_domain"),
        ({"app_domain": "http://acme.halopsa.com"}, "app_domain"),
        ({"client_id": ""}, "client_id"),
        ({"client_id": "has space"}, "client_id"),
        ({"client_secret": ""}, "client_secret"),
        ({"invoices_created_since": "31/01/2025"}, "invoices_created_since"),
        ({"invoices_created_since": "2099-01-01"}, "invoices_created_since"),
        ({"invoice_number_field": "invoicenumber"}, "invoice_number_field"),
        ({"partner_name": "Acme\x00MSP"}, "partner_name"),
        ({"client_id": "3f1c\x00client"}, "client_id"),
        ({"client_secret": "se\x07c"}, "client_secret"),
        ({"tenant": "acme\x00"}, "tenant"),
        ({"integration_role": "tertiary"}, "integration_role"),
        ({"tenant": "bad tenant!"}, "tenant"),
    ],
)
def test_each_bad_field_is_named(engine, settings, changes, field):
    with pytest.raises(BadInput) as info:
        validate(engine, settings, **changes)
    assert info.value.field == field
    assert info.value.message


def test_secondary_ignores_invoices_created_since(engine, settings):
    assert validate(engine, settings, integration_role="secondary").invoices_created_since is None


def test_editing_keeps_the_stored_secret_when_none_is_given(engine, settings):
    add_partner(engine, settings, name="Acme MSP", now=NOW, client_secret="stored-secret")
    clean = validate(engine, settings, client_secret="")
    assert clean.client_secret == "stored-secret"
    assert clean.partner_id is not None


def test_partner_accounts_edit_only_their_own_partner_and_pm_none(engine, settings):
    own = add_partner(engine, settings, name="Acme MSP", now=NOW)
    add_partner(engine, settings, name="Globex MSP", now=NOW)
    mine = Principal(role=Role.PARTNER, user="p@acme", partner_id=own)
    assert validate(engine, settings, principal=mine).partner_id == own
    with pytest.raises(AccessDenied):
        validate(engine, settings, principal=mine, partner_name="Globex MSP")
    with pytest.raises(AccessDenied):
        validate(engine, settings, principal=mine, partner_name="Brand New MSP")
    with pytest.raises(AccessDenied):
        validate(engine, settings, principal=Principal(role=Role.PM, user="pm"))
