"""Streaming listing: every invoice of a 100,000-invoice tenant, exactly once, over a real loopback socket.

The emulator runs in its own process so only the client's memory is measured (tracemalloc peak during the
listing). The listing is run on a small and on the big tenant: its peak must grow far less than the pages do
(the peak is one page in flight plus a bitmap of ids, whatever the tenant's size).

    python -m bench.bench_listing [--small 20000] [--invoices 100000]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from dataclasses import dataclass

import httpx

from bench import harness
from bench.harness import CLIENT_ID, SECRET
from core.halopsa.client import HaloClient
from core.halopsa.config import HaloConfig


@dataclass(frozen=True)
class ListingResult:
    invoices: int
    distinct: int
    expected: int
    page_bytes: int
    peak_bytes: int
    elapsed_s: float

    @property
    def complete(self) -> bool:
        return self.invoices == self.distinct == self.expected


def growth_ratio(small: ListingResult, big: ListingResult) -> float:
    """How much the listing's peak memory grew per byte of extra pages (target < 0.2)."""
    return (big.peak_bytes - small.peak_bytes) / (big.page_bytes - small.page_bytes)


def page_bytes(url: str, config: HaloConfig) -> int:
    """Bytes of every invoice page at the client's page size (fetched raw, outside the measurement)."""
    with httpx.Client(base_url=url, timeout=60) as http:
        token = http.post("/auth/token", data={"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                               "client_secret": SECRET, "scope": "all"}).json()["access_token"]
        total, page = 0, 1
        while True:
            response = http.get("/api/Invoice", params={"pageinate": "true", "page_size": config.page_size,
                                                        "page_no": page},
                                headers={"Authorization": f"Bearer {token}"})
            total += len(response.content)
            rows = response.json()["invoices"]
            if len(rows) < config.page_size:
                return total
            page += 1


def run(invoices: int = 100_000) -> ListingResult:
    config = HaloConfig(rate_limit_requests=10**6, allow_local_domains=True)  # the emulator is served on loopback
    with harness.emulator(invoices) as tenant:
        url = tenant.url
        size = page_bytes(url, config)
        seen = bytearray(invoices * 2)  # one byte per possible id: "exactly once" without a set the size of the data
        count = distinct = 0
        with HaloClient(base_url=url, client_id=CLIENT_ID, client_secret=SECRET, config=config) as client:
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


def report(small: ListingResult, big: ListingResult) -> str:
    ratio = growth_ratio(small, big)
    mark = "PASS" if small.complete and big.complete and ratio < 0.2 else "MISS"
    lines = [f"listing over loopback: {r.invoices:,} invoices ({r.distinct:,} distinct of {r.expected:,}) in "
             f"{r.elapsed_s:.1f} s; peak client memory {r.peak_bytes / 2**20:.1f} MiB for "
             f"{r.page_bytes / 2**20:.1f} MiB of pages" for r in (small, big)]
    lines.append(f"peak growth per byte of extra pages: {ratio:.3f} (target < 0.2) {mark}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument("--invoices", type=int, default=100_000)
    args = parser.parse_args()
    print(report(run(args.small), run(args.invoices)))


if __name__ == "__main__":
    main()
