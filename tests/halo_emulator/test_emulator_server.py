"""The emulator on a real loopback socket with a real httpx.Client, its control routes and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from core.settings import PROJECT_ROOT
from halo_emulator import EmulatorServer, FaultRule, HaloEmulator, serve
from tests.support.emulator_api import authorise, token_form


@pytest.fixture
def served() -> Iterator[tuple[HaloEmulator, EmulatorServer, httpx.Client]]:
    emu = HaloEmulator(invoices=1000, tenant="acme", rate_limit=None)
    with serve(emu) as server, httpx.Client(base_url=server.url, timeout=5) as client:
        yield emu, server, client


def test_reference_requests_over_the_socket(served: tuple[HaloEmulator, EmulatorServer, httpx.Client]) -> None:
    emu, server, client = served
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert client.get("/api/AuthInfo").json() == {"auth_url": f"{server.url}/auth", "tenant_id": "acme"}
    token = client.post("/auth/token?tenant=acme", data=token_form(emu))
    assert token.status_code == 200 and token.json()["token_type"] == "Bearer"
    client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    first_page = {"pageinate": "true", "page_size": 100, "page_no": 1}
    clients = client.get("/api/Client", params={**first_page, "includeinactive": "true", "order": "name"})
    names = [c["name"] for c in clients.json()["clients"]]
    assert clients.json()["record_count"] == len(emu.clients) and names == sorted(names, key=str.casefold)
    page = client.get("/api/Invoice", params={**first_page, "page_no": 3, "order": "id", "orderdesc": "true"})
    assert [i["id"] for i in page.json()["invoices"]] == sorted(emu.invoices, reverse=True)[200:300]
    assert page.headers["content-type"].startswith("application/json")
    contracts = client.get("/api/ClientContract", params={**first_page, "includeinactive": "true"})
    assert contracts.json()["record_count"] == len(emu.contracts)
    lookup = {"lookupid": emu.subtype_lookup_id}
    assert [s["name"] for s in client.get("/api/Lookup", params=lookup).json()][0] == "Managed Services"
    webhook = client.post("/api/Webhook", json=[{"name": "AP", "url": "https://pay.example/hook"}]).json()
    assert client.get("/api/Webhook").json() == [webhook]
    assert client.delete(f"/api/Webhook/{webhook['id']}").status_code == 200
    assert client.get("/api/webhook").json() == []
    assert client.get("/api/Nothing").status_code == 404


def test_socket_faults_behave_like_a_network(served: tuple[HaloEmulator, EmulatorServer, httpx.Client]) -> None:
    emu, _, client = served
    authorise(client, emu)
    emu.add_fault(FaultRule("drop", path="/api/invoice"))
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/api/Invoice")
    emu.add_fault(FaultRule("timeout", path="/api/invoice", delay_s=30))
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        client.get("/api/Invoice", timeout=0.3)
    assert time.monotonic() - started < 5
    emu.add_fault(FaultRule("status", status=503, retry_after=7))
    unavailable = client.get("/api/Invoice")
    assert unavailable.status_code == 503 and unavailable.headers["retry-after"] == "7"
    emu.add_fault(FaultRule("rate_limit", retry_after=3))
    limited = client.get("/api/Invoice")
    assert limited.status_code == 429 and limited.text.startswith("Rate Limit Reached")
    assert client.get("/api/Invoice", params={"count": 5}).json()["record_count"] == 5


def test_slow_fault_over_the_socket_makes_a_client_time_out() -> None:
    emu = HaloEmulator(invoices=10, rate_limit=None)
    emu.add_fault(FaultRule("slow", path="/auth/token", delay_s=0.5))
    with serve(emu) as server, httpx.Client(base_url=server.url) as client, pytest.raises(httpx.ReadTimeout):
        client.post("/auth/token", data=token_form(emu), timeout=0.1)


def test_control_routes_drive_the_tenant(served: tuple[HaloEmulator, EmulatorServer, httpx.Client]) -> None:
    emu, _, client = served
    state = client.get("/_emulator/state").json()
    assert state["invoices"] == 1000 and state["now"] == "2026-11-01T00:00:00+00:00"
    changes = client.post("/_emulator/advance", json={"to": "2026-11-02T00:00:00Z"}).json()
    assert changes["end"] == "2026-11-02T00:00:00+00:00"
    assert {int(i) for i in changes["invoices_created"]} <= set(emu.invoices)
    created, deleted = len(changes["invoices_created"]), len(changes["invoices_deleted"])
    assert client.get("/_emulator/state").json()["invoices"] == 1000 + created - deleted
    assert client.post("/_emulator/advance", json={"to": "2026-10-01T00:00:00Z"}).status_code == 400
    added = client.post("/_emulator/faults", json={"kind": "status", "status": 502, "path": "/api/client"})
    assert added.status_code == 201
    authorise(client, emu)
    assert client.get("/api/Client").status_code == 502
    emu.add_fault(FaultRule("status", status=500))
    assert client.delete("/_emulator/faults").status_code == 200
    assert client.get("/api/Client").status_code == 200
    assert client.post("/_emulator/faults", json={"kind": "nope"}).status_code == 400
    assert emu.stats.by_path.get("/_emulator/state") is None, "control calls are not API traffic"


def test_cli_serves_a_tenant_and_prints_its_credentials() -> None:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    command = [sys.executable, "-m", "halo_emulator", "--port", "0", "--invoices", "50", "--seed", "5",
               "--scopes", "read:customers read:invoices", "--rate-limit", "off", "--tenant", "acme"]  # fmt: skip
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(4)]
        url = lines[0].split()[3]
        client_id = lines[2].split()[-1]
        secret = lines[3].split()[-1]
        expected = HaloEmulator(invoices=50, seed=5)
        assert (client_id, secret) == (expected.client_id, expected.client_secret)
        with httpx.Client(base_url=url, timeout=5) as client:
            form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret, "scope": "all"}
            token = client.post("/auth/token?tenant=acme", data=form).json()
            assert token["scope"].endswith("read:customers read:invoices")
            client.headers["Authorization"] = f"Bearer {token['access_token']}"
            assert client.get("/api/Invoice").json()["record_count"] == 50
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
