from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from core.settings import settings_from_mapping
from core.store.tables import JOB_TABLE, IntegrationRole, JobState, Lane, RunKind, RunStatus
from core.sync import jobs, runs, scheduler
from tests.support.clock import NOW
from tests.support.factories import add_partner, add_run


def test_due_partners_are_the_primary_ones_whose_last_sync_is_an_interval_old(engine, settings):
    fresh = add_partner(engine, settings, name="Fresh", now=NOW - timedelta(days=2))
    stale = add_partner(engine, settings, name="Stale", now=NOW - timedelta(days=2))
    never = add_partner(engine, settings, name="Never", now=NOW - timedelta(days=2))
    add_partner(engine, settings, name="Secondary", now=NOW - timedelta(days=2), role=IntegrationRole.SECONDARY)
    add_run(engine, settings, fresh, at=NOW - timedelta(minutes=20), kind=RunKind.BACKFILL)
    add_run(engine, settings, stale, at=NOW - timedelta(hours=2), kind=RunKind.BACKFILL)
    assert list(scheduler.due_partners(engine, now=NOW, settings=settings)) == [stale, never]


def test_a_failing_partner_is_retried_once_per_interval_not_every_tick(engine, settings):
    failing = add_partner(engine, settings, now=NOW - timedelta(days=2))
    add_run(engine, settings, failing, at=NOW - timedelta(minutes=5), status=RunStatus.FAILED)
    assert list(scheduler.due_partners(engine, now=NOW, settings=settings)) == []
    later = NOW + timedelta(seconds=settings.schedule_interval_s)
    assert list(scheduler.due_partners(engine, now=later, settings=settings)) == [failing]


def test_a_due_partner_is_queued_once_however_many_schedulers_look(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=2))
    first = scheduler.enqueue_due(engine, now=NOW, settings=settings)
    again = scheduler.enqueue_due(engine, now=NOW + timedelta(minutes=1), settings=settings)
    assert len(first) == 1 and again == []
    with engine.connect() as conn:
        job = conn.execute(select(JOB_TABLE)).one()
    assert (job.partner_id, job.kind, job.state) == (partner_id, RunKind.SCHEDULED, JobState.QUEUED)


def test_a_busy_partners_scheduled_job_waits_in_the_queue_instead_of_failing(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=2))

    def no_client(connection, on_event):
        raise AssertionError("a job that cannot start never builds a client")

    # the partner's lock is held by a live manual fetch: the scheduled job goes back to the queue, a little later
    runs.start_run(engine, partner_id=partner_id, partner_name="p", kind=RunKind.FETCH_NEW_DATA, trigger="manual",
                   actor="cs", now=NOW, settings=settings)
    assert scheduler.tick(engine, now=NOW, settings=settings, client_factory=no_client) == []
    with engine.connect() as conn:
        job = conn.execute(select(JOB_TABLE)).one()
    assert job.state == JobState.QUEUED and job.run_id is None and "already running" in job.outcome


def test_a_scheduler_that_looked_before_another_queued_and_ran_the_partner_does_not_queue_it_again(
        engine, settings, monkeypatch):
    """The look (nothing queued this interval) and the insert are not one step: between them another scheduler may
    queue the partner and a worker run that job to the end (its one-active-job key is free again). The job written
    after such a look is rolled back, so the partner still runs once per interval (the fleet test found it)."""
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=2))
    enqueue = jobs.enqueue

    def another_scheduler_and_worker_first(conn, **kwargs):
        monkeypatch.setattr(jobs, "enqueue", enqueue)
        assert len(scheduler.enqueue_due(engine, now=NOW, settings=settings)) == 1
        [job] = jobs.claim(engine, owner="worker", lane=Lane.SHORT, limit=1, lease=timedelta(seconds=30))
        with engine.begin() as other:
            assert jobs.close(other, job, outcome="succeeded", status=RunStatus.SUCCEEDED)
        return enqueue(conn, **kwargs)

    monkeypatch.setattr(jobs, "enqueue", another_scheduler_and_worker_first)
    assert scheduler.enqueue_due(engine, now=NOW, settings=settings) == []
    with engine.connect() as conn:
        assert conn.execute(select(JOB_TABLE.c.partner_id, JOB_TABLE.c.kind)).all() == [
            (partner_id, RunKind.SCHEDULED)]


def test_who_is_due_takes_one_query_however_many_partners(engine, settings):
    def queries_for(partners: int) -> int:
        with engine.begin() as conn:
            conn.execute(JOB_TABLE.delete())
        for number in range(partners):
            partner_id = add_partner(engine, settings, name=f"Fleet {partners}-{number}", now=NOW - timedelta(days=2))
            add_run(engine, settings, partner_id, at=NOW - timedelta(hours=2))
        statements: list[str] = []
        listen = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listen)
        try:
            list(scheduler.due_partners(engine, now=NOW, settings=settings))
        finally:
            event.remove(engine, "before_cursor_execute", listen)
        return len(statements)

    assert queries_for(2) == queries_for(20) == 1


def test_the_scheduler_keeps_the_database_clock_unless_the_clock_is_pinned(engine, settings):
    assert scheduler.clock(engine, settings) == settings.fixed_now
    with engine.connect() as conn:
        database_now = jobs.lease_now(conn)
    assert abs(scheduler.clock(engine, replace(settings, fixed_now=None)) - database_now) < timedelta(seconds=5)


@pytest.mark.parametrize(("history", "expected"), [
    ([], timedelta(0)),  # never synced: due now
    ([("fetch", timedelta(minutes=-20), RunStatus.SUCCEEDED)], timedelta(minutes=40)),  # a manual fetch's window
    ([("fetch", timedelta(minutes=-20), RunStatus.FAILED)], timedelta(0)),  # a failed fetch holds nothing back
    ([("scheduled", timedelta(minutes=-50), RunStatus.FAILED)], timedelta(minutes=10)),  # retried once per interval
    ([("scheduled", timedelta(minutes=-50), RunStatus.FAILED), ("fetch", timedelta(minutes=-5), RunStatus.SUCCEEDED)],
     timedelta(minutes=55)),
    ([("scheduled", timedelta(minutes=-70), RunStatus.SUCCEEDED)], timedelta(0)),
])
def test_the_next_sync_time_is_the_moment_the_scheduler_finds_the_partner_due(engine, settings, history, expected):
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=2))
    for kind, offset, status in history:
        manual = kind == "fetch"
        add_run(engine, settings, partner_id, at=NOW + offset, status=status,
                kind=RunKind.FETCH_NEW_DATA if manual else RunKind.SCHEDULED,
                trigger="manual" if manual else "schedule")
    interval = timedelta(seconds=settings.schedule_interval_s)
    with engine.connect() as conn:
        at = scheduler.next_sync_times(conn, now=NOW, interval=interval)[partner_id]
    assert at == NOW + expected
    if expected:
        assert scheduler.due_partners(engine, now=at - timedelta(seconds=1), settings=settings) == []
    assert scheduler.due_partners(engine, now=at, settings=settings) == [partner_id]
    with engine.connect() as conn:  # the same answer whenever it is asked before then
        assert scheduler.next_sync_times(conn, now=NOW + expected / 2, interval=interval,
                                         partner_id=partner_id) == {partner_id: at}


def test_one_partners_next_sync_time_reads_only_that_partners_runs(engine, settings):
    """The freshness line on every partner page asks for one partner: its runs are read through its own index range,
    not the whole fleet's last interval."""
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=2))
    statements: list[str] = []
    listen = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listen)
    try:
        with engine.connect() as conn:
            scheduler.next_sync_times(conn, now=NOW, interval=timedelta(hours=1), partner_id=partner_id)
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    [statement] = statements
    assert "syncrun.partner_id =" in " ".join(statement.split())


def _finish_jobs(engine):
    with engine.begin() as conn:
        conn.execute(JOB_TABLE.update().values(state=JobState.DONE, active_key=None))


def test_daily_reconciliation_is_off_by_default(engine, settings):
    add_partner(engine, settings, now=NOW - timedelta(days=2))
    assert not settings.reconcile_daily
    assert scheduler.enqueue_reconciliations(engine, now=NOW + timedelta(days=1), settings=settings) == []


def test_daily_reconciliation_queues_each_primary_partner_once_a_day_at_its_spread_slot(engine, settings):
    daily = replace(settings, reconcile_daily=True)
    first = add_partner(engine, settings, name="First", now=NOW - timedelta(days=2))
    second = add_partner(engine, settings, name="Second", now=NOW - timedelta(days=2))
    add_partner(engine, settings, name="Secondary", now=NOW - timedelta(days=2), role=IntegrationRole.SECONDARY)
    slots = {pid: scheduler.reconcile_slot(pid, NOW) for pid in (first, second)}
    assert slots[first] != slots[second] and all(slot.date() == NOW.date() for slot in slots.values())
    early, late = sorted(slots, key=slots.__getitem__)
    assert scheduler.enqueue_reconciliations(engine, now=slots[early] - timedelta(seconds=1), settings=daily) == []
    assert len(scheduler.enqueue_reconciliations(engine, now=slots[early], settings=daily)) == 1
    _finish_jobs(engine)  # done: the same day never queues it again, however many schedulers look
    assert scheduler.enqueue_reconciliations(engine, now=slots[early] + timedelta(minutes=5), settings=daily) == []
    assert len(scheduler.enqueue_reconciliations(engine, now=slots[late], settings=daily)) == 1
    _finish_jobs(engine)
    next_day = scheduler.reconcile_slot(early, NOW + timedelta(days=1))
    assert len(scheduler.enqueue_reconciliations(engine, now=next_day, settings=daily)) == 1
    with engine.connect() as conn:
        queued = conn.execute(select(JOB_TABLE.c.partner_id, JOB_TABLE.c.kind, JOB_TABLE.c.lane)
                              .order_by(JOB_TABLE.c.id)).all()
    assert queued == [(early, RunKind.RECONCILE, Lane.LONG), (late, RunKind.RECONCILE, Lane.LONG),
                      (early, RunKind.RECONCILE, Lane.LONG)]


def test_the_daily_reconciliation_setting_refuses_an_unknown_word():
    assert settings_from_mapping({"HALO_RECONCILE_DAILY": "on"}).reconcile_daily
    with pytest.raises(ValueError, match="HALO_RECONCILE_DAILY must be on or off"):
        settings_from_mapping({"HALO_RECONCILE_DAILY": "daily"})
