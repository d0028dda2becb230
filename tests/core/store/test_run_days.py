from datetime import timedelta

from sqlalchemy import func, select

from core.store import run_days
from core.store.tables import RUN_DAY_TABLE, RunKind, RunStatus
from core.sync import runs
from tests.support.clock import NOW
from tests.support.factories import add_partner, add_run

DAY = timedelta(days=1)


def _rolled_runs(engine):
    with engine.connect() as conn:
        return conn.scalar(select(func.coalesce(func.sum(RUN_DAY_TABLE.c.runs), 0)))


def _totals(engine):
    frame = run_days.totals(engine, (NOW - 10 * DAY).date(), NOW.date(), run_days.KEYS)
    return sorted(tuple(row) for row in frame.itertuples(index=False))


def test_runs_finished_before_the_mark_are_rolled_up_once_and_read_the_same(engine, settings):
    partner = add_partner(engine, settings, name="Alpha", now=NOW - 10 * DAY)
    for days in (9, 8, 8, 2):
        add_run(engine, settings, partner, at=NOW - days * DAY, created=3, invoices_seen=5)
    add_run(engine, settings, partner, at=NOW - 8 * DAY, kind=RunKind.FETCH_NEW_DATA, trigger="manual")
    add_run(engine, settings, partner, at=NOW - 7 * DAY, status=RunStatus.FAILED)
    before = _totals(engine)

    assert run_days.advance(engine, NOW - 3 * DAY) == 5  # the run of 2 days ago finished after the mark
    assert _rolled_runs(engine) == 5
    assert _totals(engine) == before
    assert run_days.advance(engine, NOW - 3 * DAY) == 0  # a second tick at the same time adds nothing
    assert run_days.advance(engine, NOW) == 1
    assert _rolled_runs(engine) == 6
    assert _totals(engine) == before


def test_a_run_still_running_at_a_tick_is_counted_once_it_finishes(engine, settings):
    partner = add_partner(engine, settings, name="Alpha", now=NOW - 10 * DAY)
    started = NOW - 5 * DAY
    run_id = runs.start_run(engine, partner_id=partner, partner_name="Alpha", kind=RunKind.BACKFILL,
                            trigger="connect", actor="tests", now=started, settings=settings)
    run_days.advance(engine, NOW - 2 * DAY)
    running = run_days.totals(engine, started.date(), started.date(), run_days.KEYS)
    assert (running["runs"].sum(), running["finished"].sum()) == (1, 0)

    runs.finish_run(engine, run_id, partner, status=RunStatus.SUCCEEDED, now=NOW - DAY)
    for tick in (NOW - DAY, NOW + DAY):  # finished after the mark: read from the runs, then rolled up
        run_days.advance(engine, tick)
        done = run_days.totals(engine, started.date(), started.date(), run_days.KEYS)
        assert (done["runs"].sum(), done["finished"].sum(), done["successful"].sum()) == (1, 1, 1)


def test_a_tick_that_read_a_mark_another_scheduler_moved_adds_nothing(engine, settings, monkeypatch):
    partner = add_partner(engine, settings, name="Alpha", now=NOW - 10 * DAY)
    add_run(engine, settings, partner, at=NOW - 9 * DAY)
    add_run(engine, settings, partner, at=NOW - 4 * DAY)
    run_days.advance(engine, NOW - 6 * DAY)
    stale = run_days._mark  # the other scheduler read the mark before this one moved it
    with engine.connect() as conn:
        seen = stale(conn)
    run_days.advance(engine, NOW)
    monkeypatch.setattr(run_days, "_mark", lambda conn: seen)

    assert run_days.advance(engine, NOW + DAY) == 0
    assert _rolled_runs(engine) == 2
