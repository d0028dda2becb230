"""Token handling, permissions and credential errors of the HaloPSA client."""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import parse_qs

import httpx
import pytest

from core.errors import AuthError, PermissionMissing
from core.halopsa.auth import CREDENTIALS_REJECTED, check_scopes, scope_for_path
from core.halopsa.config import REQUIRED_SCOPES
from tests.support.client_fakes import CLIENT_ID, SECRET, FakeHalo, invoice_row, make_client
from tests.support.clock import FakeClock


def _invoices(n: int = 3) -> FakeHalo:
    return FakeHalo(lists={"invoice": ("invoices", [invoice_row(i) for i in range(1, n + 1)])})


def _drain(pages) -> list[int]:
    return [invoice.halo_id for page in pages for invoice in page.records]


def _assert_no_secret(*texts: object) -> None:
    for text in texts:
        assert SECRET not in str(text)


def test_token_request_is_a_form_encoded_client_credentials_grant_without_tenant_by_default() -> None:
    fake = _invoices()
    make_client(fake).verify()
    (request,) = fake.api_requests("/auth/token")
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.content.decode()) == {
        "grant_type": ["client_credentials"],
        "client_id": [CLIENT_ID],
        "client_secret": [SECRET],
        "scope": ["all"],
    }
    assert "tenant" not in request.url.params


def test_tenant_travels_as_a_query_parameter_of_the_token_url() -> None:
    fake = _invoices()
    make_client(fake, tenant="acme").verify()
    (request,) = fake.api_requests("/auth/token")
    assert request.url.params["tenant"] == "acme"
    assert "tenant" not in parse_qs(request.content.decode())


def test_api_calls_carry_the_bearer_token_and_reuse_it() -> None:
    fake = _invoices()
    client = make_client(fake)
    _drain(client.iter_invoices())
    _drain(client.iter_invoices())
    assert client.stats.token_requests == 1
    assert {r.headers["authorization"] for r in fake.api_requests("/api/invoice")} == {"Bearer tok-1"}


def test_token_is_renewed_ahead_of_expiry() -> None:
    fake, clock = _invoices(), FakeClock()
    fake.expires_in = 100  # renew 10 s early (10% of the lifetime, at most 60 s)
    client = make_client(fake, clock)
    _drain(client.iter_invoices())
    clock.now += 89
    _drain(client.iter_invoices())
    assert client.stats.token_requests == 1
    clock.now += 2
    _drain(client.iter_invoices())
    assert client.stats.token_requests == 2
    assert fake.api_requests("/api/invoice")[-1].headers["authorization"] == "Bearer tok-2"


def test_long_lived_token_is_renewed_a_minute_before_it_expires() -> None:
    fake, clock = _invoices(), FakeClock()
    client = make_client(fake, clock)
    _drain(client.iter_invoices())
    clock.now += 3600 - 61
    _drain(client.iter_invoices())
    clock.now += 2
    _drain(client.iter_invoices())
    assert client.stats.token_requests == 2


def test_a_401_renews_the_token_once_and_retries() -> None:
    fake = _invoices()
    fake.queue("/api/invoice", httpx.Response(401))
    client = make_client(fake)
    assert _drain(client.iter_invoices()) == [1, 2, 3]
    assert client.stats.token_requests == 2
    asked = [r.headers["authorization"] for r in fake.api_requests("/api/invoice")]
    assert asked == ["Bearer tok-1", "Bearer tok-2", "Bearer tok-2"]  # the short first page asks once more


@pytest.mark.parametrize(
    ("entity", "call", "scope"),
    [
        ("invoice", lambda c: list(c.iter_invoices()), "read:invoices"),
        ("client", lambda c: list(c.iter_customers()), "read:customers"),
        ("clientcontract", lambda c: list(c.iter_agreements()), "read:contracts"),
        ("invoice/7", lambda c: c.get_invoice(7), "read:invoices"),
    ],
)
def test_a_second_401_means_the_scope_for_that_path_is_missing(entity, call, scope) -> None:
    fake = _invoices()
    fake.queue(f"/api/{entity}", httpx.Response(401), httpx.Response(401))
    client = make_client(fake)
    with pytest.raises(PermissionMissing) as caught:
        call(client)
    assert caught.value.missing == [scope]
    assert len(fake.api_requests(f"/api/{entity}")) == 2


def test_a_403_is_a_missing_permission_at_once() -> None:
    fake = _invoices()
    fake.queue("/api/invoice", httpx.Response(403))
    client = make_client(fake)
    with pytest.raises(PermissionMissing) as caught:
        list(client.iter_invoices())
    assert caught.value.missing == ["read:invoices"]
    assert len(fake.api_requests("/api/invoice")) == 1
    assert client.stats.retries == 0


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, {"error": "invalid_client"}),
        (400, {"error": "invalid_grant", "error_description": "bad secret"}),
        (400, {"error": "unauthorized_client"}),
        (403, "Forbidden"),
    ],
)
def test_rejected_credentials_raise_a_readable_auth_error_without_the_secret(status, body, caplog) -> None:
    fake = _invoices()
    reply = httpx.Response(status, json=body) if isinstance(body, dict) else httpx.Response(status, text=body)
    fake.queue("/auth/token", reply)
    client = make_client(fake)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthError) as caught:
        client.verify()
    assert caught.value.message == CREDENTIALS_REJECTED
    assert len(fake.api_requests("/auth/token")) == 1  # not retried
    _assert_no_secret(caught.value, repr(caught.value), caught.value.__cause__, caught.value.__context__)
    _assert_no_secret(repr(client), caplog.text)


def test_a_tenant_problem_names_the_tenant() -> None:
    fake = _invoices()
    body = {"error": "invalid_request", "error_description": "Unknown tenant"}
    fake.queue("/auth/token", httpx.Response(400, json=body))
    with pytest.raises(AuthError, match="tenant 'acme'"):
        make_client(fake, tenant="acme").verify()


def test_an_instance_that_needs_a_tenant_says_so() -> None:
    fake = _invoices()
    fake.queue("/auth/token", httpx.Response(400, text="tenant is required"))
    with pytest.raises(AuthError, match="needs a tenant"):
        make_client(fake).verify()


def test_a_token_endpoint_that_does_not_exist_points_at_the_app_domain() -> None:
    fake = _invoices()
    fake.queue("/auth/token", httpx.Response(404))
    with pytest.raises(AuthError, match="App Domain"):
        make_client(fake).verify()


def test_token_endpoint_outages_are_retried() -> None:
    fake = _invoices()
    fake.queue("/auth/token", httpx.Response(503), httpx.ConnectError("refused"))
    client = make_client(fake)
    assert client.verify().ok
    assert client.stats.token_requests == 3
    assert client.stats.retries == 2


def test_verify_reports_missing_permissions_by_exact_name_sorted() -> None:
    fake = _invoices()
    fake.scope = "openid read:customers edit:invoices read:contracts"
    check = make_client(fake).verify()
    assert check.missing == ("admin:webhooks", "edit:contracts", "edit:customers")
    assert check.granted == ("edit:invoices", "openid", "read:contracts", "read:customers")
    assert not check.ok


def test_verify_fetches_a_fresh_token_so_changed_permissions_show() -> None:
    fake = _invoices()
    fake.scope = "read:customers"
    client = make_client(fake)
    assert "admin:webhooks" in client.verify().missing
    fake.scope = " ".join(REQUIRED_SCOPES)
    assert client.verify().ok
    assert client.stats.token_requests == 2


def test_require_scopes_raises_with_the_missing_names() -> None:
    fake = _invoices()
    fake.scope = "edit:customers edit:invoices edit:contracts"
    with pytest.raises(PermissionMissing) as caught:
        make_client(fake).require_scopes()
    assert caught.value.missing == ["admin:webhooks"]
    assert "admin:webhooks" in caught.value.message


def test_require_scopes_passes_when_everything_is_granted() -> None:
    assert make_client(_invoices()).require_scopes().missing == ()


def test_a_token_without_a_scope_field_cannot_be_judged_up_front() -> None:
    fake = _invoices()
    fake.scope = None
    check = make_client(fake).verify()
    assert (check.granted, check.missing, check.reported) == ((), (), False)


@pytest.mark.parametrize(
    ("granted", "missing"),
    [
        (REQUIRED_SCOPES, ()),
        (("edit:customers", "edit:invoices", "edit:contracts", "admin:webhooks"), ()),
        (("all",), ()),
        (("ADMIN:WEBHOOKS", "Edit:Customers", "edit:invoices", "edit:contracts"), ()),
        (("read:customers", "read:invoices", "read:contracts"),
         ("admin:webhooks", "edit:contracts", "edit:customers", "edit:invoices")),
        ((), tuple(sorted(REQUIRED_SCOPES))),
    ],
)  # fmt: skip
def test_edit_implies_read_and_missing_names_are_exact(granted, missing) -> None:
    assert check_scopes(granted).missing == missing


@pytest.mark.parametrize(
    ("path", "scope"),
    [
        ("Client", "read:customers"),
        ("/api/client/4", "read:customers"),
        ("Invoice/12", "read:invoices"),
        ("InvoicePayment", "read:invoices"),
        ("ClientContract", "read:contracts"),
        ("Webhook", "admin:webhooks"),
        ("Lookup", None),
    ],
)
def test_scope_for_path(path, scope) -> None:
    assert scope_for_path(path) == scope


def test_a_refused_lookup_means_no_subtype_names() -> None:
    fake = _invoices()
    fake.queue("/api/lookup", httpx.Response(401), httpx.Response(401))
    client = make_client(fake)
    found = client.subtype_lookup(58, {1})
    assert not found.verified and not found.names and "refused access to /api/Lookup" in found.finding
    assert client.stats.token_requests == 2


def test_concurrent_callers_share_one_token_request() -> None:
    fake = _invoices()

    def slow_token(request: httpx.Request) -> httpx.Response:
        time.sleep(0.05)
        return httpx.Response(200, json={"access_token": "shared", "expires_in": 3600, "scope": "all"})

    fake.queue("/auth/token", slow_token)
    client = make_client(fake)
    results: list[list[int]] = []
    threads = [threading.Thread(target=lambda: results.append(_drain(client.iter_invoices()))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [[1, 2, 3]] * 8
    assert len(fake.api_requests("/auth/token")) == 1


def test_auth_travels_in_headers_only_and_cookies_are_not_kept() -> None:
    fake = _invoices()
    fake.queue("/api/invoice", httpx.Response(200, json={"invoices": [], "record_count": 0},
                                               headers={"set-cookie": "session=abc; Path=/"}))  # fmt: skip
    client = make_client(fake)
    list(client.iter_invoices())
    list(client.iter_invoices())
    assert all("cookie" not in r.headers for r in fake.requests)


def test_repr_shows_where_not_who() -> None:
    client = make_client(_invoices(), tenant="acme")
    assert "acme" in repr(client)
    _assert_no_secret(repr(client), repr(client.__dict__.get("_tokens")))
