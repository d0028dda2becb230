"""HaloPSA's wire conventions: UTC timestamps zone-less or `...Z`, null-date sentinels, money as JSON doubles.

The emulator keeps moments as integer seconds since the Unix epoch while it works and formats them only when a row
is written; formatting goes through a per-day cache because generating 300,000 invoices formats about a million
timestamps.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache
from typing import Any

NO_DATE = "1900-01-01T00:00:00"
"""What HaloPSA sends for an unset date (e.g. `datepaid` of an unpaid invoice)."""
OPEN_END = "0001-01-01T00:00:00"
"""What HaloPSA sends for an agreement without an end date."""

_EPOCH_DAY = date(1970, 1, 1)
_SENTINEL_YEARS = (1, 1900)
DAY_S = 86_400
HOUR_S = 3_600


@cache
def _day_text(day_number: int) -> str:
    return (_EPOCH_DAY + timedelta(days=day_number)).isoformat()


_CLOCK_TEXT = tuple(f"T{s // HOUR_S:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(DAY_S))


def stamp(seconds: int) -> str:
    """Epoch seconds -> `2025-01-31T10:22:13` (UTC, no zone designator, as HaloPSA emits)."""
    day_number, second_of_day = divmod(seconds, DAY_S)
    return _day_text(day_number) + _CLOCK_TEXT[second_of_day]


def zulu(row: dict[str, Any]) -> dict[str, Any]:
    """A copy of a record with every timestamp written `2025-01-31T10:22:13Z`: the same moments, UTC said out loud, as
    some HaloPSA fields and tenants write them (reference section 11). Sentinels too: `1900-01-01T00:00:00Z`."""
    return {name: value + "Z" if _is_stamp(value) else value for name, value in row.items()}


def _is_stamp(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 19 and value[10] == "T" and value[4] == "-"


def day_stamp(seconds: int) -> str:
    """Epoch seconds -> midnight of that UTC day, e.g. `2025-01-31T00:00:00`."""
    return _midnight(seconds // DAY_S)


@cache
def _midnight(day_number: int) -> str:
    return _day_text(day_number) + "T00:00:00"


def to_seconds(moment: datetime) -> int:
    """A datetime (naive means UTC) -> whole epoch seconds."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def wire_seconds(text: str) -> int:
    """A zone-less wire timestamp written by `stamp` -> epoch seconds."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def from_seconds(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def parse_moment(value: Any) -> datetime | None:
    """Accept what a client may send (`Z`, an offset, zone-less, a bare date, a datetime); sentinels mean None."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        moment = datetime.fromisoformat(text)
    else:
        raise ValueError(f"expected a date, got {value!r}")
    if moment.year in _SENTINEL_YEARS:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def cents(value: Any) -> int:
    """A JSON amount -> integer cents (half up, on the decimal text).

    Refuses text and booleans, like HaloPSA's validation.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected an amount, got {value!r}")
    try:
        return int((Decimal(str(value)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except (InvalidOperation, ValueError, OverflowError):
        raise ValueError(f"expected an amount, got {value!r}") from None


def money(amount_cents: int) -> float:
    """Integer cents -> the double HaloPSA puts on the wire."""
    return amount_cents / 100
