"""What reading a HaloPSA shaped as the public evidence describes costs in requests (issue 12): a whole invoice
listing at the page cap of 100 with `record_count` reporting the page's length, per 1,000 invoices, and the capability
probe's cost. Counted from the client's own request statistics against an in-process emulator (no sockets: the
figures are counts, not times)."""

from __future__ import annotations

import time
from typing import Any

from core.halopsa.client import HaloClient
from core.halopsa.config import HaloConfig
from core.halopsa.probe import probe
from halo_emulator import EmulatorConfig, HaloEmulator

PAGE_CAP = 100


def _client(emulator: HaloEmulator) -> HaloClient:
    return HaloClient(base_url="https://bench.halopsa.com", client_id=emulator.client_id,
                      client_secret=emulator.client_secret, transport=emulator.transport(),
                      config=HaloConfig(rate_limit_requests=10**9))  # counting requests, not pacing them


def measure(invoices: int) -> dict[str, Any]:
    """Requests of a whole invoice listing and of a probe on a tenant of `invoices` capped at 100 rows a page."""
    emulator = HaloEmulator(EmulatorConfig(seed=7, invoices=invoices, page_size_cap=PAGE_CAP, rate_limit=None,
                                           record_count_is_page_length=True))
    with _client(emulator) as client:
        started = time.perf_counter()
        found = probe(client)
        probe_s = time.perf_counter() - started
    with _client(emulator) as client:
        client.adopt(found.profile(client.config))
        listed = sum(len(page.records) for page in client.iter_invoices())
        listing_requests = client.stats.pages
    return {"invoices": invoices, "listed": listed, "listing_requests": listing_requests,
            "per_thousand": listing_requests * 1000 / invoices, "probe_requests": found.requests,
            "probe_cpu_s": probe_s}
