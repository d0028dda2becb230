from decimal import Decimal

import pytest
from sqlalchemy import select

from core.actions import autopay_rules
from core.console import agreements
from core.store.tables import AUDIT_TABLE
from tests.support.clock import NOW
from tests.support.markdown import plain_text

PAGE = "pages/agreements.py"


def _open(app_as, account, console):
    at = app_as(account)
    if account == "cs":
        at.selectbox(key="sidebar.partner").set_value(console["acme"].partner_id).run()
    return at.switch_page(PAGE).run()


def _mapping_events(engine):
    with engine.connect() as conn:
        return conn.execute(select(AUDIT_TABLE).where(AUDIT_TABLE.c.action == "mapping_change")).all()


@pytest.mark.parametrize("account", ["cs", "acme"])
def test_lists_the_synced_subtypes_with_a_preview(app_as, console, account):
    at = _open(app_as, account, console)

    assert not at.exception
    summary = at.dataframe[0].value
    assert sorted(summary["subtype"]) == ["Backup", "Break-fix", "Managed Services"]
    assert set(summary["rule"]) == {"not mapped"}
    assert "Preview" in at.markdown[0].value
    if account == "acme":
        assert "Globex" not in str(at)


def test_saving_a_rule_creates_it_and_writes_the_audit_event(app_as, console, engine):
    at = _open(app_as, "acme", console)
    acme = console["acme"].partner_id

    at.selectbox(key="agreements.subtype").set_value("Backup").run()
    at.selectbox(key="agreements.trigger").set_value("days_after_due").run()
    at.number_input(key="agreements.days").set_value(3).run()
    at.text_input(key="agreements.max_amount").input("2500").run()
    at.button(key="agreements.save").click().run()

    assert not at.exception
    assert plain_text(at.success[0].value) == "Saved the auto-pay rule for Backup."
    [rule] = agreements.list_rules(engine, console["acme"], acme)
    assert (rule.subtype_name, rule.trigger, rule.days, rule.max_amount) == ("Backup", "days_after_due", 3,
                                                                              Decimal("2500.00"))
    [event] = _mapping_events(engine)
    assert (event.actor, event.partner_id, event.at) == ("ap@acme.example", acme, NOW)
    assert "“Backup” created" in event.detail
    assert dict(zip(at.dataframe[0].value["subtype"], at.dataframe[0].value["rule"], strict=True))["Backup"] == \
        "3 days after the due date"


def test_a_bad_maximum_is_shown_inline_and_nothing_can_be_saved(app_as, console, engine):
    at = _open(app_as, "acme", console)

    at.text_input(key="agreements.max_amount").input("-5").run()

    assert not at.exception
    assert "more than 0.00" in plain_text(at.error[0].value)
    assert not [button for button in at.button if button.key == "agreements.save"]
    assert _mapping_events(engine) == []


def test_edit_loads_a_saved_rule_and_delete_removes_it(app_as, console, engine):
    acme = console["acme"].partner_id
    autopay_rules.save_rule(engine, console["acme"], acme,
                      autopay_rules.RuleInput("Break-fix", trigger="days_after_invoice", days=14), now=NOW)
    at = _open(app_as, "acme", console)

    at.button(key="agreements.edit.Break-fix").click().run()
    assert at.selectbox(key="agreements.subtype").value == "Break-fix"
    assert (at.selectbox(key="agreements.trigger").value, at.number_input(key="agreements.days").value) == (
        "days_after_invoice", 14)
    at.button(key="agreements.delete.Break-fix").click().run()

    assert not at.exception
    assert plain_text(at.success[0].value) == "Deleted the auto-pay rule for Break-fix."
    assert agreements.list_rules(engine, console["acme"], acme) == []
    assert _mapping_events(engine)[-1].detail == ("Auto-pay rule for “Break-fix” deleted; was: charge 14 days after "
                                                  "the invoice date")


def test_pm_is_not_offered_the_agreements_page_and_the_page_refuses_it(app_as, page_as):
    at = app_as("pm")
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(PAGE)

    direct = page_as("pm", PAGE)
    assert [e.value for e in direct.error] == ["Your account cannot open this page."]
    assert not direct.dataframe
