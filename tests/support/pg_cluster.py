"""A throwaway PostgreSQL cluster for the test suite: Debian's postgresql binaries, a temp dir, a free loopback port.

    python -m tests.support.pg_cluster COMMAND [ARG...]

initdb's a cluster in a fresh temp dir (in memory-backed /dev/shm when it has room), starts it on 127.0.0.1 (and a
Unix socket in the same dir only), runs COMMAND with TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:PORT/
postgres in its environment, then stops the server and removes the dir whatever happened (failure, Ctrl-C, SIGTERM),
and exits with COMMAND's status. Durability is switched off (fsync, synchronous_commit, full_page_writes): the data
lives for one run. As root, the server runs as the `postgres` user (PostgreSQL refuses root) through runuser, and the
temp dir belongs to that user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

SERVER_USER = "postgres"
SETTINGS = {  # a throwaway server for hundreds of short-lived databases: no durability, no background upkeep
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "1h",
    "autovacuum": "off",
    "jit": "off",
    "max_connections": "300",
    "shared_buffers": "128MB",
    "log_min_messages": "warning",
}


class ClusterError(RuntimeError):
    pass


def bin_dir() -> Path:
    """The newest Debian PostgreSQL's bin dir (/usr/lib/postgresql/N/bin), else wherever `initdb` is on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    raise ClusterError("PostgreSQL's initdb was not found: install Debian's `postgresql` package "
                       "(bash .ci/install-system-packages does).")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scratch() -> str | None:
    """Memory-backed /dev/shm when it has room (the cluster never touches the disk: several times faster to create and
    drop a database per test), else the default temp dir."""
    shm = Path("/dev/shm")
    try:
        free = shutil.disk_usage(shm).free
    except OSError:
        return None
    return str(shm) if free >= 2 * 1024**3 and os.access(shm, os.W_OK) else None


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    if shutil.which("runuser"):
        return ["runuser", "-u", SERVER_USER, "--", *argv]
    return ["su", SERVER_USER, "-s", "/bin/sh", "-c", " ".join(_quote(a) for a in argv)]


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(_as_server_user(argv), capture_output=True, text=True)
    if done.returncode != 0:
        raise ClusterError(f"{what} failed ({done.returncode}): {(done.stderr or done.stdout).strip()}")


@contextlib.contextmanager
def cluster() -> Iterator[str]:
    """Start a throwaway cluster; yields its URL (superuser postgres, database postgres, trust auth on loopback)."""
    binaries = bin_dir()
    root = Path(tempfile.mkdtemp(prefix="halo-pg-", dir=_scratch()))
    try:
        if os.geteuid() == 0:
            shutil.chown(root, user=SERVER_USER, group=None)
        data = root / "data"
        _run([str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
              "--locale=C", "--no-sync"], "initdb")
        port = started = None
        for _attempt in range(5):  # a port found free may be taken before the server binds it: try another
            port = free_port()
            options = " ".join([f"-p {port}", f"-k {root}", *(f"-c {key}={value}" for key, value in SETTINGS.items())])
            try:
                _run([str(binaries / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-o", options,
                      "-w", "-t", "60", "start"], "pg_ctl start")
                started = port
                break
            except ClusterError:
                time.sleep(0.2)
        if started is None:
            log = root / "server.log"
            raise ClusterError("PostgreSQL did not start: " + (log.read_text()[-2000:] if log.exists() else ""))
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:{started}/postgres"
        finally:
            subprocess.run(_as_server_user([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                                            "stop"]), capture_output=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _raise_interrupt)  # stop and clean up on a CI job's cancellation too
    try:
        with cluster() as url:
            print(f"pg_cluster: PostgreSQL at {url}", file=sys.stderr, flush=True)
            env = {**os.environ, "TEST_DATABASE_URL": url}
            child = subprocess.Popen(list(argv), env=env)
            try:
                return child.wait()
            except KeyboardInterrupt:
                child.terminate()
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()
                return 130
    except ClusterError as exc:
        print(f"pg_cluster: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
