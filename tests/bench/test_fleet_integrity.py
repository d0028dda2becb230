"""The fleet benchmark's integrity check (bench.fleet.integrity): it must see a partner's duplicate and overlapping
runs and a partner that never ran, or section 6's "0 duplicates, 0 overlaps" would pass whatever happened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from bench.fleet import integrity

T0 = datetime(2026, 11, 29, 12, tzinfo=UTC)


def _run(partner_id: int, start_s: float, finish_s: float | None) -> SimpleNamespace:
    return SimpleNamespace(partner_id=partner_id, started_at=T0 + timedelta(seconds=start_s),
                           finished_at=None if finish_s is None else T0 + timedelta(seconds=finish_s))


def test_one_run_each_is_clean() -> None:
    assert integrity([_run(1, 0, 2), _run(2, 1, 3)], [1, 2]) == {"runs": 2, "missing": 0, "duplicates": 0,
                                                                 "overlaps": 0}


def test_duplicates_overlaps_and_missing_partners_are_counted() -> None:
    rows = [_run(1, 0, 2), _run(1, 2, 4),  # one after the other: a duplicate, no overlap
            _run(2, 0, 3), _run(2, 1, 2),  # the second starts before the first finished
            _run(3, 0, None), _run(3, 5, 6)]  # an unfinished run overlaps whatever comes after it
    assert integrity(rows, [1, 2, 3, 4]) == {"runs": 6, "missing": 1, "duplicates": 3, "overlaps": 2}
