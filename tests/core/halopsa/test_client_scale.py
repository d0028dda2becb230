"""A 100,000-invoice tenant: listed exactly once, streamed page by page in bounded memory."""

from __future__ import annotations

import gc
import tracemalloc

import httpx
import pytest

from halo_emulator import EmulatorConfig, HaloEmulator
from tests.support.client_fakes import emulator_client

INVOICES = 100_000


class _Recorder(httpx.BaseTransport):
    """Passes requests to the emulator and keeps each answer, to be served again without the emulator's work."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.pages: dict[str, tuple[int, dict[str, str], bytes]] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        self.pages[str(request.url)] = (response.status_code, dict(response.headers), response.read())
        return response


class _Replayer(httpx.BaseTransport):
    def __init__(self, pages: dict[str, tuple[int, dict[str, str], bytes]]) -> None:
        self.pages = pages

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600, "scope": "all"})
        status, headers, content = self.pages[str(request.url)]
        return httpx.Response(status, headers=headers, content=content)


@pytest.mark.slow
def test_a_100k_invoice_tenant_is_listed_once_in_memory_far_below_its_size() -> None:
    emulator = HaloEmulator(EmulatorConfig(seed=7, invoices=INVOICES, rate_limit=None))
    recorder = _Recorder(emulator.transport())
    base_url = "https://scale.sandbox"
    listed = [invoice.halo_id for page in emulator_client(emulator, base_url=base_url, transport=recorder)
              .iter_invoices() for invoice in page.records]  # fmt: skip
    assert len(listed) == len(set(listed)) == INVOICES
    assert set(listed) == set(emulator.invoices)
    page_bytes = sum(len(content) for _, _, content in recorder.pages.values())

    # The same listing again, answered from the recording so only the client's allocations are traced.
    client = emulator_client(emulator, base_url=base_url, transport=_Replayer(recorder.pages))
    del listed
    gc.freeze()  # the tenant's million objects need no collecting: keeps the traced run's collector passes short
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        count = sum(len(page.records) for page in client.iter_invoices())
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
        gc.unfreeze()
    assert count == INVOICES
    assert peak < page_bytes / 5, f"peak {peak / 1e6:.1f} MB for {page_bytes / 1e6:.1f} MB of pages"
