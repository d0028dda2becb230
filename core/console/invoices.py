"""The unpaid invoices of one partner as a paged read model: filtered, sorted, paged and totalled in SQL (a partner
with 100,000 invoices never reaches pandas whole), with days overdue, aging bucket and auto-pay eligibility computed
per row from the injected `now`, and a CSV export of every filtered row (audited). Two other views list what is not
owed, each row saying why it is never charged: invoices not posted in HaloPSA (drafts, awaiting approval) and credit
notes. Money is totalled per currency, never across currencies; an invoice without a currency is a group of its own."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from math import ceil
from typing import Any

import pandas as pd
from sqlalchemy import Date, Select, and_, case, func, literal, null, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FromClause

from core.access import Principal, require_partner_data
from core.actions.autopay_rules import check_subtype_id
from core.console import agreements, exports, subtypes
from core.console.formatting import Tile, amount, currency_label, money, money_in, money_text, number
from core.errors import BadInput, NotFound
from core.limits import check_length
from core.store import tables
from core.store.sqldates import days_between
from core.store.tables import (
    AGREEMENT_TABLE,
    CONNECTION_TABLE,
    CUSTOMER_TABLE,
    INVOICE_TABLE,
    PARTNER_TABLE,
    RUN_TABLE,
    UNPAID_STATUSES,
    IntegrationRole,
    InvoiceStatus,
    RunStatus,
)

AGING_BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")
_BUCKET_LIMITS = (0, 30, 60, 90)  # the most days overdue in each bucket but the last
SORTS = {
    "due_date": "Due date", "days_overdue": "Days overdue", "amount_due": "Amount due", "total": "Total",
    "invoice_date": "Invoice date", "customer": "Customer", "number": "Number",
}
VIEWS = {"unpaid": "Unpaid", "not_posted": "Not posted (drafts, awaiting approval)", "credits": "Credit notes"}
"""What the table lists: the invoices owed (the default), or those never charged because of what they are."""
_VIEW_STATUSES = {"unpaid": UNPAID_STATUSES, "not_posted": (InvoiceStatus.DRAFT.value,),
                  "credits": (InvoiceStatus.CREDIT.value,)}
PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
COLUMNS = ["number", "number_shown", "number_is_fallback", "halo_id", "customer", "agreement", "subtype",
           "invoice_date", "due_date", "days_overdue", "aging", "total", "amount_due", "currency", "eligibility"]
FALLBACK_NOTE = "HaloPSA ID: no third-party number"
"""Said beside a number that is the HaloPSA ID because the invoice has no Third Party Invoice Number."""
_MAX_ID_DIGITS = 18  # a HaloPSA ID searched for fits a signed 64-bit column


def _without_nul(text: str) -> str:
    return text.replace("\x00", "")


@dataclass(frozen=True)
class Filters:
    search: str = ""
    customer_halo_id: int | None = None
    subtype: int | None = None  # the agreement subtype's HaloPSA id
    aging: str | None = None
    eligibility: str | None = None
    sort: str = "due_date"
    descending: bool = False
    view: str = "unpaid"

    @property
    def term(self) -> str:
        """The search text as matched: trimmed, without NULs (no stored text holds one; PostgreSQL refuses them)."""
        return _without_nul(self.search).strip()

    def describe(self) -> str:
        """The filters in plain words, for the audit log."""
        parts = [f"{name} “{_without_nul(str(value))}”" for name, value in (
            ("show", VIEWS.get(self.view) if self.view != "unpaid" else None), ("search", self.term),
            ("customer", self.customer_halo_id), ("subtype id", self.subtype), ("aging", self.aging),
            ("auto-pay", self.eligibility)) if value not in (None, "")]
        return ", ".join(parts) or "none"


@dataclass(frozen=True)
class FilterOptions:
    customers: list[tuple[int, str]]
    subtypes: list[tuple[int, str]]  # (HaloPSA id, as shown)


@dataclass(frozen=True)
class CurrencyTotal:
    """The filtered invoices in one currency (None: HaloPSA gave none), totalled."""

    currency: str | None
    invoices: int
    total_cents: int
    due_cents: int

    @property
    def label(self) -> str:
        return currency_label(self.currency)


_COUNT_LABELS = {"unpaid": "Unpaid invoices", "not_posted": "Not posted", "credits": "Credit notes"}


@dataclass(frozen=True)
class InvoicePage:
    """One page of rows plus totals over every filtered row (not just this page), one per currency."""

    rows: pd.DataFrame
    page: int
    pages: int
    page_size: int
    total_rows: int
    totals: list[CurrencyTotal]  # most invoices first; an invoice without a currency is its own group, last
    aging: pd.DataFrame  # currency (as labelled), bucket, invoices, amount_due: all five buckets per currency
    view: str = "unpaid"  # which invoices the rows are (VIEWS)

    def tiles(self) -> list[Tile]:
        """The count of every filtered invoice, then the amount due in each currency (never added across them)."""
        return [Tile(_COUNT_LABELS.get(self.view, "Invoices"), number(self.total_rows),
                     "Every invoice the filters match, on every page."),
                *(Tile(f"Amount due ({total.label})", money_text(total.due_cents) or "",
                       f"{'1 invoice' if total.invoices == 1 else f'{number(total.invoices)} invoices'}, invoiced "
                       f"{money_in(total.total_cents, total.currency)} before payments.")
                  for total in self.totals)]


CsvExport = exports.CsvExport


def _cutoff(today: date, days_late: int) -> date:
    """The oldest due date that is at most `days_late` days overdue today."""
    return today - timedelta(days=days_late)


def _aging(due: ColumnElement[date], today: date) -> ColumnElement[str]:
    """The bucket by comparing the due date with cut-off dates (no per-row date arithmetic); no due date is current."""
    # one bucket more than limits: the last bucket has no limit and is the `else_`
    limits = [(due >= _cutoff(today, limit), bucket)
              for bucket, limit in zip(AGING_BUCKETS, _BUCKET_LIMITS, strict=False)]
    return case((due.is_(None), AGING_BUCKETS[0]), *limits, else_=AGING_BUCKETS[-1])


def _in_bucket(due: ColumnElement[date], bucket: str, today: date) -> ColumnElement[bool]:
    """A due-date range per bucket, so the (partner, status, due date) index can serve the filter."""
    index = AGING_BUCKETS.index(bucket)
    bounds = [due >= _cutoff(today, limit) for limit in _BUCKET_LIMITS[index:index + 1]]
    bounds += [due < _cutoff(today, limit) for limit in _BUCKET_LIMITS[index - 1:index] if index]
    return or_(due.is_(None), and_(*bounds)) if index == 0 else and_(*bounds)


class _Scope:
    """The filtered invoices of one partner's view (unpaid by default) as SQL pieces. Each query joins only the tables
    it reads: with 100,000 invoices, an unused LEFT JOIN still costs a lookup per row on SQLite."""

    def __init__(self, partner_id: int, filters: Filters, today: date) -> None:
        check_length("search", filters.search)
        if filters.view not in VIEWS:
            raise BadInput(f"Unknown view “{filters.view}”.", field="view")
        if filters.aging is not None and filters.aging not in AGING_BUCKETS:
            raise BadInput(f"Unknown aging bucket “{filters.aging}”.", field="aging")
        if filters.eligibility is not None and filters.eligibility not in agreements.ELIGIBILITY_CHOICES:
            raise BadInput(f"Unknown auto-pay filter “{filters.eligibility}”.", field="eligibility")
        if filters.sort not in SORTS:
            raise BadInput(f"Cannot sort by “{filters.sort}”.", field="sort")
        inv, cust, agr, rule = INVOICE_TABLE.c, CUSTOMER_TABLE.c, AGREEMENT_TABLE.c, tables.RULE_TABLE.c
        late = days_between(literal(today, Date), inv.due_date)
        category, eligibility = agreements.eligibility_sql(inv, agr, rule, today=today)
        self.aging = _aging(inv.due_date, today)
        self.columns: dict[str, ColumnElement[Any]] = {
            "halo_id": inv.halo_id, "number": inv.display_number, "number_is_fallback": inv.number_is_fallback,
            "customer": func.coalesce(cust.name, inv.customer_name),
            "agreement": func.coalesce(inv.agreement_ref, agr.ref),
            "subtype_id": agr.subtype_id, "shown_name": subtypes.NAME, "shown_verified": subtypes.VERIFIED,
            "invoice_date": inv.invoice_date, "due_date": inv.due_date,
            "days_overdue": case((late.is_(None), null()), (late > 0, late), else_=0), "aging": self.aging,
            "total_cents": inv.total_cents, "amount_due_cents": inv.amount_due_cents, "currency": inv.currency,
            "eligibility": eligibility,
        }
        self.terms: list[ColumnElement[bool]] = [inv.partner_id == partner_id,
                                                 inv.status.in_(_VIEW_STATUSES[filters.view])]
        self.needs: set[str] = set()
        if text := filters.term:
            # a HaloPSA ID is found whatever number the partner shows (its Invoice Number Field)
            by_id = [inv.halo_id == int(text)] if text.isdecimal() and len(text) <= _MAX_ID_DIGITS else []
            self._where({"customer", "agreement"}, or_(inv.display_number.icontains(text, autoescape=True),
                                                       self.columns["customer"].icontains(text, autoescape=True),
                                                       self.columns["agreement"].icontains(text, autoescape=True),
                                                       *by_id))
        if filters.customer_halo_id is not None:
            self._where(set(), inv.customer_halo_id == filters.customer_halo_id)
        if filters.subtype is not None:
            check_subtype_id(filters.subtype)
            self._where({"agreement"}, agr.subtype_id == filters.subtype)
        if filters.aging is not None:
            self._where(set(), _in_bucket(inv.due_date, filters.aging, today))
        if filters.eligibility is not None:
            self._where({"agreement", "rule"}, category == filters.eligibility)
        # days overdue falls as the due date rises; rows without the value go last either way; inv.id breaks ties
        # (it is in every index, so no lookups)
        key, self.sort_needs = {
            "due_date": (inv.due_date, set()), "days_overdue": (inv.due_date, set()),
            "amount_due": (inv.amount_due_cents, set()), "total": (inv.total_cents, set()),
            "invoice_date": (inv.invoice_date, set()), "customer": (self.columns["customer"], {"customer"}),
            "number": (inv.display_number, set()),
        }[filters.sort]
        descending = filters.descending != (filters.sort == "days_overdue")
        self.order = [(key.desc() if descending else key.asc()).nulls_last(), inv.id]

    def _where(self, needs: set[str], term: ColumnElement[bool]) -> None:
        self.terms.append(term)
        self.needs |= needs

    def source(self, needs: set[str]) -> Any:
        """invoice LEFT JOIN the customer, agreement, rule and subtype name tables in `needs` (the rule and the names
        join via the agreement)."""
        inv, cust, agr, rule = INVOICE_TABLE.c, CUSTOMER_TABLE.c, AGREEMENT_TABLE.c, tables.RULE_TABLE.c
        joined: FromClause = INVOICE_TABLE
        if "customer" in needs:
            joined = joined.outerjoin(CUSTOMER_TABLE, (cust.partner_id == inv.partner_id)
                                      & (cust.halo_id == inv.customer_halo_id))
        if needs & {"agreement", "rule", "names"}:
            joined = joined.outerjoin(AGREEMENT_TABLE, (agr.partner_id == inv.partner_id)
                                      & (agr.halo_id == inv.agreement_halo_id))
        if "rule" in needs:
            joined = joined.outerjoin(tables.RULE_TABLE, (rule.partner_id == inv.partner_id)
                                      & (rule.subtype_id == agr.subtype_id))
        if "names" in needs:
            joined = subtypes.with_names(joined, inv.partner_id, agr.subtype_id)
        return joined

    def rows(self) -> Select[Any]:
        """Every filtered row with its display columns, in the chosen order."""
        columns = [expression.label(name) for name, expression in self.columns.items()]
        return (select(*columns).select_from(self.source({"customer", "agreement", "rule", "names"}))
                .where(*self.terms).order_by(*self.order))

    def page(self, *, limit: int, offset: int) -> Select[Any]:
        """One page: the ids are picked with the fewest joins, then only those rows get their display columns."""
        inv = INVOICE_TABLE.c
        ids = (select(inv.id).select_from(self.source(self.needs | self.sort_needs)).where(*self.terms)
               .order_by(*self.order).limit(limit).offset(offset).subquery("page_ids"))
        return self.rows().where(inv.id.in_(select(ids.c.id)))

    def buckets(self) -> Select[str, Any, int, Any, Any]:
        """Count, total and amount due per currency and aging bucket over every filtered row (no currency: a group
        of its own)."""
        inv = INVOICE_TABLE.c
        return (select(self.aging.label("bucket"), inv.currency, func.count().label("invoices"),
                       func.sum(inv.total_cents).label("total_cents"),
                       func.sum(inv.amount_due_cents).label("due_cents"))
                .select_from(self.source(self.needs)).where(*self.terms).group_by(self.aging, inv.currency))


def page(engine: Engine, principal: Principal, partner_id: int, filters: Filters, *, now: datetime, page: int = 1,
         page_size: int = DEFAULT_PAGE_SIZE) -> InvoicePage:
    """One page of the filtered unpaid invoices, the totals and aging over all of them; `page` is clamped to the
    last page."""
    require_partner_data(principal, partner_id)
    if not 1 <= page_size <= max(PAGE_SIZES):
        raise BadInput(f"Show between 1 and {max(PAGE_SIZES)} rows per page.", field="page_size")
    scope = _Scope(partner_id, filters, now.date())
    with engine.connect() as conn:
        buckets = conn.execute(scope.buckets()).all()
        count = sum(found.invoices for found in buckets)
        pages = max(1, ceil(count / page_size))
        current = min(max(1, page), pages)
        rows = conn.execute(scope.page(limit=page_size, offset=(current - 1) * page_size)).all()
    totals = _per_currency(buckets)
    return InvoicePage(
        rows=pd.DataFrame([_display(row) for row in rows], columns=COLUMNS).astype({"days_overdue": "Int64"}),
        page=current, pages=pages, page_size=page_size, total_rows=count, totals=totals,
        aging=_aging_frame(buckets, totals), view=filters.view,
    )


def _per_currency(buckets: Any) -> list[CurrencyTotal]:
    """The buckets' rows summed per currency (never across): most invoices first, no currency last."""
    sums: dict[str | None, tuple[int, int, int]] = {}
    for found in buckets:
        n, total, due = sums.get(found.currency, (0, 0, 0))
        sums[found.currency] = (n + found.invoices, total + found.total_cents, due + found.due_cents)
    totals = [CurrencyTotal(currency, *figures) for currency, figures in sums.items()]
    return sorted(totals, key=lambda t: (t.currency is None, -t.invoices, t.currency or ""))


def _aging_frame(buckets: Any, totals: list[CurrencyTotal]) -> pd.DataFrame:
    """Every aging bucket of every currency in `totals` (in that order), zero where no invoice falls."""
    found = {(b.currency, b.bucket): (b.invoices, b.due_cents) for b in buckets}
    return pd.DataFrame([(total.label, bucket, *_as_amount(found.get((total.currency, bucket), (0, 0))))
                         for total in totals for bucket in AGING_BUCKETS],
                        columns=["currency", "bucket", "invoices", "amount_due"])


def _as_amount(figures: tuple[int, int]) -> tuple[int, Any]:
    return figures[0], amount(figures[1])


def _display(row: Any) -> dict[str, Any]:
    shown = {"subtype", "total", "amount_due", "number_shown", "currency"}
    return {**{name: getattr(row, name) for name in COLUMNS if name not in shown},
            "subtype": subtypes.shown(row), "number_is_fallback": bool(row.number_is_fallback),
            "number_shown": f"{row.number} ({FALLBACK_NOTE})" if row.number_is_fallback else row.number,
            "total": amount(row.total_cents), "amount_due": amount(row.amount_due_cents),
            "currency": currency_label(row.currency)}


@dataclass(frozen=True)
class SourceNote:
    """Why a partner's invoices are missing or out of date, said above the table; `show_invoices` is False when there
    is nothing to list (no table, chart or download then)."""

    message: str
    show_invoices: bool


def source_note(engine: Engine, principal: Principal, partner_id: int) -> SourceNote | None:
    """What the Invoices page says first when this partner's invoices do not come from HaloPSA (HaloPSA is its
    secondary integration, or it is not connected) or have not been read yet (no sync has succeeded); None when its
    invoices are synced from HaloPSA."""
    require_partner_data(principal, partner_id)
    con, run, inv = CONNECTION_TABLE.c, RUN_TABLE.c, INVOICE_TABLE.c
    with engine.connect() as conn:
        name = conn.scalar(select(PARTNER_TABLE.c.name).where(PARTNER_TABLE.c.id == partner_id))
        if name is None:
            raise NotFound("That partner no longer exists.")
        role = conn.scalar(select(con.integration_role).where(con.partner_id == partner_id))
        synced = conn.scalar(select(run.id).where(run.partner_id == partner_id, run.status.in_(
            (RunStatus.SUCCEEDED, RunStatus.PARTIAL))).limit(1)) is not None
        if role == IntegrationRole.PRIMARY and synced:
            return None
        stored = int(conn.scalar(select(func.count()).where(inv.partner_id == partner_id)) or 0)
    if role is None:
        return SourceNote(f"{name} has no HaloPSA connection, so no invoices are synced. Connect it on the Connection "
                          "page.", show_invoices=bool(stored))
    if role != IntegrationRole.PRIMARY:
        said = (f"HaloPSA is the secondary integration for {name}: its invoices come from the primary integration "
                "and are not synced from HaloPSA, which only receives payment status.")
        if not stored:
            return SourceNote(f"{said} There are no invoices to list here. To list them, make HaloPSA the primary "
                              "integration on the Connection page.", show_invoices=False)
        return SourceNote(f"{said} The {number(stored)} invoices listed were synced while HaloPSA was the primary "
                          "integration and are no longer updated.", show_invoices=True)
    if stored:
        return None  # read by a sync that has not finished yet: what it stored so far is listed
    return SourceNote(f"No invoices yet: the first sync of {name} has not finished. Follow it on the Syncs page; the "
                      "invoices appear here once it has read them.", show_invoices=False)


def filter_options(engine: Engine, principal: Principal, partner_id: int) -> FilterOptions:
    """The partner's synced customers and agreement subtypes, for the filter menus (read from the small customer and
    agreement tables, not the invoices)."""
    require_partner_data(principal, partner_id)
    cust, agr = CUSTOMER_TABLE.c, AGREEMENT_TABLE.c
    customers = select(cust.halo_id, cust.name).where(cust.partner_id == partner_id).order_by(cust.name, cust.halo_id)
    ids = (select(agr.subtype_id).distinct().where(agr.partner_id == partner_id, agr.subtype_id.is_not(None))
           .subquery("ids"))
    named = (select(ids.c.subtype_id, *subtypes.name_columns())
             .select_from(subtypes.with_names(ids, partner_id, ids.c.subtype_id))
             .order_by(subtypes.NAME.is_(None), subtypes.NAME, ids.c.subtype_id))
    with engine.connect() as conn:
        return FilterOptions(customers=[(int(row.halo_id), row.name) for row in conn.execute(customers)],
                             subtypes=[(int(row.subtype_id), subtypes.shown(row) or "") for row in conn.execute(named)])


def _export_rows(engine: Engine, query: Select[Any]) -> Iterator[dict[str, Any]]:
    with engine.connect() as conn:
        for row in conn.execution_options(yield_per=2000).execute(query):
            yield {
                "number": row.number, "number_is_halopsa_id_fallback": bool(row.number_is_fallback),
                "halo_id": row.halo_id, "customer": row.customer, "agreement": row.agreement,
                "subtype": subtypes.shown(row),
                "invoice_date": row.invoice_date.isoformat() if row.invoice_date else None,
                "due_date": row.due_date.isoformat() if row.due_date else None, "days_overdue": row.days_overdue,
                "aging": row.aging, "total": money(row.total_cents), "amount_due": money(row.amount_due_cents),
                "currency": row.currency, "auto_pay": row.eligibility,
            }


def export_csv(engine: Engine, principal: Principal, partner_id: int, filters: Filters, *, now: datetime,
               throttled: bool = False) -> CsvExport:
    """Every filtered row (all pages) as formula-safe CSV, in the table's order, with its "export" audit event.
    Refused with nothing written above exports.MAX_DOWNLOAD_ROWS rows and, when `throttled` (the page's download
    button), past the person's download rate (core.console.exports)."""
    require_partner_data(principal, partner_id)
    with engine.connect() as conn:
        if conn.scalar(select(PARTNER_TABLE.c.id).where(PARTNER_TABLE.c.id == partner_id)) is None:
            raise NotFound("That partner no longer exists.")
        scope = _Scope(partner_id, filters, now.date())
        count = sum(found.invoices for found in conn.execute(scope.buckets()))
    exports.start_download(engine, principal.user, partner_id=partner_id, rows=count, now=now, throttled=throttled,
                           detail=f"Unpaid invoices CSV: {count} rows; filters: {filters.describe()}")
    data, rows = exports.csv_file(_export_rows(engine, scope.rows()))
    return CsvExport(data=data, rows=rows)
