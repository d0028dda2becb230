"""HaloPSA wire JSON -> typed records. HaloPSA's field names stop here and never reach our tables.

Tolerant by design (reference section 5.3): zone-less timestamps are UTC, `0001-01-01`/`1900-01-01` mean "no date",
money is exact (integer cents, rounded half-up from the JSON double), unknown fields are ignored. A record we cannot
read raises `RecordError` with a reason; the listing reports it and carries on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, TypeVar

_NULL_YEARS = (1, 1900)
_CENT = Decimal(1)
# Fast paths (a backfill parses ~100,000 invoices): these bound where float arithmetic provably gives the same cents
# as the exact Decimal route, and how many distinct day strings are remembered.
_FAST_AMOUNT_LIMIT = 1e9
_NEAR_WHOLE_CENT = 1e-3
_DATE_CACHE_SIZE = 20_000
_date_cache: dict[str, date | None] = {}

R = TypeVar("R")


class RecordError(ValueError):
    """A record in an otherwise good page that cannot be read; `reason` says why in plain words."""

    def __init__(self, entity: str, halo_id: int | None, reason: str, raw: Any) -> None:
        super().__init__(reason)
        self.entity = entity
        self.halo_id = halo_id
        self.reason = reason
        self.excerpt = repr(raw)[:300]


def parse_time(value: Any) -> datetime | None:
    """ISO-8601 with or without zone (zone-less means UTC); HaloPSA's null sentinels become None."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected a timestamp, got {value!r}")
    if len(value) == 19 and value[10] == "T":  # HaloPSA's usual zone-less "YYYY-MM-DDTHH:MM:SS": UTC as it is
        try:  # parsed with its zone, which is much cheaper than replace(tzinfo=UTC) afterwards
            parsed = datetime.fromisoformat(value + "+00:00")
        except ValueError:
            parsed = None  # not that shape after all: the general route below decides (and words the error)
        if parsed is not None:
            return None if parsed.year in _NULL_YEARS else parsed
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.year in _NULL_YEARS:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_date(value: Any) -> date | None:
    if isinstance(value, str):  # invoice and due dates repeat across a listing: remember the day of each text
        try:
            return _date_cache[value]
        except KeyError:
            pass
    moment = parse_time(value)
    day = moment.date() if moment else None
    if isinstance(value, str) and len(_date_cache) < _DATE_CACHE_SIZE:
        _date_cache[value] = day
    return day


def to_cents(value: Any, *, required: bool = False) -> int | None:
    """JSON number (a double on the wire) -> exact integer cents, rounded half-up at 2 decimals."""
    if type(value) is float and -_FAST_AMOUNT_LIMIT < value < _FAST_AMOUNT_LIMIT:  # false for nan and infinities
        # Within the limit the double times 100 differs from the exact decimal times 100 by far less than the
        # tolerance, so an amount within it of a whole cent (any amount with at most two decimals) is that cent
        # either way. Anything else (a half cent, three decimals) takes the exact route below.
        scaled = value * 100
        whole = round(scaled)
        if -_NEAR_WHOLE_CENT < scaled - whole < _NEAR_WHOLE_CENT:
            return whole
    if value is None or value == "":
        if required:
            raise ValueError("amount is missing")
        return None
    if type(value) is int:
        return value * 100
    if isinstance(value, bool):
        raise ValueError(f"expected an amount, got {value!r}")
    try:
        return int((Decimal(str(value)) * 100).quantize(_CENT, rounding=ROUND_HALF_UP))
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"expected an amount, got {value!r}") from exc


def _int(value: Any, *, required: bool = False) -> int | None:
    if type(value) is int:
        return value
    if value is None or value == "":
        if required:
            raise ValueError("id is missing")
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"expected a whole number, got {value!r}")
        return int(value)
    return int(value)


def _ref_id(value: Any) -> int | None:
    """Foreign ids where HaloPSA uses 0 or -1 for "none"."""
    number = _int(value)
    return number if number and number > 0 else None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = (value if type(value) is str else str(value)).strip()
    return text or None


def _bool(value: Any) -> bool:
    if value is True or value is False:
        return value
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes"}
    return bool(value)


@dataclass(slots=True)
class Customer:
    halo_id: int
    name: str
    inactive: bool
    billing_email: str | None
    currency: str | None
    last_modified: datetime | None


@dataclass(slots=True)
class Agreement:
    halo_id: int
    ref: str | None
    customer_halo_id: int | None
    subtype_id: int | None
    subtype_name: str | None
    type_name: str | None
    start_date: date | None
    end_date: date | None
    active: bool
    last_modified: datetime | None


@dataclass(slots=True)
class Invoice:
    halo_id: int
    invoice_number: str | None
    third_party_number: str | None
    customer_halo_id: int | None
    customer_name: str | None
    agreement_halo_id: int | None
    agreement_ref: str | None
    invoice_date: date | None
    due_date: date | None
    total_cents: int
    amount_paid_cents: int
    amount_due_cents: int
    currency: str | None
    posted: bool
    voided: bool
    last_modified: datetime | None


def _guard(entity: str, raw: Any, build: Callable[[dict[str, Any], int], R]) -> R:
    if not isinstance(raw, dict):
        raise RecordError(entity, None, f"expected a JSON object, got {type(raw).__name__}", raw)
    try:
        halo_id = _int(raw.get("id"), required=True)
    except (TypeError, ValueError) as exc:
        raise RecordError(entity, None, f"unreadable id: {exc}", raw) from None
    if halo_id is None or halo_id <= 0:
        raise RecordError(entity, halo_id, "id must be a positive number", raw)
    try:
        return build(raw, halo_id)
    except (TypeError, ValueError) as exc:
        raise RecordError(entity, halo_id, str(exc), raw) from None


def parse_customer(raw: Any) -> Customer:
    def build(r: dict[str, Any], halo_id: int) -> Customer:
        name = _text(r.get("name"))
        if name is None:
            raise ValueError("customer has no name")
        return Customer(
            halo_id=halo_id,
            name=name,
            inactive=_bool(r.get("inactive")),
            billing_email=_text(r.get("accountsemailaddress")),
            currency=_text(r.get("currencyisocode")) or _text(r.get("clientcurrency")),
            last_modified=parse_time(r.get("alastupdate")) or parse_time(r.get("datecreated")),
        )

    return _guard("customer", raw, build)


def parse_agreement(raw: Any, subtype_names: dict[int, str] | None = None) -> Agreement:
    def build(r: dict[str, Any], halo_id: int) -> Agreement:
        subtype_id = _int(r.get("subtype"))
        if subtype_id is not None and subtype_id <= 0:
            subtype_id = None
        name = _text(r.get("subtype_name"))
        if name is None and subtype_id is not None:
            name = (subtype_names or {}).get(subtype_id) or f"Subtype {subtype_id}"
        end = parse_date(r.get("end_date"))
        return Agreement(
            halo_id=halo_id,
            ref=_text(r.get("ref")),
            customer_halo_id=_ref_id(r.get("client_id")),
            subtype_id=subtype_id,
            subtype_name=name,
            type_name=_text(r.get("contracttype_name")) or _text(r.get("billing_description_string")),
            start_date=parse_date(r.get("start_date")),
            end_date=end,
            active=_bool(r["active"]) if "active" in r else not _bool(r.get("expired")),
            last_modified=parse_time(r.get("last_modified")),
        )

    return _guard("agreement", raw, build)


def _build_invoice(r: dict[str, Any], halo_id: int) -> Invoice:
    # the hottest function of a backfill (once per invoice): positional fields, in Invoice's order
    get = r.get
    total = to_cents(get("total"), required=True)
    assert total is not None
    paid = to_cents(get("amountpaid")) or 0
    due = to_cents(get("amountdue"))
    if due is None:
        due = total - paid
    return Invoice(
        halo_id,
        _text(get("invoicenumber")),
        _text(get("thirdpartyinvoicenumber")),
        _ref_id(get("client_id")),
        _text(get("client_name")),
        _ref_id(get("contract_id")),
        _text(get("contract_ref")),
        parse_date(get("invoice_date")),
        parse_date(get("duedate")),
        total,
        paid,
        due,
        _text(get("currency_code_name")) or _text(get("currency")),
        _bool(get("posted")),
        _bool(get("voided")),
        parse_time(get("last_modified")) or parse_time(get("date_created")),
    )


def parse_invoice(raw: Any) -> Invoice:
    return _guard("invoice", raw, _build_invoice)
