"""Worker fleet (issue 11), measured from the console's side: the tasks `fleet_scheduled` and `fleet_backfill_mix` of
`python -m bench.worker`.

The process running a task plays the console and the scheduler. It seeds partners straight into a fresh database (no
HaloPSA calls: a partner, its connection and one successful backfill an interval or more ago), starts
`python -m core worker` processes on it, queues due partners with the scheduler's own pass (`runs.recover_interrupted`
then `scheduler.enqueue_due`, as `python -m core scheduler` does, its CPU measured here), presses manual fetches
(`core.actions.fetches.request_manual_fetch`) and reads what happened from the run rows: when each run started and
finished, in which process, with how many requests. The workers reach emulator tenants over loopback sockets, every
answer held by the emulator's injected latency, as they would reach hosted HaloPSA.
"""

from __future__ import annotations

import random
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from bench import harness
from core.access import Principal
from core.actions import fetches
from core.settings import Settings
from core.store import database
from core.store.secrets import secret_box
from core.store.tables import (
    CONNECTION_TABLE,
    JOB_TABLE,
    PARTNER_TABLE,
    RUN_TABLE,
    IntegrationRole,
    JobState,
    PartnerStatus,
    Role,
    RunKind,
    RunStatus,
    RunTrigger,
)
from core.sync import cooldowns, jobs, runs, scheduler, worker_presence

CS = Principal(role=Role.CS, user="bench@example.com")
ENDED = (JobState.DONE, JobState.CANCELLED)
POLL_S = 0.25  # how often this process looks at the queue; run times come from the run rows, not from this


def _settings(args: dict[str, Any]) -> Settings:
    """The console's settings: the defaults (hourly schedule, real clock) on the task's database."""
    defaults = Settings()
    return Settings(database_url=args["database_url"], secret_key=args["key"], allow_local_domains=True,
                    sandbox_enabled=False, demo_enabled=False,
                    worker_poll_s=float(args.get("poll_s", defaults.worker_poll_s)))


def _seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


# --- partners --------------------------------------------------------------------------------------------------------

def seed_partners(engine: Engine, settings: Settings, *, app_domain: str, tenants: Sequence[str | None], name: str,
                  synced_at: datetime | None) -> list[int]:
    """Connected primary partners on `app_domain`, one per tenant, each with a successful backfill whose window ended
    at `synced_at` (None: never synced, as right after connecting). Returns their ids."""
    now = datetime.now(UTC)
    secret = secret_box(settings).encrypt(harness.SECRET)
    with engine.begin() as conn:
        ids = [database.inserted_id(conn.execute(PARTNER_TABLE.insert().values(
            name=f"{name} {number:04d}", status=PartnerStatus.CONNECTED, created_at=now)))
            for number in range(1, len(tenants) + 1)]
        conn.execute(CONNECTION_TABLE.insert(), [
            {"partner_id": partner_id, "app_domain": app_domain, "tenant": tenant, "client_id": harness.CLIENT_ID,
             "client_secret_encrypted": secret, "integration_role": IntegrationRole.PRIMARY, "connected_at": now}
            for partner_id, tenant in zip(ids, tenants, strict=True)])
        for partner_id in ids:
            cooldowns.ensure_rows(conn, partner_id)
        if synced_at is not None:
            conn.execute(RUN_TABLE.insert(), [
                {"partner_id": partner_id, "kind": RunKind.BACKFILL, "trigger": RunTrigger.CONNECT,
                 "triggered_by": CS.user, "status": RunStatus.SUCCEEDED, "started_at": synced_at,
                 "finished_at": synced_at + timedelta(seconds=5), "window_end": synced_at}
                for partner_id in ids])
    return ids


def age_partners(engine: Engine, partner_ids: Iterable[int], by: timedelta) -> None:
    """Move the partners' past runs `by` into the past: for the scheduler, that much time has gone by."""
    run = RUN_TABLE.c
    moved = (run.started_at, run.finished_at, run.window_end)  # stored as text on SQLite: moved here, not in SQL
    with engine.begin() as conn:
        for row in conn.execute(select(run.id, *moved).where(run.partner_id.in_(list(partner_ids)))).all():
            conn.execute(update(RUN_TABLE).where(run.id == row.id).values(
                {column: None if row._mapping[column] is None else row._mapping[column] - by for column in moved}))


# --- worker processes ------------------------------------------------------------------------------------------------

class Workers:
    """`count` worker processes (`python -m core worker --threads N`) on the task's database; logs in `logs`."""

    def __init__(self, args: dict[str, Any], *, count: int, threads: int, logs: Path,
                 extra_env: dict[str, str] | None = None) -> None:
        env = harness.child_env({
            "DATABASE_URL": args["database_url"], "HALO_CONSOLE_SECRET_KEY": args["key"],
            "HALO_ALLOW_LOCAL_DOMAINS": "1", "HALO_SANDBOX": "0", "HALO_DEMO": "0",
            # PostgreSQL: a connection for every sync thread and its lease timer, as the README advises
            "HALO_DB_POOL_SIZE": str(threads + 2), **(extra_env or {})})
        if "poll_s" in args:
            env["HALO_WORKER_POLL_S"] = str(args["poll_s"])
        logs.mkdir(parents=True, exist_ok=True)
        self.logs = [logs / f"worker{number}.log" for number in range(count)]
        self.procs: list[subprocess.Popen[bytes]] = []
        for log in self.logs:
            with open(log, "wb") as out:
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "core", "worker", "--threads", str(threads)], cwd=harness.ROOT, env=env,
                    stdout=out, stderr=subprocess.STDOUT))

    def wait_alive(self, engine: Engine, *, timeout_s: float = 120.0) -> None:
        """Until every worker has announced itself in the database (it has migrated and polls the queue)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(proc.poll() is not None for proc in self.procs):
                raise RuntimeError(f"a worker exited at start:\n{self.log_tail()}")
            with engine.connect() as conn:
                if worker_presence.alive(conn, within=timedelta(seconds=30)) >= len(self.procs):
                    return
            time.sleep(POLL_S)
        raise RuntimeError(f"the workers did not start within {timeout_s:.0f} s:\n{self.log_tail()}")

    def cpu_s(self) -> float:
        return sum(harness.process_cpu_s(proc.pid) for proc in self.procs)

    def log_tail(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}" for log in self.logs)

    def stop(self, *, timeout_s: float = 120.0) -> float:
        """SIGTERM (running syncs reach a page end and go back to the queue), then wait; returns the seconds taken.
        A worker still alive after `timeout_s` is killed."""
        started = time.monotonic()
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(max(0.1, started + timeout_s - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return time.monotonic() - started

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop(timeout_s=10.0)


# --- the queue and the run rows --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tick:
    """One scheduler pass: the jobs it queued and the CPU it cost this process."""

    queued: list[int]
    cpu_s: float


def scheduler_tick(engine: Engine, settings: Settings) -> Tick:
    """One pass of `python -m core scheduler`'s loop: mark runs whose worker is gone, then queue the due partners."""
    cpu = time.process_time()
    now = settings.now()
    runs.recover_interrupted(engine, now=now, settings=settings)
    queued = scheduler.enqueue_due(engine, now=now, settings=settings)
    return Tick(queued, time.process_time() - cpu)


def wait_for_jobs(engine: Engine, job_ids: Iterable[int], *, timeout_s: float,
                  halfway: Callable[[], None] | None = None) -> bool:
    """Until every job ended (done or cancelled); `halfway` runs once when half of them have. False on timeout."""
    pending = set(job_ids)
    total = len(pending)
    deadline = time.monotonic() + timeout_s
    while pending:
        if time.monotonic() > deadline:
            return False
        with engine.connect() as conn:
            pending -= set(conn.scalars(select(JOB_TABLE.c.id).where(JOB_TABLE.c.id.in_(pending),
                                                                      JOB_TABLE.c.state.in_(ENDED))))
        if halfway is not None and len(pending) <= total / 2:
            halfway()
            halfway = None
        time.sleep(POLL_S)
    return True


def runs_of(engine: Engine, trigger: RunTrigger) -> list[Any]:
    run = RUN_TABLE.c
    with engine.connect() as conn:
        return list(conn.execute(select(run.id, run.partner_id, run.job_id, run.kind, run.status, run.started_at,
                                        run.finished_at, run.requests, run.pages, run.customers_seen,
                                        run.agreements_seen, run.invoices_seen, run.worker)
                                 .where(run.trigger == trigger).order_by(run.partner_id, run.started_at)).all())


def integrity(rows: Sequence[Any], partner_ids: Sequence[int]) -> dict[str, int]:
    """Runs per partner: partners that never ran, runs beyond one per partner (duplicates), and runs of one partner
    whose [start, finish] spans overlap (an unfinished run spans to the end of time)."""
    by_partner: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        by_partner[row.partner_id].append(row)
    overlaps = 0
    for own in by_partner.values():
        for before, after in zip(own, own[1:], strict=False):
            if before.finished_at is None or after.started_at < before.finished_at:
                overlaps += 1
    return {"runs": len(rows), "missing": sum(1 for p in partner_ids if p not in by_partner),
            "duplicates": sum(len(own) - 1 for own in by_partner.values()), "overlaps": overlaps}


def press_to_start(engine: Engine, settings: Settings, partner_ids: Sequence[int], *, poll_s: float,
                   seed: int = 11) -> list[float]:
    """Press Fetch new data for each partner in turn, the workers idle each time: seconds from the press to its run's
    start (the run row's started_at). Each press lands at a random moment of the workers' poll cycle."""
    rng = random.Random(seed)
    waits = []
    for partner_id in partner_ids:
        time.sleep(rng.uniform(0, poll_s))
        pressed = datetime.now(UTC)
        job_id = fetches.request_manual_fetch(engine, CS, partner_id=partner_id, kind=RunKind.FETCH_NEW_DATA,
                                              now=settings.now(), settings=settings)
        if not wait_for_jobs(engine, [job_id], timeout_s=120):
            raise RuntimeError(f"the manual fetch of partner {partner_id} (job {job_id}) did not end in 120 s")
        with engine.connect() as conn:
            started = conn.scalar(select(RUN_TABLE.c.started_at).where(RUN_TABLE.c.job_id == job_id))
        if started is None:
            raise RuntimeError(f"the manual fetch of partner {partner_id} (job {job_id}) ended without a run")
        waits.append(_seconds(started, pressed))
    return waits


# --- the tasks -------------------------------------------------------------------------------------------------------

def scheduled(args: dict[str, Any]) -> dict[str, Any]:
    """`partners` small partners due at once, run by `workers` worker processes of `threads` threads each; then,
    with the workers idle, `presses` manual fetches. Integrity: one run per partner, none overlapping."""
    settings = _settings(args)
    engine = database.engine_for(settings)
    interval = timedelta(seconds=settings.schedule_interval_s)
    tenants = [f"tenant-{number}" for number in range(1, int(args["partners"]) + 1)]
    partner_ids = seed_partners(engine, settings, app_domain=args["url"], tenants=tenants, name="Fleet MSP",
                                synced_at=datetime.now(UTC) - interval - timedelta(minutes=1))
    with Workers(args, count=int(args["workers"]), threads=int(args["threads"]), logs=Path(args["logs"])) as fleet:
        fleet.wait_alive(engine)
        worker_cpu = fleet.cpu_s()
        emulator_cpu = harness.process_cpu_s(int(args["emulator_pid"]))
        served_before = harness.state(args["url"])["requests"]
        started = datetime.now(UTC)
        enqueue = scheduler_tick(engine, settings)
        ticks: list[Tick] = []
        complete = wait_for_jobs(engine, enqueue.queued, timeout_s=float(args["timeout_s"]),
                                 halfway=lambda: ticks.append(scheduler_tick(engine, settings)))
        worker_cpu = fleet.cpu_s() - worker_cpu
        emulator_cpu = harness.process_cpu_s(int(args["emulator_pid"])) - emulator_cpu
        served = harness.state(args["url"])["requests"] - served_before
        busy = ticks[0] if ticks else Tick([], 0.0)
        idle = scheduler_tick(engine, settings)
        rows = runs_of(engine, RunTrigger.SCHEDULE)
        with engine.connect() as conn:
            ended = conn.scalar(select(func.count()).where(JOB_TABLE.c.id.in_(enqueue.queued),
                                                           JOB_TABLE.c.state.in_(ENDED)))
        presses = press_to_start(engine, settings, partner_ids[: int(args["presses"])],
                                 poll_s=settings.worker_poll_s) if complete else []
    engine.dispose()
    finished = [row for row in rows if row.finished_at is not None]
    return {
        "partners": len(partner_ids), "workers": int(args["workers"]), "threads": int(args["threads"]),
        "complete": complete, "jobs_ended": ended, "timeout_s": float(args["timeout_s"]),
        "queued": len(enqueue.queued), "enqueue_cpu_s": enqueue.cpu_s, "busy_tick_cpu_s": busy.cpu_s,
        "busy_tick_queued": len(busy.queued), "idle_tick_cpu_s": idle.cpu_s, "idle_tick_queued": len(idle.queued),
        "makespan_s": max(_seconds(row.finished_at, started) for row in finished) if complete
        else float(args["timeout_s"]),
        "first_start_s": min((_seconds(row.started_at, started) for row in rows), default=float("nan")),
        "statuses": dict(Counter(str(row.status) for row in rows)),
        "requests": sum(row.requests for row in rows), "served_requests": served,
        "runs_per_process": sorted(Counter(row.worker for row in rows).values(), reverse=True),
        "worker_cpu_s": worker_cpu, "emulator_cpu_s": emulator_cpu, "presses_s": presses,
        "schedule_interval_s": settings.schedule_interval_s, "worker_poll_s": settings.worker_poll_s,
        **integrity(rows, partner_ids),
    }


def backfill_mix(args: dict[str, Any]) -> dict[str, Any]:
    """A big partner's first backfill (pages of `page_size`, the real rate budget) runs in one worker for `warm_s`;
    then `due` small partners become due and are queued: how long from queued to done each took, the backfill
    still running. The worker is then stopped (the backfill goes back to the queue)."""
    settings = _settings(args)
    engine = database.engine_for(settings)
    interval = timedelta(seconds=settings.schedule_interval_s)
    small = seed_partners(engine, settings, app_domain=args["small_url"], name="Small MSP",
                          tenants=[f"tenant-{number}" for number in range(1, int(args["due"]) + 1)],
                          synced_at=datetime.now(UTC) - interval / 2)
    [big] = seed_partners(engine, settings, app_domain=args["big_url"], tenants=[None], name="Big MSP",
                          synced_at=None)
    with engine.begin() as conn:
        backfill_job = jobs.enqueue(conn, partner_id=big, kind=RunKind.BACKFILL, trigger=RunTrigger.CONNECT,
                                    requested_by=CS.user, now=settings.now())
    with Workers(args, count=1, threads=int(args["threads"]), logs=Path(args["logs"]),
                 extra_env={"HALO_PAGE_SIZE": str(args["page_size"])}) as fleet:
        fleet.wait_alive(engine)
        time.sleep(float(args["warm_s"]))
        age_partners(engine, small, interval / 2 + timedelta(minutes=1))
        due_at = datetime.now(UTC)
        tick = scheduler_tick(engine, settings)
        if not wait_for_jobs(engine, tick.queued, timeout_s=float(args["timeout_s"])):
            raise RuntimeError(f"the small partners did not finish in {args['timeout_s']} s:\n{fleet.log_tail()}")
        smalls = [row for row in runs_of(engine, RunTrigger.SCHEDULE) if row.partner_id in set(small)]
        with engine.connect() as conn:
            backfill_state = conn.scalar(select(JOB_TABLE.c.state).where(JOB_TABLE.c.id == backfill_job))
        [backfill] = [row for row in runs_of(engine, RunTrigger.CONNECT) if row.job_id == backfill_job]
        stop_s = fleet.stop()
    engine.dispose()
    waits = [_seconds(row.finished_at, due_at) for row in smalls]
    return {
        "due": len(small), "queued": len(tick.queued), "threads": int(args["threads"]),
        "statuses": dict(Counter(str(row.status) for row in smalls)), "max_s": max(waits),
        "median_s": statistics.median(waits), "backfill_job_state": str(backfill_state),
        "backfill_status": str(backfill.status), "backfill_pages": backfill.pages,
        "backfill_customers": backfill.customers_seen, "backfill_agreements": backfill.agreements_seen,
        "backfill_invoices": backfill.invoices_seen, "backfill_requests": backfill.requests,
        "backfill_ran_s": _seconds(due_at, backfill.started_at), "stop_s": stop_s,
        **integrity(smalls, small),
    }
