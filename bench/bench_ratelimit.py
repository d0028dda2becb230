"""Rate budget efficiency: list a many-page tenant through a real loopback socket under a scaled rate limit.

The emulator enforces L requests per rolling W seconds and answers 429 beyond that; the client runs with the
same budget. The listing must see no 429 and finish close to the minimum the limit allows for R requests,
(ceil(R / L) - 1) * W: the first L go at once, every further L wait one window.

    python -m bench.bench_ratelimit
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from core.halopsa.client import HaloClient
from core.halopsa.config import HaloConfig
from halo_emulator import EmulatorConfig, HaloEmulator, serve

TARGET_RATIO = 1.2


@dataclass(frozen=True)
class RateBenchResult:
    invoices: int
    requests: int
    rate_limited_responses: int
    elapsed_s: float
    minimum_s: float
    target_ratio: float = TARGET_RATIO

    @property
    def ratio(self) -> float:
        return self.elapsed_s / self.minimum_s if self.minimum_s else math.inf

    @property
    def passed(self) -> bool:
        return self.rate_limited_responses == 0 and self.ratio <= self.target_ratio


def theoretical_minimum_s(*, requests: int, limit: int, window_s: float) -> float:
    """The least time R requests can take at L per rolling W seconds."""
    return (math.ceil(requests / limit) - 1) * window_s


def run(*, invoices: int = 6000, page_size: int = 50, limit: int = 30, window_s: float = 3.0) -> RateBenchResult:
    config = EmulatorConfig(seed=7, invoices=invoices, rate_limit=(limit, window_s), count_token_requests=True)
    emulator = HaloEmulator(config)
    client_config = HaloConfig(page_size=page_size, rate_limit_requests=limit, rate_limit_window_s=window_s,
                             allow_local_domains=True)  # the emulator is served on loopback
    with serve(emulator, port=0) as server:
        client = HaloClient(
            base_url=server.url,
            client_id=config.resolved_client_id,
            client_secret=config.resolved_client_secret,
            config=client_config,
        )
        with client:
            started = time.monotonic()
            listed = sum(len(page.records) for page in client.iter_invoices())
            elapsed = time.monotonic() - started
    if listed != invoices:
        raise RuntimeError(f"listed {listed} invoices, expected {invoices}")
    requests = client.stats.requests
    return RateBenchResult(
        invoices=listed,
        requests=requests,
        rate_limited_responses=client.stats.rate_limited_responses,
        elapsed_s=elapsed,
        minimum_s=theoretical_minimum_s(requests=requests, limit=limit, window_s=window_s),
    )


def report(result: RateBenchResult) -> str:
    mark = "PASS" if result.passed else "MISS"
    return "\n".join(
        [
            f"invoices listed     {result.invoices}",
            f"requests            {result.requests}",
            f"429s received       {result.rate_limited_responses} (must be 0)",
            f"elapsed             {result.elapsed_s:.2f} s",
            f"theoretical minimum {result.minimum_s:.2f} s",
            f"ratio               {result.ratio:.3f} (target <= {result.target_ratio}) {mark}",
        ]
    )


if __name__ == "__main__":
    print(report(run()))
