"""A fleet on one database: three `python -m core worker` processes of three threads, and three console processes
each running two schedulers (one `scheduler.tick`, which also runs the queue, the others `enqueue_due`) and four
people pressing both manual fetches for the same ten partners at once, against the emulator on a loopback socket.
Time moves in waves (every process reads one clock the test sets): the first due interval and press; ten minutes on,
inside every interval and cooldown; an hour on; twelve hours on.

Guarded: exactly one scheduled run per partner in each due interval, whatever the number of schedulers; exactly one
run per accepted press, and one accepted press per partner and kind while its cooldown holds; no duplicate job and no
job run twice; and no two runs of one partner overlap, measured on the system-wide monotonic clock.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from core.access import Principal
from core.actions import connect as connections
from core.actions import fetches as actions
from core.errors import CooldownActive, SyncAlreadyQueued
from core.settings import Settings
from core.store import database
from core.store.tables import JOB_TABLE, RUN_TABLE, JobState, Role, RunKind, RunStatus
from core.sync import connector, cooldowns, scheduler
from halo_emulator import FaultRule, HaloEmulator, serve
from tests.support import run_log
from tests.support.clock import NOW
from tests.support.emulator_api import connection_form
from tests.support.processes import install_hooks, wait_for

pytestmark = pytest.mark.slow

PARTNERS, WORKERS, CONSOLES, SCHEDULERS, PRESSERS = 10, 3, 3, 2, 4
NEW, UNPAID, SCHEDULED = RunKind.FETCH_NEW_DATA.value, RunKind.FETCH_UNPAID.value, RunKind.SCHEDULED.value
# (moment, how many jobs of each kind every partner gets then): the interval is an hour, the cooldowns 1 h and 12 h
WAVES = [
    (NOW, {SCHEDULED: 1, NEW: 1, UNPAID: 1}),
    (NOW + timedelta(minutes=10), {SCHEDULED: 0, NEW: 0, UNPAID: 0}),
    (NOW + timedelta(hours=1), {SCHEDULED: 1, NEW: 1, UNPAID: 0}),
    (NOW + timedelta(hours=12), {SCHEDULED: 1, NEW: 1, UNPAID: 1}),
]
HOOKS = {"HALO_TEST_BUSY_RETRY_S": "0.2"}  # a job of a busy partner is tried again soon, not in 10 s


def _console(index: int, url: str, key: str, clock: str, log: str, partner_ids: list[int], barrier: Any,
             results: Any) -> None:
    """One console process: each wave, its schedulers tick until its presses are done, then a few times more (the
    first console's first scheduler runs the queue too, as `scheduler --run` does)."""
    install_hooks({**HOOKS, "HALO_TEST_CLOCK_FILE": clock})
    settings = Settings(database_url=url, secret_key=key, allow_local_domains=True, rate_limit_requests=10**6,
                        page_size=50)
    engine = database.make_engine(url)
    factory = run_log.logged_factory(connector.stored_client_factory(settings), engine, Path(log))
    outcomes: list[tuple[int, int, str, str]] = []

    def schedule(runs_the_queue: bool, pressing: threading.Event) -> None:
        more = 5
        while pressing.is_set() or more:
            more -= 0 if pressing.is_set() else 1
            if runs_the_queue:
                scheduler.tick(engine, now=settings.now(), settings=settings, client_factory=factory)
            else:
                scheduler.enqueue_due(engine, now=settings.now(), settings=settings)
            time.sleep(0.02)

    def press(wave: int, person: int, together: threading.Barrier) -> None:
        principal = Principal(role=Role.CS, user=f"cs{person}@example.com")
        presses = [(p, kind) for p in partner_ids for kind in (NEW, UNPAID)]
        random.Random(person).shuffle(presses)
        together.wait()
        for partner_id, kind in presses:
            try:
                actions.request_manual_fetch(engine, principal, partner_id=partner_id, kind=kind, now=settings.now(),
                                             settings=settings)
                outcome = "accepted"
            except (CooldownActive, SyncAlreadyQueued) as refused:
                outcome = type(refused).__name__
            except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
                outcome = f"error {exc!r}"
            outcomes.append((wave, partner_id, kind, outcome))

    for wave in range(len(WAVES)):
        barrier.wait()
        pressing, together = threading.Event(), threading.Barrier(PRESSERS)
        pressing.set()
        schedulers = [threading.Thread(target=schedule, args=(index == s == 0, pressing)) for s in range(SCHEDULERS)]
        pressers = [threading.Thread(target=press, args=(wave, p, together)) for p in range(PRESSERS)]
        for thread in schedulers + pressers:
            thread.start()
        for thread in pressers:
            thread.join()
        pressing.clear()
        for thread in schedulers:
            thread.join()
        barrier.wait()
    results.put(outcomes)
    engine.dispose()


def _drained(engine) -> bool:
    with engine.connect() as conn:
        return not conn.scalar(select(func.count()).select_from(JOB_TABLE)
                               .where(JOB_TABLE.c.state.in_([JobState.QUEUED, JobState.RUNNING])))


def test_workers_presses_and_schedulers_together_run_each_partner_once_per_interval_and_cooldown_never_overlapping(
        engine, settings, children, tmp_path):
    emu = HaloEmulator(seed=47, invoices=100, start=NOW, rate_limit=None)
    emu.add_fault(FaultRule(kind="slow", path="/api/invoice", times=None, delay_s=0.02))  # runs last a while
    clock, log = tmp_path / "clock", tmp_path / "runs.jsonl"
    with serve(emu) as server:
        partner_ids = []
        for i in range(PARTNERS):
            form = connection_form(emu, server.url, f"Partner {i}")
            partner_ids.append(connections.connect(engine, Principal(role=Role.CS, user="cs@example.com"), form,
                                                   now=NOW - timedelta(days=1), settings=settings)[0])
        clock.write_text(NOW.isoformat())
        for w in range(WORKERS):
            children.start("worker", "--threads", "3", name=f"worker{w}", HALO_WORKER_POLL_S="0.05",
                           HALO_PAGE_SIZE="50", HALO_RATE_LIMIT="1000000", HALO_TEST_CLOCK_FILE=str(clock),
                           HALO_TEST_RUN_LOG=str(log), **HOOKS)
        ctx = multiprocessing.get_context("spawn")
        barrier, results = ctx.Barrier(CONSOLES + 1), ctx.Queue()
        consoles = [ctx.Process(target=_console, args=(c, settings.database_url, settings.secret_key, str(clock),
                                                       str(log), partner_ids, barrier, results))
                    for c in range(CONSOLES)]
        for console in consoles:
            console.start()
        for moment, _ in WAVES:
            clock.write_text(moment.isoformat())
            barrier.wait(120)  # the wave starts everywhere at once
            barrier.wait(120)  # its presses and scheduling are done
            wait_for(lambda: _drained(engine), "the workers to run what the wave queued", 30)
        outcomes = [row for _ in range(CONSOLES) for row in results.get(timeout=60)]
        for console in consoles:
            console.join(30)
            assert console.exitcode == 0
        for w in range(WORKERS):
            assert children.stop(f"worker{w}") == 0
            assert "Traceback" not in children.stderr(f"worker{w}"), children.stderr(f"worker{w}")

    assert [o for o in outcomes if o[3].startswith("error")] == []
    assert len(outcomes) == len(WAVES) * CONSOLES * PRESSERS * PARTNERS * 2
    accepted = Counter((wave, partner, kind) for wave, partner, kind, outcome in outcomes if outcome == "accepted")
    with engine.connect() as conn:
        job_rows = conn.execute(select(JOB_TABLE)).all()
        run_rows = conn.execute(select(RUN_TABLE)).all()
    wave_of = {moment: wave for wave, (moment, _) in enumerate(WAVES)}
    queued = Counter((wave_of[job.created_at], job.partner_id, job.kind) for job in job_rows)
    for wave, (_, expected) in enumerate(WAVES):  # one job per partner and kind and due interval or cooldown
        for partner in partner_ids:
            assert {kind: queued[(wave, partner, kind)] for kind in expected} == expected, (wave, partner)
            assert {kind: accepted[(wave, partner, kind)] for kind in (NEW, UNPAID)} == {
                kind: expected[kind] for kind in (NEW, UNPAID)}, (wave, partner)

    # no duplicates: every job done by exactly one run, which succeeded
    assert {job.state for job in job_rows} == {JobState.DONE}
    assert Counter(run.job_id for run in run_rows) == {job.id: 1 for job in job_rows}
    assert {run.status for run in run_rows} == {RunStatus.SUCCEEDED}
    pressed = defaultdict(list)
    for job in job_rows:
        pressed[(job.partner_id, job.kind)].append(job.created_at)
    for (_, kind), moments in pressed.items():  # manual runs of a partner and kind at least a cooldown apart
        if kind != SCHEDULED:
            moments.sort()
            assert all(b - a >= cooldowns.cooldown_length(kind, settings) for a, b in zip(moments, moments[1:],
                                                                                         strict=False))

    logged = run_log.intervals(log)
    assert sorted(i["run_id"] for i in logged) == sorted(run.id for run in run_rows)
    assert run_log.overlaps(logged) == []
