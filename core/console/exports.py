"""CSV and JSON exports of invoice rows, and the limits on downloading them.

Every CSV export (the Invoices page's download and `python -m core invoices`) goes through `CsvChunks`, so through
`safe_cell`, the one place cells are neutralised against spreadsheet formula injection (OWASP "CSV Injection"). The
CSV is made in chunks of `CHUNK_ROWS` rows while the rows are read, so the command line holds one chunk at a time.
The page's download is bounded instead: Streamlit's download button takes the whole file as bytes, so a download holds
at most `MAX_DOWNLOAD_ROWS` rows, and a person may make `DOWNLOADS_PER_WINDOW` of them per `DOWNLOAD_WINDOW`.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TextIO

from sqlalchemy import Select, func, select
from sqlalchemy.engine import Connection, Engine

from core.access import Principal, require_partner_access, require_role
from core.console import subtypes
from core.console.formatting import money
from core.errors import Refused, format_duration
from core.store import audit
from core.store.tables import (
    AGREEMENT_TABLE,
    AUDIT_TABLE,
    CUSTOMER_TABLE,
    INVOICE_TABLE,
    UNPAID_STATUSES,
    AuditAction,
    Role,
)

CHUNK_ROWS = 1_000
MAX_DOWNLOAD_ROWS = 100_000  # about 13 MB of CSV and 3 s to make on one core
DOWNLOADS_PER_WINDOW = 3
DOWNLOAD_WINDOW = timedelta(minutes=1)
DOWNLOAD_LIMITS = (f"At most {MAX_DOWNLOAD_ROWS:,} rows and {DOWNLOADS_PER_WINDOW} downloads a minute. For more rows, "
                   "narrow the filters, or ask customer success for a command-line export.")

# = + - @ start a formula (OWASP); | and % start legacy DDE and dynamic-data references in some spreadsheets
_TRIGGERS = frozenset("=+-@|%")
_SEPARATORS = frozenset(",;")  # `;` separates cells in some locales: ";=1+1" can open a cell that is a formula
_NEGATIVE_NUMBER = re.compile(r"-[0-9]+(?:\.[0-9]+)?")  # our amounts (money()): a number, not a formula


def _skipped(char: str) -> bool:
    """Leading characters a spreadsheet skips (or splits a cell on) before it looks for a formula: white space,
    control and format characters (zero-width space, byte-order mark) and the separators."""
    return char.isspace() or char in _SEPARATORS or unicodedata.category(char) in ("Cc", "Cf")


def _formula_like(text: str) -> bool:
    # most cells start with a letter or digit (names, numbers, dates): never a formula, even after NFKC
    if not text or text[0].isalnum() or _NEGATIVE_NUMBER.fullmatch(text):
        return False
    if unicodedata.category(text[0]) == "Cc":  # tab, carriage return, line feed, NUL (OWASP, ASVS 1.2.10)
        return True
    # NFKC folds look-alikes into the characters spreadsheets treat as formulas: full-width ＝ is =, ﹢ is +
    significant = next((char for char in unicodedata.normalize("NFKC", text) if not _skipped(char)), "")
    return significant in _TRIGGERS


def safe_cell(value: Any) -> Any:
    """Text a spreadsheet could read as a formula, with a single quote in front; anything else unchanged.

    Numbers stay numbers: non-text values and plain negative amounts ("-12.50") are kept. The text is otherwise kept
    whole, and text that already has quotes in front of a formula gets one more, so removing one leading quote from a
    cell that then looks like a formula always gives back the original text.
    """
    if isinstance(value, str) and _formula_like(value.lstrip("'")):
        return "'" + value
    return value


class CsvChunks:
    """Formula-safe CSV (a header, then one line per row) as text chunks of at most `chunk_rows` rows, made as the
    rows are read: whoever consumes it holds one chunk at a time. The rows are dicts with the same keys in the same
    order (the header is the first row's keys). Every cell is quoted, so a separator inside a cell never starts
    another (`;` in some locales). `rows` counts the rows made so far. No rows: no text at all."""

    def __init__(self, rows: Iterable[dict[str, Any]], *, chunk_rows: int = CHUNK_ROWS) -> None:
        self._source = rows
        self._chunk_rows = chunk_rows
        self.rows = 0

    def __iter__(self) -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, quoting=csv.QUOTE_ALL)
        for row in self._source:
            if not self.rows:
                writer.writerow(row)  # the header: every row has the same keys in the same order
            writer.writerow([safe_cell(value) for value in row.values()])
            self.rows += 1
            if self.rows % self._chunk_rows == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        if buffer.tell():
            yield buffer.getvalue()


def write_csv(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    """Stream rows as CSV to `out`, one chunk at a time; returns the number of rows."""
    chunks = CsvChunks(rows)
    for chunk in chunks:
        out.write(chunk)
    return chunks.rows


def csv_file(rows: Iterable[dict[str, Any]]) -> tuple[bytes, int]:
    """The whole CSV as UTF-8 bytes, and its number of rows, for a download that must be handed over whole. Only the
    bytes grow with the rows: each chunk is encoded as it is made."""
    chunks = CsvChunks(rows)
    data = io.BytesIO()
    for chunk in chunks:
        data.write(chunk.encode())
    return data.getvalue(), chunks.rows


def write_json(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    """Stream a JSON array without holding every row in memory."""
    out.write("[")
    count = 0
    for row in rows:
        out.write(",\n" if count else "\n")
        out.write(json.dumps(row, ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


# ---- the page's download: bounded in size and rate ---------------------------------------------------------------

def _too_large(rows: int) -> Refused | None:
    if rows <= MAX_DOWNLOAD_ROWS:
        return None
    return Refused(f"This download would have {rows:,} rows; one download holds at most {MAX_DOWNLOAD_ROWS:,}. "
                   "Narrow the filters (search, customer, subtype, days overdue or auto-pay), or ask customer success "
                   "for a full export from the command line (python -m core invoices --unpaid --format csv), which "
                   "has no row limit.")


def _too_frequent(conn: Connection, actor: str, *, now: datetime, recorded: int) -> Refused | None:
    """Refused when `actor` has made DOWNLOADS_PER_WINDOW downloads in the last DOWNLOAD_WINDOW. The rate's memory is
    the audit log's export events, so it holds across sessions, tabs and console processes; `recorded` is 1 when the
    download being checked has written its own event already (in the same transaction), else 0."""
    event = AUDIT_TABLE.c
    recent = conn.scalars(select(event.at).where(event.actor == actor, event.action == AuditAction.EXPORT,
                                                 event.at > now - DOWNLOAD_WINDOW)
                          .order_by(event.at.desc()).limit(DOWNLOADS_PER_WINDOW + recorded)).all()
    if len(recent) < DOWNLOADS_PER_WINDOW + recorded:
        return None
    retry_at = recent[-1] + DOWNLOAD_WINDOW  # when the oldest of those leaves the window
    return Refused(f"You have made {DOWNLOADS_PER_WINDOW} downloads in the last {format_duration(DOWNLOAD_WINDOW)}, "
                   f"the most allowed. Try again in {format_duration(retry_at - now)}, at "
                   f"{retry_at.strftime('%Y-%m-%d %H:%M:%S')} UTC.")


def download_refusal(engine: Engine, actor: str, *, rows: int, now: datetime) -> str | None:
    """What the page says instead of offering a download of `rows` rows to `actor` (the signed-in person), or None
    when the download would be accepted now."""
    refused = _too_large(rows)
    if refused is None:
        with engine.connect() as conn:
            refused = _too_frequent(conn, actor, now=now, recorded=0)
    return None if refused is None else refused.message


def start_download(engine: Engine, actor: str, *, partner_id: int | None, rows: int, detail: str, now: datetime,
                   throttled: bool) -> None:
    """Record a download's "export" audit event, or raise `Refused` with nothing written when it has more than
    MAX_DOWNLOAD_ROWS rows or, if `throttled` (a person downloading from a page), when `actor` has made
    DOWNLOADS_PER_WINDOW downloads in the last DOWNLOAD_WINDOW. The caller has checked the actor's access."""
    refused = _too_large(rows)
    if refused is not None:
        raise refused
    with engine.begin() as conn:
        if throttled and conn.dialect.name == "postgresql":  # one claim per person at a time (SQLite: one writer)
            conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended("export:" + actor, 0))))
        # the event is the transaction's first write: on SQLite it takes the write lock before the count is read
        audit.record(conn, actor=actor, action=AuditAction.EXPORT, partner_id=partner_id, now=now, detail=detail)
        refused = _too_frequent(conn, actor, now=now, recorded=1) if throttled else None
        if refused is not None:
            raise refused  # leaving the block with it rolls the event back


def invoices_query(partner_id: int, *, unpaid_only: bool) -> Select[Any]:
    """Invoices with their customer and agreement (subtype) joined in SQL, ordered by due date."""
    inv, cust, agr = INVOICE_TABLE.c, CUSTOMER_TABLE.c, AGREEMENT_TABLE.c
    query = (
        select(
            inv.halo_id, inv.display_number, inv.number_is_fallback, inv.invoice_number, inv.third_party_number,
            func.coalesce(cust.name, inv.customer_name).label("customer"), inv.customer_halo_id,
            inv.invoice_date, inv.due_date, inv.total_cents, inv.amount_paid_cents, inv.amount_due_cents,
            inv.currency, func.coalesce(inv.agreement_ref, agr.ref).label("agreement_ref"), agr.subtype_id,
            *subtypes.name_columns(), inv.status,
        )
        .select_from(subtypes.with_names(
            INVOICE_TABLE.outerjoin(
                CUSTOMER_TABLE, (cust.partner_id == inv.partner_id) & (cust.halo_id == inv.customer_halo_id)
            ).outerjoin(AGREEMENT_TABLE, (agr.partner_id == inv.partner_id) & (agr.halo_id == inv.agreement_halo_id)),
            inv.partner_id, agr.subtype_id))
        .where(inv.partner_id == partner_id)
        .order_by(inv.due_date, inv.halo_id)
    )
    if unpaid_only:
        query = query.where(inv.status.in_(UNPAID_STATUSES))
    return query


def invoice_export_rows(engine: Engine, principal: Principal, partner_id: int, *,
                        unpaid_only: bool = False) -> Generator[dict[str, Any], None, None]:
    """Invoice rows as export-ready dicts (amounts as two-decimal strings), streamed in due-date order."""
    require_partner_access(principal, partner_id)
    require_role(principal, Role.CS, Role.PARTNER)
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=2000).execute(invoices_query(partner_id, unpaid_only=unpaid_only))
        for row in result:
            yield {
                "halo_id": row.halo_id,
                "number": row.display_number,
                "number_is_fallback": row.number_is_fallback,
                "customer": row.customer,
                "invoice_date": row.invoice_date.isoformat() if row.invoice_date else None,
                "due_date": row.due_date.isoformat() if row.due_date else None,
                "total": money(row.total_cents),
                "amount_paid": money(row.amount_paid_cents),
                "amount_due": money(row.amount_due_cents),
                "currency": row.currency,
                "agreement_ref": row.agreement_ref,
                "agreement_subtype_id": row.subtype_id,
                "agreement_subtype": subtypes.shown(row),
                "status": row.status,
            }


@dataclass(frozen=True)
class CsvExport:
    """A whole CSV file made for a page's download: its UTF-8 bytes and how many rows it has."""

    data: bytes  # UTF-8
    rows: int

    @property
    def text(self) -> str:
        return self.data.decode()
