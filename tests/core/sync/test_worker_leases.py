"""Leases across real worker processes whose clocks disagree (`python -m core worker` and `scheduler` with the run clock
three hours ahead, as a wrong clock or a replay would have it), against the emulator on a loopback socket.
test_worker.py and test_jobs.py cover one process: a live lease is not taken over, a lost lease cannot write or renew.

Guarded here, between processes: a page held four times longer than the lease keeps it (renewed on a timer, not per
page), so a worker and a scheduler whose clocks run ahead neither recover it nor start a second run of the partner,
whose runs never overlap (measured on the system-wide monotonic clock); and a worker paused past its lease (SIGSTOP in
the middle of a page) loses it: another worker, clock ahead, recovers the job only once the lease has run out, with the
true reason, and reruns it to HaloPSA's state, while the paused one, let go, stops at its page without writing it (the
page's transaction rolls back) and its interrupted run stays as recovery wrote it; a scheduler ahead, ticking while
no other worker is there, never interrupts the paused worker's run apart from its job.
"""

from __future__ import annotations

import signal
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from core.access import Principal
from core.actions import connect as connections
from core.store.tables import JOB_TABLE, RUN_TABLE, JobState, Role, RunKind, RunStatus
from core.sync import worker
from tests.support import run_log
from tests.support.clock import NOW
from tests.support.emulator_api import connection_form, served_with_held_page
from tests.support.halo_state import differences, expected_invoices, stored_invoices
from tests.support.processes import freeze, wait_for

pytestmark = pytest.mark.slow

CS = Principal(role=Role.CS, user="cs@example.com")
LEASE_S = 1.0
AHEAD = {"HALO_CONSOLE_NOW": (NOW + timedelta(hours=3)).isoformat()}


@pytest.fixture
def tenant():
    """The emulator on a socket, with an invoice page a test may hold as long as it needs."""
    with served_with_held_page(seed=43, invoices=200, start=NOW, rate_limit=None) as served:
        yield served


def _backfill_held_at(page, engine, settings, tenant, children, name, log, *args, **env):
    """A partner connected on the Connection page (its backfill queued), and a worker `name` running that backfill
    into the held invoice `page`, where it waits."""
    emu, url, held_page = tenant
    rule = held_page.hold(emu, page)
    connected = connections.connect_and_backfill(engine, CS, connection_form(emu, url), now=NOW, settings=settings)
    child = _start(children, "worker", name, log, *args, **env)
    wait_for(lambda: rule.fired == 1, f"{name} waiting for invoice page {page}")
    return connected.partner_id, connected.backfill_job, child


def _start(children, command, name, log, *args, **env):
    return children.start(command, *args, name=name, HALO_LEASE_S=str(LEASE_S), HALO_WORKER_POLL_S="0.1",
                          HALO_PAGE_SIZE="20", HALO_RATE_LIMIT="1000000", HALO_TEST_RUN_LOG=str(log), **env)


def _job(engine, job_id):
    with engine.connect() as conn:
        return conn.execute(select(JOB_TABLE).where(JOB_TABLE.c.id == job_id)).one()


def _jobs(engine):
    with engine.connect() as conn:
        return conn.execute(select(JOB_TABLE).order_by(JOB_TABLE.c.id)).all()


def _scheduled(engine):
    """The partner's scheduled sync, once a scheduler queued it."""
    with engine.connect() as conn:
        return conn.execute(select(JOB_TABLE).where(JOB_TABLE.c.kind == RunKind.SCHEDULED)).first()


def _runs(engine):
    with engine.connect() as conn:
        return conn.execute(select(RUN_TABLE).order_by(RUN_TABLE.c.id)).all()


def test_a_page_held_four_leases_long_keeps_its_lease_while_workers_with_clocks_ahead_poll(
        engine, settings, tenant, children, tmp_path):
    emu, _, held_page = tenant
    log = tmp_path / "runs.jsonl"
    # one thread, busy with the held run: it claims nothing else
    partner_id, backfill, _ = _backfill_held_at(2, engine, settings, tenant, children, "holder", log, "--threads", "1")
    held_since = time.monotonic()
    _start(children, "worker", "ahead", log, HALO_TEST_BUSY_RETRY_S="0.3", **AHEAD)
    _start(children, "scheduler", "scheduler", log, "--tick", "0.1", **AHEAD)  # the partner looks due to it
    # the scheduler queues a scheduled sync; the worker ahead claims it, finds the partner busy, and again
    wait_for(lambda: _scheduled(engine) is not None and _scheduled(engine).lease_epoch >= 2,
             "the worker ahead refused the partner's scheduled sync twice", 60)
    time.sleep(max(0.0, held_since + 4 * LEASE_S - time.monotonic()))
    held_page.release()

    wait_for(lambda: _job(engine, backfill).state == JobState.DONE, "the held run's job done")
    runs_of_job = [run for run in _runs(engine) if run.job_id == backfill]
    assert len(runs_of_job) == 1, "the held run's job was recovered and run again"
    held = runs_of_job[0]
    assert (held.kind, held.status, held.error) == (RunKind.BACKFILL, RunStatus.SUCCEEDED, None)
    job = _job(engine, backfill)
    assert (job.attempts, job.lease_epoch) == (1, 1), "the held run's job was recovered or claimed again"
    scheduled = _scheduled(engine)
    assert "already running" in scheduled.outcome

    wait_for(lambda: _job(engine, scheduled.id).state == JobState.DONE, "the scheduled sync run after it")
    held_again, scheduled_run = _runs(engine)
    assert held_again == held
    assert (scheduled_run.status, scheduled_run.job_id) == (RunStatus.SUCCEEDED, scheduled.id)
    logged = run_log.intervals(log)
    assert sorted(i["run_id"] for i in logged) == [held.id, scheduled_run.id]
    assert run_log.overlaps(logged) == []
    assert next(i for i in logged if i["run_id"] == held.id)["end"] - logged[0]["start"] > 4 * LEASE_S
    assert differences(expected_invoices(emu), stored_invoices(engine, partner_id)) == []
    for name in ("holder", "ahead", "scheduler"):  # the scheduler has no SIGTERM handler: it just ends
        assert children.stop(name) in (0, -signal.SIGTERM) and "Traceback" not in children.stderr(name)


def test_a_worker_paused_past_its_lease_is_recovered_by_a_worker_ahead_and_its_held_page_rolls_back(
        engine, settings, tenant, children, tmp_path):
    emu, _, held_page = tenant
    log = tmp_path / "runs.jsonl"
    partner_id, backfill, paused = _backfill_held_at(3, engine, settings, tenant, children, "paused", log)
    freeze(paused, settings.database_url)
    [frozen] = _runs(engine)
    expires = _job(engine, backfill).lease_expires_at

    _start(children, "worker", "ahead", log, **AHEAD)
    wait_for(lambda: _job(engine, backfill).state == JobState.DONE, "the job recovered and rerun")
    recovered, rerun = _runs(engine)
    assert (recovered.id, recovered.status, recovered.error) == (frozen.id, RunStatus.INTERRUPTED,
                                                                 worker.WORKER_STOPPED)
    assert recovered.finished_at >= expires, "recovered while its lease still ran (by the clock three hours ahead?)"
    assert (rerun.status, rerun.job_id, rerun.started_at) == (RunStatus.SUCCEEDED, backfill, NOW + timedelta(hours=3))
    assert _job(engine, backfill).attempts == 2
    assert differences(expected_invoices(emu), stored_invoices(engine, partner_id)) == []

    paused.send_signal(signal.SIGCONT)
    held_page.release()  # its page arrives, after its lease was lost and the job rerun
    assert children.stop("paused") == 0
    assert "lost its lease mid-run and stopped writing" in children.stderr("paused"), children.stderr("paused")
    assert _runs(engine) == [recovered, rerun]  # the page rolled back; interrupted is not overwritten
    assert differences(expected_invoices(emu), stored_invoices(engine, partner_id)) == []
    assert children.stop("ahead") == 0 and "Traceback" not in children.stderr("ahead")


def test_a_scheduler_ahead_ticking_while_a_worker_is_paused_past_its_lease_never_lets_two_runs_of_the_partner_write(
        engine, settings, tenant, children, tmp_path):
    """No other worker is there to recover the paused one's job; a scheduler (clock ahead) ticks, looking for runs to
    mark interrupted, and queues the partner's scheduled sync, which the paused worker's free threads take once it
    resumes. A run is never interrupted apart from its job (that would free the partner while its owner, resumed,
    still holds the job and writes, and rewrites "interrupted" as it goes: the scheduler did that); the partner's
    runs never overlap, an interrupted run stays interrupted with the true reason, and everything converges."""
    emu, _, held_page = tenant
    log = tmp_path / "runs.jsonl"
    partner_id, backfill, paused = _backfill_held_at(3, engine, settings, tenant, children, "paused", log,
                                                     HALO_TEST_BUSY_RETRY_S="0.3")
    _start(children, "scheduler", "scheduler", log, "--tick", "0.1", **AHEAD)
    wait_for(lambda: len(_jobs(engine)) == 2, "the scheduler ticking (it queued the partner's scheduled sync)")
    freeze(paused, settings.database_url)
    [run] = _runs(engine)
    expires = _job(engine, backfill).lease_expires_at
    seen = []
    deadline = time.monotonic() + 4 * LEASE_S  # the lease runs out; the scheduler ticks on
    while time.monotonic() < deadline:
        [paused_run], job = _runs(engine), _job(engine, backfill)  # the run first: its job is read after it
        seen.append((paused_run.status, job.state, job.lease_epoch))
        time.sleep(0.02)
    assert _job(engine, backfill).lease_expires_at == expires  # nobody renewed it: the worker is paused
    assert (RunStatus.INTERRUPTED, JobState.RUNNING, 1) not in seen, "the run was interrupted apart from its job"

    paused.send_signal(signal.SIGCONT)
    held_page.release()
    wait_for(lambda: {job.state for job in _jobs(engine)} == {JobState.DONE}, "every job done")
    final = {r.id: r for r in _runs(engine)}
    assert run_log.overlaps(run_log.intervals(log)) == []
    if any(status == RunStatus.INTERRUPTED for status, _, _ in seen):  # recovered: for good, for the true reason
        assert (final[run.id].status, final[run.id].error) == (RunStatus.INTERRUPTED, worker.WORKER_STOPPED)
    runs_and_jobs = [(r.id, r.job_id, r.status, r.pages, (r.error or "")[:30]) for r in final.values()] + _jobs(engine)
    assert [r.error for r in final.values() if r.status == RunStatus.INTERRUPTED] in (
        [], [worker.WORKER_STOPPED]), runs_and_jobs
    assert differences(expected_invoices(emu), stored_invoices(engine, partner_id)) == []
    for name in ("paused", "scheduler"):
        assert children.stop(name) in (0, -signal.SIGTERM) and "Traceback" not in children.stderr(name)
