"""The longest text each input takes, in one table. The pages pass it to their widgets (`max_chars`, so a browser
stops typing there), and core refuses anything longer, whatever sent it (the CLI, a direct call, a crafted request),
before any query or save, with a message naming the field and the limit.

Keys are the field names a BadInput carries, so a page shows the refusal under the widget it concerns.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from core.errors import BadInput


@dataclass(frozen=True)
class TextLimit:
    label: str
    max_chars: int


TEXT_LIMITS: dict[str, TextLimit] = {
    "partner_name": TextLimit("Partner name", 120),
    "app_domain": TextLimit("App Domain", 300),  # https://, a host name of at most 253 characters and a port
    "client_id": TextLimit("Client ID", 200),
    "client_secret": TextLimit("Client Secret", 500),  # longer than any secret HaloPSA generates
    "tenant": TextLimit("Tenant", 100),
    "max_amount": TextLimit("Maximum amount", 30),
    "search": TextLimit("Search", 200),  # SQLite refuses LIKE patterns over 50,000 bytes with an error
    "email": TextLimit("E-mail", 254),  # RFC 5321's longest address
    "password": TextLimit("Password", 1024),
    "subtype_name": TextLimit("Subtype name", 100),
    "snooze_reason": TextLimit("Reason", 300),
}


def max_chars(field: str) -> int:
    return TEXT_LIMITS[field].max_chars


def check_length(field: str, value: str | None) -> None:
    """Refuse `value` when it is longer than the field's limit (None and empty are left to the field's own checks)."""
    limit = TEXT_LIMITS[field]
    if value is not None and len(value) > limit.max_chars:
        raise BadInput(f"{limit.label} must be {limit.max_chars:,} characters or fewer; this one has "
                       f"{len(value):,}. Shorten it and try again.", field=field)


def check_one_line(field: str, value: str) -> None:
    """Refuse a control character (a line break, a tab, a NUL…) in a one-line text, with the field's label."""
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise BadInput(f"{TEXT_LIMITS[field].label} contains a control character (a line break, a tab or an "
                       "invisible one); type it again on one line.", field=field)
