"""How the console writes times, money, counts and ages: one helper each, used by every screen, export and the CLI."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 UTC with a Z, or None."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def money(cents: int | None) -> str | None:
    """Integer cents -> "1234.50" (exact; never through float)."""
    if cents is None:
        return None
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"


def amount(cents: int | None) -> Decimal | None:
    """Integer cents -> Decimal with two places, for DataFrames a table formats (exact; never through float)."""
    return None if cents is None else Decimal(cents).scaleb(-2)


def count(number: int, noun: str) -> str:
    """"1 page", "2,000 pages": thousands separated, the noun in the plural unless exactly one."""
    return f"{number:,} {noun}" if number == 1 else f"{number:,} {noun}s"


def ago(delta: timedelta) -> str:
    """How long ago, in plain words: "12 min ago", "5 h ago", "3 days ago"."""
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return "just now"
    if minutes < 60:
        return f"{minutes} min ago"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h ago"
    return f"{hours // 24} days ago"
