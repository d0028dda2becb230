"""Every page × every role through AppTest: a partner account never sees another partner's name, customers, invoice
or agreement numbers; pm never sees invoice rows or customers; no account ever sees a client secret. Pages a role
may not open are run directly (behind the navigation) and must show nothing but the refusal. A wrong encryption key
shows a clear error on the page instead of garbage."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.fernet import Fernet

from core.access import PAGES
from core.actions import autopay_rules
from core.console import invoices as invoices_screen
from core.store.tables import Role
from tests.support.clock import NOW
from tests.support.markdown import plain_text
from tests.support.page_tree import rendered

SECRET = "s3cret-value"  # the stored client secret of both partners (tests/support/factories.py)
ROWS = {"acme": ["Acme-INV-", "Acme Customer", "Acme-AGR-"],
        "globex": ["Globex-INV-", "Globex Customer", "Globex-AGR-"]}
NAMES = {"acme": "Acme MSP", "globex": "Globex Partners"}
ACCOUNTS = {"cs": Role.CS, "acme": Role.PARTNER, "globex": Role.PARTNER, "pm": Role.PM}


def forbidden(account: str) -> list[str]:
    """Markers this account must never see."""
    if account == "pm":
        return [marker for rows in ROWS.values() for marker in rows] + [SECRET]
    if account == "cs":
        return [SECRET]
    other = "globex" if account == "acme" else "acme"
    return [NAMES[other], *ROWS[other], SECRET]


@pytest.mark.parametrize("account", list(ACCOUNTS))
def test_no_page_shows_an_account_what_it_may_not_see(app_as, page_as, account):
    for spec in PAGES:
        page, allowed = spec.slug, ACCOUNTS[account] in spec.roles
        if allowed:
            at = app_as(account, partner="acme" if account == "cs" else None).switch_page(f"pages/{page}.py").run()
        else:
            at = page_as(account, f"pages/{page}.py")
            assert [e.value for e in at.error] == ["Your account cannot open this page."], page
        assert not at.exception, page
        text = rendered(at)
        for marker in forbidden(account):
            assert marker not in text, f"{page} showed {account} {marker!r}"
        if allowed and account in ROWS and page != "syncs":  # the page did show this partner's own data
            assert any(marker in text for marker in [NAMES[account], *ROWS[account]]), page


def test_customer_success_sees_no_secret_on_the_other_partners_pages(app_as):
    for page in ("connection", "syncs", "invoices", "agreements"):  # the per-partner pages, for Globex this time
        at = app_as("cs", partner="globex").switch_page(f"pages/{page}.py").run()
        assert not at.exception
        text = rendered(at)
        assert SECRET not in text, page
        assert page == "syncs" or "Globex" in text, page


def test_a_wrong_encryption_key_is_a_clear_error_on_the_syncs_page(app_as, monkeypatch, engine, console):
    monkeypatch.setenv("HALO_CONSOLE_SECRET_KEY", Fernet.generate_key().decode())  # not the key of this database
    monkeypatch.setenv("HALO_CONSOLE_NOW", (NOW + timedelta(hours=2)).isoformat())
    at = app_as("acme").switch_page("pages/syncs.py").run()
    at.button(key="syncs.fetch_new_data").click().run()
    assert not at.exception
    errors = " ".join(plain_text(e.value) for e in at.error)
    assert "Stored client secrets cannot be decrypted with the configured key" in errors
    assert SECRET not in rendered(at)


def test_an_invalid_encryption_key_is_a_clear_error_when_editing_a_connection(app_as, monkeypatch, console):
    monkeypatch.setenv("HALO_CONSOLE_SECRET_KEY", "not-a-fernet-key")
    at = app_as("acme").switch_page("pages/connection.py").run()
    at.button(key="connection.continue").click().run()  # the secret field is empty: the stored one is decrypted
    assert not at.exception
    errors = " ".join(plain_text(e.value) for e in at.error)
    assert "not a valid key" in errors and "HALO_CONSOLE_SECRET_KEY" in errors


def test_actions_done_through_core_are_on_the_audit_page_for_customer_success_only(app_as, page_as, engine, console):
    acme = console["acme"]
    autopay_rules.save_rule(engine, acme, acme.partner_id, autopay_rules.RuleInput(2),  # Backup
                            now=NOW - timedelta(minutes=2))
    invoices_screen.export_csv(engine, console["cs"], acme.partner_id, invoices_screen.Filters(),
                             now=NOW - timedelta(minutes=1))
    at = app_as("cs").switch_page("pages/audit.py").run()
    at.selectbox(key="audit.partner").set_value(None).run()  # all partners, not only the sidebar's pick
    events = at.dataframe[0].value
    assert events[["actor", "partner", "action"]].values.tolist() == [
        ["cs@example.com", "—", "Sign in"],  # the test's own sign-in, audited like any other
        ["cs@example.com", "Acme MSP", "Export"], ["ap@acme.example", "Acme MSP", "Mapping change"]]
    assert list(events["at"]) == [NOW, NOW - timedelta(minutes=1), NOW - timedelta(minutes=2)]
    for account in ("acme", "pm"):
        assert "Mapping change" not in rendered(page_as(account, "pages/audit.py"))
