"""HaloPSA wire JSON -> typed records. HaloPSA's field names stop here and never reach our tables.

Tolerant by design (reference section 5.3): zone-less timestamps are UTC, `0001-01-01`/`1900-01-01` mean "no date",
date-only fields are the date as written (never shifted by an offset), money is exact (integer cents, rounded half-up
from the JSON double), unknown fields are ignored. Bounded (reference section 11): ids and cents fit 64 bits and every
amount is a finite number. A record we cannot read, or that is out of bounds, raises `RecordError` with a reason; the
listing reports it and carries on, so one poison record never fails a page or a run.

What HaloPSA's flags mean is decided here too: an invoice with a negative total is a credit note; an invoice is posted
only when HaloPSA says so; an agreement is active only when `active` and not `expired`. The currency is an ISO 4217
code, from `currency_code_name` or, by `currency_code`, from `/api/Currency` (never the symbol in `currency`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, TypeVar

_NULL_YEARS = (1, 1900)
_CENT = Decimal(1)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""What our BIGINT columns hold: ids and cents beyond this are rejected records, never an overflow at upsert."""
_MAX_AMOUNT_DIGITS = 17  # 10**17 and above is beyond 64-bit cents: refused before any arithmetic on a huge exponent
# Fast paths (a backfill parses ~100,000 invoices): these bound where float arithmetic provably gives the same cents
# as the exact Decimal route, and how many distinct day strings are remembered.
_FAST_AMOUNT_LIMIT = 1e9
_NEAR_WHOLE_CENT = 1e-3
_DATE_CACHE_SIZE = 20_000
_date_cache: dict[str, date | None] = {}
_ISO_CACHE_SIZE = 1_000
_iso_cache: dict[str, str | None] = {}

R = TypeVar("R")
CurrencyLookup = Callable[[int], str | None]
"""HaloPSA's currency id (an invoice's `currency_code`) -> ISO 4217 code, from `/api/Currency`; None when unknown."""


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
    """A date-only field (invoice, due, start and end dates) is the calendar date as written: HaloPSA may send it as
    midnight with an offset (`2025-01-31T00:00:00+10:00`), which names 31 January, not a moment to convert to UTC.
    The whole text must still be a valid ISO-8601 date or timestamp; the null sentinels become None."""
    if isinstance(value, str):  # invoice and due dates repeat across a listing: remember the day of each text
        try:
            return _date_cache[value]
        except KeyError:
            pass
    day = _literal_date(value)
    if isinstance(value, str) and len(_date_cache) < _DATE_CACHE_SIZE:
        _date_cache[value] = day
    return day


def _literal_date(value: Any) -> date | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected a date, got {value!r}")
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    written = datetime.fromisoformat(text)  # validates the whole text; the date is taken as written, offset or not
    return None if written.year in _NULL_YEARS else written.date()


def to_cents(value: Any, *, required: bool = False) -> int | None:
    """JSON number (a double on the wire) -> exact integer cents, rounded half-up at 2 decimals. An amount that is not
    a finite number (NaN, Infinity, also as the strings .NET writes for them) or beyond 64-bit cents is refused."""
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
        return _bounded_cents(value * 100, value)
    if isinstance(value, bool):
        raise ValueError(f"expected an amount, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"amount {value!r} is not a finite number")
    try:
        exact = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"expected an amount, got {value!r}") from exc
    if not exact.is_finite():
        raise ValueError(f"amount {value!r} is not a finite number")
    if exact and exact.adjusted() >= _MAX_AMOUNT_DIGITS:
        raise _too_large(value)
    return _bounded_cents(int((exact * 100).quantize(_CENT, rounding=ROUND_HALF_UP)), value)


def _too_large(value: Any) -> ValueError:
    return ValueError(f"amount {value!r} is too large: amounts must fit in 64-bit cents")


def _bounded_cents(cents: int, value: Any) -> int:
    if INT64_MIN <= cents <= INT64_MAX:
        return cents
    raise _too_large(value)


def _int(value: Any, *, required: bool = False) -> int | None:
    """A whole number within 64 bits (ids, foreign ids, lookup ids)."""
    if type(value) is int:
        if INT64_MIN <= value <= INT64_MAX:
            return value
        raise _beyond_64_bits(value)
    if value is None or value == "":
        if required:
            raise ValueError("id is missing")
        return None
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):  # NaN and Infinity too
        raise ValueError(f"expected a whole number, got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a whole number, got {value!r}") from None
    if INT64_MIN <= number <= INT64_MAX:
        return number
    raise _beyond_64_bits(value)


def _beyond_64_bits(value: Any) -> ValueError:
    return ValueError(f"{value!r} is not a whole number that fits in 64 bits")


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


def _iso_currency(value: Any) -> str | None:
    """An ISO 4217 code ("USD"), or None for anything else: a symbol ("$", "CA$"), a name ("US Dollar"), nothing."""
    if type(value) is str:  # a listing repeats a handful of currencies: remember what each text is
        try:
            return _iso_cache[value]
        except KeyError:
            pass
    text = _text(value)
    code = text.upper() if text is not None and len(text) == 3 and text.isascii() and text.isalpha() else None
    if type(value) is str and len(_iso_cache) < _ISO_CACHE_SIZE:
        _iso_cache[value] = code
    return code


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
    currency: str | None  # ISO 4217, or None when HaloPSA names none
    posted: bool  # False: a draft or awaiting approval, never payable
    voided: bool
    last_modified: datetime | None
    credit: bool = False  # a credit note (negative total): never paid, never unpaid, never auto-paid
    currency_id: int | None = None  # HaloPSA's id of the currency (its `/api/Currency` row), to name it when needed


def _guard(entity: str, raw: Any, build: Callable[[dict[str, Any], int], R]) -> R:
    if not isinstance(raw, dict):
        raise RecordError(entity, None, f"expected a JSON object, got {type(raw).__name__}", raw)
    try:
        halo_id = _int(raw.get("id"), required=True)
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise RecordError(entity, None, f"unreadable id: {exc}", raw) from None
    if halo_id is None or halo_id <= 0:
        raise RecordError(entity, halo_id, "id must be a positive number", raw)
    try:
        return build(raw, halo_id)
    except (TypeError, ValueError, ArithmeticError) as exc:  # ArithmeticError: whatever arithmetic a value defeats
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
            currency=_iso_currency(r.get("currencyisocode")) or _iso_currency(r.get("clientcurrency")),
            last_modified=parse_time(r.get("alastupdate")) or parse_time(r.get("datecreated")),
        )

    return _guard("customer", raw, build)


def parse_agreement(raw: Any) -> Agreement:
    """An agreement's subtype is its integer id (`subtype`; 0 or less is none): contract rows carry no subtype name,
    which only a verified lookup gives (core.halopsa.lookups)."""
    def build(r: dict[str, Any], halo_id: int) -> Agreement:
        subtype_id = _ref_id(r.get("subtype"))
        end = parse_date(r.get("end_date"))
        return Agreement(
            halo_id=halo_id,
            ref=_text(r.get("ref")),
            customer_halo_id=_ref_id(r.get("client_id")),
            subtype_id=subtype_id,
            type_name=_text(r.get("contracttype_name")) or _text(r.get("billing_description_string")),
            start_date=parse_date(r.get("start_date")),
            end_date=end,
            # HaloPSA keeps `active` and `expired` apart (an expired agreement may still say active); the end date
            # is checked where "today" is known (core.console.agreements)
            active=_bool(r.get("active", True)) and not _bool(r.get("expired")),
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
        if not INT64_MIN <= due <= INT64_MAX:
            raise ValueError(f"amount due ({total} less {paid} paid, in cents) is too large: amounts must fit in "
                             "64-bit cents")
    # without `posted`, a real posting date says posted; without either, the invoice is not known to be posted
    posted = _bool(get("posted")) if "posted" in r else parse_time(get("dateposted")) is not None
    code = get("currency_code")
    currency_id = code if type(code) is int and 0 < code <= INT64_MAX else _ref_id(code)
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
        _iso_currency(get("currency_code_name")),  # the symbol in `currency` never names a currency
        posted,
        _bool(get("voided")),
        parse_time(get("last_modified")) or parse_time(get("date_created")),
        total < 0,
        currency_id,
    )


def parse_invoice(raw: Any, currency_of: CurrencyLookup | None = None) -> Invoice:
    """An invoice row; `currency_of` names the currency of a row without an ISO `currency_code_name` (see
    `name_currency`)."""
    invoice = _guard("invoice", raw, _build_invoice)
    return invoice if currency_of is None else name_currency(invoice, currency_of)


def name_currency(invoice: Invoice, currency_of: CurrencyLookup) -> Invoice:
    """The invoice, its currency named by its currency id when its row carried no ISO code (only then is
    `currency_of` called, so a tenant whose rows carry the code never pays for the look-up)."""
    if invoice.currency is None and invoice.currency_id is not None:
        invoice.currency = _iso_currency(currency_of(invoice.currency_id))
    return invoice
