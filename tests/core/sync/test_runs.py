import multiprocessing
import os
import threading
from datetime import timedelta

from sqlalchemy import select

from core.errors import CooldownActive, SyncAlreadyRunning
from core.store import database, tables
from core.store.tables import Partner, RunKind, RunStatus, SyncRun
from core.sync import runs
from tests.support.clock import NOW
from tests.support.factories import add_partner


def test_a_dead_workers_run_is_interrupted_and_the_partner_unblocked(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    run_id = runs.start_run(engine, partner_id=partner_id, partner_name="Acme MSP", kind=RunKind.BACKFILL,
                            trigger="connect", actor="x", now=NOW, settings=settings)
    with engine.begin() as conn:  # pretend the worker was a process that has exited
        conn.execute(tables.RUN_TABLE.update().values(worker=f"{runs.worker_id().rpartition(':')[0]}:999999"))
    assert runs.recover_interrupted(engine, now=NOW, settings=settings) == 1
    with engine.connect() as conn:
        run = conn.execute(select(tables.RUN_TABLE).where(tables.RUN_TABLE.c.id == run_id)).one()
        lock = conn.scalar(select(Partner.__table__.c.lock_run_id))
    assert run.status == RunStatus.INTERRUPTED and "stopped unexpectedly" in run.error
    assert lock is None
    runs.start_run(engine, partner_id=partner_id, partner_name="Acme MSP", kind=RunKind.SCHEDULED,
                   trigger="schedule", actor="x", now=NOW, settings=settings)


def test_a_stale_heartbeat_is_taken_over_by_the_next_run(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    stale = runs.start_run(engine, partner_id=partner_id, partner_name="Acme MSP", kind=RunKind.BACKFILL,
                           trigger="connect", actor="x", now=NOW, settings=settings)
    later = NOW + timedelta(seconds=settings.stale_run_after_s + 1)
    fresh = runs.start_run(engine, partner_id=partner_id, partner_name="Acme MSP", kind=RunKind.SCHEDULED,
                           trigger="schedule", actor="x", now=later, settings=settings)
    with engine.connect() as conn:
        statuses = dict(conn.execute(select(SyncRun.__table__.c.id, SyncRun.__table__.c.status)).all())
    assert statuses == {stale: RunStatus.INTERRUPTED, fresh: RunStatus.RUNNING}


def _press(url, secret_key, partner_id, results, barrier):
    from core.settings import Settings

    settings = Settings(database_url=url, secret_key=secret_key)
    engine = database.make_engine(url)
    barrier.wait()
    try:
        runs.start_run(engine, partner_id=partner_id, partner_name="Acme MSP", kind=RunKind.FETCH_NEW_DATA,
                       trigger="manual", actor=f"pid{os.getpid()}", now=NOW, settings=settings, claim_cooldown=True)
        results.put("started")
    except (SyncAlreadyRunning, CooldownActive) as exc:
        results.put(type(exc).__name__)
    finally:
        engine.dispose()


def test_many_processes_and_threads_pressing_at_once_start_exactly_one_run(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    workers = 6
    barrier = ctx.Barrier(workers)
    procs = [ctx.Process(target=_press, args=(settings.database_url, settings.secret_key, partner_id, results, barrier))
             for _ in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    outcomes = [results.get(timeout=5) for _ in procs]
    assert outcomes.count("started") == 1
    assert len(outcomes) == workers

    other = add_partner(engine, settings, name="Globex MSP", now=NOW)
    thread_results: list[str] = []
    lock = threading.Lock()

    def press_in_thread():
        try:
            runs.start_run(engine, partner_id=other, partner_name="Globex MSP", kind=RunKind.FETCH_UNPAID,
                           trigger="manual", actor="t", now=NOW, settings=settings, claim_cooldown=True)
            outcome = "started"
        except (SyncAlreadyRunning, CooldownActive) as exc:
            outcome = type(exc).__name__
        with lock:
            thread_results.append(outcome)

    threads = [threading.Thread(target=press_in_thread) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert thread_results.count("started") == 1
    assert len(thread_results) == 8


def test_an_interrupted_run_is_never_rewritten_as_succeeded_by_its_late_finish(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    run_id = runs.start_run(engine, partner_id=partner_id, partner_name="Acme MSP", kind=RunKind.SCHEDULED,
                            trigger="schedule", actor="x", now=NOW, settings=settings)
    later = NOW + timedelta(seconds=settings.stale_run_after_s + 1)
    assert runs.recover_interrupted(engine, now=later, settings=settings) == 1
    runs.finish_run(engine, run_id, partner_id, status=RunStatus.SUCCEEDED, now=later)  # the owner finishes late
    with engine.connect() as conn:
        run = conn.execute(select(tables.RUN_TABLE).where(tables.RUN_TABLE.c.id == run_id)).one()
    assert run.status == RunStatus.INTERRUPTED
