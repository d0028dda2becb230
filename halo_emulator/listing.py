"""List endpoints: filters, ordering, `count`, paging and the envelope (reference section 3)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from halo_emulator.config import EmulatorConfig
from halo_emulator.table import Row, Table

Predicate = Callable[[Row], bool]


class BadParam(ValueError):
    """A query parameter HaloPSA's model binding would refuse (400)."""

    def __init__(self, name: str, value: str) -> None:
        super().__init__(f"The value '{value}' is not valid for {name}.")
        self.name = name


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


def invoice_filters(params: Mapping[str, str]) -> Filters:
    return (
        Filters(params)
        .one_of("client_id", "client_id")
        .one_of("client_ids", "client_id")
        .one_of("site_id", "sitenumber")
        .one_of("contract_id", "contract_id")
        .one_of("paymentstatuses", "paymentstatus")
        .when("postedonly", lambda r: bool(r.get("posted")))
        .when("notpostedonly", lambda r: not r.get("posted"))
        .search("invoicenumber", "thirdpartyinvoicenumber", "client_name")
    )


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
    (natural id order), as an instance might."""
    order = (params.get("order") or "").strip().lower() or None
    descending = truthy(params.get("orderdesc"))
    if order is not None and order not in config.sortable_fields:
        order, descending = None, False
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
    start = (page_no - 1) * page_size
    return {
        "page_no": page_no,
        "page_size": page_size,
        "record_count": len(ids),
        key: [rows[i] for i in ids[start : start + page_size]],
    }
