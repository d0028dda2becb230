"""The auto-pay rule editor of the Agreements page: the form for one subtype's rule (a new one starts disabled), the
preview (read from core.console.agreements) of what it charges once enabled, per currency, and the saved rules with
Edit and Delete (and, for a rule waiting for its subtype since rules moved to ids, a picker for it). A save that
starts charging (enables the rule, or opts it in to long-overdue invoices) and a delete are confirmed first, the
former after saying what it charges today and in the next days. Subtypes are their HaloPSA ids, shown as
core.console.subtypes names them."""

from __future__ import annotations

from typing import Any

import streamlit as st
from sqlalchemy.engine import Engine

from core.access import Principal
from core.actions import autopay_rules
from core.console import agreements
from core.console.formatting import escape_markdown
from core.errors import ConsoleError
from ui import components, resources
from ui.components import act

PREVIEW_COLUMNS: dict[str, Any] = {"number": "Number", "customer": "Customer", "agreement": "Agreement",
                                   "invoice_date": st.column_config.DateColumn("Invoice date"),
                                   "due_date": st.column_config.DateColumn("Due"),
                                   "amount_due": st.column_config.NumberColumn("Amount due", format="accounting"),
                                   "currency": "Currency", "charge_on": st.column_config.DateColumn("Charge on"),
                                   "reason": "Why excluded", "when": "When",
                                   "invoices": st.column_config.NumberColumn("Invoices", format="localized")}
CONFIRM_SAVE = "agreements.confirm_save"  # the terms whose save waits for "Enable and charge"
DELETING = "agreements.deleting"  # the id of the rule whose delete waits for "Delete rule"


def _fill_form(rule: autopay_rules.Rule | None, subtype_id: int) -> None:
    """Load the form from the saved rule of the subtype (or a new rule's terms) when another subtype is picked or
    edited."""
    values = rule.as_input(subtype_id) if rule else autopay_rules.new_rule(subtype_id)
    st.session_state.update({"agreements.enabled": values.enabled, "agreements.trigger": values.trigger,
                             "agreements.days": values.days, "agreements.form_for": subtype_id,
                             "agreements.overdue_opt_in": values.overdue_opt_in,
                             "agreements.max_amount": "" if values.max_amount is None else str(values.max_amount)})
    st.session_state.pop(CONFIRM_SAVE, None)


def _trigger_changed() -> None:
    if st.session_state["agreements.trigger"] == "on_due_date":
        st.session_state["agreements.days"] = 0  # that trigger takes no number of days


def _edit(subtype_id: int) -> None:
    st.session_state.update({"agreements.subtype": subtype_id, "agreements.form_for": None})


def _show_preview(rule: autopay_rules.RuleInput, preview: agreements.Preview) -> None:
    st.markdown(f"**Preview** ({escape_markdown(autopay_rules.describe(rule))}): "
                + escape_markdown(preview.summary()))
    held_back = preview.held_back_text()
    if held_back:
        st.warning(escape_markdown(held_back))
    st.caption(escape_markdown(preview.outlook_text()))
    covered_tab, excluded_tab = st.tabs([f"Would charge ({preview.covered_count:,})",
                                         f"Excluded ({preview.excluded_count:,} unpaid)"])
    covered_tab.dataframe(preview.covered, hide_index=True, key="agreements.covered", column_config=PREVIEW_COLUMNS)
    for name, frame in (("reasons", preview.reasons), ("excluded", preview.excluded)):
        excluded_tab.dataframe(frame, hide_index=True, key=f"agreements.{name}", column_config=PREVIEW_COLUMNS)


def _ask(key: str, value: object) -> None:
    """A button callback: ask for a confirmation of `value` (the page shows it on the rerun)."""
    st.session_state[key] = value


def _confirmed(key: str, done: str, action: Any) -> None:
    """A confirmation button's callback: the question is answered; run the action as `act` does."""
    st.session_state.pop(key, None)
    act(done, action)


def _form_rule(subtype_id: int) -> autopay_rules.RuleInput:
    """The terms as the form holds them now; raises BadInput (with its field) for a bad maximum amount."""
    state = st.session_state
    return autopay_rules.RuleInput(subtype_id, bool(state["agreements.enabled"]), state["agreements.trigger"],
                                   int(state["agreements.days"]),
                                   autopay_rules.parse_amount(state["agreements.max_amount"]),
                                   bool(state["agreements.overdue_opt_in"]))


def _save(engine: Engine, principal: Principal, partner_id: int, rule: autopay_rules.RuleInput, done: str) -> None:
    act(done, lambda: autopay_rules.save_rule(engine, principal, partner_id, rule, now=resources.now()))


def _on_save(engine: Engine, principal: Principal, partner_id: int, saved: autopay_rules.Rule | None,
             subtype_id: int, done: str) -> None:
    """Save rule: the terms as the form holds them at the click, not as they were when the button was drawn (a
    toggle flipped just before the click reaches the server with it: terms bound at drawing time saved a rule
    disabled under an Enabled toggle, with no question asked). A save that starts charging asks first."""
    try:
        rule = _form_rule(subtype_id)
    except ConsoleError:
        return  # the rerun shows the error under its field
    if autopay_rules.starts_charging(saved, rule):
        st.session_state[CONFIRM_SAVE] = rule
    else:
        _save(engine, principal, partner_id, rule, done)


def _on_confirm(engine: Engine, principal: Principal, partner_id: int, done: str) -> None:
    """Enable and charge: saves exactly the terms the question showed."""
    rule = st.session_state.pop(CONFIRM_SAVE, None)
    if rule is not None:
        _save(engine, principal, partner_id, rule, done)


def _save_controls(engine: Engine, principal: Principal, partner_id: int, rule: autopay_rules.RuleInput,
                   saved: autopay_rules.Rule | None, preview: agreements.Preview, subject: str) -> None:
    """Save rule, or, when the terms shown start charging and were asked about, what they charge and the question."""
    done = f"Saved the auto-pay rule for {subject}."
    if st.session_state.get(CONFIRM_SAVE) != rule or not autopay_rules.starts_charging(saved, rule):
        st.button("Save rule", type="primary", key="agreements.save", on_click=_on_save,
                  args=(engine, principal, partner_id, saved, rule.subtype_id, done))
        return
    st.warning(escape_markdown(f"Saving starts charging. {preview.outlook_text()}"))
    st.dataframe(preview.outlook, hide_index=True, key="agreements.outlook", column_config=PREVIEW_COLUMNS)
    yes_at, no_at, _ = st.columns([1, 1, 3])
    yes_at.button("Enable and charge", type="primary", key="agreements.confirm", on_click=_on_confirm,
                  args=(engine, principal, partner_id, done))
    no_at.button("Cancel", key="agreements.cancel", on_click=st.session_state.pop, args=(CONFIRM_SAVE, None))


def rule_form(engine: Engine, principal: Principal, partner_id: int, subtypes: dict[int, str],
              rules: dict[int, autopay_rules.Rule]) -> None:
    """Pick a subtype (by id, shown with its name), edit its rule; a valid rule shows its preview and the Save
    button, an invalid one the error under the field it names (BadInput.field), else above the preview."""
    subtype_id = st.selectbox("Agreement subtype", list(subtypes), format_func=subtypes.__getitem__,
                              key="agreements.subtype")
    if st.session_state.get("agreements.form_for") != subtype_id:
        _fill_form(rules.get(subtype_id), subtype_id)
    enabled_at, trigger_at, days_at, max_at = st.columns([1, 2, 1, 1])
    enabled_at.toggle("Enabled", key="agreements.enabled", help="A new rule starts disabled.")
    trigger = trigger_at.selectbox("Charge", autopay_rules.TRIGGERS,
                                   format_func=autopay_rules.TRIGGER_LABELS.__getitem__, key="agreements.trigger",
                                   on_change=_trigger_changed)
    days_at.number_input("N (days)", 0, autopay_rules.MAX_DAYS, step=1, key="agreements.days",
                         disabled=trigger == "on_due_date", help="Not used when charging on the due date.")
    components.text_input(max_at, "Maximum amount (optional)", field="max_amount", key="agreements.max_amount",
                          placeholder="e.g. 2500.00")
    slots = {"days": days_at.empty(), "max_amount": max_at.empty(), "trigger": trigger_at.empty()}
    overdue_days = resources.get_settings().autopay_overdue_days
    st.toggle(agreements.opt_in_label(overdue_days), key="agreements.overdue_opt_in", help=agreements.OPT_IN_HELP)
    try:
        rule = _form_rule(subtype_id)
        preview = agreements.preview(engine, principal, partner_id, rule, now=resources.now(),
                                     overdue_days=overdue_days)
    except ConsoleError as exc:
        slots.get(getattr(exc, "field", None) or "", st).error(escape_markdown(exc.message))
        return
    _show_preview(rule, preview)
    _save_controls(engine, principal, partner_id, rule, rules.get(subtype_id), preview, subtypes[subtype_id])


def _repick(engine: Engine, principal: Principal, partner_id: int, saved: autopay_rules.Rule,
            free: dict[int, str]) -> None:
    """For a rule waiting for its subtype: why it charges nothing, and a picker for the subtypes without a rule."""
    st.caption("This rule's subtype name matched no single subtype id when rules moved to ids, so it charges nothing "
               "until you pick its subtype (or delete it).")
    pick_at, use_at = st.columns([4, 1], vertical_alignment="bottom")
    picked = pick_at.selectbox("Its subtype", list(free), format_func=free.__getitem__, index=None,
                               key=f"agreements.repick.{saved.id}", placeholder="Pick the subtype it was for")
    use_at.button("Use this subtype", key=f"agreements.use.{saved.id}", disabled=picked is None, on_click=act, args=(
        f"The auto-pay rule now applies to {free[picked]}." if picked is not None else "",
        lambda: autopay_rules.assign_subtype(engine, principal, partner_id, saved.id, int(picked or 0),
                                             now=resources.now())))


def _confirm_delete(engine: Engine, principal: Principal, partner_id: int, saved: autopay_rules.Rule) -> None:
    st.warning(escape_markdown(autopay_rules.delete_question(saved)))
    yes_at, no_at, _ = st.columns([1, 1, 3])
    yes_at.button("Delete rule", type="primary", key=f"agreements.delete_confirm.{saved.id}", on_click=_confirmed,
                  args=(DELETING, f"Deleted the auto-pay rule for {saved.subtype}.",
                        lambda: autopay_rules.delete_rule(engine, principal, partner_id, saved.id,
                                                          now=resources.now())))
    no_at.button("Keep it", key=f"agreements.delete_cancel.{saved.id}", on_click=st.session_state.pop,
                 args=(DELETING, None))


def saved_rules(engine: Engine, principal: Principal, partner_id: int, rules: list[autopay_rules.Rule],
                subtypes: dict[int, str]) -> None:
    """One line per saved rule, with buttons to load it into the form or delete it."""
    mapped = {rule.subtype_id for rule in rules}
    for saved in rules:
        text_at, edit_at, delete_at = st.columns([8, 1, 1], vertical_alignment="center")
        text_at.markdown(f"**{escape_markdown(saved.subtype)}**: " + escape_markdown(
            f"{saved.description} · by {saved.created_by}, updated {saved.updated_at:%Y-%m-%d %H:%M} UTC"))
        if saved.subtype_id is not None:
            edit_at.button("Edit", key=f"agreements.edit.{saved.id}", on_click=_edit, args=(saved.subtype_id,))
        delete_at.button("Delete", key=f"agreements.delete.{saved.id}", on_click=_ask, args=(DELETING, saved.id))
        if st.session_state.get(DELETING) == saved.id:
            _confirm_delete(engine, principal, partner_id, saved)
        if saved.needs_subtype:
            _repick(engine, principal, partner_id, saved, {sid: shown for sid, shown in subtypes.items()
                                                           if sid not in mapped})
    if not rules:
        st.caption("No rules yet: pick a subtype above, check the preview and save.")
