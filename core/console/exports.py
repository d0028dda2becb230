"""CSV and JSON exports of invoice rows. CSV cells are neutralised against spreadsheet formula injection."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any, TextIO

_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "|", "%")


def safe_cell(value: Any) -> Any:
    """Prefix text that a spreadsheet would run as a formula (OWASP CSV injection) with a single quote.

    Numbers stay numbers: only strings are neutralised, and amounts like "-12.50" are kept readable as text.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value


def write_csv(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    """Write rows as CSV with a header; returns the number of rows."""
    writer: csv.DictWriter[str] | None = None
    count = 0
    for row in rows:
        if writer is None:
            writer = csv.DictWriter(out, fieldnames=list(row))
            writer.writeheader()
        writer.writerow({key: safe_cell(value) for key, value in row.items()})
        count += 1
    return count


def csv_text(rows: Iterable[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    write_csv(rows, buffer)
    return buffer.getvalue()


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
