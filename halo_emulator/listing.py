"""List endpoints: filters, ordering, `count`, paging and the envelope (reference section 3)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from halo_emulator.config import EmulatorConfig
from halo_emulator.table import Row, Table

Predicate = Callable[[Row], bool]


class BadParam(ValueError):
    """A query parameter HaloPSA's model binding would refuse (400)."""

    def __init__(self, name: str, value: str) -> None:
        super().__init__(f"The value '{value}' is not valid for {name}.")
        self.name = name


class Unsortable(ValueError):
    """An `order` on a field this instance cannot sort by, on a tenant that refuses it (`unsortable_order_status`)."""

    def __init__(self, field: str, status: int) -> None:
        text = f"Invalid column name '{field}'." if status >= 500 else f"The field '{field}' cannot be sorted."
        super().__init__(text)
        self.field = field
        self.status = status


def truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in {"true", "1", "yes"}


def _int(params: Mapping[str, str], name: str) -> int | None:
    text = params.get(name)
    if text is None or text.strip() == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise BadParam(name, text) from None


_NO_DATE_YEARS = ("0001-", "1900-")


def _moment(params: Mapping[str, str], name: str) -> datetime | None:
    """A date or timestamp parameter as a zone-less UTC moment (an offset is converted, `Z` is UTC)."""
    text = (params.get(name) or "").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise BadParam(name, text) from None
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


class Filters:
    """Builds a listing's row predicate from query parameters, with a hashable signature for the query cache."""

    def __init__(self, params: Mapping[str, str]) -> None:
        self._params = params
        self._predicates: list[Predicate] = []
        self._signature: list[tuple[str, Any]] = []

    def one_of(self, param: str, field: str) -> Filters:
        """`?param=3` or `?param=3,4`: the row's `field` is one of those numbers."""
        text = self._params.get(param)
        if text is None or text.strip() == "":
            return self
        try:
            wanted = frozenset(int(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise BadParam(param, text) from None
        self._predicates.append(lambda row: row.get(field) in wanted)
        self._signature.append((param, tuple(sorted(wanted))))
        return self

    def when(self, param: str, predicate: Predicate) -> Filters:
        """`?param=true` keeps only rows matching `predicate`."""
        if truthy(self._params.get(param)):
            self._predicates.append(predicate)
            self._signature.append((param, True))
        return self

    def activity(self, is_inactive: Predicate) -> Filters:
        """`includeactive` (default true) and `includeinactive` (default false: the default view hides inactive)."""
        active = self._params.get("includeactive") is None or truthy(self._params.get("includeactive"))
        inactive = truthy(self._params.get("includeinactive"))
        if not active or not inactive:
            self._predicates.append(lambda row: inactive if is_inactive(row) else active)
            self._signature.append(("activity", (active, inactive)))
        return self

    def search(self, *fields: str) -> Filters:
        text = (self._params.get("search") or "").strip().casefold()
        if text:
            self._predicates.append(
                lambda row: any(text in str(row.get(f) or "").casefold() for f in fields)
            )
            self._signature.append(("search", text))
        return self

    def equals(self, param: str, field: str) -> Filters:
        """`?param=text`: the row's `field` is that text (case-insensitive, trimmed)."""
        text = (self._params.get(param) or "").strip().casefold()
        if text:
            self._predicates.append(lambda row: str(row.get(field) or "").strip().casefold() == text)
            self._signature.append((param, text))
        return self

    def dated(self) -> Filters:
        """`datesearch=<field>&start_date=…&end_date=…` (newer builds): the row's `field` within the bounds (either
        may be absent; a date alone means its midnight); rows without that date are left out."""
        field = (self._params.get("datesearch") or "").strip().lower()
        if not field:
            return self
        start, end = _moment(self._params, "start_date"), _moment(self._params, "end_date")
        if start is None and end is None:
            return self

        def within(row: Row) -> bool:
            value = row.get(field)
            if not isinstance(value, str) or value.startswith(_NO_DATE_YEARS):
                return False
            moment = datetime.fromisoformat(value)
            return (start is None or moment >= start) and (end is None or moment <= end)

        self._predicates.append(within)
        self._signature.append(("datesearch", (field, start, end)))
        return self

    def build(self) -> tuple[tuple[tuple[str, Any], ...], Predicate | None]:
        predicates = self._predicates
        if not predicates:
            return (), None
        return tuple(self._signature), lambda row: all(p(row) for p in predicates)


def client_filters(params: Mapping[str, str]) -> Filters:
    return (
        Filters(params)
        .activity(lambda r: bool(r.get("inactive")))
        .one_of("toplevel_id", "toplevel_id")
        .search("name")
    )


def contract_filters(params: Mapping[str, str]) -> Filters:
    return (
        Filters(params)
        .activity(lambda r: not r.get("active"))
        .one_of("client_id", "client_id")
        .one_of("site_id", "site_id")
        .search("ref", "client_name")
    )


def invoice_filters(params: Mapping[str, str], config: EmulatorConfig | None = None) -> Filters:
    """`search` unless the tenant ignores it (`invoice_search`); `third_party_id` where the build has it."""
    filters = (
        Filters(params)
        .one_of("client_id", "client_id")
        .one_of("client_ids", "client_id")
        .one_of("site_id", "sitenumber")
        .one_of("contract_id", "contract_id")
        .one_of("paymentstatuses", "paymentstatus")
        .when("postedonly", lambda r: bool(r.get("posted")))
        .when("notpostedonly", lambda r: not r.get("posted"))
    )
    if config is None or config.invoice_search:
        filters.search("invoicenumber", "thirdpartyinvoicenumber", "client_name")
    if config is not None and config.third_party_id_filter:
        filters.equals("third_party_id", "thirdpartyinvoicenumber")
    return filters


def payment_filters(params: Mapping[str, str]) -> Filters:
    return (
        Filters(params)
        .one_of("invoice_id", "invoice_id")
        .one_of("client_id", "client_id")
        .search("thirdpartyid", "invoice_invoicenumber")
    )


def list_payload(
    table: Table, key: str, filters: Filters, params: Mapping[str, str], config: EmulatorConfig
) -> dict[str, Any]:
    """The envelope for one listing request. Ordering by a field the instance cannot sort by is ignored altogether
    (natural id order), as an instance might, or refused (`Unsortable`) where the tenant is configured so."""
    order = (params.get("order") or "").strip().lower() or None
    descending = truthy(params.get("orderdesc"))
    if order is not None and order not in config.sortable_fields:
        if config.unsortable_order_status is not None:
            raise Unsortable(order, config.unsortable_order_status)
        order, descending = None, False
    if config.datesearch:
        filters.dated()
    signature, predicate = filters.build()
    rows = table.rows

    def matching() -> list[Any]:
        ordered = table.ordered(order, descending)
        return ordered if predicate is None else [i for i in ordered if predicate(rows[i])]

    ids = table.select((order, descending, signature), matching)
    count = _int(params, "count")
    if count is not None and count >= 0:
        ids = ids[:count]
    if not truthy(params.get("pageinate")):
        return {"record_count": len(ids), key: [rows[i] for i in ids]}
    page_size = _int(params, "page_size") or config.default_page_size
    page_size = max(1, min(page_size, config.page_size_cap))
    page_no = max(1, _int(params, "page_no") or 1)
    if config.ignore_paging:
        page = ids
    else:
        served = config.served_page_size or page_size
        page = ids[(page_no - 1) * served : page_no * served]
    return {
        "page_no": page_no,
        "page_size": page_size,
        "record_count": len(page) if config.record_count_is_page_length else len(ids),
        key: [rows[i] for i in page],
    }
