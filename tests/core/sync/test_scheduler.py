from datetime import timedelta

from core.store.tables import IntegrationRole, RunKind, RunStatus
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


def test_a_tick_runs_each_due_partner_and_reports_a_refusal_instead_of_failing(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=2))
    refused = []

    def no_client(connection, on_event):
        raise AssertionError("a refused run never builds a client")

    # the partner's lock is held by a live run: the tick is refused for it and says so
    runs.start_run(engine, partner_id=partner_id, partner_name="p", kind=RunKind.FETCH_NEW_DATA, trigger="manual",
                   actor="cs", now=NOW, settings=settings)
    results = scheduler.tick(engine, now=NOW, settings=settings, client_factory=no_client, on_refused=refused.append)
    assert results == []
    assert [type(exc).__name__ for exc in refused] == ["SyncAlreadyRunning"]
