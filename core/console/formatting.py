"""How the console writes times, money, counts and ages: one helper each, used by every screen, export and the CLI;
and how outside text (anything from HaloPSA or a form) is written where the page renders Markdown or chart HTML."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

_MARKDOWN_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character
# Where GFM finds a link in plain text once escapes are resolved ("http://", "www.", "x@y.z") and where Streamlit
# finds an icon or its logo (":material/…:", ":streamlit:"): a word joiner after a colon that a slash or a letter
# follows, after "@", and between "www" and its dot, leaves nothing to find (a time such as 12:05 is left alone).
_AUTOLINK_POINTS = re.compile(r"(?<=\\:)(?=\\/|[a-z])|(?<=\\@)|(?<=www)(?=\\\.)", re.IGNORECASE)
WORD_JOINER = "\u2060"  # invisible, and no line break at it


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


def subtype_label(subtype_id: int | None, name: str | None, verified: bool) -> str | None:
    """How an agreement subtype is shown everywhere: its id always beside its name, "Backup (id 7)"; "Backup (id 7,
    name not verified)" for a name no verified lookup or person gave; "Subtype 7" without a name; None without a
    subtype."""
    if subtype_id is None:
        return None
    if not name:
        return f"Subtype {subtype_id}"
    return f"{name} (id {subtype_id})" if verified else f"{name} (id {subtype_id}, name not verified)"


def escape_markdown(text: object) -> str:
    """Outside text as Markdown that Streamlit draws as exactly that text, on one line: for st.markdown, captions,
    alerts, toasts, titles, widget labels and help, radio options and metrics (all parse Markdown).

    Every ASCII punctuation character is backslash-escaped (CommonMark allows it for each), so the text builds no
    link, image, autolink, HTML, emphasis, heading, list, table, directive (`:red[…]`) or formula (`$…$`). GFM's
    bare-link finder runs after escapes are resolved, so it is broken with a word joiner instead."""
    flat = " ".join(str(text).split())  # a line break could start a new block
    return _AUTOLINK_POINTS.sub(WORD_JOINER, _MARKDOWN_PUNCTUATION.sub(r"\\\1", flat))


def escape_plotly(text: object) -> str:
    """Outside text for a Plotly title, label or hover template: no tag (Plotly draws <a href>, <b>, <br> …) and
    no template field (`%{…}`). Plotly splits tags off first and then decodes &lt;, &gt;, &amp; and numeric
    entities in the text between them (not &quot;, so quotes stay as they are: outside a tag they are harmless)."""
    return html.escape(str(text), quote=False).replace("%", "&#37;")


# ---- amounts and counts as people read them (issue 14): thousands separated, every amount with its currency -------

NO_CURRENCY = "no currency"
"""How an amount HaloPSA gave no currency for is labelled: its own group, never merged into another currency."""
TABLE_MONEY_FORMAT = "accounting"
"""The st.column_config.NumberColumn format of every amount in a table: "1,234.50", a negative in parentheses."""
TABLE_COUNT_FORMAT = "localized"
"""The st.column_config.NumberColumn format of every count in a table: "1,234" (the reader's separators)."""


def number(value: int) -> str:
    """A count as shown in tiles, sentences and chart labels: "12,345"."""
    return f"{value:,}"


def money_text(cents: int | None) -> str | None:
    """Integer cents -> "1,234.50", thousands separated (exact; never through float), for people; `money` stays
    the plain "1234.50" that CSV files and the command line write."""
    if cents is None:
        return None
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole:,}.{part:02d}"


def currency_label(currency: str | None) -> str:
    """The currency an amount is in, as shown: its code, or "no currency" when HaloPSA gave none."""
    return currency or NO_CURRENCY


def money_in(cents: int, currency: str | None) -> str:
    """An amount with its currency, for sentences and tiles: "1,234.50 USD", "12.00 (no currency)"."""
    return f"{money_text(cents)} {currency}" if currency else f"{money_text(cents)} ({NO_CURRENCY})"


def change(current: int, previous: int) -> str:
    """How a count moved from one period to the next: "+12 (+8%)", "-3 (-50%)", "no change", "+4 (none before)"."""
    difference = current - previous
    if not difference:
        return "no change"
    share = f"{difference / previous:+,.0%}" if previous else "none before"
    return f"{difference:+,} ({share})"


@dataclass(frozen=True)
class Tile:
    """One metric tile (`st.metric`): its label, its value as shown, and what it counts (the tile's help)."""

    label: str
    value: str
    help: str = ""


def money_per_currency(amounts: list[tuple[str | None, int]]) -> str:
    """Amounts side by side, one per currency, never summed: "1,234.50 USD · 20.00 CAD"; "0.00" for none."""
    return " · ".join(money_in(cents, code) for code, cents in amounts) or "0.00"
