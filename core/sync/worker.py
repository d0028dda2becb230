"""The worker service (`python -m core worker`): claims jobs from the queue and runs them on a bounded thread pool,
renewing each job's lease on a timer of its own (a run waiting on a rate limit or a slow page keeps its lease). Long
jobs (first backfills, unpaid refreshes) may hold at most `long_threads` threads, so short ones never wait behind
them. Any number of workers on any machines share one queue; SIGTERM lets running jobs finish their page and hands
them back to the queue.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from core.errors import NotFound, SyncAlreadyRunning
from core.settings import Settings
from core.store.tables import JOB_TABLE, RUN_TABLE, JobState, Lane, RunStatus, RunTrigger
from core.sync import cooldowns, jobs, runs, worker_presence
from core.sync import engine as sync_engine
from core.sync.connector import ClientFactory
from core.sync.jobs import ClaimedJob
from core.sync.runs import ProgressFn, RunResult

log = logging.getLogger(__name__)

BUSY_PARTNER_RETRY = timedelta(seconds=10)
BEAT_EVERY_S = 5.0  # the console counts a worker alive for 30 s after its beat
WORKER_STOPPED = ("The process running this sync stopped before it finished (it ended, or stopped renewing its "
                  "lease); the sync was queued again and continues on the next worker. Nothing is lost.")


@dataclass(frozen=True)
class WorkerConfig:
    threads: int = 4
    long_threads: int = 1
    lease: timedelta = timedelta(seconds=60)
    poll_s: float = 0.5

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerConfig:
        return cls(threads=settings.worker_threads, long_threads=settings.worker_long_threads,
                   lease=timedelta(seconds=settings.lease_s), poll_s=settings.worker_poll_s)


def recover_expired(engine: Engine) -> int:
    """Jobs whose lease expired (their worker died or hung): the run is marked interrupted with that reason and the
    job goes back to the queue (at most MAX_ATTEMPTS times). A live lease is never touched."""
    job = JOB_TABLE.c
    with engine.begin() as conn:
        now = jobs.lease_now(conn)
        held = conn.execute(select(job.id, job.partner_id, job.kind, job.trigger, job.attempts, job.lease_owner,
                                   job.lease_expires_at, job.cancel_requested_by)
                            .where(job.state == JobState.RUNNING)).all()
        # a lease held by a process of this host that no longer exists is as good as expired
        expired = [row for row in held if row.lease_expires_at is None or row.lease_expires_at < now
                   or runs.process_is_gone(row.lease_owner)]
        recovered = 0
        for row in expired:
            again = row.attempts < jobs.MAX_ATTEMPTS and not row.cancel_requested_by
            if again:
                values: dict[str, object] = {"state": JobState.QUEUED, "not_before": now,
                                             "outcome": "its worker stopped; queued again"}
            else:
                values = {"state": JobState.CANCELLED if row.cancel_requested_by else JobState.DONE,
                          "active_key": None, "finished_at": now,
                          "outcome": f"Cancelled by {row.cancel_requested_by}." if row.cancel_requested_by
                          else "its worker stopped too many times; not tried again"}
            # the job row first, as a page's commit and a finish lock it (then the run, then the partner): one order,
            # so recovery and a late page of the owner never deadlock; and only the lease as seen above (an owner
            # that renewed or finished meanwhile is live, and keeps its run)
            taken = conn.execute(update(JOB_TABLE).where(job.id == row.id, job.state == JobState.RUNNING,
                                                         job.lease_owner == row.lease_owner,
                                                         job.lease_expires_at == row.lease_expires_at)
                                 .values(lease_owner=None, lease_expires_at=None, run_id=None, **values)).rowcount
            if taken != 1:
                continue
            open_runs = conn.scalars(select(RUN_TABLE.c.id).where(RUN_TABLE.c.job_id == row.id,
                                                                 RUN_TABLE.c.status.in_(runs.OPEN_STATUSES)))
            for run_id in open_runs.all():
                runs.interrupt(conn, run_id, row.partner_id, now, WORKER_STOPPED)
            if not again and row.trigger == RunTrigger.MANUAL:  # it will not run: the press is given back
                cooldowns.refund(conn, partner_id=row.partner_id, kind=row.kind, job_id=row.id)
            recovered += 1
    return recovered


def execute(engine: Engine, settings: Settings, client_factory: ClientFactory, job: ClaimedJob, *, lease: timedelta,
            stopping: threading.Event | None = None, progress: ProgressFn | None = None, now: datetime | None = None,
            raise_refusals: bool = False) -> RunResult | None:
    """Run one claimed job under its lease, on the clock of this moment (or `now`). None when it could not start:
    the partner is busy with another sync (the job waits in the queue a little), or has no connection any more (the
    job is dropped). With `raise_refusals` (a job run by whoever queued it) a busy partner's job is withdrawn instead,
    a manual fetch's cooldown given back, and either refusal is raised to the caller."""
    try:
        with LeaseKeeper(engine, job, lease):
            return sync_engine.run_sync(
                engine, partner_id=job.partner_id, kind=job.kind, trigger=job.trigger, actor=job.requested_by,
                now=now or settings.now(), settings=settings, client_factory=client_factory, progress=progress,
                job=job, stopping=stopping)
    except SyncAlreadyRunning as busy:
        if not raise_refusals:
            jobs.requeue(engine, job, after=BUSY_PARTNER_RETRY, outcome=busy.message)
            return None
        with engine.begin() as conn:
            if jobs.close(conn, job, outcome=busy.message, status=RunStatus.CANCELLED):
                cooldowns.refund(conn, partner_id=job.partner_id, kind=job.kind, job_id=job.id)
        raise
    except NotFound as gone:
        with engine.begin() as conn:
            jobs.abandon(conn, job, outcome=gone.message)
        if raise_refusals:
            raise
        return None
    except jobs.LeaseLost:  # taken before its run started (the worker paused past its lease): another runs it
        log.warning("job %s was recovered from this worker before its run started", job.id)
        return None


class LeaseKeeper:
    """Renews one job's lease every third of its length until stopped, whatever the run is waiting on."""

    def __init__(self, engine: Engine, job: ClaimedJob, lease: timedelta) -> None:
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._renew, args=(engine, job, lease), daemon=True,
                                        name=f"lease-{job.id}")

    def _renew(self, engine: Engine, job: ClaimedJob, lease: timedelta) -> None:
        while not self._done.wait(lease.total_seconds() / 3):
            try:
                if not jobs.renew(engine, job, lease=lease):
                    return  # lost: the run's next page commit finds out and stops
            except Exception:  # a database hiccup: try again at the next beat, the lease still has two thirds
                log.exception("renewing the lease of job %s failed", job.id)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()


class Worker:
    def __init__(self, engine: Engine, settings: Settings, client_factory: ClientFactory,
                 config: WorkerConfig | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.client_factory = client_factory
        self.config = config or WorkerConfig.from_settings(settings)
        self.owner = f"{runs.worker_id()}:{uuid.uuid4().hex[:8]}"
        self.stopping = threading.Event()
        self._stop_asked = False  # request_stop's flag: no lock, so a signal handler may raise it
        self._pool = ThreadPoolExecutor(self.config.threads, thread_name_prefix="sync")
        self._freed = threading.Event()  # a thread finished its job: poll now rather than at the next tick
        self._lock = threading.Lock()
        self._busy = {Lane.SHORT: 0, Lane.LONG: 0}

    def free(self, lane: Lane) -> int:
        with self._lock:
            idle = self.config.threads - sum(self._busy.values())
            if lane == Lane.LONG:
                return max(0, min(idle, self.config.long_threads - self._busy[Lane.LONG]))
            return max(0, idle)

    def poll(self) -> int:
        """Recover expired leases, then claim what fits in the idle threads (long lane first, within its share)."""
        recover_expired(self.engine)
        claimed = 0
        for lane in (Lane.LONG, Lane.SHORT):
            for job in jobs.claim(self.engine, owner=self.owner, lane=lane, limit=self.free(lane),
                                  lease=self.config.lease):
                with self._lock:
                    self._busy[job.lane] += 1
                self._pool.submit(self._run, job)
                claimed += 1
        return claimed

    def _run(self, job: ClaimedJob) -> None:
        try:
            execute(self.engine, self.settings, self.client_factory, job, lease=self.config.lease,
                    stopping=self.stopping)
        except Exception:
            log.exception("job %s crashed outside its run", job.id)
        finally:
            with self._lock:
                self._busy[job.lane] -= 1
            self._freed.set()

    def run(self, *, until: Callable[[], bool] | None = None) -> None:
        """Poll until stopped (or until `until()` says so); then let running jobs reach a page end and return."""
        last_beat = 0.0
        try:
            while not self.stopping.is_set() and not self._stop_asked and not (until and until()):
                try:
                    if time.monotonic() - last_beat >= BEAT_EVERY_S:
                        worker_presence.beat(self.engine, self.owner)
                        last_beat = time.monotonic()
                    self.poll()
                except Exception:  # a database hiccup (a dropped connection, a deadlock victim): poll again later
                    log.exception("polling the job queue failed; trying again in %g s", self.config.poll_s)
                self._freed.wait(self.config.poll_s)
                self._freed.clear()
        finally:
            self.stop()

    def run_until_idle(self) -> None:
        """Run what is queued now (and what that queues), then return: `worker --once`."""
        try:
            while not self.stopping.is_set() and not self._stop_asked:
                if self.poll() == 0 and self.free(Lane.SHORT) == self.config.threads:
                    return
                self.stopping.wait(min(self.config.poll_s, 0.2))
        finally:
            self.stop()

    def request_stop(self) -> None:
        """Ask the worker to stop, from a signal handler too: it only raises a flag, which the poll loop turns into
        `stopping` within a poll. A handler runs in the main thread between two bytecodes of whatever it was doing,
        possibly inside the poll wait holding the event's own lock: setting the event there would wait for ever."""
        self._stop_asked = True

    def stop(self) -> None:
        self.stopping.set()
        self._pool.shutdown(wait=True)
        worker_presence.forget(self.engine, self.owner)


def run_job_now(engine: Engine, settings: Settings, client_factory: ClientFactory, job_id: int, *,
                lease: timedelta, progress: ProgressFn | None = None, now: datetime | None = None) -> RunResult:
    """Claim one given queued job and run it in this process, under the same lease and fencing as a worker (the
    command line and the demo run the jobs they queue). Raises SyncAlreadyRunning, with the job withdrawn and a
    manual fetch's cooldown given back, when another sync of the partner runs or a worker took the job first."""
    job = jobs.claim_one(engine, job_id, owner=f"{runs.worker_id()}:inline", lease=lease)
    if job is None:
        raise SyncAlreadyRunning("this partner", "queued", datetime.now(UTC))
    result = execute(engine, settings, client_factory, job, lease=lease, progress=progress, now=now,
                     raise_refusals=True)
    assert result is not None, "every refusal is raised when raise_refusals is set"
    return result


def drain(engine: Engine, settings: Settings, client_factory: ClientFactory, *, lease: timedelta) -> list[RunResult]:
    """Run every due queued job in this thread, one after another (the demo's replay of history)."""
    results: list[RunResult] = []
    while True:
        claimed = [job for lane in (Lane.LONG, Lane.SHORT)
                   for job in jobs.claim(engine, owner=f"{runs.worker_id()}:drain", lane=lane, limit=1, lease=lease)]
        if not claimed:
            return results
        for job in claimed:
            result = execute(engine, settings, client_factory, job, lease=lease)
            if result is not None:
                results.append(result)
