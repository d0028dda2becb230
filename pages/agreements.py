"""Agreements: the subtypes (by their HaloPSA id, with their names) found in the synced agreements with their unpaid
money per currency, the contract-based auto-pay rule mapped to each, with a preview (in core) of what a rule would
charge before it is saved (the editor is ui.autopay_rules), and where the subtypes' names come from
(ui.subtype_names)."""

import streamlit as st

from core.console import agreements, subtypes
from ui import auth, autopay_rules, components, resources, subtype_names

principal = auth.require_page("agreements")
partner_id = components.require_partner(principal)
engine = resources.get_engine()
st.title("Agreements and auto-pay")
components.freshness(principal, partner_id)
with components.shown_errors():
    summary = agreements.subtype_summary(engine, principal, partner_id, now=resources.now())
    rules = agreements.list_rules(engine, principal, partner_id)
    names = subtypes.subtype_names(engine, principal, partner_id)
if summary.empty:
    st.info("No agreement subtypes yet: they appear once agreements (HaloPSA contracts) have synced.")
else:
    counts = {name: st.column_config.NumberColumn(label, format="localized") for name, label in (
        ("agreements", "Agreements"), ("invoices", "Invoices"), ("unpaid_invoices", "Unpaid"),
        ("overdue_invoices", "Overdue"))}
    st.dataframe(summary, hide_index=True, key="agreements.subtypes", column_order=agreements.SUMMARY_COLUMNS[1:],
                 column_config={"subtype": "Subtype", "currency": "Currency", "rule": "Auto-pay rule", **counts,
                                "unpaid_amount": st.column_config.NumberColumn("Unpaid amount due",
                                                                               format="accounting")})
    shown = dict(zip(summary["subtype_id"].tolist(), summary["subtype"].tolist(), strict=True))  # one per subtype
    st.subheader("Map a subtype to an auto-pay rule")
    autopay_rules.rule_form(engine, principal, partner_id, shown,
                            {rule.subtype_id: rule for rule in rules if rule.subtype_id is not None})
    st.subheader("Saved rules")
    autopay_rules.saved_rules(engine, principal, partner_id, rules, shown)
subtype_names.section(engine, principal, partner_id, names)
