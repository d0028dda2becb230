"""Injected latency and many tenants behind one address (the fleet benchmarks' emulator)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from core.settings import PROJECT_ROOT
from halo_emulator import EmulatorConfig, HaloEmulator, Tenants, serve
from tests.support.emulator_api import authorise, token_form


def test_latency_is_one_sleep_per_answer_and_none_for_control_routes() -> None:
    slept: list[float] = []
    emu = HaloEmulator(invoices=10, rate_limit=None, latency_s=0.25, sleep=slept.append)
    with serve(emu) as server, httpx.Client(base_url=server.url, timeout=5) as client:
        authorise(client, emu)
        assert client.get("/api/Invoice").json()["record_count"] == 10
        assert client.get("/_emulator/state").status_code == 200
    assert slept == [0.25, 0.25]
    with pytest.raises(ValueError, match="latency"):
        EmulatorConfig(latency_s=-1)


def test_latency_waits_overlap_on_the_threaded_server() -> None:
    """Two requests are inside their latency sleep at the same moment: the wait is a sleep per request thread, not a
    queue (the barrier breaks, and the requests fail, if the second cannot arrive while the first waits)."""
    both_waiting = threading.Barrier(2, timeout=5)
    emu = HaloEmulator(invoices=10, rate_limit=None, latency_s=0.3, sleep=lambda _s: both_waiting.wait())
    with serve(emu) as server, ThreadPoolExecutor(2) as pool:
        def token(_: int) -> int:
            return httpx.post(f"{server.url}/auth/token", data=token_form(emu), timeout=10).status_code

        assert list(pool.map(token, range(2))) == [200, 200]


def test_tenants_share_an_address_and_keep_their_own_books() -> None:
    fleet = Tenants.numbered(EmulatorConfig(invoices=10, rate_limit=None, client_id="cid", client_secret="sec"), 3)
    assert fleet.names == ("tenant-1", "tenant-2", "tenant-3")
    form = {"grant_type": "client_credentials", "client_id": "cid", "client_secret": "sec", "scope": "all"}
    with serve(fleet) as server, httpx.Client(base_url=server.url, timeout=5) as one, \
            httpx.Client(base_url=server.url, timeout=5) as three:
        for client, name in ((one, "tenant-1"), (three, "TENANT-3")):
            token = client.post("/auth/token", params={"tenant": name}, data=form)
            assert token.status_code == 200, token.text
            client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        customer = next(c for c in fleet.tenant("tenant-1").clients.values() if not c["inactive"])
        created = one.post("/api/Invoice", json=[{"client_id": customer["id"], "total": 50.0}])
        assert created.status_code == 201, created.text
        assert one.get("/api/Invoice").json()["record_count"] == 11
        assert three.get("/api/Invoice").json()["record_count"] == 10, "another tenant's books are untouched"
        assert fleet.tenant("tenant-1") is not fleet.tenant("tenant-3")
        unknown = httpx.post(f"{server.url}/auth/token", params={"tenant": "tenant-4"}, data=form)
        missing = httpx.post(f"{server.url}/auth/token", data=form)
        assert unknown.status_code == missing.status_code == 401
        assert unknown.json()["error_description"] == "Unknown tenant 'tenant-4'"
        stranger = httpx.get(f"{server.url}/api/Invoice", headers={"Authorization": "Bearer nobody-issued-this"})
        assert stranger.status_code == 401 and stranger.json()["error"] == "invalid_token"
        state = one.get("/_emulator/state").json()
        assert (state["tenants"], state["built"], state["invoices"]) == (3, 2, 21)
        assert state["requests"] == 5, "two tokens, one POST, two listings; refusals never reach a tenant"
        assert one.post("/_emulator/advance", json={"to": "2026-11-02T00:00:00Z"}).status_code == 404


def test_cli_serves_numbered_tenants_with_latency() -> None:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    command = [sys.executable, "-m", "halo_emulator", "--port", "0", "--invoices", "20", "--tenants", "2",
               "--latency-ms", "1", "--client-id", "cid", "--client-secret", "sec", "--rate-limit", "off"]
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(6)]
        url = lines[0].split()[3]
        assert "tenant-1 ... tenant-2" in lines[4] and "every answer after 1 ms" in lines[5]
        form = {"grant_type": "client_credentials", "client_id": "cid", "client_secret": "sec"}
        token = httpx.post(f"{url}/auth/token", params={"tenant": "tenant-2"}, data=form, timeout=5).json()
        listed = httpx.get(f"{url}/api/Invoice", headers={"Authorization": f"Bearer {token['access_token']}"})
        assert listed.json()["record_count"] == 20
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
