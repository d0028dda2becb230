from datetime import timedelta

import pytest
from sqlalchemy import select, update

from core.errors import SyncAlreadyQueued
from core.store.tables import JOB_TABLE, JobState, Lane, RunKind, RunStatus, RunTrigger
from core.sync import jobs, worker
from tests.support.clock import NOW
from tests.support.factories import add_partner

LEASE = timedelta(seconds=30)


def _enqueue(engine, partner_id, kind=RunKind.SCHEDULED):
    with engine.begin() as conn:
        return jobs.enqueue(conn, partner_id=partner_id, kind=kind, trigger=RunTrigger.SCHEDULE,
                            requested_by="scheduler", now=NOW)


def _job(engine, job_id):
    with engine.connect() as conn:
        return conn.execute(select(JOB_TABLE).where(JOB_TABLE.c.id == job_id)).one()


def test_a_partner_has_one_queued_or_running_job_per_kind(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    first = _enqueue(engine, partner_id)
    with pytest.raises(SyncAlreadyQueued, match="already queued"):
        _enqueue(engine, partner_id)
    _enqueue(engine, partner_id, RunKind.FETCH_UNPAID)  # another kind is another job
    [claimed] = jobs.claim(engine, owner="w1", lane=Lane.SHORT, limit=5, lease=LEASE)
    with engine.begin() as conn:
        assert jobs.close(conn, claimed, outcome="done", status=RunStatus.SUCCEEDED)
    assert _job(engine, first).state == JobState.DONE
    _enqueue(engine, partner_id)  # once done, the partner can be queued again


def test_claims_take_each_job_once_by_lane_and_bump_the_epoch(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    short, long = _enqueue(engine, partner_id), _enqueue(engine, partner_id, RunKind.BACKFILL)
    assert [j.id for j in jobs.claim(engine, owner="w1", lane=Lane.LONG, limit=5, lease=LEASE)] == [long]
    [claimed] = jobs.claim(engine, owner="w2", lane=Lane.SHORT, limit=5, lease=LEASE)
    assert (claimed.id, claimed.epoch, claimed.attempts) == (short, 1, 1)
    assert jobs.claim(engine, owner="w3", lane=Lane.SHORT, limit=5, lease=LEASE) == []


def test_a_run_that_lost_its_lease_cannot_write_and_cannot_renew(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    _enqueue(engine, partner_id)
    [mine] = jobs.claim(engine, owner="w1", lane=Lane.SHORT, limit=1, lease=LEASE)
    with engine.begin() as conn:  # recovery handed the job to another worker: the epoch moved on
        conn.execute(update(JOB_TABLE).values(lease_epoch=JOB_TABLE.c.lease_epoch + 1))
    with pytest.raises(jobs.LeaseLost), engine.begin() as conn:
        jobs.fence(conn, mine)
    assert not jobs.renew(engine, mine, lease=LEASE)


def test_a_cancel_request_stops_the_run_at_its_next_page(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    _enqueue(engine, partner_id)
    [mine] = jobs.claim(engine, owner="w1", lane=Lane.SHORT, limit=1, lease=LEASE)
    assert jobs.renew(engine, mine, lease=LEASE)
    with engine.begin() as conn:
        conn.execute(update(JOB_TABLE).values(cancel_requested_by="cs@example.com"))
    with pytest.raises(jobs.JobCancelled) as cancelled, engine.begin() as conn:
        jobs.fence(conn, mine)
    assert cancelled.value.by == "cs@example.com"
    with engine.begin() as conn:  # the finish may still close it, as cancelled
        jobs.fence(conn, mine, allow_cancelled=True)
        assert jobs.close(conn, mine, outcome="Cancelled", status=RunStatus.CANCELLED)
    assert _job(engine, mine.id).state == JobState.CANCELLED and _job(engine, mine.id).active_key is None


def test_hand_backs_are_not_attempts_so_a_job_that_waited_often_still_survives_its_workers_crash(engine, settings):
    """A job handed back because its partner was busy or its worker was stopping did not fail: only a worker that
    died counts toward the attempts after which a job is given up."""
    partner_id = add_partner(engine, settings, now=NOW)
    job_id = _enqueue(engine, partner_id)
    for round_ in range(2 * jobs.MAX_ATTEMPTS):
        [claimed] = jobs.claim(engine, owner=f"w{round_}", lane=Lane.SHORT, limit=1, lease=LEASE)
        if round_ % 2:
            with engine.begin() as conn:  # the worker is stopping: the run ended at a page, the job goes back
                assert jobs.close(conn, claimed, outcome="the worker stopped", status=RunStatus.INTERRUPTED)
        else:
            assert jobs.requeue(engine, claimed, after=timedelta(0), outcome="the partner is busy")
    assert (_job(engine, job_id).state, _job(engine, job_id).attempts) == (JobState.QUEUED, 0)

    jobs.claim(engine, owner="dies", lane=Lane.SHORT, limit=1, lease=timedelta(seconds=-1))  # then its worker dies
    assert worker.recover_expired(engine) == 1
    assert _job(engine, job_id).state == JobState.QUEUED  # tried again, not given up


def test_a_claim_leases_at_most_its_limit_however_many_jobs_are_due(engine, settings):
    """PostgreSQL may run an `id IN (SELECT … LIMIT k FOR UPDATE SKIP LOCKED)` subquery once per updated row, each time
    skipping what it just locked: a claim of 2 then leased up to 20 jobs (the fleet benchmark found it)."""
    for number in range(30):
        _enqueue(engine, add_partner(engine, settings, name=f"Partner {number}", now=NOW))
    claimed = jobs.claim(engine, owner="w1", lane=Lane.SHORT, limit=2, lease=LEASE)
    with engine.connect() as conn:
        running = conn.scalars(select(JOB_TABLE.c.id).where(JOB_TABLE.c.state == JobState.RUNNING)).all()
    assert len(claimed) == 2 and sorted(running) == sorted(job.id for job in claimed)
