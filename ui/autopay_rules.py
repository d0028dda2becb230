"""The auto-pay rule editor of the Agreements page: the form for one subtype's rule, the preview (read from
core.console.agreements) of what it would charge before it is saved, and the saved rules with Edit and Delete (and,
for a rule waiting for its subtype since rules moved to ids, a picker for it). Subtypes are their HaloPSA ids, shown
as core.console.subtypes names them."""

from __future__ import annotations

from typing import Any

import streamlit as st
from sqlalchemy.engine import Engine

from core.access import Principal
from core.actions import autopay_rules
from core.console import agreements, formatting
from core.console.formatting import escape_markdown
from core.errors import ConsoleError
from ui import components, resources
from ui.components import act

PREVIEW_COLUMNS: dict[str, Any] = {"number": "Number", "customer": "Customer", "agreement": "Agreement",
                                   "invoice_date": st.column_config.DateColumn("Invoice date"),
                                   "due_date": st.column_config.DateColumn("Due"),
                                   "amount_due": st.column_config.NumberColumn("Amount due", format="accounting"),
                                   "charge_on": st.column_config.DateColumn("Charge on"), "reason": "Why excluded",
                                   "invoices": "Invoices"}


def _fill_form(rule: autopay_rules.Rule | None, subtype_id: int) -> None:
    """Load the form from the saved rule of the subtype (or the defaults) when another subtype is picked or edited."""
    values = rule.as_input(subtype_id) if rule else autopay_rules.RuleInput(subtype_id)
    st.session_state.update({"agreements.enabled": values.enabled, "agreements.trigger": values.trigger,
                             "agreements.days": values.days, "agreements.form_for": subtype_id,
                             "agreements.max_amount": "" if values.max_amount is None else str(values.max_amount)})


def _trigger_changed() -> None:
    if st.session_state["agreements.trigger"] == "on_due_date":
        st.session_state["agreements.days"] = 0  # that trigger takes no number of days


def _edit(subtype_id: int) -> None:
    st.session_state.update({"agreements.subtype": subtype_id, "agreements.form_for": None})


def _show_preview(rule: autopay_rules.RuleInput, preview: agreements.Preview) -> None:
    st.markdown(f"**Preview** ({autopay_rules.describe(rule)}): charges **{preview.covered_count:,}** unpaid invoices, "
                f"{formatting.money(preview.covered_cents)} due; excludes {preview.excluded_count:,} "
                f"({formatting.money(preview.excluded_cents)} due).")
    covered_tab, excluded_tab = st.tabs([f"Would charge ({preview.covered_count:,})",
                                         f"Excluded ({preview.excluded_count:,})"])
    covered_tab.dataframe(preview.covered, hide_index=True, key="agreements.covered", column_config=PREVIEW_COLUMNS)
    for name, frame in (("reasons", preview.reasons), ("excluded", preview.excluded)):
        excluded_tab.dataframe(frame, hide_index=True, key=f"agreements.{name}", column_config=PREVIEW_COLUMNS)


def rule_form(engine: Engine, principal: Principal, partner_id: int, subtypes: dict[int, str],
              rules: dict[int, autopay_rules.Rule]) -> None:
    """Pick a subtype (by id, shown with its name), edit its rule; a valid rule shows its preview and the Save
    button, an invalid one the error under the field it names (BadInput.field), else above the preview."""
    subtype_id = st.selectbox("Agreement subtype", list(subtypes), format_func=subtypes.__getitem__,
                              key="agreements.subtype")
    if st.session_state.get("agreements.form_for") != subtype_id:
        _fill_form(rules.get(subtype_id), subtype_id)
    enabled_at, trigger_at, days_at, max_at = st.columns([1, 2, 1, 1])
    enabled = enabled_at.toggle("Enabled", key="agreements.enabled")
    trigger = trigger_at.selectbox("Charge", autopay_rules.TRIGGERS,
                                   format_func=autopay_rules.TRIGGER_LABELS.__getitem__, key="agreements.trigger",
                                   on_change=_trigger_changed)
    days = days_at.number_input("N (days)", 0, autopay_rules.MAX_DAYS, step=1, key="agreements.days",
                                disabled=trigger == "on_due_date", help="Not used when charging on the due date.")
    max_text = components.text_input(max_at, "Maximum amount (optional)", field="max_amount",
                                     key="agreements.max_amount", placeholder="e.g. 2500.00")
    slots = {"days": days_at.empty(), "max_amount": max_at.empty(), "trigger": trigger_at.empty()}
    try:
        rule = autopay_rules.RuleInput(subtype_id, enabled, trigger, int(days), autopay_rules.parse_amount(max_text))
        preview = agreements.preview(engine, principal, partner_id, rule, now=resources.now())
    except ConsoleError as exc:
        slots.get(getattr(exc, "field", None) or "", st).error(escape_markdown(exc.message))
        return
    _show_preview(rule, preview)
    st.button("Save rule", type="primary", key="agreements.save", on_click=act, args=(
        f"Saved the auto-pay rule for {subtypes[subtype_id]}.",
        lambda: autopay_rules.save_rule(engine, principal, partner_id, rule, now=resources.now())))


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
        delete_at.button("Delete", key=f"agreements.delete.{saved.id}", on_click=act, args=(
            f"Deleted the auto-pay rule for {saved.subtype}.",
            lambda rule_id=saved.id: autopay_rules.delete_rule(engine, principal, partner_id, rule_id,
                                                               now=resources.now())))
        if saved.needs_subtype:
            _repick(engine, principal, partner_id, saved, {sid: shown for sid, shown in subtypes.items()
                                                           if sid not in mapped})
    if not rules:
        st.caption("No rules yet: pick a subtype above, check the preview and save.")
