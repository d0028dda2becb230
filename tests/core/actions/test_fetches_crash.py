"""The console killed with SIGKILL in the middle of a press: a process pressing Fetch unpaid invoices
(`request_manual_fetch`, as the console does) is killed inside the press's transaction, just after its commit, and at
random moments of a run of presses.

Guarded: a press is one transaction, so it is there whole (the queued job, the cooldown claimed by that job, and the
audit event naming it) or not at all, wherever the kill lands; and what a kill leaves converges: a later press is
accepted where nothing was left and refused as already queued where the press was kept, and a worker runs the queued
job to HaloPSA's state.
"""

from __future__ import annotations

import multiprocessing
import random
import time
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from core.access import Principal
from core.actions import fetches as actions
from core.errors import SyncAlreadyQueued
from core.settings import Settings
from core.store import audit, database
from core.store.tables import AUDIT_TABLE, COOLDOWN_TABLE, JOB_TABLE, AuditAction, JobState, Role, RunKind
from core.sync import connector
from core.sync.worker import Worker, WorkerConfig
from halo_emulator import HaloEmulator
from tests.support.clock import NOW
from tests.support.factories import add_partner
from tests.support.halo_state import differences, expected_unpaid_invoices, stored_invoices

pytestmark = pytest.mark.slow

CS = Principal(role=Role.CS, user="cs@example.com")
UNPAID = RunKind.FETCH_UNPAID.value
TRIALS, PRESSES = 4, 20


def _press(url: str, key: str, partner_ids: list[int], hang: str | None, reached) -> None:
    """Press Fetch unpaid invoices for each partner in turn. With `hang`, stop for ever at that point of the first
    press ("inside" its transaction, after the audit event; "after" its commit) so the test kills it there;
    `reached` is set there, or (no `hang`) when the presses begin."""
    settings = Settings(database_url=url, secret_key=key)
    engine = database.make_engine(url)
    record = audit.record

    def record_then_hang(*args, **kwargs) -> None:
        record(*args, **kwargs)
        reached.set()
        time.sleep(600)

    if hang == "inside":
        audit.record = record_then_hang
    if hang is None:
        reached.set()
    for partner_id in partner_ids:
        actions.request_manual_fetch(engine, CS, partner_id=partner_id, kind=UNPAID, now=NOW, settings=settings)
        if hang == "after":
            reached.set()
            time.sleep(600)


def _killed_pressing(settings, partner_ids, hang=None, engine=None, jobs_first=0, delay_s=0.0) -> None:
    """Run `_press` in a process of its own and SIGKILL it once `reached` and (with `engine`) `jobs_first` of its
    presses are committed, `delay_s` later."""
    ctx = multiprocessing.get_context("spawn")
    reached = ctx.Event()
    child = ctx.Process(target=_press, args=(settings.database_url, settings.secret_key, partner_ids, hang, reached))
    child.start()
    try:
        assert reached.wait(60), "the pressing process never got there"
        while engine is not None and _queued(engine, partner_ids) < jobs_first and child.is_alive():
            time.sleep(0.001)
        time.sleep(delay_s)
        child.kill()
    finally:
        child.join(30)
    assert child.exitcode in (0, -9)


def _queued(engine, partner_ids) -> int:
    with engine.connect() as conn:
        return len(conn.scalars(select(JOB_TABLE.c.id).where(JOB_TABLE.c.partner_id.in_(partner_ids))).all())


def _press_left(engine, partner_id) -> str:
    """What a press left of itself for the partner: "whole" (job, cooldown and audit event), "nothing", or the parts
    found (a torn press)."""
    with engine.connect() as conn:
        job_ids = conn.scalars(select(JOB_TABLE.c.id).where(JOB_TABLE.c.partner_id == partner_id)).all()
        cooldown = conn.execute(select(COOLDOWN_TABLE).where(COOLDOWN_TABLE.c.partner_id == partner_id,
                                                             COOLDOWN_TABLE.c.kind == UNPAID)).one()
        events = conn.scalars(select(AUDIT_TABLE.c.detail).where(
            AUDIT_TABLE.c.partner_id == partner_id, AUDIT_TABLE.c.action == AuditAction.MANUAL_FETCH)).all()
    claimed = cooldown.last_job_id is not None and cooldown.available_at == NOW + timedelta(hours=12)
    if not job_ids and cooldown.last_job_id is None and not events:
        return "nothing"
    if len(job_ids) == 1 and claimed and cooldown.last_job_id == job_ids[0] and events == [
            f"Fetch unpaid invoices: requested (job {job_ids[0]})"]:
        return "whole"
    return f"torn: jobs {job_ids}, cooldown claimed by {cooldown.last_job_id}, audit {events}"


def _later_press(engine, settings, partner_id) -> str:
    try:
        actions.request_manual_fetch(engine, CS, partner_id=partner_id, kind=UNPAID, now=NOW, settings=settings)
    except SyncAlreadyQueued:
        return "already queued"
    return "accepted"


@pytest.fixture
def emu():
    return HaloEmulator(seed=41, invoices=200, start=NOW, rate_limit=None)


def _partner(engine, settings, emu, name="Acme MSP"):
    return add_partner(engine, settings, name=name, now=NOW - timedelta(days=1), client_id=emu.client_id,
                       client_secret=emu.client_secret)


def _run_the_queue(engine, settings, emu, partner_id):
    """A worker runs what is queued; the partner's unpaid invoices then match HaloPSA's."""
    factory = connector.stored_client_factory(replace(settings, rate_limit_requests=10**6), transport=emu.transport())
    Worker(engine, settings, factory, WorkerConfig(threads=2, poll_s=0.05)).run_until_idle()
    with engine.connect() as conn:
        assert set(conn.scalars(select(JOB_TABLE.c.state))) == {JobState.DONE}
    assert differences(expected_unpaid_invoices(emu), stored_invoices(engine, partner_id)) == []


def test_a_press_killed_inside_its_transaction_leaves_nothing_and_the_next_press_runs(engine, settings, emu):
    partner_id = _partner(engine, settings, emu)
    _killed_pressing(settings, [partner_id], hang="inside")
    assert _press_left(engine, partner_id) == "nothing"
    assert _later_press(engine, settings, partner_id) == "accepted"  # no cooldown, no queued job left behind
    assert _press_left(engine, partner_id) == "whole"
    _run_the_queue(engine, settings, emu, partner_id)


def test_a_press_killed_just_after_its_commit_is_whole_and_a_worker_runs_it(engine, settings, emu):
    partner_id = _partner(engine, settings, emu)
    _killed_pressing(settings, [partner_id], hang="after")
    assert _press_left(engine, partner_id) == "whole"
    assert _later_press(engine, settings, partner_id) == "already queued"  # the kept press will run: not twice
    _run_the_queue(engine, settings, emu, partner_id)
    assert _press_left(engine, partner_id) == "whole"  # its cooldown holds after the run


def test_presses_killed_at_random_moments_are_each_whole_or_absent(engine, settings, emu, record_property):
    rng = random.Random(20261102)
    left = {}
    for trial in range(TRIALS):
        partner_ids = [_partner(engine, settings, emu, f"Partner {trial}-{i}") for i in range(PRESSES)]
        # a random press, at a random moment of it (a press takes a few milliseconds)
        _killed_pressing(settings, partner_ids, engine=engine, jobs_first=rng.randrange(PRESSES),
                         delay_s=rng.uniform(0.0, 0.01))
        for partner_id in partner_ids:
            left[partner_id] = _press_left(engine, partner_id)
            record_property("reliability", ("presses killed at random", left[partner_id].partition(":")[0]))
    assert [what for what in left.values() if what not in ("whole", "nothing")] == []
    assert "whole" in left.values() and "nothing" in left.values(), "no kill landed in the middle of the presses"
    for partner_id, what in left.items():
        assert _later_press(engine, settings, partner_id) == ("already queued" if what == "whole" else "accepted")
