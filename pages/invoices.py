"""Invoices: the partner's unpaid invoices (or its drafts, or its credit notes), filtered, paged and totalled in
core; the browser gets one page of rows (the filters, table and controls are ui.invoice_table)."""

import streamlit as st

from core.console import invoices
from core.console.charts import invoices as invoice_charts
from ui import auth, components, invoice_table, resources

principal = auth.require_page("invoices")
partner_id = components.require_partner(principal)
engine = resources.get_engine()
st.title("Invoices")
components.freshness(principal, partner_id)
with components.shown_errors():
    filters = invoice_table.filters(invoices.filter_options(engine, principal, partner_id))
    page, page_size = invoice_table.requested_page()
    result = invoices.page(engine, principal, partner_id, filters, now=resources.now(), page=page,
                           page_size=page_size)

invoice_table.show(result)
st.plotly_chart(invoice_charts.aging_figure(result.aging, currency=result.currency), key="invoices.aging_chart")
invoice_table.download(engine, principal, partner_id, filters, result.total_rows, clock=resources.clock())
