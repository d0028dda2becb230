"""The Invoices page's unpaid-invoice table: the filter row above it, the totals (one per currency), one page of rows,
and the sort and paging controls under it. Filtering, sorting, paging and totals happen in core.console.invoices."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import streamlit as st
from sqlalchemy.engine import Engine

from core.access import Principal
from core.console import agreements, exports
from core.console import invoices as invoices_screen
from core.console.formatting import TABLE_COUNT_FORMAT, TABLE_MONEY_FORMAT, escape_markdown, number
from ui import components


def _first_page() -> None:
    st.session_state["invoices.page"] = 1


def _all(label: str) -> Callable[[object], str]:
    return lambda value: label if value is None else str(value)


def filters(options: invoices_screen.FilterOptions) -> invoices_screen.Filters:
    """The filter row; sort and order come from the controls under the table (drawn later, read from their keys)."""
    names = dict(options.customers)
    subtypes = dict(options.subtypes)
    view_at, search_at, customer_at, subtype_at, aging_at, eligibility_at = st.columns([2, 3, 2, 2, 1, 2])
    return invoices_screen.Filters(
        view=view_at.selectbox("Show", list(invoices_screen.VIEWS), key="invoices.view", on_change=_first_page,
                               format_func=invoices_screen.VIEWS.__getitem__,
                               help="Drafts, invoices awaiting approval and credit notes are never unpaid and never "
                                    "auto-paid; the Auto-pay column says why."),
        search=components.text_input(search_at, "Search", field="search", key="invoices.search",
                                     on_change=_first_page, placeholder="Number, HaloPSA ID, customer or agreement"),
        customer_halo_id=customer_at.selectbox("Customer", [None, *names], key="invoices.customer",
                                               format_func=lambda c: "All customers" if c is None else names[c],
                                               on_change=_first_page),
        subtype=subtype_at.selectbox("Agreement subtype", [None, *subtypes], key="invoices.subtype",
                                     format_func=lambda s: "All subtypes" if s is None else subtypes[s],
                                     on_change=_first_page),
        aging=aging_at.selectbox("Days overdue", [None, *invoices_screen.AGING_BUCKETS], key="invoices.aging",
                                 format_func=_all("Any"), on_change=_first_page),
        eligibility=eligibility_at.selectbox("Auto-pay", [None, *agreements.ELIGIBILITY_CHOICES], on_change=_first_page,
                                             key="invoices.eligibility", format_func=_all("Any")),
        sort=st.session_state.get("invoices.sort", "due_date"),
        descending=st.session_state.get("invoices.descending", False),
    )


def requested_page() -> tuple[int, int]:
    """The page and page size the controls under the table ask for (drawn later, read from their keys)."""
    return (st.session_state.get("invoices.page", 1),
            st.session_state.get("invoices.page_size", invoices_screen.DEFAULT_PAGE_SIZE))


# What a collector reads first fits the screen (number, customer, amount due and its currency, days overdue,
# auto-pay); the due date, subtype, agreement, invoice date, total, aging and the HaloPSA ID scroll in from the right.
# A number that is the HaloPSA ID says so in the Number column itself.
COLUMNS = {
    "number_shown": st.column_config.TextColumn(
        "Number", width=150, help=f"“{invoices_screen.FALLBACK_NOTE}”: the invoice has no Third Party Invoice "
                                  "Number in HaloPSA, so its HaloPSA ID is shown instead."),
    "customer": st.column_config.TextColumn("Customer", width=175),
    "amount_due": st.column_config.NumberColumn("Amount due", format=TABLE_MONEY_FORMAT, width=115),
    "currency": st.column_config.TextColumn("Currency", width=75),
    "days_overdue": st.column_config.NumberColumn("Days overdue", format=TABLE_COUNT_FORMAT, width=100),
    "eligibility": st.column_config.TextColumn("Auto-pay", width=380),
    "due_date": st.column_config.DateColumn("Due", width=95),
    "subtype": st.column_config.TextColumn("Subtype", width=130),
    "agreement": st.column_config.TextColumn("Agreement", width=115),
    "invoice_date": st.column_config.DateColumn("Invoice date", width=100),
    "total": st.column_config.NumberColumn("Total", format=TABLE_MONEY_FORMAT, width=105),
    "aging": st.column_config.TextColumn("Aging", width=70),
    "halo_id": st.column_config.NumberColumn("HaloPSA ID", format="plain", width=95),
}
TILES_PER_ROW = 4
_FILE_NAMES = {"unpaid": "unpaid-invoices.csv", "not_posted": "not-posted-invoices.csv", "credits": "credit-notes.csv"}


def show(result: invoices_screen.InvoicePage) -> None:
    """The count and the amount due per currency over every filtered row, this page of rows, then the sort, order,
    page-size and page controls."""
    tiles = result.tiles()
    for start in range(0, len(tiles), TILES_PER_ROW):
        for column, tile in zip(st.columns(TILES_PER_ROW), tiles[start:start + TILES_PER_ROW], strict=False):
            # metric labels and help are Markdown, the currency code comes from HaloPSA
            column.metric(escape_markdown(tile.label), tile.value, help=escape_markdown(tile.help))
    st.dataframe(result.rows, hide_index=True, key="invoices.table", column_order=list(COLUMNS),
                 column_config=COLUMNS)
    sort_at, order_at, size_at, page_at = st.columns(4)
    sort_at.selectbox("Sort by", list(invoices_screen.SORTS), format_func=invoices_screen.SORTS.__getitem__,
                      key="invoices.sort", on_change=_first_page)
    order_at.toggle("Descending", key="invoices.descending", on_change=_first_page)
    size_at.selectbox("Rows per page", invoices_screen.PAGE_SIZES, key="invoices.page_size", on_change=_first_page,
                      index=invoices_screen.PAGE_SIZES.index(invoices_screen.DEFAULT_PAGE_SIZE))
    st.session_state["invoices.page"] = result.page  # the page core clamped to, so the selector never overshoots
    page_at.number_input(f"Page (of {number(result.pages)})", min_value=1, max_value=result.pages, step=1,
                         key="invoices.page")


def download(engine: Engine, principal: Principal, partner_id: int, filters: invoices_screen.Filters, rows: int, *,
             clock: Callable[[], datetime]) -> None:
    """The Download CSV button for every filtered row (components.csv_download)."""
    components.csv_download(
        "invoices.download", _FILE_NAMES.get(filters.view, "invoices.csv"), rows=rows,
        refusal=exports.download_refusal(engine, principal.user, rows=rows, now=clock()),
        data=lambda: invoices_screen.export_csv(engine, principal, partner_id, filters, now=clock(),
                                                throttled=True).data)
