from datetime import timedelta

from sqlalchemy import select

from core.store.tables import JOB_TABLE, IntegrationRole, JobState, RunKind, RunStatus
from core.sync import runs, scheduler
from tests.support.clock import NOW
from tests.support.factories import add_partner, add_run


def test_due_partners_are_the_primary_ones_whose_last_sync_is_an_interval_old(engine, settings):
    fresh = add_partner(engine, settings, name="Fresh", now=NOW - timedelta(days=2))
    stale = add_partner(engine, settings, name="Stale", now=NOW - timedelta(days=2))
    never = add_partner(engine, settings, name="Never", now=NOW - timedelta(days=2))
    add_partner(engine, settings, name="Secondary", now=NOW - timedelta(days=2), role=IntegrationRole.SECONDARY)
    add_run(engine, settings, fresh, at=NOW - timedelta(minutes=20), kind=RunKind.BACKFILL)
    add_run(engine, settings, stale, at=NOW - timedelta(hours=2), kind=RunKind.BACKFILL)
    assert list(scheduler.iter_due_partners(engine, now=NOW, settings=settings)) == [stale, never]


def test_a_failing_partner_is_retried_once_per_interval_not_every_tick(engine, settings):
    failing = add_partner(engine, settings, now=NOW - timedelta(days=2))
    add_run(engine, settings, failing, at=NOW - timedelta(minutes=5), status=RunStatus.FAILED)
    assert list(scheduler.iter_due_partners(engine, now=NOW, settings=settings)) == []
    later = NOW + timedelta(seconds=settings.schedule_interval_s)
    assert list(scheduler.iter_due_partners(engine, now=later, settings=settings)) == [failing]


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
