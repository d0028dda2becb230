"""Crash safety: `python -m core sync scheduled` killed with SIGKILL at random points of a backfill. Every time the
database stays intact (SQLite's integrity check; PostgreSQL's amcheck of every index), the next start marks the run
interrupted and unblocks the partner, and a rerun converges on HaloPSA's state. 20 trials (8 with CI=true); the
figures are printed in the pytest summary."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from core import cli
from core.access import Principal
from core.actions import connect
from core.settings import PROJECT_ROOT
from core.store import database as db
from core.store import tables
from core.store.tables import Partner, Role, RunStatus
from core.sync import worker
from halo_emulator import HaloEmulator, serve
from tests.support import databases
from tests.support.clock import NOW
from tests.support.halo_state import differences, expected_invoices, stored_invoices

ROOT = PROJECT_ROOT
CS = Principal(role=Role.CS, user="cs@example.com")
TRIALS = 8 if os.environ.get("CI", "").lower() == "true" else 20
PAGE_SIZE = 50
PARTNER = "Acme MSP"


@pytest.fixture(scope="module")
def tenant():
    emu = HaloEmulator(seed=31, invoices=1000, start=NOW, rate_limit=None, activity=3)
    with serve(emu) as server:
        yield emu, server.url


def _environment(settings) -> dict[str, str]:
    return {"DATABASE_URL": settings.database_url, "HALO_CONSOLE_SECRET_KEY": settings.secret_key,
            "HALO_ALLOW_LOCAL_DOMAINS": "1", "HALO_CONSOLE_NOW": NOW.isoformat(), "HALO_PAGE_SIZE": str(PAGE_SIZE),
            "HALO_RATE_LIMIT": "1000000", "HALO_DEMO": "0"}


def _connected_database(settings, emu, url) -> None:
    """A fresh database with the partner connected (credentials verified) but never synced."""
    engine = db.engine_for(settings)
    form = connect.ConnectionForm(partner_name=PARTNER, app_domain=url, client_id=emu.client_id,
                                      client_secret=emu.client_secret)
    connect.connect(engine, CS, form, now=NOW, settings=settings)
    engine.dispose()


def _spawn(settings) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALO_") and k != "DATABASE_URL"}
    env.update(_environment(settings), PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "core", "sync", "scheduled", "--partner", PARTNER], cwd=ROOT,
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _run_of(engine: Engine, pid: int) -> tuple[str, int] | None:
    """(status, pages) of the run the process `pid` started, read as another process would; None before it starts."""
    with engine.connect() as conn:
        row = conn.execute(select(tables.RUN_TABLE.c.status, tables.RUN_TABLE.c.pages)
                           .where(tables.RUN_TABLE.c.worker.like(f"%:{pid}"))).first()
    return (row[0], row[1]) if row else None


def _kill_at_page(child: subprocess.Popen[bytes], engine: Engine, pages: int) -> None:
    """Kill once the run has stored `pages` pages (or has ended)."""
    while child.poll() is None:
        run = _run_of(engine, child.pid)
        if run is not None and (run[1] >= pages or run[0] != RunStatus.RUNNING):
            break
        time.sleep(0.002)
    child.send_signal(signal.SIGKILL)


def _kill_after(child: subprocess.Popen[bytes], delay_s: float) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(delay_s)
    child.send_signal(signal.SIGKILL)


def test_a_sync_killed_at_any_point_leaves_an_intact_database_and_a_rerun_converges(
        tenant, settings, tmp_path, monkeypatch, record_property):
    emu, url = tenant
    expected = expected_invoices(emu)
    total_pages = -(-len(emu.invoices) // PAGE_SIZE) + -(-len(emu.clients) // PAGE_SIZE) + 1
    rng = random.Random(20261102)

    # one uninterrupted run: how long a whole child takes, from spawn to exit
    calibration = replace(settings, database_url=databases.database_url(tmp_path, "calibration"))
    _connected_database(calibration, emu, url)
    started = time.monotonic()
    whole = _spawn(calibration)
    assert whole.wait(120) == 0, whole.stderr.read().decode() if whole.stderr else ""
    whole_s = time.monotonic() - started

    landed: dict[str, int] = {}
    for trial in range(TRIALS):
        trial_settings = replace(settings, database_url=databases.database_url(tmp_path, f"trial{trial}"))
        _connected_database(trial_settings, emu, url)
        watcher = db.make_engine(trial_settings.database_url)
        child = _spawn(trial_settings)
        if trial % 2:  # a random moment of the child's life: start-up, mid-run or after the run
            _kill_after(child, rng.uniform(0.0, whole_s))
        else:  # a random page of the backfill (short of the last two, so the kill lands while it runs)
            _kill_at_page(child, watcher, rng.randint(0, total_pages - 2))
        child.wait(30)
        assert child.stderr is not None
        assert "Traceback" not in child.stderr.read().decode()

        assert databases.integrity_problems(trial_settings.database_url) == []
        before = _run_of(watcher, child.pid)
        watcher.dispose()
        where = ("before the run" if before is None else "mid-run" if before[0] == RunStatus.RUNNING
                 else "after it finished")
        landed[where] = landed.get(where, 0) + 1
        record_property("reliability", ("crash trials", where))

        # the next start (the CLI recovers interrupted runs first) reruns; the partner must not be blocked
        for key, value in _environment(trial_settings).items():
            monkeypatch.setenv(key, value)
        assert cli.main(["sync", "scheduled", "--partner", PARTNER]) == 0, f"trial {trial}: rerun refused or failed"

        engine = db.make_engine(trial_settings.database_url)
        with engine.connect() as conn:
            killed = conn.execute(
                select(tables.RUN_TABLE).where(tables.RUN_TABLE.c.worker.like(f"%:{child.pid}"))).first()
            open_runs = conn.execute(select(tables.RUN_TABLE.c.id).where(
                tables.RUN_TABLE.c.status.in_([RunStatus.RUNNING, RunStatus.RATE_LIMITED]))).all()
            lock = conn.scalar(select(Partner.__table__.c.lock_run_id))
        if where == "mid-run":
            assert killed.status == RunStatus.INTERRUPTED and killed.error == worker.WORKER_STOPPED
            assert killed.finished_at is not None
        assert open_runs == [] and lock is None
        with engine.connect() as conn:
            partner_id = conn.scalar(select(Partner.__table__.c.id))
        assert differences(expected, stored_invoices(engine, partner_id)) == [], f"trial {trial} ({where})"
        engine.dispose()
        record_property("reliability", ("crash trials", "converged"))

    assert sum(landed.values()) == TRIALS
    assert landed.get("mid-run", 0) >= TRIALS // 4, landed  # the page-targeted kills land mid-run
