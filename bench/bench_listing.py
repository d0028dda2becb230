"""Streaming listing: every invoice of a 100,000-invoice tenant, exactly once, over a real loopback socket.

The emulator runs in its own process so only the client's memory is measured (tracemalloc peak during the
listing), against the bytes of all the pages it received.

    python -m bench.bench_listing [--invoices 100000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from core.halopsa.client import HaloClient
from core.settings import Settings

SECRET = "bench-secret"
CLIENT_ID = "bench-client"


@dataclass(frozen=True)
class ListingResult:
    invoices: int
    distinct: int
    expected: int
    page_bytes: int
    peak_bytes: int
    elapsed_s: float

    @property
    def memory_ratio(self) -> float:
        return self.peak_bytes / self.page_bytes

    @property
    def passed(self) -> bool:
        return self.invoices == self.distinct == self.expected and self.memory_ratio < 0.2


@contextmanager
def emulator_process(invoices: int, *extra: str) -> Iterator[str]:
    """Serve an emulator tenant in a child process; yields its URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.halopsa.emulator", "--port", "0", "--invoices", str(invoices),
         "--client-id", CLIENT_ID, "--client-secret", SECRET, *extra],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = first.split(" at ")[1].split()[0]
        for line in proc.stdout:
            if line.startswith("Ctrl-C"):
                break
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def page_bytes(url: str, settings: Settings) -> int:
    """Bytes of every invoice page at the client's page size (fetched raw, outside the measurement)."""
    with httpx.Client(base_url=url, timeout=60) as http:
        token = http.post("/auth/token", data={"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                               "client_secret": SECRET, "scope": "all"}).json()["access_token"]
        total, page = 0, 1
        while True:
            response = http.get("/api/Invoice", params={"pageinate": "true", "page_size": settings.page_size,
                                                        "page_no": page},
                                headers={"Authorization": f"Bearer {token}"})
            total += len(response.content)
            rows = response.json()["invoices"]
            if len(rows) < settings.page_size:
                return total
            page += 1


def run(invoices: int = 100_000) -> ListingResult:
    settings = Settings(rate_limit_requests=10**6)
    with emulator_process(invoices, "--rate-limit", "off") as url:
        size = page_bytes(url, settings)
        seen = bytearray(invoices * 2)  # one byte per possible id: "exactly once" without a set the size of the data
        count = distinct = 0
        with HaloClient(base_url=url, client_id=CLIENT_ID, client_secret=SECRET, settings=settings) as client:
            tracemalloc.start()
            started = time.perf_counter()
            for page in client.iter_invoices():
                count += len(page.records)
                for record in page.records:
                    distinct += not seen[record.halo_id]
                    seen[record.halo_id] = 1
            elapsed = time.perf_counter() - started
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
    return ListingResult(invoices=count, distinct=distinct, expected=invoices, page_bytes=size, peak_bytes=peak,
                         elapsed_s=elapsed)


def report(result: ListingResult) -> str:
    mark = "PASS" if result.passed else "MISS"
    return (f"listing over loopback: {result.invoices:,} invoices ({result.distinct:,} distinct of "
            f"{result.expected:,}) in {result.elapsed_s:.1f} s; peak client memory {result.peak_bytes / 2**20:.1f} MiB "
            f"vs {result.page_bytes / 2**20:.1f} MiB of pages = {result.memory_ratio:.3f} (target < 0.2) {mark}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--invoices", type=int, default=100_000)
    print(report(run(parser.parse_args().invoices)))


if __name__ == "__main__":
    main()
