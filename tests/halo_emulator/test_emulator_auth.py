"""Authorisation quirks of real tenants as emulator knobs: where the authorisation server lives (`/api/AuthInfo`,
absent on some tenants), and an expired token answered with HTTP 400 instead of 401 (n8n issue 16857)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from halo_emulator import HaloEmulator, Tenants, serve
from tests.support.emulator_api import BASE_URL, token_form

Api = Callable[..., httpx.Client]


def test_authinfo_names_an_authorisation_server_at_another_path_and_only_that_path_issues_tokens(api: Api) -> None:
    emu = HaloEmulator(invoices=10, rate_limit=None, tenant="acme", auth_path="/identity")
    client = api(emu, token=False)
    assert client.get("/api/AuthInfo").json() == {"auth_url": f"{BASE_URL}/identity", "tenant_id": "acme"}
    assert client.post("/auth/token", data=token_form(emu)).status_code == 404
    answer = client.post("/identity/token", params={"tenant": "acme"}, data=token_form(emu))
    assert answer.status_code == 200 and answer.json()["access_token"]


def test_a_tenant_without_authinfo_answers_404(api: Api) -> None:
    emu = HaloEmulator(invoices=10, rate_limit=None, auth_info=False)
    client = api(emu, token=False)
    assert client.get("/api/AuthInfo").status_code == 404
    assert client.post("/auth/token", data=token_form(emu)).status_code == 200


def test_an_expired_token_is_answered_with_401_by_default(api: Api) -> None:
    emu = HaloEmulator(invoices=10, rate_limit=None)
    client = api(emu)
    emu.expire_tokens()
    refused = client.get("/api/Invoice")
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_token"


def test_the_knob_answers_an_expired_token_with_an_oauth_400(api: Api) -> None:
    emu = HaloEmulator(invoices=10, rate_limit=None, expired_token_status=400)
    client = api(emu)
    assert client.get("/api/Invoice").status_code == 200
    emu.expire_tokens()
    refused = client.get("/api/Invoice")
    assert refused.status_code == 400
    assert refused.json() == {"error": "invalid_token"}
    assert "www-authenticate" not in refused.headers  # nothing but the body says it is about the token


def test_a_fleet_without_a_token_still_refuses_authinfo_as_unauthorised() -> None:
    """Many tenants behind one address cannot tell whose AuthInfo is asked for: a client falls back."""
    fleet = Tenants.numbered(HaloEmulator(invoices=10).config, 2)
    with serve(fleet) as server, httpx.Client(base_url=server.url) as client:
        assert client.get("/api/AuthInfo").status_code == 401
