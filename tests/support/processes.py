"""Real processes of the command line for tests: `Children.start(ARGS)` runs `python -m tests.support.processes ARGS`,
which is `python -m core ARGS` with the test hooks its environment asks for:

- HALO_TEST_RUN_LOG: every run's use of its HaloPSA client is logged there (tests.support.run_log);
- HALO_TEST_CLOCK_FILE: the run clock (`Settings.now`) is the ISO time written in that file, which the test moves;
- HALO_TEST_HOSTNAME: the process believes it runs on that host (a worker on another machine);
- HALO_TEST_BUSY_RETRY_S: a job whose partner is busy goes back to the queue for this long instead of 10 s.

`freeze` stops a child (SIGSTOP) at a moment it holds no database transaction open: a process paused longer than its
lease, as a VM pause, a swap storm or a debugger would, without stalling every other process behind its locks.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from core.settings import PROJECT_ROOT, Settings


def environment(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a child on the test's database (and its pinned clock, if any), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALO_") and k != "DATABASE_URL"}
    env.update(DATABASE_URL=settings.database_url, HALO_CONSOLE_SECRET_KEY=settings.secret_key or "",
               HALO_ALLOW_LOCAL_DOMAINS="1", HALO_DEMO="0", PYTHONPATH=str(PROJECT_ROOT))
    if settings.fixed_now is not None:
        env["HALO_CONSOLE_NOW"] = settings.fixed_now.isoformat()
    env.update(extra)
    return env


class Children:
    """The processes one test started, by name; each one's stderr is kept in a file of `folder`. Closing kills every
    one still running (a frozen one is let go on first), so a failing test leaves no process behind."""

    def __init__(self, settings: Settings, folder: Path) -> None:
        self.settings, self.folder = settings, folder
        self.started: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, *args: str, name: str, **env: str) -> subprocess.Popen[bytes]:
        with open(self.folder / f"{name}.stderr", "wb") as stderr:
            child = subprocess.Popen([sys.executable, "-m", "tests.support.processes", *args], cwd=PROJECT_ROOT,
                                     env=environment(self.settings, **env), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=stderr)
        self.started[name] = child
        return child

    def stderr(self, name: str) -> str:
        return (self.folder / f"{name}.stderr").read_text()

    def stop(self, name: str, timeout: float = 30) -> int:
        """SIGTERM (a worker lets its running jobs reach a page end and requeues them) and wait; the exit code."""
        child = self.started[name]
        child.send_signal(signal.SIGTERM)
        try:
            return child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGUSR1)  # every thread's stack into its stderr (faulthandler)
            time.sleep(1)
            raise AssertionError(f"{name} did not stop within {timeout:g} s:\n{self.stderr(name)}") from None

    def close(self) -> None:
        for child in self.started.values():
            if child.poll() is None:
                child.send_signal(signal.SIGCONT)
                child.kill()
            child.wait(30)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    """Poll `condition` until it holds; fail saying `what` was awaited after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(0.01)


def freeze(child: subprocess.Popen[bytes], database_url: str, *, tries: int = 500) -> None:
    """SIGSTOP `child` at a moment none of its threads holds a database transaction open."""
    for _ in range(tries):
        child.send_signal(signal.SIGSTOP)
        _wait_stopped(child.pid)
        if not _transaction_open(database_url):
            return
        child.send_signal(signal.SIGCONT)
        time.sleep(0.003)
    raise AssertionError(f"process {child.pid} never paused outside a database transaction")


def _wait_stopped(pid: int) -> None:
    """Until every thread of `pid` is stopped (a group stop reaches the threads one by one)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        states = []
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                states.append((task / "stat").read_text().rpartition(")")[2].split()[0])
            except FileNotFoundError:  # a thread that just ended
                continue
        if all(state in ("T", "t") for state in states):
            return
        time.sleep(0.001)
    raise AssertionError(f"process {pid} did not stop")


def _transaction_open(database_url: str) -> bool:
    """Whether another process holds a transaction open: SQLite's write lock taken, or a PostgreSQL session of this
    database in a transaction (the test's own pooled sessions are idle)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        conn = sqlite3.connect(url.database or "", timeout=0, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError:
            return True
        finally:
            conn.close()
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return bool(conn.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state <> 'idle'")))
    finally:
        engine.dispose()


def install_hooks(env: Any) -> None:
    """The test hooks `env` asks for (see the module's docstring), in this process; SIGUSR1 prints every thread's
    stack to stderr."""
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    from core import cli
    from core.store import database
    from core.sync import worker
    from tests.support import run_log

    if env.get("HALO_TEST_RUN_LOG"):
        log, made = Path(env["HALO_TEST_RUN_LOG"]), cli.stored_client_factory

        def stored_client_factory(*args: Any, **kwargs: Any) -> Any:
            return run_log.logged_factory(made(*args, **kwargs), database.make_engine(env["DATABASE_URL"]), log)

        cli.stored_client_factory = stored_client_factory  # type: ignore[assignment]
    if env.get("HALO_TEST_CLOCK_FILE"):
        clock = Path(env["HALO_TEST_CLOCK_FILE"])
        Settings.now = lambda self: datetime.fromisoformat(clock.read_text().strip())  # type: ignore[method-assign]
    if env.get("HALO_TEST_HOSTNAME"):
        host = env["HALO_TEST_HOSTNAME"]
        socket.gethostname = lambda: host
    if env.get("HALO_TEST_BUSY_RETRY_S"):
        worker.BUSY_PARTNER_RETRY = timedelta(seconds=float(env["HALO_TEST_BUSY_RETRY_S"]))


if __name__ == "__main__":
    install_hooks(os.environ)
    from core import cli

    sys.exit(cli.main(sys.argv[1:]))
