"""Invoices: the partner's unpaid invoices (or its drafts, or its credit notes), filtered, paged and totalled per
currency in core; the browser gets one page of rows (the filters, table and controls are ui.invoice_table). A partner
whose invoices do not come from HaloPSA is told why first. The search box explains, not only filters: a search that
matches no row (or the Trace button) says where that invoice stands and why (ui.invoice_trace)."""

import streamlit as st

from core.console import invoices
from core.console.charts import invoices as invoice_charts
from core.console.formatting import escape_markdown
from ui import auth, components, invoice_table, invoice_trace, resources

principal = auth.require_page("invoices")
partner_id = components.require_partner(principal)
engine = resources.get_engine()
st.title("Invoices")
components.freshness(principal, partner_id)
with components.shown_errors():
    note = invoices.source_note(engine, principal, partner_id)
if note is not None:
    st.info(escape_markdown(note.message))  # names the partner: outside text
if note is None or note.show_invoices:
    with components.shown_errors():
        filters = invoice_table.filters(invoices.filter_options(engine, principal, partner_id))
        page, page_size = invoice_table.requested_page()
        result = invoices.page(engine, principal, partner_id, filters, now=resources.now(), page=page,
                               page_size=page_size)
    invoice_trace.show(engine, principal, partner_id, filters.term, result.total_rows)
    invoice_table.show(result)
    st.plotly_chart(invoice_charts.aging_figure(result.aging), key="invoices.aging_chart")
    invoice_table.download(engine, principal, partner_id, filters, result.total_rows, clock=resources.clock())
