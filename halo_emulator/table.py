"""One entity's rows by id, with the sorted orders and query results a listing needs, cached until a change.

Rows are never changed in place: a change stores a new dict (`put`). A reply can therefore hold references to rows
and be encoded after the emulator's lock is released, and paging a 100,000-row table costs one sort per change, not
one per page.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar, cast

from halo_emulator.reply import dumps

Row = dict[str, Any]
T = TypeVar("T")
_QUERY_CACHE_SIZE = 32


def _sort_key(value: Any) -> tuple[int, Any]:
    """Numbers, then text (case-insensitive, like SQL Server's default collation), then nulls; never a TypeError."""
    if value is None:
        return (2, 0)
    if isinstance(value, str):
        return (1, value.casefold())
    if isinstance(value, bool | int | float):
        return (0, value)
    return (1, str(value))


class Table:
    def __init__(
        self,
        rows: dict[Any, Row] | None = None,
        *,
        loader: Callable[[], dict[Any, Row]] | None = None,
        present: Callable[[Row], Row] | None = None,
    ):
        """`loader` builds the rows on first use instead (see data.Books); `present` turns a stored row into what the
        wire carries (its timestamps' form), the stored row itself when None."""
        self._rows = rows
        self._loader = loader
        self._present = present
        self._orders: dict[tuple[str | None, bool], list[Any]] = {}
        self._max_id: int | None = None
        self._texts: dict[Any, tuple[Row, str]] = {}
        self._queries: OrderedDict[Hashable, Any] = OrderedDict()

    @property
    def rows(self) -> dict[Any, Row]:
        if self._rows is None:
            assert self._loader is not None
            self._rows = self._loader()
            self._loader = None
        return self._rows

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, row_id: Any) -> Row | None:
        return self.rows.get(row_id)

    def put(self, row: Row) -> Row:
        self.rows[row["id"]] = row
        if self._max_id is not None and row["id"] > self._max_id:
            self._max_id = row["id"]
        self._changed()
        return row

    def next_id(self) -> int:
        """The id a new record gets (integer-keyed tables): one above the highest ever stored."""
        if self._max_id is None:
            self._max_id = max(self.rows, default=0)
        return self._max_id + 1

    def delete(self, row_id: Any) -> Row | None:
        row = self.rows.pop(row_id, None)
        self._texts.pop(row_id, None)
        if row is not None:
            self._changed()
        return row

    def _changed(self) -> None:
        self._orders.clear()
        self._queries.clear()

    def ordered(self, field: str | None, descending: bool = False) -> list[Any]:
        """Ids sorted by `field` (None: natural id order), ties kept in id order either way."""
        key = (field, descending)
        order = self._orders.get(key)
        if order is None:
            rows = self.rows
            natural = list(rows)  # insertion order is id order: ids only grow
            if field is None:
                order = natural[::-1] if descending else natural
            else:
                order = sorted(natural, key=lambda row_id: _sort_key(rows[row_id].get(field)), reverse=descending)
            self._orders[key] = order
        return order

    def present(self, row: Row) -> Row:
        """The record as the wire carries it (the stored row, or a copy with its timestamps in the record's form)."""
        return row if self._present is None else self._present(row)

    def row_text(self, row: Row) -> str:
        """A record's wire JSON, encoded once per version of the row: a repeated sync of a large tenant re-sends the
        same rows, and encoding is most of the cost of a listing page. A row that is not the stored one (a
        corrupted copy) is encoded and not kept."""
        row_id = row.get("id")
        hit = self._texts.get(row_id)
        if hit is not None and hit[0] is row:
            return hit[1]
        text = dumps(self.present(row))
        if self.rows.get(row_id) is row:
            self._texts[row_id] = (row, text)
        return text

    def select(self, key: Hashable, compute: Callable[[], T]) -> T:
        """A derived value (a query's matching ids, an index), computed once per table state: a paging client asks
        for the same list once per page. A key always names the same computation, hence the same type."""
        hit = self._queries.get(key)
        if hit is None:
            value = compute()
            self._queries[key] = value
            if len(self._queries) > _QUERY_CACHE_SIZE:
                self._queries.popitem(last=False)
            return value
        self._queries.move_to_end(key)
        return cast(T, hit)
