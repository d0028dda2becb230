"""Manual fetches pressed from many processes and threads at once, end to end through core.actions.fetches against the
emulator on a loopback socket: exactly one run per partner and kind starts, the cooldown holds across processes,
and scheduled and manual runs of one partner never overlap."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from core.access import Principal
from core.actions import connect as connections
from core.actions import fetches as actions
from core.errors import CooldownActive, SyncAlreadyQueued, SyncAlreadyRunning
from core.settings import Settings
from core.store import database
from core.store.tables import AUDIT_TABLE, COOLDOWN_TABLE, RUN_TABLE, Role, RunKind
from core.sync import connector
from core.sync import engine as sync_engine
from halo_emulator import FaultRule, HaloEmulator, serve
from tests.support import run_log
from tests.support.clock import NOW

PROCESSES, THREADS = 4, 4
PARTNERS = ("Acme MSP", "Globex MSP")
NEW, UNPAID, SCHEDULED = RunKind.FETCH_NEW_DATA.value, RunKind.FETCH_UNPAID.value, RunKind.SCHEDULED.value
# every thread of every process presses at once; each wave starts after the previous one has finished everywhere
WAVES = [
    (NOW, [NEW]),  # thread i presses Fetch new data for partner i % 2
    (NOW, [UNPAID]),
    (NOW + timedelta(minutes=10), [NEW]),  # inside the hour: the cooldown must refuse every press
    (NOW + timedelta(hours=13), [SCHEDULED, NEW, SCHEDULED, UNPAID, SCHEDULED]),  # scheduled and manual mixed
]


def _press(engine: Any, settings: Settings, factory: Any, partner_id: int, kind: str, now: datetime) -> str:
    principal = Principal(role=Role.CS, user=f"cs-{os.getpid()}-{threading.get_ident()}@example.com")
    try:
        if kind == SCHEDULED:
            sync_engine.run_sync(engine, partner_id=partner_id, kind=kind, trigger="schedule", actor="scheduler",
                                 now=now, settings=settings, client_factory=factory)
        else:
            actions.start_manual_fetch(engine, principal, partner_id=partner_id, kind=kind, now=now,
                                       settings=settings, client_factory=factory)
        return "started"
    except (CooldownActive, SyncAlreadyRunning, SyncAlreadyQueued) as exc:
        return type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
        return f"error {exc!r}"


def _worker(url: str, key: str, partner_ids: list[int], log: str, barrier: Any, results: Any) -> None:
    settings = Settings(database_url=url, secret_key=key, allow_local_domains=True, rate_limit_requests=10**6,
                        page_size=50, max_attempts=2, backoff_cap_s=0.01)
    engine = database.make_engine(url)
    stored = connector.stored_client_factory(settings)

    factory = run_log.logged_factory(stored, engine, Path(log))
    outcomes: list[tuple[int, int, str, str]] = []

    def presses(wave: int, thread: int, together: threading.Barrier) -> None:
        now, kinds = WAVES[wave]
        partner_id = partner_ids[thread % len(partner_ids)]
        together.wait()
        for kind in kinds:
            outcomes.append((wave, partner_id, kind, _press(engine, settings, factory, partner_id, kind, now)))

    for wave in range(len(WAVES)):
        together = threading.Barrier(THREADS)
        barrier.wait()
        threads = [threading.Thread(target=presses, args=(wave, t, together)) for t in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        barrier.wait()
    results.put(outcomes)
    engine.dispose()


def test_presses_from_many_processes_and_threads_start_one_run_per_partner_and_kind_and_never_overlap(
        engine, settings, tmp_path):
    emu = HaloEmulator(seed=17, invoices=400, start=NOW, rate_limit=None, activity=25)
    emu.add_fault(FaultRule(kind="slow", path="/api/invoice", times=None, delay_s=0.03))  # runs last a while
    log = tmp_path / "runs.jsonl"
    with serve(emu) as server:
        partner_ids = []
        for name in PARTNERS:
            form = connections.ConnectionForm(partner_name=name, app_domain=server.url, client_id=emu.client_id,
                                              client_secret=emu.client_secret)
            partner_id, _ = connections.connect(engine, Principal(role=Role.CS, user="cs@example.com"), form,
                                                now=NOW - timedelta(days=1), settings=settings)
            partner_ids.append(partner_id)
        ctx = multiprocessing.get_context("spawn")
        barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
        procs = [ctx.Process(target=_worker, args=(settings.database_url, settings.secret_key, partner_ids, str(log),
                                                   barrier, results)) for _ in range(PROCESSES)]
        for proc in procs:
            proc.start()
        outcomes = [row for _ in range(PROCESSES) for row in results.get(timeout=240)]
        for proc in procs:
            proc.join(60)
            assert proc.exitcode == 0

    assert not [o for o in outcomes if o[3].startswith("error")], outcomes
    assert len(outcomes) == PROCESSES * THREADS * sum(len(kinds) for _, kinds in WAVES)
    started = Counter((wave, partner, kind) for wave, partner, kind, outcome in outcomes if outcome == "started")
    for partner in partner_ids:  # exactly one run per partner and kind, however many presses
        assert started[(0, partner, NEW)] == 1
        assert started[(1, partner, UNPAID)] == 1
        assert started[(2, partner, NEW)] == 0  # the cooldown held in every process and thread
        assert [o[3] for o in outcomes if o[0] == 2 and o[1] == partner] == ["CooldownActive"] * (
            PROCESSES * THREADS // len(partner_ids))
        for kind in (NEW, UNPAID):  # later presses (wave 3) start at most one more, 13 h on
            assert started[(3, partner, kind)] <= 1

    with engine.connect() as conn:
        run_rows = conn.execute(select(RUN_TABLE.c.id, RUN_TABLE.c.partner_id, RUN_TABLE.c.kind,
                                       RUN_TABLE.c.trigger, RUN_TABLE.c.status)).all()
        refused = {(r.partner_id, r.kind): r.refused_count
                   for r in conn.execute(select(COOLDOWN_TABLE.c.partner_id, COOLDOWN_TABLE.c.kind,
                                                COOLDOWN_TABLE.c.refused_count))}
        audited = conn.scalar(select(func.count()).select_from(AUDIT_TABLE)
                              .where(AUDIT_TABLE.c.action == "manual_fetch"))
    manual_runs = [r for r in run_rows if r.trigger == "manual"]
    assert len(manual_runs) == sum(n for (_, _, kind), n in started.items() if kind != SCHEDULED)
    # every accepted press is audited when it is queued: those that ran, and those withdrawn (cooldown given back)
    # because another sync of the partner was running when this process tried to run it
    withdrawn = sum(1 for _, _, kind, outcome in outcomes if outcome == "SyncAlreadyRunning" and kind != SCHEDULED)
    assert audited == len(manual_runs) + withdrawn
    assert all(r.status == "succeeded" for r in run_rows), [r.status for r in run_rows]
    cooldown_refusals = Counter((partner, kind) for _, partner, kind, outcome in outcomes
                                if outcome == "CooldownActive")
    for partner in partner_ids:  # every press refused by a cooldown is counted for the adoption page
        for kind in (NEW, UNPAID):
            assert refused[(partner, kind)] == cooldown_refusals[(partner, kind)]

    intervals = run_log.intervals(log)
    kinds_by_run = {r.id: (r.partner_id, r.trigger) for r in run_rows}
    assert sorted(i["run_id"] for i in intervals) == sorted(r.id for r in run_rows if r.id in kinds_by_run
                                                            and r.trigger != "connect")
    for partner in partner_ids:
        assert {kinds_by_run[i["run_id"]][1] for i in intervals if i["partner_id"] == partner} == {"manual", "schedule"}
    assert run_log.overlaps(intervals) == []
