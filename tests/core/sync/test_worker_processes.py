"""`python -m core worker` processes killed with SIGKILL in the middle of a manual Fetch unpaid invoices, against the
emulator on a loopback socket (a page held until the kill, so it lands mid-run, after three pages were stored).

Guarded: the job is recovered with the true reason ("the worker stopped"), by the lease running out when the dead
worker was on another machine and at once when its process is gone from this host; the killed run stays interrupted
(nothing later overwrites it); another worker process reruns the job and the stored invoices converge on HaloPSA's;
and the cooldown follows the press: kept while the job will still run (it is served by the rerun), given back when
the job is given up (its worker died on the last attempt), so a new press is accepted and converges.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from core.access import Principal
from core.actions import connect as connections
from core.actions import fetches as actions
from core.errors import CooldownActive
from core.store.tables import JOB_TABLE, PARTNER_TABLE, RUN_TABLE, JobState, Role, RunKind, RunStatus
from core.sync import cooldowns, jobs, worker
from tests.support.clock import NOW
from tests.support.emulator_api import connection_form, served_with_held_page
from tests.support.halo_state import differences, expected_unpaid_invoices, stored_invoices
from tests.support.processes import wait_for

pytestmark = pytest.mark.slow

CS = Principal(role=Role.CS, user="cs@example.com")
UNPAID = RunKind.FETCH_UNPAID.value
WORKER_ENV = {"HALO_WORKER_POLL_S": "0.1", "HALO_PAGE_SIZE": "10", "HALO_RATE_LIMIT": "1000000"}


@pytest.fixture
def tenant():
    """123 unpaid invoices in pages of 10; the fourth page is held until the test has killed the worker waiting on
    it, so the kill lands mid-run, after three pages were stored, however loaded the machine."""
    with served_with_held_page(seed=41, invoices=600, start=NOW, rate_limit=None) as served:
        yield served


def _press(engine, settings, emu, url):
    """A connected partner (never synced) and a press of Fetch unpaid invoices: the job queued."""
    partner_id, _ = connections.connect(engine, CS, connection_form(emu, url), now=NOW - timedelta(days=1),
                                        settings=settings)
    return partner_id, actions.request_manual_fetch(engine, CS, partner_id=partner_id, kind=UNPAID, now=NOW,
                                                    settings=settings)


def _worker(children, name, lease_s, **env):
    return children.start("worker", name=name, HALO_LEASE_S=str(lease_s), **WORKER_ENV, **env)


def _job(engine, job_id):
    with engine.connect() as conn:
        return conn.execute(select(JOB_TABLE).where(JOB_TABLE.c.id == job_id)).one()


def _runs(engine, partner_id):
    with engine.connect() as conn:
        return conn.execute(select(RUN_TABLE).where(RUN_TABLE.c.partner_id == partner_id)
                            .order_by(RUN_TABLE.c.id)).all()


def _kill_mid_run(child, engine, partner_id, held_page, page):
    """SIGKILL while the run waits for its held page; the page let go once the process is gone (and reaped, as under
    any supervisor). The run as the kill left it: three pages stored."""
    wait_for(lambda: page.fired == 1, "the worker waiting for its fourth page")
    child.kill()
    child.wait(10)
    held_page.release()
    [run] = _runs(engine, partner_id)
    assert (run.status, run.pages) == (RunStatus.RUNNING, 3)
    return run


def _cooldown(engine, partner_id):
    with engine.connect() as conn:
        return cooldowns.states(conn, partner_id, now=NOW)[UNPAID]


def _settled(engine, partner_id, emu):
    """No open run, the partner's lock free, and its unpaid invoices exactly as HaloPSA has them."""
    assert [r.id for r in _runs(engine, partner_id) if r.status in (RunStatus.RUNNING, RunStatus.RATE_LIMITED)] == []
    with engine.connect() as conn:
        assert conn.scalar(select(PARTNER_TABLE.c.lock_run_id).where(PARTNER_TABLE.c.id == partner_id)) is None
    assert differences(expected_unpaid_invoices(emu), stored_invoices(engine, partner_id)) == []


def test_a_worker_on_another_machine_killed_mid_fetch_is_recovered_when_its_lease_runs_out_and_the_rerun_converges(
        engine, settings, tenant, children):
    emu, url, held_page = tenant
    partner_id, job_id = _press(engine, settings, emu, url)
    page = held_page.hold(emu, 4)
    first = _worker(children, "first", 2, HALO_TEST_HOSTNAME="another-machine")
    killed = _kill_mid_run(first, engine, partner_id, held_page, page)
    expires = _job(engine, job_id).lease_expires_at  # as the dead worker's last renewal left it

    _worker(children, "second", 2)  # on this machine: it cannot see the other machine's process is gone
    wait_for(lambda: _job(engine, job_id).state == JobState.DONE, "the job recovered and done")
    first_run, rerun = _runs(engine, partner_id)
    assert first_run.id == killed.id
    assert first_run.status == RunStatus.INTERRUPTED and first_run.error == worker.WORKER_STOPPED
    assert first_run.finished_at >= expires, "recovered before the live-looking lease ran out"
    assert first_run.pages == killed.pages  # nothing wrote to it after the kill
    assert (rerun.status, rerun.job_id, rerun.trigger) == (RunStatus.SUCCEEDED, job_id, "manual")
    job = _job(engine, job_id)
    assert (job.attempts, job.run_id, job.active_key) == (2, rerun.id, None)
    _settled(engine, partner_id, emu)

    # the press is served by the rerun: its cooldown was kept through the kill and holds now
    cooldown = _cooldown(engine, partner_id)
    assert (cooldown.available_at, cooldown.last_run_id) == (NOW + timedelta(hours=12), rerun.id)
    with pytest.raises(CooldownActive):
        actions.request_manual_fetch(engine, CS, partner_id=partner_id, kind=UNPAID, now=NOW + timedelta(hours=1),
                                     settings=settings)
    assert children.stop("second") == 0
    assert "Traceback" not in children.stderr("second")
    assert _runs(engine, partner_id)[0].status == RunStatus.INTERRUPTED  # still, after everything


def test_a_worker_killed_on_the_jobs_last_attempt_gives_the_press_back_and_a_new_press_converges(
        engine, settings, tenant, children):
    emu, url, held_page = tenant
    partner_id, job_id = _press(engine, settings, emu, url)
    with engine.begin() as conn:  # two workers already died running it
        conn.execute(update(JOB_TABLE).where(JOB_TABLE.c.id == job_id).values(attempts=jobs.MAX_ATTEMPTS - 1))
    page = held_page.hold(emu, 4)
    first = _worker(children, "first", 60)
    killed = _kill_mid_run(first, engine, partner_id, held_page, page)
    expires = _job(engine, job_id).lease_expires_at

    second = _worker(children, "second", 60)
    wait_for(lambda: _job(engine, job_id).state == JobState.DONE, "the job recovered and done")
    [run] = _runs(engine, partner_id)
    assert (run.id, run.status, run.error) == (killed.id, RunStatus.INTERRUPTED, worker.WORKER_STOPPED)
    assert run.finished_at < expires, "its process is gone: recovered without waiting a minute for the lease"
    job = _job(engine, job_id)
    assert (job.outcome, job.run_id, job.active_key) == ("its worker stopped too many times; not tried again", None,
                                                         None)
    assert _cooldown(engine, partner_id).available_at is None  # it will not run: the press is given back

    again = actions.request_manual_fetch(engine, CS, partner_id=partner_id, kind=UNPAID, now=NOW, settings=settings)
    wait_for(lambda: _job(engine, again).state == JobState.DONE, "the new press run")
    first_run, rerun = _runs(engine, partner_id)
    assert first_run.status == RunStatus.INTERRUPTED and first_run.error == worker.WORKER_STOPPED
    assert (rerun.status, rerun.job_id) == (RunStatus.SUCCEEDED, again)
    _settled(engine, partner_id, emu)
    assert _cooldown(engine, partner_id).available_at == NOW + timedelta(hours=12)
    assert children.stop("second") == 0 and second.returncode == 0
    assert "Traceback" not in children.stderr("second")
