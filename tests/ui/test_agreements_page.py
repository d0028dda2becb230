import re
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import delete, select, update

from core.actions import autopay_rules
from core.console import agreements
from core.store.secrets import secret_box
from core.store.tables import AUDIT_TABLE, CONNECTION_TABLE, INVOICE_TABLE, RULE_TABLE, SUBTYPE_NAME_TABLE
from core.sync import subtypes
from halo_emulator import HaloEmulator, serve
from tests.support.clock import NOW
from tests.support.markdown import plain_text

PAGE = "pages/agreements.py"
SHOWN = {1: "Managed Services (id 1)", 2: "Backup (id 2)", 3: "Break-fix (id 3)"}  # tests.support.console_db


def _open(app_as, account, console):
    at = app_as(account)
    if account == "cs":
        at.selectbox(key="sidebar.partner").set_value(console["acme"].partner_id).run()
    return at.switch_page(PAGE).run()


def _events(engine, action="mapping_change"):
    with engine.connect() as conn:
        return conn.execute(select(AUDIT_TABLE).where(AUDIT_TABLE.c.action == action)).all()


def _names(at):
    """The Subtype names section's table."""
    return next(frame.value for frame in at.dataframe if "from_lookup" in frame.value.columns)


def _texts(at) -> str:
    return " ".join(plain_text(element.value) for element in [*at.markdown, *at.caption, *at.info, *at.warning,
                                                               *at.success, *at.error])


@pytest.mark.parametrize("account", ["cs", "acme"])
def test_lists_the_synced_subtypes_by_id_with_their_names_and_a_preview(app_as, console, account):
    at = _open(app_as, account, console)

    assert not at.exception
    summary = at.dataframe[0].value
    assert sorted(summary["subtype"]) == sorted(SHOWN.values())
    assert set(summary["rule"]) == {"not mapped"}
    assert set(at.selectbox(key="agreements.subtype").options) == set(SHOWN.values())
    assert "Preview" in at.markdown[0].value
    if account == "acme":
        assert "Globex" not in str(at)


def test_a_name_no_verified_lookup_gave_says_so_and_a_subtype_without_a_name_shows_its_id(app_as, console, engine):
    acme = console["acme"].partner_id
    with engine.begin() as conn:
        subtypes.unverify_names(conn, acme)  # as after a check that did not verify the lookup
        conn.execute(delete(SUBTYPE_NAME_TABLE).where(SUBTYPE_NAME_TABLE.c.subtype_id == 3))

    at = _open(app_as, "acme", console)

    assert not at.exception
    assert sorted(at.dataframe[0].value["subtype"]) == ["Backup (id 2, name not verified)",
                                                        "Managed Services (id 1, name not verified)", "Subtype 3"]
    names = _names(at)
    assert list(names["from_lookup"].fillna("")) == ["Managed Services (not verified)", "Backup (not verified)", ""]


def test_saving_a_rule_creates_it_by_subtype_id_and_writes_the_audit_event(app_as, console, engine):
    at = _open(app_as, "acme", console)
    acme = console["acme"].partner_id

    at.selectbox(key="agreements.subtype").set_value(2).run()
    assert at.toggle(key="agreements.enabled").value is False  # issue 14: a new rule starts disabled
    at.selectbox(key="agreements.trigger").set_value("days_after_due").run()
    at.number_input(key="agreements.days").set_value(3).run()
    at.text_input(key="agreements.max_amount").input("2500").run()
    at.button(key="agreements.save").click().run()

    assert not at.exception
    assert plain_text(at.success[0].value) == "Saved the auto-pay rule for Backup (id 2)."
    [rule] = agreements.list_rules(engine, console["acme"], acme)
    assert (rule.subtype_id, rule.subtype, rule.enabled, rule.trigger, rule.days, rule.max_amount) == (
        2, "Backup (id 2)", False, "days_after_due", 3, Decimal("2500.00"))
    [event] = _events(engine)
    assert (event.actor, event.partner_id, event.at) == ("ap@acme.example", acme, NOW)
    assert event.detail.endswith("“Backup (id 2)” created: charge 3 days after the due date, up to 2,500.00 (disabled)")
    assert dict(zip(at.dataframe[0].value["subtype"], at.dataframe[0].value["rule"], strict=True))[SHOWN[2]] == \
        "3 days after the due date (disabled)"


def test_enabling_a_rule_first_says_what_it_charges_today_and_in_the_next_days_and_asks(app_as, console, engine):
    """Issue 14: a rule started charging at its first save, with no word of what it would charge today."""
    at = _open(app_as, "acme", console)
    acme = console["acme"].partner_id
    at.selectbox(key="agreements.subtype").set_value(2).run()
    at.toggle(key="agreements.enabled").set_value(True).run()

    at.button(key="agreements.save").click().run()

    assert not at.exception
    assert agreements.list_rules(engine, console["acme"], acme) == [] and _events(engine) == []  # nothing yet
    preview = agreements.preview(engine, console["acme"], acme, autopay_rules.RuleInput(2), now=NOW)
    assert plain_text(at.warning[0].value) == f"Saving starts charging. {preview.outlook_text()}"
    assert re.fullmatch(r"Enabled, it charges today: \d+ invoices \([\d,.]+ USD due\); in the next 7 days: \d+ "
                        r"invoices? \([\d,.]+ USD due\)\.", preview.outlook_text())
    outlook = next(frame.value for frame in at.dataframe if "when" in frame.value.columns)
    assert outlook.equals(preview.outlook) and set(outlook["currency"]) == {"USD"}
    at.button(key="agreements.cancel").click().run()
    assert not [button for button in at.button if button.key == "agreements.confirm"]
    assert agreements.list_rules(engine, console["acme"], acme) == []

    at.button(key="agreements.save").click().run()
    at.button(key="agreements.confirm").click().run()

    assert not at.exception
    assert plain_text(at.success[0].value) == "Saved the auto-pay rule for Backup (id 2)."
    [rule] = agreements.list_rules(engine, console["acme"], acme)
    assert rule.enabled and _events(engine)[-1].detail.endswith("created: charge on the due date")
    at.text_input(key="agreements.max_amount").input("2500").run()  # a save that starts no charging: no question
    at.button(key="agreements.save").click().run()
    assert not at.warning and len(_events(engine)) == 2


def test_a_save_clicked_with_the_toggle_just_flipped_saves_what_the_form_shows_and_asks_first(app_as, console,
                                                                                              engine):
    """Seen in the browser: Enabled flipped and Save clicked before the page redrew saved the rule disabled, with no
    question (the button's terms were those it was drawn with); the click carries the toggle's new value."""
    at = _open(app_as, "acme", console)
    acme = console["acme"].partner_id
    at.selectbox(key="agreements.subtype").set_value(2).run()
    at.toggle(key="agreements.enabled").set_value(True)
    at.button(key="agreements.save").click().run()  # one rerun carries both

    assert not at.exception and agreements.list_rules(engine, console["acme"], acme) == []
    assert plain_text(at.warning[0].value).startswith("Saving starts charging. Enabled, it charges today: ")
    at.button(key="agreements.confirm").click().run()
    [rule] = agreements.list_rules(engine, console["acme"], acme)
    assert rule.enabled


def test_a_long_overdue_invoice_is_held_back_until_the_rule_opts_in(app_as, console, engine):
    """Issue 14: an invoice 552 days overdue was shown as "charge on <today>" without a warning."""
    acme = console["acme"].partner_id
    with engine.begin() as conn:  # Acme-INV-0005 is on a Backup (id 2) agreement
        conn.execute(update(INVOICE_TABLE).where(INVOICE_TABLE.c.partner_id == acme, INVOICE_TABLE.c.halo_id == 1005)
                     .values(due_date=NOW.date() - timedelta(days=552)))
    at = _open(app_as, "acme", console)
    at.selectbox(key="agreements.subtype").set_value(2).run()

    assert at.toggle(key="agreements.overdue_opt_in").label == "Also charge invoices more than 60 days overdue"
    assert plain_text(at.warning[0].value).startswith("Holds back 1 unpaid invoice (100.05 USD due) more than 60 "
                                                      "days overdue on the day it would charge them.")
    assert "Acme-INV-0005" not in set(at.dataframe[1].value["number"])  # not among the invoices it would charge
    at.toggle(key="agreements.overdue_opt_in").set_value(True).run()

    covered = at.dataframe[1].value.set_index("number")
    assert covered.loc["Acme-INV-0005", "charge_on"] == NOW.date()
    assert not at.warning


def test_money_on_the_page_is_per_currency_with_a_currency_column(app_as, console, engine):
    acme = console["acme"].partner_id
    with engine.begin() as conn:
        conn.execute(update(INVOICE_TABLE).where(INVOICE_TABLE.c.partner_id == acme, INVOICE_TABLE.c.halo_id == 1005)
                     .values(currency="CAD"))
    at = _open(app_as, "acme", console)
    at.selectbox(key="agreements.subtype").set_value(2).run()

    summary = at.dataframe[0].value
    assert summary[summary["subtype_id"] == 2]["currency"].tolist() == ["CAD", "USD"]
    assert set(at.dataframe[1].value["currency"]) == {"CAD", "USD"}
    assert "CAD · " in plain_text(at.markdown[0].value) and "mixed" not in _texts(at)


def test_a_bad_maximum_is_shown_inline_and_nothing_can_be_saved(app_as, console, engine):
    at = _open(app_as, "acme", console)

    at.text_input(key="agreements.max_amount").input("-5").run()

    assert not at.exception
    assert "more than 0.00" in plain_text(at.error[0].value)
    assert not [button for button in at.button if button.key == "agreements.save"]
    assert _events(engine) == []


def test_edit_loads_a_saved_rule_and_delete_removes_it(app_as, console, engine):
    acme = console["acme"].partner_id
    rule_id = autopay_rules.save_rule(engine, console["acme"], acme,
                                      autopay_rules.RuleInput(3, trigger="days_after_invoice", days=14), now=NOW)
    at = _open(app_as, "acme", console)

    at.button(key=f"agreements.edit.{rule_id}").click().run()
    assert at.selectbox(key="agreements.subtype").value == 3
    assert (at.selectbox(key="agreements.trigger").value, at.number_input(key="agreements.days").value) == (
        "days_after_invoice", 14)
    at.button(key=f"agreements.delete.{rule_id}").click().run()
    # issue 14: a delete asks first
    assert len(agreements.list_rules(engine, console["acme"], acme)) == 1
    assert plain_text(at.warning[-1].value).startswith("Delete the auto-pay rule for Break-fix (id 3) (charge 14 "
                                                       "days after the invoice date)? Deleting it is audited; ")
    at.button(key=f"agreements.delete_cancel.{rule_id}").click().run()
    assert len(agreements.list_rules(engine, console["acme"], acme)) == 1 and not at.warning
    at.button(key=f"agreements.delete.{rule_id}").click().run()
    at.button(key=f"agreements.delete_confirm.{rule_id}").click().run()

    assert not at.exception
    assert plain_text(at.success[0].value) == "Deleted the auto-pay rule for Break-fix (id 3)."
    assert agreements.list_rules(engine, console["acme"], acme) == []
    assert _events(engine)[-1].detail == ("Auto-pay rule for “Break-fix (id 3)” deleted; was: charge 14 days after "
                                          "the invoice date")


def test_a_rule_without_its_subtype_charges_nothing_until_its_subtype_is_picked_again(app_as, console, engine):
    """A rule whose name matched no single subtype id when rules moved to ids (migration 0007)."""
    acme = console["acme"].partner_id
    rule_id = autopay_rules.save_rule(engine, console["acme"], acme, autopay_rules.RuleInput(2), now=NOW)
    with engine.begin() as conn:
        conn.execute(update(RULE_TABLE).where(RULE_TABLE.c.id == rule_id).values(subtype_id=None))
    at = _open(app_as, "acme", console)

    assert set(at.dataframe[0].value["rule"]) == {"not mapped"}
    assert "Backup (subtype to pick again)" in _texts(at) and "charges nothing until you pick its subtype" in _texts(at)
    at.selectbox(key=f"agreements.repick.{rule_id}").set_value(2).run()
    at.button(key=f"agreements.use.{rule_id}").click().run()

    assert not at.exception
    assert plain_text(at.success[0].value) == "The auto-pay rule now applies to Backup (id 2)."
    assert dict(zip(at.dataframe[0].value["subtype"], at.dataframe[0].value["rule"], strict=True))[SHOWN[2]] == \
        "on the due date"
    assert "now applies to “Backup (id 2)”" in _events(engine)[-1].detail


def test_a_partner_names_a_subtype_here_and_the_name_wins_everywhere(app_as, console, engine):
    at = _open(app_as, "acme", console)

    at.selectbox(key="agreements.name_for").set_value(3).run()
    at.text_input(key="agreements.name").input("  Hourly work ").run()
    at.button(key="agreements.name.save").click().run()

    assert not at.exception
    assert plain_text(at.success[0].value) == "Saved the name of subtype 3."
    assert "Hourly work (id 3)" in set(at.dataframe[0].value["subtype"])
    names = _names(at).set_index("subtype_id")
    assert (names.loc[3, "from_lookup"], names.loc[3, "named_here"]) == ("Break-fix", "Hourly work")
    [event] = _events(engine, "subtype_names")
    assert event.actor == "ap@acme.example" and "named “Hourly work” here" in event.detail


def test_setting_the_lookup_checks_it_against_halopsa_and_says_what_it_found(app_as, console, engine, settings):
    """Over a loopback socket: the tenant's own subtype lookup verifies (its names replace the ones before); another
    of its tables does not, and the page says why."""
    emu = HaloEmulator(seed=11, invoices=20, rate_limit=None)
    with serve(emu) as server:
        with engine.begin() as conn:
            conn.execute(update(CONNECTION_TABLE).where(CONNECTION_TABLE.c.partner_id == console["acme"].partner_id)
                         .values(app_domain=server.url, client_id=emu.client_id,
                                 client_secret_encrypted=secret_box(settings).encrypt(emu.client_secret)))
        at = _open(app_as, "acme", console)
        assert "Lookup 76 is verified" in _texts(at)  # what the test database was named by

        at.number_input(key="agreements.lookup_id").set_value(emu.subtype_lookup_id).run()
        at.button(key="agreements.lookup.set").click().run()

        assert not at.exception
        assert plain_text(at.success[0].value).startswith(f"Lookup {emu.subtype_lookup_id} is verified: ")
        assert "Microsoft 365 (id 3)" in set(at.dataframe[0].value["subtype"])  # the tenant's name for subtype 3
        assert f"Lookup {emu.subtype_lookup_id} is verified (checked " in _texts(at)

        other = emu.config.lookup_ids[2]  # the tenant's site types: row ids 11-13
        at.number_input(key="agreements.lookup_id").set_value(other).run()
        at.button(key="agreements.lookup.set").click().run()

        assert not at.exception
        assert "has no name for subtype ids 1, 2, 3" in plain_text(at.warning[0].value)
        assert "Microsoft 365 (id 3, name not verified)" in set(at.dataframe[0].value["subtype"])


def test_pm_is_not_offered_the_agreements_page_and_the_page_refuses_it(app_as, page_as):
    at = app_as("pm")
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(PAGE)

    direct = page_as("pm", PAGE)
    assert [e.value for e in direct.error] == ["Your account cannot open this page."]
    assert not direct.dataframe
