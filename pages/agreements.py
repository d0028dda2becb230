"""Agreements: the subtypes found in the synced agreements, and the contract-based auto-pay rule mapped to each, with
a preview (in core) of what a rule would charge before it is saved (the editor is ui.autopay_rules)."""

import streamlit as st

from core.console import agreements
from ui import auth, autopay_rules, components, resources

principal = auth.require_page("agreements")
partner_id = components.require_partner(principal)
engine = resources.get_engine()
st.title("Agreements and auto-pay")
components.freshness(principal, partner_id)
with components.shown_errors():
    summary = agreements.subtype_summary(engine, principal, partner_id, now=resources.now())
    rules = {rule.subtype_name: rule for rule in agreements.list_rules(engine, principal, partner_id)}
if summary.empty:
    st.info("No agreement subtypes yet: they appear once agreements (HaloPSA contracts) have synced.")
    st.stop()
st.dataframe(summary, hide_index=True, key="agreements.subtypes", column_config={
    "subtype": "Subtype", "agreements": "Agreements", "invoices": "Invoices", "unpaid_invoices": "Unpaid",
    "unpaid_amount": st.column_config.NumberColumn("Unpaid amount due", format="accounting"),
    "overdue_invoices": "Overdue", "rule": "Auto-pay rule"})

st.subheader("Map a subtype to an auto-pay rule")
autopay_rules.rule_form(engine, principal, partner_id, list(summary["subtype"]), rules)

st.subheader("Saved rules")
autopay_rules.saved_rules(engine, principal, partner_id, rules)
