"""Auth on real tenants: an expired token answered with an OAuth-style HTTP 400 instead of 401 (n8n issue 16857), and
the authorisation server discovered from `/api/AuthInfo`, falling back to `{host}/auth/token`."""

from __future__ import annotations

import httpx
import pytest

from core.errors import AuthError, HaloError
from halo_emulator import EmulatorConfig, FaultRule, HaloEmulator, Tenants, serve
from tests.support.client_fakes import FakeHalo, emulator_client, invoice_row, make_client


def _invoices(n: int = 3) -> FakeHalo:
    return FakeHalo(lists={"invoice": ("invoices", [invoice_row(i) for i in range(1, n + 1)])})


def _drain(pages) -> list[int]:
    return [record.halo_id for page in pages for record in page.records]


def _paths(emulator: HaloEmulator) -> list[str]:
    return [entry.path.lower() for entry in emulator.stats.log]


EXPIRED_TOKEN_400S = [
    httpx.Response(400, json={"error": "invalid_token"}),
    httpx.Response(400, json={"error": "invalid_grant", "error_description": "The token has expired"}),
    httpx.Response(400, text="The access token has expired"),
    httpx.Response(400, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}),
]


# -- an expired token answered with HTTP 400 ---------------------------------------------------------------------


@pytest.mark.parametrize("refusal", EXPIRED_TOKEN_400S, ids=["invalid_token", "invalid_grant", "text", "header"])
def test_an_oauth_400_about_the_token_renews_it_once_and_retries_like_a_401(refusal) -> None:
    fake = _invoices()
    fake.queue("/api/invoice", refusal)
    client = make_client(fake)
    assert _drain(client.iter_invoices()) == [1, 2, 3]
    assert client.stats.token_requests == 2
    asked = [r.headers["authorization"] for r in fake.api_requests("/api/invoice")]
    assert asked == ["Bearer tok-1", "Bearer tok-2", "Bearer tok-2"]  # the short first page asks once more


@pytest.mark.parametrize(
    "body",
    [{"order": "last_modified cannot be sorted"}, {"[0].id": "bad"}, {"error": "invalid_request"}, {"token": "x"},
     "Bad Request"],
)  # fmt: skip
def test_a_400_about_anything_else_is_not_taken_for_an_expired_token(body) -> None:
    fake = _invoices()
    reply = httpx.Response(400, json=body) if isinstance(body, dict) else httpx.Response(400, text=body)
    fake.queue("/api/invoice", reply)
    client = make_client(fake)
    with pytest.raises(HaloError, match=r"HTTP 400"):
        _drain(client.iter_invoices())
    assert client.stats.token_requests == 1


def test_a_fresh_token_refused_again_stops_with_a_reason_a_person_can_act_on() -> None:
    fake = _invoices()
    fake.queue("/api/invoice", httpx.Response(400, json={"error": "invalid_token"}),
               httpx.Response(400, json={"error": "invalid_token"}))  # fmt: skip
    client = make_client(fake)
    with pytest.raises(AuthError) as caught:
        _drain(client.iter_invoices())
    assert "GET /api/Invoice" in caught.value.message and "HTTP 400" in caught.value.message
    assert "API application" in caught.value.message  # where to look
    assert client.stats.token_requests == 2  # renewed once, not in a loop


def test_a_tenant_answering_400_on_expiry_is_listed_completely() -> None:
    emulator = HaloEmulator(EmulatorConfig(seed=7, invoices=300, rate_limit=None, expired_token_status=400))
    emulator.add_fault(FaultRule(kind="token_expiry", path="/api/invoice", times=1, after=1))
    client = emulator_client(emulator, page_size=50)
    assert sorted(_drain(client.iter_invoices())) == sorted(emulator.invoices)
    assert client.stats.token_requests == 2


# -- discovery of the authorisation server ----------------------------------------------------------------------


def test_the_authorisation_server_is_discovered_from_authinfo_with_its_tenant() -> None:
    """A tenant whose token endpoint is not at {host}/auth/token and that needs a tenant nobody typed in."""
    emulator = HaloEmulator(EmulatorConfig(seed=7, invoices=50, rate_limit=None, tenant="acme", require_tenant=True,
                                           auth_path="/identity"))  # fmt: skip
    client = emulator_client(emulator)
    assert client.verify().ok
    assert _drain(client.iter_invoices())
    assert _paths(emulator)[:2] == ["/api/authinfo", "/identity/token"]
    assert emulator.stats.log[1].query == {"tenant": "acme"}


def test_discovery_happens_once_per_client_and_renewals_reuse_it() -> None:
    emulator = HaloEmulator(EmulatorConfig(seed=7, invoices=50, rate_limit=None, auth_path="/identity"))
    client = emulator_client(emulator)
    client.verify()
    emulator.expire_tokens()
    assert _drain(client.iter_invoices())
    assert client.stats.token_requests == 2
    assert _paths(emulator).count("/api/authinfo") == 1


def test_without_authinfo_the_token_comes_from_the_host() -> None:
    emulator = HaloEmulator(EmulatorConfig(seed=7, invoices=50, rate_limit=None, auth_info=False))
    client = emulator_client(emulator)
    assert client.verify().ok
    assert _paths(emulator)[:2] == ["/api/authinfo", "/auth/token"]


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(401, json={"error": "invalid_token"}),
        httpx.Response(200, text="<html>not json</html>"),
        httpx.Response(200, json={"auth_url": "http://downgraded.example/auth", "tenant_id": "x"}),
        httpx.Response(200, json={"auth_url": "not a url"}),
        httpx.Response(200, json={"auth_url": 42}),
        httpx.Response(200, json=["auth_url"]),
    ],
    ids=["401", "html", "http-downgrade", "garbage", "number", "list"],
)
def test_an_unusable_authinfo_answer_falls_back_to_the_host(answer) -> None:
    fake = _invoices()
    fake.queue("/api/authinfo", answer)
    client = make_client(fake, base_url="https://acme.halopsa.test")
    assert client.verify().ok
    (token_request,) = fake.api_requests("/auth/token")
    assert str(token_request.url).startswith("https://acme.halopsa.test/auth/token")
    assert "tenant" not in token_request.url.params


def test_a_tenant_typed_in_wins_over_the_discovered_one() -> None:
    fake = _invoices()
    fake.queue("/api/authinfo", httpx.Response(200, json={"auth_url": "https://login.acme.test/as", "tenant_id": "b"}))
    fake.queue("/as/token", httpx.Response(200, json={"access_token": "t", "expires_in": 3600, "scope": "all"}))
    client = make_client(fake, base_url="https://acme.halopsa.test", tenant="acme")
    client.verify()
    (token_request,) = fake.api_requests("/as/token")
    assert token_request.url.host == "login.acme.test" and token_request.url.params["tenant"] == "acme"


def test_a_missing_token_endpoint_names_where_the_client_looked() -> None:
    emulator = HaloEmulator(EmulatorConfig(seed=7, invoices=50, rate_limit=None, auth_info=False, auth_path="/x"))
    with pytest.raises(AuthError, match=r"/auth/token.*App Domain"):
        emulator_client(emulator).verify()


def test_a_fleet_behind_one_address_falls_back_and_works() -> None:
    fleet = Tenants.numbered(EmulatorConfig(seed=7, invoices=20, rate_limit=None), 2)
    with serve(fleet) as server:
        client = emulator_client(fleet.tenant("tenant-2"), base_url=server.url, tenant="tenant-2")
        assert client.verify().ok
        assert sorted(_drain(client.iter_invoices())) == sorted(fleet.tenant("tenant-2").invoices)
