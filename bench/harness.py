"""Shared plumbing for `python -m bench`: emulator processes, measurements in fresh child processes, and the few
HaloPSA calls a benchmark makes outside what it measures (a token, warming the emulator, changing invoices).

Every measurement runs in its own child process (`python -m bench.worker TASK JSON`), so peak RSS (the process's
own high-water mark, `VmHWM`) belongs to that measurement alone and nothing (engines, caches, the
process-wide rate budgets) leaks from one measurement into the next. The emulator serves from yet another process,
so its CPU and memory are never counted for the console.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
SEED = 7
CLIENT_ID = "bench-client"
SECRET = "bench-secret"
PAGE_ROWS = 100
"""The most rows the emulator serves a page (its default cap, as real tenants'): raw listings page by it."""


@dataclass(frozen=True)
class Tenant:
    """An emulator tenant (or, with `tenants`, a fleet of them: tenant-1 ... tenant-N) served by a child process."""

    url: str
    invoices: int
    now: datetime
    pid: int
    tenants: int = 0


@contextmanager
def emulator(invoices: int, *, rate_limit: str = "off", activity: float = 0.0, latency_ms: float = 0.0,
             tenants: int = 0) -> Iterator[Tenant]:
    """Serve a tenant (`--activity 0`: its books only change when a benchmark changes them) in a child process;
    `tenants`: that many tenants with these books behind the one address; `latency_ms`: every answer waits that long."""
    fleet = ["--tenants", str(tenants)] if tenants else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "halo_emulator", "--port", "0", "--seed", str(SEED), "--invoices",
         str(invoices), "--client-id", CLIENT_ID, "--client-secret", SECRET, "--rate-limit", rate_limit,
         "--activity", str(activity), "--latency-ms", str(latency_ms), *fleet],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = first.split(" at ")[1].split()[0]
        for line in proc.stdout:
            if line.startswith("Ctrl-C"):
                break
        yield Tenant(url=url, invoices=invoices, now=state(url)["now"], pid=proc.pid, tenants=tenants)
    finally:
        proc.terminate()
        proc.wait(10)


def state(url: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{url}/_emulator/state", timeout=30).json()
    body["now"] = datetime.fromisoformat(body["now"])
    return body


def advance(url: str, to: datetime) -> None:
    httpx.post(f"{url}/_emulator/advance", json={"to": to.isoformat()}, timeout=60).raise_for_status()


def token(http: httpx.Client) -> str:
    reply = http.post("/auth/token", data={"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                           "client_secret": SECRET, "scope": "all"})
    reply.raise_for_status()
    return str(reply.json()["access_token"])


def warm(url: str, path: str = "Invoice", **params: str) -> None:
    """List every page once (uncounted): the emulator encodes each row and sorts each order on first use, which a
    real HaloPSA's database does not make its callers wait for."""
    with httpx.Client(base_url=url, timeout=120) as http:
        headers = {"Authorization": f"Bearer {token(http)}"}
        page = 1
        while True:
            body = http.get(f"/api/{path}", headers=headers,
                            params={**params, "pageinate": "true", "page_size": PAGE_ROWS, "page_no": page}).json()
            rows = next(v for v in body.values() if isinstance(v, list))
            if len(rows) < PAGE_ROWS:
                return
            page += 1


def warm_first_page(url: str, path: str, **params: str) -> None:
    """One uncounted request for an order's first page: the emulator sorts (and caches) that order."""
    with httpx.Client(base_url=url, timeout=120) as http:
        http.get(f"/api/{path}", headers={"Authorization": f"Bearer {token(http)}"},
                 params={**params, "pageinate": "true", "page_size": 1, "page_no": 1}).raise_for_status()


def record_count(url: str, path: str, **params: str) -> int:
    """The `record_count` HaloPSA reports for a listing (one page of one row, uncounted)."""
    with httpx.Client(base_url=url, timeout=120) as http:
        body = http.get(f"/api/{path}", headers={"Authorization": f"Bearer {token(http)}"},
                        params={**params, "pageinate": "true", "page_size": 1, "page_no": 1}).json()
    return int(body["record_count"])


def change_invoices(url: str, count: int, *, tag: str) -> list[int]:
    """Change exactly `count` invoices through the API at the emulator's current time: half get a new due date,
    half are paid in full. Returns their ids."""
    with httpx.Client(base_url=url, timeout=120) as http:
        headers = {"Authorization": f"Bearer {token(http)}"}
        unpaid = http.get("/api/Invoice", headers=headers,
                          params={"paymentstatuses": "0,1", "pageinate": "true", "page_size": PAGE_ROWS,
                                  "page_no": 1}).json()["invoices"]
        unpaid = [row for row in unpaid if not row["voided"] and row["amountdue"] > 0]
        paid, edited = unpaid[: count // 2], unpaid[count // 2 : count]
        if len(paid) + len(edited) < count:
            raise RuntimeError(f"the tenant has fewer than {count} unpaid invoices to change")
        body = [{"id": row["id"], "duedate": "2027-01-31T00:00:00", "thirdpartyinvoicenumber": f"{tag}-{row['id']}"}
                for row in edited]
        http.post("/api/Invoice", headers=headers, json=body).raise_for_status()
        for row in paid:
            http.post("/api/InvoicePayment", headers=headers,
                      json=[{"invoice_id": row["id"], "amount": row["amountdue"]}]).raise_for_status()
    return [row["id"] for row in paid + edited]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process: this one's without the console's settings (HALO_*, DATABASE_URL), so
    only what a measurement sets (`extra`) configures it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HALO_", "DATABASE_URL"))}
    env.update(extra or {})
    env["PYTHONPATH"] = str(ROOT)
    return env


def run_child(task: str, args: dict[str, Any], *, env: dict[str, str] | None = None,
              timeout: float = 1800) -> dict[str, Any]:
    """Run `bench.worker` TASK in a fresh interpreter; returns the JSON it prints last."""
    done = subprocess.run([sys.executable, "-m", "bench.worker", task, json.dumps(args, default=str)], cwd=ROOT,
                          env=child_env(env), capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"bench.worker {task} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def postgres_database(admin_url: str, name: str) -> str:
    """Create database `name` on the server of `admin_url` (a superuser's); returns its URL."""
    from sqlalchemy import create_engine, text

    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return f"{admin_url.rpartition('/')[0]}/{name}"


def _status_kib(field: str) -> int | None:
    """A size from /proc/self/status (Linux), in KiB; None where there is none."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_now_kib() -> int:
    """Current resident set size of this process in KiB (Linux /proc; falls back to the peak so far)."""
    return _status_kib("VmRSS") or peak_rss_kib()


def peak_rss_kib() -> int:
    """Peak resident set size of this process's own memory in KiB: Linux's VmHWM. Not `ru_maxrss`: Linux carries
    that over from the process that started this one (a fork, or the vfork `subprocess` uses, hands the parent's
    high-water mark to the child), so a child of a bench that once held 500 MiB reported a 429 MiB "growth" it
    never had. Elsewhere, `ru_maxrss` (KiB on Linux)."""
    return _status_kib("VmHWM") or int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a running process (another one) has used so far (Linux /proc; 0.0 when gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()  # after the command name, which may hold spaces
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14 and 15


def machine() -> str:
    cpus = os.cpu_count() or 0
    model = ""
    try:
        with open("/proc/cpuinfo") as info:
            model = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "")
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as info:
            memory = f"{int(info.readline().split()[1]) / 2**20:.0f} GiB RAM"
    except OSError:
        memory = ""
    py = ".".join(map(str, sys.version_info[:3]))
    return ", ".join(part for part in (f"{cpus} cores", model, memory, f"Python {py}", sys.platform) if part)
