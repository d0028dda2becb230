"""The worker service against the in-process emulator: it runs what is queued, keeps long jobs to their share of
threads, hands a job back when it stops, and recovers the job of a worker that died."""

import threading
import time
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import OperationalError

from core.access import Principal
from core.actions import connect as connections
from core.actions import fetches
from core.errors import CooldownActive
from core.store.tables import JOB_TABLE, PARTNER_TABLE, RUN_TABLE, JobState, Lane, Role, RunKind, RunStatus, RunTrigger
from core.sync import connector, jobs, runs, scheduler, worker
from core.sync.worker import Worker, WorkerConfig
from halo_emulator import FaultRule, HaloEmulator
from tests.support.clock import NOW
from tests.support.halo_state import differences, expected_invoices, stored_invoices

CS = Principal(role=Role.CS, user="cs@example.com")
CONFIG = WorkerConfig(threads=2, long_threads=1, lease=timedelta(seconds=30), poll_s=0.05)


@pytest.fixture
def sync_settings(settings):
    return replace(settings, page_size=100, max_attempts=2, backoff_cap_s=0.01, rate_limit_requests=10**6)


@pytest.fixture
def emu():
    return HaloEmulator(seed=5, invoices=600, start=NOW, rate_limit=None)


def _connect(engine, settings, emu, name="Acme MSP"):
    form = connections.ConnectionForm(partner_name=name, app_domain=f"https://{name.split()[0].lower()}.halopsa.com",
                                      client_id=emu.client_id, client_secret=emu.client_secret)
    partner_id, _ = connections.connect(engine, CS, form, now=emu.now, settings=settings, transport=emu.transport())
    return partner_id


def _worker(engine, settings, emu, config=CONFIG):
    return Worker(engine, settings, connector.stored_client_factory(settings, transport=emu.transport()), config)


def _mismatch(engine, emu, partner_id):
    """Every invoice of HaloPSA stored exactly as it is there (the default number field, the HaloPSA id)."""
    return differences(expected_invoices(emu), stored_invoices(engine, partner_id))


def _jobs(engine):
    with engine.connect() as conn:
        return conn.execute(select(JOB_TABLE).order_by(JOB_TABLE.c.id)).all()


def _backfill_run_held_by(owner, engine, settings, emu):
    """A partner whose backfill job `owner` (a worker of another host) claimed and started a run of."""
    partner_id = _connect(engine, settings, emu)
    with engine.begin() as conn:
        jobs.enqueue(conn, partner_id=partner_id, kind=RunKind.BACKFILL, trigger=RunTrigger.CONNECT,
                     requested_by="cs", now=emu.now)
    [job] = jobs.claim(engine, owner=owner, lane=Lane.LONG, limit=1, lease=CONFIG.lease)
    run_id = runs.start_run(engine, partner_id=partner_id, partner_name="Acme MSP", kind=RunKind.BACKFILL,
                            trigger=RunTrigger.CONNECT, actor="cs", now=NOW, settings=settings, job_id=job.id)
    return partner_id, job, run_id


def test_a_worker_runs_every_queued_job_and_the_books_match_halopsa(engine, sync_settings, emu):
    partner_id = _connect(engine, sync_settings, emu)
    assert scheduler.enqueue_due(engine, now=emu.now, settings=sync_settings)  # never synced: due, a backfill
    _worker(engine, sync_settings, emu).run_until_idle()
    [job] = _jobs(engine)
    assert job.state == JobState.DONE and job.active_key is None and job.run_id is not None
    with engine.connect() as conn:
        run = conn.execute(select(RUN_TABLE).where(RUN_TABLE.c.id == job.run_id)).one()
    assert (run.kind, run.status, run.job_id) == (RunKind.BACKFILL, RunStatus.SUCCEEDED, job.id)
    assert _mismatch(engine, emu, partner_id) == []


def test_long_jobs_hold_at_most_their_share_of_threads(engine, sync_settings, emu):
    service = _worker(engine, sync_settings, emu, replace(CONFIG, threads=3, long_threads=1))
    assert (service.free(Lane.LONG), service.free(Lane.SHORT)) == (1, 3)
    service._busy[Lane.LONG] = 1  # one backfill running
    assert (service.free(Lane.LONG), service.free(Lane.SHORT)) == (0, 2)
    service.stop()


def test_a_stopping_worker_hands_its_job_back_after_a_page_and_the_next_worker_finishes_it(engine, sync_settings,
                                                                                           emu):
    partner_id = _connect(engine, sync_settings, emu)
    with engine.begin() as conn:
        job_id = jobs.enqueue(conn, partner_id=partner_id, kind=RunKind.BACKFILL, trigger=RunTrigger.CONNECT,
                              requested_by="cs", now=emu.now)
    [job] = jobs.claim(engine, owner="first", lane=Lane.LONG, limit=1, lease=CONFIG.lease)
    stopping = threading.Event()
    stopping.set()  # SIGTERM arrived: the run stops after the page it is on
    factory = connector.stored_client_factory(sync_settings, transport=emu.transport())
    result = worker.execute(engine, sync_settings, factory, job, lease=CONFIG.lease, stopping=stopping)
    assert result is not None and result.status == RunStatus.INTERRUPTED and result.tally.pages == 1
    assert "queued again" in (result.error or "")
    [queued] = _jobs(engine)
    assert (queued.id, queued.state, queued.active_key is not None) == (job_id, JobState.QUEUED, True)

    _worker(engine, sync_settings, emu).run_until_idle()
    assert _jobs(engine)[0].state == JobState.DONE
    assert _mismatch(engine, emu, partner_id) == []


def test_the_job_of_a_worker_that_died_is_recovered_with_the_true_reason_and_rerun(engine, sync_settings, emu):
    partner_id = _connect(engine, sync_settings, emu)
    with engine.begin() as conn:
        jobs.enqueue(conn, partner_id=partner_id, kind=RunKind.BACKFILL, trigger=RunTrigger.CONNECT,
                     requested_by="cs", now=emu.now)
    [job] = jobs.claim(engine, owner=f"{runs.worker_id().split(':')[0]}:999999:gone", lane=Lane.LONG, limit=1,
                       lease=CONFIG.lease)
    run_id = runs.start_run(engine, partner_id=partner_id, partner_name="Acme MSP", kind=RunKind.BACKFILL,
                            trigger=RunTrigger.CONNECT, actor="cs", now=NOW, settings=sync_settings, job_id=job.id)
    live = _worker(engine, sync_settings, emu)
    assert worker.recover_expired(engine) == 1  # its process is gone: no need to wait for the lease to run out
    with engine.connect() as conn:
        run = conn.execute(select(RUN_TABLE).where(RUN_TABLE.c.id == run_id)).one()
    assert run.status == RunStatus.INTERRUPTED and run.error == worker.WORKER_STOPPED
    live.run_until_idle()
    assert _jobs(engine)[0].state == JobState.DONE and _mismatch(engine, emu, partner_id) == []


def test_a_live_lease_is_never_taken_over(engine, sync_settings, emu):
    partner_id, job, run_id = _backfill_run_held_by("elsewhere:1:alive", engine, sync_settings, emu)
    # hours pass on the run's (pinned) clock while the owner, on another host, keeps renewing: still alive
    later = NOW + timedelta(hours=3)
    assert worker.recover_expired(engine) == 0
    assert runs.recover_interrupted(engine, now=later, settings=sync_settings) == 0
    with engine.begin() as conn:  # the owner stops renewing: the lease runs out
        conn.execute(update(JOB_TABLE).values(lease_expires_at=NOW - timedelta(days=30)))
    # only through its job: a run interrupted on its own frees the partner while its owner, should it come back,
    # still holds the job and writes (and rewrites "interrupted")
    assert runs.recover_interrupted(engine, now=later, settings=sync_settings) == 0
    assert worker.recover_expired(engine) == 1
    with engine.connect() as conn:
        assert conn.scalar(select(RUN_TABLE.c.status).where(RUN_TABLE.c.id == run_id)) == RunStatus.INTERRUPTED


@pytest.mark.timeout(20)
def test_a_stop_asked_while_the_poll_wait_holds_its_lock_stops_the_worker(engine, sync_settings, emu):
    """SIGTERM's handler runs in the main thread, between two bytecodes of whatever it was doing: possibly inside the
    poll loop's `stopping.wait`, holding the event's own (non-reentrant) lock. Setting the event right there waits
    for that lock for ever (`python -m core worker` hung on SIGTERM in the fleet test); `request_stop` does not."""
    service = _worker(engine, sync_settings, emu)
    with service.stopping._cond:  # where the main thread is while it waits between polls
        service.request_stop()
    service.run()  # the loop sees the request at once, and stops
    assert service.stopping.is_set()


def _someone_waits_on_a_lock(engine) -> bool:
    """PostgreSQL: a session of this database waits on a row lock (SQLite's writers wait on one file lock)."""
    with engine.connect() as conn:
        return bool(conn.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                     "AND wait_event_type = 'Lock'")))


def test_recovering_a_lease_while_its_owner_commits_a_late_page_waits_for_the_page_and_never_deadlocks(
        engine, sync_settings, emu):
    """The owner's page locks the job row (the fence), then the run and the partner; recovery must take them in the
    same order, or on PostgreSQL each waits for the other and one is killed as a deadlock (the worker whose poll it
    was died with it: the paused-worker lease test found it). Here recovery starts while the page is open, and runs
    once it has committed."""
    partner_id, job, run_id = _backfill_run_held_by("elsewhere:1:paused", engine, sync_settings, emu)
    with engine.begin() as conn:  # the owner was paused past its lease
        conn.execute(update(JOB_TABLE).values(lease_expires_at=NOW - timedelta(days=30)))
    failures: list[BaseException] = []

    def recover() -> None:
        try:
            worker.recover_expired(engine)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            failures.append(exc)

    recovery = threading.Thread(target=recover)
    with engine.begin() as page:  # the owner, resumed, commits the page it was on, as _store_page does
        jobs.fence(page, job)
        recovery.start()
        if engine.dialect.name == "postgresql":
            deadline = time.monotonic() + 10
            while not _someone_waits_on_a_lock(engine):
                assert time.monotonic() < deadline, "recovery never waited on the page"
                time.sleep(0.01)
        else:
            time.sleep(0.3)
        runs.save_progress(page, run_id, partner_id, now=NOW, pages=1)
    recovery.join(30)
    assert failures == []
    with engine.connect() as conn:
        run = conn.execute(select(RUN_TABLE).where(RUN_TABLE.c.id == run_id)).one()
    assert (run.pages, run.status, run.error) == (1, RunStatus.INTERRUPTED, worker.WORKER_STOPPED)
    assert _jobs(engine)[0].state == JobState.QUEUED


def test_a_manual_fetch_handed_back_by_a_stopping_worker_keeps_its_cooldown_for_its_rerun(engine, sync_settings, emu):
    """The job goes back to the queue and its rerun serves the press, so the cooldown stays taken even when the first
    page changed nothing: giving it back too would let a second fetch be pressed while the first one still runs."""
    partner_id = _connect(engine, sync_settings, emu)
    scheduler.enqueue_due(engine, now=emu.now, settings=sync_settings)
    _worker(engine, sync_settings, emu).run_until_idle()  # backfilled: the unpaid pages change nothing now
    fetches.request_manual_fetch(engine, CS, partner_id=partner_id, kind=RunKind.FETCH_UNPAID, now=emu.now,
                                 settings=sync_settings)
    [job] = jobs.claim(engine, owner="stopping", lane=Lane.LONG, limit=1, lease=CONFIG.lease)
    stopping = threading.Event()
    stopping.set()
    factory = connector.stored_client_factory(sync_settings, transport=emu.transport())
    result = worker.execute(engine, sync_settings, factory, job, lease=CONFIG.lease, stopping=stopping)

    assert result is not None and result.status == RunStatus.INTERRUPTED and not result.cooldown_refunded
    assert result.tally.created + result.tally.updated == 0
    _worker(engine, sync_settings, emu).run_until_idle()  # the rerun serves the press
    assert _jobs(engine)[-1].state == JobState.DONE
    with pytest.raises(CooldownActive):  # and the fetch stays locked for its cooldown
        fetches.request_manual_fetch(engine, CS, partner_id=partner_id, kind=RunKind.FETCH_UNPAID, now=emu.now,
                                     settings=sync_settings)


def test_a_failed_poll_is_logged_and_the_worker_polls_again(engine, sync_settings, emu, monkeypatch, caplog):
    """A dropped connection or a deadlock victim in a poll must not end the worker process: the next poll runs the
    job."""
    partner_id = _connect(engine, sync_settings, emu)
    scheduler.enqueue_due(engine, now=emu.now, settings=sync_settings)
    claim, failures = jobs.claim, []

    def fails_once(*args, **kwargs):
        if not failures:
            failures.append("claim")
            raise OperationalError("SELECT … FOR UPDATE SKIP LOCKED", {}, Exception("server closed the connection"))
        return claim(*args, **kwargs)

    monkeypatch.setattr(jobs, "claim", fails_once)
    service = _worker(engine, sync_settings, emu)
    service.run(until=lambda: _jobs(engine)[0].state == JobState.DONE)

    assert failures and "polling the job queue failed" in caplog.text
    assert _mismatch(engine, emu, partner_id) == []


def test_a_job_recovered_before_its_run_starts_leaves_no_run_and_no_lock_behind(engine, sync_settings, emu):
    """A worker paused between its claim and its run's start comes back after recovery took the job: starting the run
    anyway left a run holding the partner's lock for a job it no longer held, later interrupted with a made-up reason
    (the paused-worker process test caught it on PostgreSQL)."""
    partner_id = _connect(engine, sync_settings, emu)
    scheduler.enqueue_due(engine, now=emu.now, settings=sync_settings)
    [stale] = jobs.claim(engine, owner="paused", lane=Lane.SHORT, limit=1, lease=timedelta(seconds=-1))
    assert worker.recover_expired(engine) == 1  # the paused worker's lease ran out: the job is queued again

    factory = connector.stored_client_factory(sync_settings, transport=emu.transport())
    assert worker.execute(engine, sync_settings, factory, stale, lease=CONFIG.lease) is None

    with engine.connect() as conn:
        assert conn.execute(select(RUN_TABLE)).all() == []
        assert conn.scalar(select(PARTNER_TABLE.c.lock_run_id).where(PARTNER_TABLE.c.id == partner_id)) is None
    _worker(engine, sync_settings, emu).run_until_idle()  # the job's next claim runs it
    assert _mismatch(engine, emu, partner_id) == []


def test_a_long_rate_limit_ends_the_run_rate_limited_and_hands_the_job_back_until_the_wait_is_over(engine,
                                                                                                   sync_settings, emu):
    """HaloPSA asks for a day (Retry-After: 86400): the run stops at once with the pages it read kept, and the job
    waits in the queue for the rate window (5 min, the most an honest wait can be) instead of a worker sleeping."""
    partner_id = _connect(engine, sync_settings, emu)
    scheduler.enqueue_due(engine, now=emu.now, settings=sync_settings)
    rule = emu.add_fault(FaultRule(kind="rate_limit", path="/api/invoice", after=2, times=1, retry_after=86400))
    _worker(engine, sync_settings, emu).run_until_idle()

    [job] = _jobs(engine)
    with engine.connect() as conn:
        queue_now = jobs.lease_now(conn)
        [run] = conn.execute(select(RUN_TABLE).where(RUN_TABLE.c.job_id == job.id)).all()
    assert rule.fired == 1 and emu.stats.entries("/api/Invoice")[-1].query["page_no"] == "3"  # asked once, no retry
    assert (job.state, job.active_key is not None, job.run_id, job.attempts) == (JobState.QUEUED, True, None, 0)
    assert queue_now < job.not_before <= queue_now + timedelta(seconds=sync_settings.rate_limit_window_s)
    assert "starts after" in job.outcome or "5 min" in job.outcome
    assert run.status == RunStatus.RATE_LIMITED and run.finished_at is not None and "5 min" in run.error
    assert run.invoices_seen == 200 and len(stored_invoices(engine, partner_id)) == 200  # progress kept

    with engine.begin() as conn:  # the wait is over
        conn.execute(update(JOB_TABLE).values(not_before=queue_now))
    _worker(engine, sync_settings, emu).run_until_idle()
    [job] = _jobs(engine)
    assert job.state == JobState.DONE and job.attempts == 1
    assert _mismatch(engine, emu, partner_id) == []


def test_a_tenant_that_always_asks_for_a_day_is_handed_back_a_bounded_number_of_times(engine, sync_settings, emu):
    """Every hand-back is honest (one rate window), but a tenant that never lets up must not keep a job cycling
    through the queue forever: after MAX_RATE_LIMIT_HANDBACKS the job ends, saying so; the next sync starts afresh."""
    partner_id = _connect(engine, sync_settings, emu)
    scheduler.enqueue_due(engine, now=emu.now, settings=sync_settings)
    emu.add_fault(FaultRule(kind="rate_limit", path="/api/invoice", times=None, retry_after=86400))
    for _ in range(jobs.MAX_RATE_LIMIT_HANDBACKS + 2):
        _worker(engine, sync_settings, emu).run_until_idle()
        with engine.begin() as conn:  # the wait is over
            conn.execute(update(JOB_TABLE).values(not_before=jobs.lease_now(conn)))
    [job] = _jobs(engine)
    with engine.connect() as conn:
        statuses = list(conn.scalars(select(RUN_TABLE.c.status).where(RUN_TABLE.c.job_id == job.id)))
    assert job.state == JobState.DONE and job.active_key is None
    assert statuses == [RunStatus.RATE_LIMITED] * (jobs.MAX_RATE_LIMIT_HANDBACKS + 1)
    assert "kept asking" in job.outcome and "continues by itself" not in job.outcome
    assert partner_id


def test_a_rate_limit_that_outlasts_the_retries_ends_the_job(engine, sync_settings, emu):
    """Persistent 429s with short waits: the run ends rate limited after its attempts, and the job is done (the next
    scheduled sync or press runs again); only a wait longer than the client will sleep hands the job back."""
    partner_id = _connect(engine, sync_settings, emu)
    scheduler.enqueue_due(engine, now=emu.now, settings=sync_settings)
    emu.add_fault(FaultRule(kind="rate_limit", path="/api/invoice", times=None, retry_after=0))
    _worker(engine, sync_settings, emu).run_until_idle()
    [job] = _jobs(engine)
    assert job.state == JobState.DONE and job.active_key is None
    with engine.connect() as conn:
        status = conn.scalar(select(RUN_TABLE.c.status).where(RUN_TABLE.c.job_id == job.id))
    assert status == RunStatus.RATE_LIMITED
    emu.clear_faults()
    with engine.begin() as conn:  # nothing stands in the way of the next sync
        jobs.enqueue(conn, partner_id=partner_id, kind=RunKind.BACKFILL, trigger=RunTrigger.CONNECT,
                     requested_by="cs", now=emu.now)
    _worker(engine, sync_settings, emu).run_until_idle()
    assert _mismatch(engine, emu, partner_id) == []
