"""Bulk, idempotent upserts of one page of HaloPSA records, keyed by (partner, HaloPSA id).

Each call reads the page's existing rows in one query, inserts the new ones and updates only the rows whose synced
fields differ, so a rerun writes nothing and the counts (created, updated, unchanged) say what a run really changed.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.expression import Executable

from core.halopsa import records
from core.store.tables import (
    InvoiceStatus,
    NumberField,
)

CUSTOMER_FIELDS = ("name", "inactive", "billing_email", "currency", "halo_last_modified")
AGREEMENT_FIELDS = (
    "ref", "customer_halo_id", "subtype_id", "subtype_name", "type_name", "start_date", "end_date", "active",
    "halo_last_modified",
)
INVOICE_FIELDS = (
    "invoice_number", "third_party_number", "display_number", "number_is_fallback", "customer_halo_id",
    "customer_name", "agreement_halo_id", "agreement_ref", "invoice_date", "due_date", "total_cents",
    "amount_paid_cents", "amount_due_cents", "currency", "posted", "voided", "status", "halo_last_modified",
)


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, other: Counts) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged


def invoice_status(*, voided: bool, amount_due_cents: int, amount_paid_cents: int) -> InvoiceStatus:
    """Paid, partially paid, unpaid or voided, from HaloPSA's amounts (reference 4.3: paid means nothing due)."""
    return InvoiceStatus(_status_value(voided, amount_due_cents, amount_paid_cents))


_VOIDED, _PAID, _PARTIALLY_PAID, _UNPAID = (status.value for status in (
    InvoiceStatus.VOIDED, InvoiceStatus.PAID, InvoiceStatus.PARTIALLY_PAID, InvoiceStatus.UNPAID))


def _status_value(voided: bool, amount_due_cents: int, amount_paid_cents: int) -> str:
    if voided:
        return _VOIDED
    if amount_due_cents <= 0:
        return _PAID
    if amount_paid_cents > 0:
        return _PARTIALLY_PAID
    return _UNPAID


def display_number(invoice_halo_id: int, third_party_number: str | None, field: str) -> tuple[str, bool]:
    """The number a partner sees, per its Invoice Number Field; falls back to the HaloPSA ID (flagged) when the
    third-party number is empty."""
    if field == NumberField.THIRD_PARTY:
        if third_party_number:
            return third_party_number, False
        return str(invoice_halo_id), True
    return str(invoice_halo_id), False


def customer_row(record: records.Customer) -> dict[str, Any]:
    return {
        "halo_id": record.halo_id, "name": record.name, "inactive": record.inactive,
        "billing_email": record.billing_email, "currency": record.currency,
        "halo_last_modified": record.last_modified,
    }


def agreement_row(record: records.Agreement) -> dict[str, Any]:
    return {
        "halo_id": record.halo_id, "ref": record.ref, "customer_halo_id": record.customer_halo_id,
        "subtype_id": record.subtype_id, "subtype_name": record.subtype_name, "type_name": record.type_name,
        "start_date": record.start_date, "end_date": record.end_date, "active": record.active,
        "halo_last_modified": record.last_modified,
    }


def invoice_row_factory(number_field: str) -> Callable[[records.Invoice], dict[str, Any]]:
    def invoice_row(record: records.Invoice) -> dict[str, Any]:
        # once per invoice in a sync: plain positional calls, the status as its stored text
        number, fallback = display_number(record.halo_id, record.third_party_number, number_field)
        return {
            "halo_id": record.halo_id, "invoice_number": record.invoice_number,
            "third_party_number": record.third_party_number, "display_number": number,
            "number_is_fallback": fallback, "customer_halo_id": record.customer_halo_id,
            "customer_name": record.customer_name, "agreement_halo_id": record.agreement_halo_id,
            "agreement_ref": record.agreement_ref, "invoice_date": record.invoice_date, "due_date": record.due_date,
            "total_cents": record.total_cents, "amount_paid_cents": record.amount_paid_cents,
            "amount_due_cents": record.amount_due_cents, "currency": record.currency, "posted": record.posted,
            "voided": record.voided,
            "status": _status_value(record.voided, record.amount_due_cents, record.amount_paid_cents),
            "halo_last_modified": record.last_modified,
        }

    return invoice_row


def upsert_rows(
    conn: Connection,
    table: Table,
    fields: Sequence[str],
    rows: list[dict[str, Any]],
    *,
    partner_id: int,
    now: datetime,
    run_id: int | None = None,
) -> Counts:
    """Insert new rows, update changed ones, leave equal ones alone; returns what happened. `rows` are not changed."""
    counts = Counts()
    if not rows:
        return counts
    by_id = {row["halo_id"]: row for row in rows}  # a page repeating an id keeps its last copy
    existing = {found.halo_id: found for found in _existing(conn, table, fields, partner_id, list(by_id))
                if found.halo_id in by_id}
    tracks_runs = "last_changed_run_id" in table.c
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    update_ids: list[int] = []
    compared = list(enumerate(fields, start=2))  # positions of the synced fields in an `existing` row
    for halo_id, row in by_id.items():
        current = existing.get(halo_id)
        if current is None:
            inserts.append(row)
        elif any(current[index] != row[name] for index, name in compared):
            updates.append(row)
            update_ids.append(current.id)
        else:
            counts.unchanged += 1
    if inserts:
        count = len(inserts)
        values = {name: list(map(itemgetter(name), inserts)) for name in ("halo_id", *fields)}
        values.update(partner_id=[partner_id] * count, synced_at=[now] * count)
        if tracks_runs:
            values.update(first_seen_run_id=[run_id] * count, last_changed_run_id=[run_id] * count)
        _execute_many(conn, ("insert", table.name, *values), table.insert, values)
        counts.created = count
    if updates:
        # bind names must differ from column names in an executemany UPDATE
        count = len(updates)
        changes = {name: list(map(itemgetter(name), updates)) for name in fields}
        changes["synced_at"] = [now] * count
        if tracks_runs:
            changes["last_changed_run_id"] = [run_id] * count

        def statement() -> Executable:
            return (
                update(table)
                .where(table.c.id == bindparam("_id"))
                .values({name: bindparam(f"v_{name}") for name in changes})
            )

        values = {"_id": update_ids, **{f"v_{name}": column for name, column in changes.items()}}
        _execute_many(conn, ("update", table.name, *values), statement, values)
        counts.updated = count
    return counts


def _existing(conn: Connection, table: Table, fields: Sequence[str], partner_id: int, ids: list[int]) -> Any:
    """The stored rows (id, halo_id, *fields) among `ids`, and perhaps a few neighbours. A page of a listing in id
    order holds neighbouring ids: one range scan then, rather than an IN of a thousand parameters."""
    columns = [table.c.id, table.c.halo_id, *(table.c[name] for name in fields)]
    low, high = min(ids), max(ids)
    if high - low < 2 * len(ids) + 100:
        where = table.c.halo_id.between(bindparam("low"), bindparam("high"))
        params: dict[str, Any] = {"low": low, "high": high}
    else:
        where = table.c.halo_id.in_(bindparam("halo_ids", expanding=True))
        params = {"halo_ids": ids}
    return conn.execute(select(*columns).where(table.c.partner_id == bindparam("partner_id"), where),
                        {"partner_id": partner_id, **params})


@dataclass(frozen=True)
class _Prepared:
    sql: str
    positional: bool
    order: list[str]  # bind names in the order the DBAPI takes them
    processors: dict[str, Callable[[Any], Any]]


_prepared: weakref.WeakKeyDictionary[Dialect, dict[tuple[str, ...], _Prepared]] = weakref.WeakKeyDictionary()


def _prepare(dialect: Dialect, statement: Executable, names: list[str]) -> _Prepared:
    """Compile once per dialect: the SQL, the DBAPI's parameter order, and SQLAlchemy's own bind processors."""
    compiled = statement.compile(dialect=dialect, column_keys=names)
    order = list(compiled.positiontup or ()) if compiled.positional else list(compiled.binds)
    if sorted(order) != sorted(names):  # e.g. a column default SQLAlchemy would have filled in
        raise ValueError(f"the statement binds {sorted(order)} but the rows give {sorted(names)}")
    processors = {}
    for name in order:
        processor = compiled.binds[name].type._cached_bind_processor(dialect)
        if processor is not None:
            processors[name] = processor
    return _Prepared(compiled.string, bool(compiled.positional), order, processors)


def _execute_many(conn: Connection, key: tuple[str, ...], statement: Callable[[], Executable],
                  columns: dict[str, list[Any]]) -> None:
    """One DBAPI executemany of `statement`, its parameters given column by column (bind name -> values).

    The same SQL and the same type processing as `conn.execute(statement, list_of_dicts)` (SQLAlchemy's bind
    processors for the dialect, e.g. UTCDateTime's), in the caller's transaction, without SQLAlchemy's per-row
    parameter assembly, which was most of a backfill's database time. Each distinct value of a column is
    processed once: a page repeats its dates, its flags and its synced_at.
    """
    cache = _prepared.setdefault(conn.dialect, {})
    prepared = cache.get(key)
    if prepared is None:
        prepared = cache[key] = _prepare(conn.dialect, statement(), list(columns))
    data = []
    for name in prepared.order:
        values = columns[name]
        process = prepared.processors.get(name)
        if process is not None:
            values = _processed(process, values)
        data.append(values)
    rows = zip(*data, strict=True)
    conn.exec_driver_sql(prepared.sql, list(rows) if prepared.positional else [dict(zip(prepared.order, row))
                                                                              for row in rows])


# Types whose equal values are processed alike (not Decimal: 1.0 == 1.00, yet they may be written differently).
_MEMO_TYPES = frozenset({bool, int, str, date, datetime, type(None)})


def _processed(process: Callable[[Any], Any], values: list[Any]) -> list[Any]:
    """`process` applied to each value; once per distinct value when a column repeats its values (dates, flags)."""
    if len(values) > 8 and set(map(type, values)) <= _MEMO_TYPES:
        distinct = set(values)
        if len(distinct) * 2 <= len(values):
            mapping = {value: process(value) for value in distinct}
            return list(map(mapping.__getitem__, values))
    return list(map(process, values))


