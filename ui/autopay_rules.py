"""The auto-pay rule editor of the Agreements page: the form for one subtype's rule, the preview (read from
core.console.agreements) of what it would charge before it is saved, and the saved rules with Edit and Delete."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st
from sqlalchemy.engine import Engine

from core.access import Principal
from core.actions import autopay_rules
from core.console import agreements, formatting
from core.console.formatting import escape_markdown
from core.errors import ConsoleError
from ui import components, resources

PREVIEW_COLUMNS: dict[str, Any] = {"number": "Number", "customer": "Customer", "agreement": "Agreement",
                                   "invoice_date": st.column_config.DateColumn("Invoice date"),
                                   "due_date": st.column_config.DateColumn("Due"),
                                   "amount_due": st.column_config.NumberColumn("Amount due", format="accounting"),
                                   "charge_on": st.column_config.DateColumn("Charge on"), "reason": "Why excluded",
                                   "invoices": "Invoices"}


def _fill_form(rule: autopay_rules.Rule | None, subtype: str) -> None:
    """Load the form from the saved rule of `subtype` (or the defaults) when another subtype is picked or edited."""
    values = rule.as_input() if rule else autopay_rules.RuleInput(subtype)
    st.session_state.update({"agreements.enabled": values.enabled, "agreements.trigger": values.trigger,
                             "agreements.days": values.days, "agreements.form_for": subtype,
                             "agreements.max_amount": "" if values.max_amount is None else str(values.max_amount)})


def _trigger_changed() -> None:
    if st.session_state["agreements.trigger"] == "on_due_date":
        st.session_state["agreements.days"] = 0  # that trigger takes no number of days


def _edit(subtype: str) -> None:
    st.session_state.update({"agreements.subtype": subtype, "agreements.form_for": None})


def _act(done: str, action: Callable[[], object]) -> None:
    """A button callback: run the core action; its outcome shows at the top of the rerun that follows."""
    try:
        action()
    except ConsoleError as exc:
        st.error(escape_markdown(exc.message))
    else:
        st.success(escape_markdown(done))


def _show_preview(rule: autopay_rules.RuleInput, preview: agreements.Preview) -> None:
    st.markdown(f"**Preview** ({autopay_rules.describe(rule)}): charges **{preview.covered_count:,}** unpaid invoices, "
                f"{formatting.money(preview.covered_cents)} due; excludes {preview.excluded_count:,} "
                f"({formatting.money(preview.excluded_cents)} due).")
    covered_tab, excluded_tab = st.tabs([f"Would charge ({preview.covered_count:,})",
                                         f"Excluded ({preview.excluded_count:,})"])
    covered_tab.dataframe(preview.covered, hide_index=True, key="agreements.covered", column_config=PREVIEW_COLUMNS)
    for name, frame in (("reasons", preview.reasons), ("excluded", preview.excluded)):
        excluded_tab.dataframe(frame, hide_index=True, key=f"agreements.{name}", column_config=PREVIEW_COLUMNS)


def rule_form(engine: Engine, principal: Principal, partner_id: int, subtypes: list[str],
              rules: dict[str, autopay_rules.Rule]) -> None:
    """Pick a subtype, edit its rule; a valid rule shows its preview and the Save button, an invalid one the error
    under the field it names (BadInput.field), else above the preview."""
    subtype = st.selectbox("Agreement subtype", subtypes, key="agreements.subtype")
    if st.session_state.get("agreements.form_for") != subtype:
        _fill_form(rules.get(subtype), subtype)
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
        rule = autopay_rules.RuleInput(subtype, enabled, trigger, int(days), autopay_rules.parse_amount(max_text))
        preview = agreements.preview(engine, principal, partner_id, rule, now=resources.now())
    except ConsoleError as exc:
        slots.get(getattr(exc, "field", None) or "", st).error(escape_markdown(exc.message))
        return
    _show_preview(rule, preview)
    st.button("Save rule", type="primary", key="agreements.save", on_click=_act, args=(
        f"Saved the auto-pay rule for {subtype}.",
        lambda: autopay_rules.save_rule(engine, principal, partner_id, rule, now=resources.now())))


def saved_rules(engine: Engine, principal: Principal, partner_id: int, rules: dict[str, autopay_rules.Rule]) -> None:
    """One line per saved rule, with buttons to load it into the form or delete it."""
    for saved in rules.values():
        text_at, edit_at, delete_at = st.columns([8, 1, 1], vertical_alignment="center")
        text_at.markdown(f"**{escape_markdown(saved.subtype_name)}**: " + escape_markdown(
            f"{saved.description} · by {saved.created_by}, updated {saved.updated_at:%Y-%m-%d %H:%M} UTC"))
        edit_at.button("Edit", key=f"agreements.edit.{saved.subtype_name}", on_click=_edit, args=(saved.subtype_name,))
        delete_at.button("Delete", key=f"agreements.delete.{saved.subtype_name}", on_click=_act, args=(
            f"Deleted the auto-pay rule for {saved.subtype_name}.",
            lambda name=saved.subtype_name: autopay_rules.delete_rule(engine, principal, partner_id, name,
                                                                now=resources.now())))
    if not rules:
        st.caption("No rules yet: pick a subtype above, check the preview and save.")
