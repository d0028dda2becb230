"""The API surface over MockTransport: token, scopes, envelopes, paging, ordering, filters, writes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from halo_emulator import NO_DATE, HaloEmulator, InvalidRecord
from tests.support.clock import FakeClock
from tests.support.emulator_api import BASE_URL, token_form

Api = Callable[..., httpx.Client]
REQUIRED = "admin:webhooks read:customers edit:customers read:invoices edit:invoices read:contracts edit:contracts"


def post_token(emu: HaloEmulator, query: str = "", **form: str) -> httpx.Response:
    with httpx.Client(base_url=BASE_URL, transport=emu.transport()) as client:
        return client.post(f"/auth/token{query}", data=token_form(emu, **form))


# ---- token ---------------------------------------------------------------------------------------------------------


def test_token_response_lists_granted_scopes() -> None:
    emu = HaloEmulator(invoices=10)
    body = post_token(emu).json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"] and body["id_token"]
    assert body["scope"] == f"openid email profile offline_access roles {REQUIRED}"


def test_token_with_and_without_tenant() -> None:
    emu = HaloEmulator(invoices=10, tenant="acme")
    assert post_token(emu, "?tenant=acme").status_code == 200
    assert post_token(emu).status_code == 200, "the tenant is optional unless required"
    wrong = post_token(emu, "?tenant=other")
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    strict = HaloEmulator(invoices=10, tenant="acme", require_tenant=True)
    assert post_token(strict).status_code == 401
    assert post_token(strict, "?tenant=ACME").status_code == 200


@pytest.mark.parametrize("status", [401, 400])
def test_bad_credentials_use_the_configured_status(status: int) -> None:
    emu = HaloEmulator(invoices=10, bad_credentials_status=status)
    response = post_token(emu, client_secret="wrong")
    assert response.status_code == status
    assert response.json()["error"] == "invalid_client" and response.json()["error_description"]
    assert post_token(emu, client_id="00000000-0000-4000-8000-000000000000").status_code == status


def test_wrong_grant_type_is_refused() -> None:
    response = post_token(HaloEmulator(invoices=10), grant_type="password")
    assert response.status_code == 400 and response.json()["error"] == "unsupported_grant_type"


def test_unknown_scope_is_invalid_scope() -> None:
    response = post_token(HaloEmulator(invoices=10), scope="read:invoices read:everything")
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"


def test_explicit_scopes_are_intersected_with_the_grant() -> None:
    emu = HaloEmulator(invoices=10, granted_scopes=("read:customers", "read:invoices"))
    body = post_token(emu, scope="read:invoices edit:invoices read:contracts").json()
    assert body["scope"].split()[5:] == ["read:invoices"]
    assert post_token(emu, scope="").json()["scope"].split()[5:] == ["read:customers", "read:invoices"]


def test_token_expires_by_the_injected_clock(api: Api, clock: FakeClock) -> None:
    emu = HaloEmulator(invoices=10, token_ttl_s=60, clock=clock)
    client = api(emu)
    assert client.get("/api/Client").status_code == 200
    clock.tick(59)
    assert client.get("/api/Client").status_code == 200
    clock.tick(1)
    response = client.get("/api/Client")
    assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")


def test_rotated_secret_revokes_tokens_and_the_old_secret(api: Api) -> None:
    emu = HaloEmulator(invoices=10)
    client = api(emu)
    old_secret = emu.client_secret
    emu.rotate_secret("new-secret")
    assert client.get("/api/Client").status_code == 401
    assert post_token(emu, client_secret=old_secret).status_code == 401
    assert post_token(emu, client_secret="new-secret").status_code == 200


def test_authinfo_names_the_auth_server_without_a_token() -> None:
    emu = HaloEmulator(invoices=10, tenant="acme")
    with httpx.Client(base_url=BASE_URL, transport=emu.transport()) as client:
        assert client.get("/api/authinfo").json() == {"auth_url": f"{BASE_URL}/auth", "tenant_id": "acme"}


# ---- bearer and scopes ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer nonsense", "Basic abc"])
def test_api_needs_a_valid_bearer_token(small_emu: HaloEmulator, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    with httpx.Client(base_url=BASE_URL, transport=small_emu.transport(), headers=headers) as client:
        assert client.get("/api/Invoice").status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "needed"),
    [
        ("GET", "/api/Client", "read:customers"),
        ("POST", "/api/Client", "edit:customers"),
        ("GET", "/api/Invoice", "read:invoices"),
        ("POST", "/api/Invoice", "edit:invoices"),
        ("GET", "/api/InvoicePayment", "read:invoices"),
        ("POST", "/api/InvoicePayment", "edit:invoices"),
        ("GET", "/api/ClientContract", "read:contracts"),
        ("POST", "/api/ClientContract", "edit:contracts"),
        ("GET", "/api/Webhook", "admin:webhooks"),
        ("POST", "/api/Webhook", "admin:webhooks"),
    ],
)
def test_each_route_needs_its_scope(api: Api, method: str, path: str, needed: str) -> None:
    others = tuple(s for s in REQUIRED.split() if s != needed and s.split(":")[1] != needed.split(":")[1])
    emu = HaloEmulator(invoices=10, granted_scopes=others)
    response = api(emu).request(method, path, json=[])
    assert response.status_code == 401
    assert needed in response.json()["error_description"]
    assert f'scope="{needed}"' in response.headers["www-authenticate"]


def test_edit_scope_implies_read(api: Api) -> None:
    emu = HaloEmulator(invoices=10, granted_scopes=("edit:invoices",))
    client = api(emu)
    assert client.get("/api/Invoice").status_code == 200
    assert client.get("/api/Client").status_code == 401
    assert client.get("/api/Lookup", params={"lookupid": 58}).status_code == 200, "lookups need only a token"


def test_set_scopes_applies_to_new_tokens(api: Api) -> None:
    emu = HaloEmulator(invoices=10)
    emu.set_scopes(["read:customers"])
    client = api(emu)
    assert client.get("/api/Client").status_code == 200
    assert client.get("/api/Invoice").status_code == 401
    with pytest.raises(ValueError):
        emu.set_scopes(["read:everything"])


# ---- listings ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "key", "table"),
    [
        ("/api/Client", "clients", "clients"),
        ("/api/Invoice", "invoices", "invoices"),
        ("/api/ClientContract", "contracts", "contracts"),
        ("/api/InvoicePayment", "payments", "payments"),
    ],
)
def test_lists_use_the_entity_envelope(api: Api, small_emu: HaloEmulator, path: str, key: str, table: str) -> None:
    body = api(small_emu).get(path, params={"pageinate": "true", "page_size": 5, "page_no": 1}).json()
    assert set(body) == {"page_no", "page_size", "record_count", key}
    assert body["page_no"] == 1 and body["page_size"] == 5 and len(body[key]) == 5
    assert all(row == small_emu.as_sent(table, row["id"]) for row in body[key])


def test_payments_key_is_configurable(api: Api) -> None:
    emu = HaloEmulator(invoices=50, payments_key="invoicepayments")
    assert "invoicepayments" in api(emu).get("/api/InvoicePayment").json()


def test_routes_are_case_insensitive(api: Api, small_emu: HaloEmulator) -> None:
    client = api(small_emu)
    counts = {client.get(path).json()["record_count"] for path in ("/api/Invoice", "/api/invoice", "/API/INVOICE/")}
    assert counts == {len(small_emu.invoices)}


def test_paging_walks_every_invoice_once(api: Api, small_emu: HaloEmulator) -> None:
    client = api(small_emu)
    seen: list[int] = []
    page_no = 1
    while True:
        body = client.get("/api/Invoice", params={"pageinate": "true", "page_size": 70, "page_no": page_no}).json()
        assert body["record_count"] == len(small_emu.invoices)
        seen.extend(row["id"] for row in body["invoices"])
        if len(body["invoices"]) < 70:  # pages of 70, within the tenant's cap of 100
            break
        page_no += 1
    assert seen == sorted(small_emu.invoices)
    assert page_no == len(small_emu.invoices) // 70 + 1


def test_page_size_is_clamped_to_the_cap(api: Api) -> None:
    emu = HaloEmulator(invoices=300, rate_limit=None)
    assert emu.config.page_size_cap == 100  # the cap real tenants show (reference section 11)
    body = api(emu).get("/api/Invoice", params={"pageinate": "true", "page_size": 5000}).json()
    assert body["page_size"] == 100 and len(body["invoices"]) == 100
    beyond = api(emu).get("/api/Invoice", params={"pageinate": "true", "page_size": 100, "page_no": 99}).json()
    assert beyond["invoices"] == [] and beyond["record_count"] == 300


def test_count_caps_rows_and_record_count(api: Api, small_emu: HaloEmulator) -> None:
    body = api(small_emu).get("/api/Invoice", params={"count": 7}).json()
    assert body["record_count"] == 7 and len(body["invoices"]) == 7
    assert set(body) == {"record_count", "invoices"}


def test_without_pageinate_everything_comes_back(api: Api, small_emu: HaloEmulator) -> None:
    body = api(small_emu).get("/api/Invoice").json()
    assert len(body["invoices"]) == body["record_count"] == len(small_emu.invoices)


@pytest.mark.parametrize("descending", [False, True])
def test_order_by_last_modified_with_id_tiebreak(api: Api, small_emu: HaloEmulator, descending: bool) -> None:
    params = {"order": "last_modified", "orderdesc": str(descending).lower()}
    rows = api(small_emu).get("/api/Invoice", params=params).json()["invoices"]
    stamps = [r["last_modified"] for r in rows]
    assert stamps == sorted(stamps, reverse=descending)
    for before, after in zip(rows, rows[1:], strict=False):
        if before["last_modified"] == after["last_modified"]:
            assert before["id"] < after["id"]


def test_order_by_an_unsortable_field_is_ignored(api: Api) -> None:
    emu = HaloEmulator(invoices=100, sortable_fields=frozenset({"id"}))
    rows = api(emu).get("/api/Invoice", params={"order": "last_modified", "orderdesc": "true"}).json()["invoices"]
    assert [r["id"] for r in rows] == sorted(emu.invoices)
    by_id = api(emu).get("/api/Invoice", params={"order": "id", "orderdesc": "true"}).json()["invoices"]
    assert [r["id"] for r in by_id] == sorted(emu.invoices, reverse=True)


def test_inactive_customers_and_agreements_are_hidden_by_default(api: Api) -> None:
    emu = HaloEmulator(invoices=2000, rate_limit=None)
    client = api(emu)
    inactive_clients = {i for i, c in emu.clients.items() if c["inactive"]}
    inactive_contracts = {i for i, c in emu.contracts.items() if not c["active"]}
    assert inactive_clients and inactive_contracts
    default = {r["id"] for r in client.get("/api/Client").json()["clients"]}
    everything = {r["id"] for r in client.get("/api/Client", params={"includeinactive": "true"}).json()["clients"]}
    assert default == set(emu.clients) - inactive_clients and everything == set(emu.clients)
    contracts = {r["id"] for r in client.get("/api/ClientContract").json()["contracts"]}
    assert contracts == set(emu.contracts) - inactive_contracts
    all_contracts = client.get("/api/ClientContract", params={"includeinactive": "TRUE"}).json()["contracts"]
    assert {r["id"] for r in all_contracts} == set(emu.contracts)


def ids(client: httpx.Client, path: str, key: str, **params: Any) -> set[int]:
    return {row["id"] for row in client.get(path, params=params).json()[key]}


def test_invoice_filters(api: Api, small_emu: HaloEmulator) -> None:
    client = api(small_emu)
    invoices = small_emu.invoices.values()
    some = next(i for i in invoices if i["contract_id"])
    assert ids(client, "/api/Invoice", "invoices", client_id=some["client_id"]) == {
        i["id"] for i in invoices if i["client_id"] == some["client_id"]
    }
    assert ids(client, "/api/Invoice", "invoices", contract_id=some["contract_id"]) == {
        i["id"] for i in invoices if i["contract_id"] == some["contract_id"]
    }
    assert ids(client, "/api/Invoice", "invoices", paymentstatuses="0,1") == {
        i["id"] for i in invoices if i["paymentstatus"] in (0, 1)
    }
    assert ids(client, "/api/Invoice", "invoices", postedonly="true") == {i["id"] for i in invoices if i["posted"]}
    assert ids(client, "/api/Invoice", "invoices", notpostedonly="true") == {
        i["id"] for i in invoices if not i["posted"]
    }
    number = next(i["thirdpartyinvoicenumber"] for i in invoices if i["thirdpartyinvoicenumber"])
    assert ids(client, "/api/Invoice", "invoices", search=number.lower()) == {
        i["id"] for i in invoices if number in (i["thirdpartyinvoicenumber"] or "")
    }
    assert ids(client, "/api/Invoice", "invoices", unknownparam="x") == set(small_emu.invoices)


def test_contract_payment_and_client_filters(api: Api, small_emu: HaloEmulator) -> None:
    client = api(small_emu)
    contract = next(c for c in small_emu.contracts.values() if c["active"])
    assert contract["id"] in ids(client, "/api/ClientContract", "contracts", client_id=contract["client_id"])
    customer = contract["client_id"]
    with_inactive = ids(client, "/api/ClientContract", "contracts", client_id=customer, includeinactive="true")
    assert all(small_emu.contracts[i]["client_id"] == customer for i in with_inactive)
    payment = next(iter(small_emu.payments.values()))
    assert ids(client, "/api/InvoicePayment", "payments", invoice_id=payment["invoice_id"]) == {
        p["id"] for p in small_emu.payments.values() if p["invoice_id"] == payment["invoice_id"]
    }
    name = next(c["name"] for c in small_emu.clients.values() if not c["inactive"])
    assert ids(client, "/api/Client", "clients", search=name.upper()) >= {
        i for i, c in small_emu.clients.items() if c["name"] == name
    }


def test_a_malformed_filter_is_a_400(api: Api, small_emu: HaloEmulator) -> None:
    response = api(small_emu).get("/api/Invoice", params={"client_id": "abc"})
    assert response.status_code == 400 and "client_id" in response.json()


def test_single_record_is_a_bare_object_or_404(api: Api, small_emu: HaloEmulator) -> None:
    client = api(small_emu)
    invoice_id = next(iter(small_emu.invoices))
    assert client.get(f"/api/Invoice/{invoice_id}").json() == small_emu.invoices[invoice_id]
    assert client.get("/api/invoice/999999").status_code == 404
    assert client.get("/api/Client/abc").status_code == 404
    paid = next(p["invoice_id"] for p in small_emu.payments.values())
    detail = client.get(f"/api/Invoice/{paid}", params={"includedetails": "true"}).json()
    assert {p["invoice_id"] for p in detail["payments"]} == {paid}


def test_unknown_routes_are_404(api: Api, small_emu: HaloEmulator) -> None:
    client = api(small_emu)
    assert client.get("/api/Tickets").status_code == 404
    assert client.get("/nothing").status_code == 404
    assert client.get("/api/Invoice/1/extra").status_code == 404


def test_lookup_lists_agreement_subtypes_at_the_configured_id(api: Api) -> None:
    emu = HaloEmulator(invoices=10, subtype_lookup_id=77)
    client = api(emu)
    rows = client.get("/api/Lookup", params={"lookupid": 77}).json()
    assert [row["name"] for row in rows][:4] == ["Managed Services", "Backup", "Microsoft 365", "Break-fix"]
    assert {row["lookupid"] for row in rows} == {77} and emu.subtype_lookup_id == 77
    assert client.get("/api/Lookup", params={"lookupid": 58}).json() == []


def test_the_subtype_lookup_id_differs_per_tenant_and_seed_and_is_never_58() -> None:
    """Lookup ids differ per tenant (reference 11): by default each tenant's is drawn from its seed and name."""
    ids = {HaloEmulator(invoices=10, seed=seed, tenant=tenant).subtype_lookup_id
           for seed in range(1, 21) for tenant in (None, "acme", "globex")}
    assert len(ids) > 20 and 58 not in ids
    assert HaloEmulator(invoices=10, seed=3, tenant="acme").subtype_lookup_id == \
        HaloEmulator(invoices=10, seed=3, tenant="acme").subtype_lookup_id  # stable for one tenant


def test_other_lookup_tables_are_served_at_their_own_ids_with_their_own_lookupid(api: Api) -> None:
    emu = HaloEmulator(invoices=10, seed=5)
    client = api(emu)
    subtypes, *others = emu.config.lookup_ids
    assert len(set(emu.config.lookup_ids)) == 4 and 58 not in emu.config.lookup_ids
    for other in others:
        rows = client.get("/api/Lookup", params={"lookupid": other}).json()
        assert rows and {row["lookupid"] for row in rows} == {other}
        assert not {row["name"] for row in rows} & {"Managed Services", "Backup"}
    priorities = client.get("/api/Lookup", params={"lookupid": others[0]}).json()
    assert [row["id"] for row in priorities] == [1, 2, 3, 4]  # the same row ids as four subtypes


def test_a_tenant_whose_lookup_ignores_the_id_answers_another_table(api: Api) -> None:
    emu = HaloEmulator(invoices=10, lookup_ignores_id=True)
    client = api(emu)
    subtypes, first_other, *_ = emu.config.lookup_ids
    for asked in (subtypes, first_other, 58):
        rows = client.get("/api/Lookup", params={"lookupid": asked}).json()
        assert {row["lookupid"] for row in rows} == {first_other}
        assert "Managed Services" not in {row["name"] for row in rows}


# ---- writes --------------------------------------------------------------------------------------------------------


def test_webhook_create_list_update_delete(api: Api) -> None:
    emu = HaloEmulator(invoices=10)
    client = api(emu)
    created = client.post("/api/Webhook", json=[{"name": "Payments sync", "url": "https://pay.example/hook"}])
    assert created.status_code == 201
    webhook = created.json()
    assert len(webhook["id"]) == 36 and webhook["name"] == "Payments sync"
    assert client.get("/api/Webhook").json() == [webhook]
    updated = client.post("/api/Webhook", json=[{"id": webhook["id"], "active": False}]).json()
    assert updated["active"] is False and updated["url"] == "https://pay.example/hook"
    assert client.get(f"/api/webhook/{webhook['id'].upper()}").json() == updated
    again = client.post("/api/Webhook", json=[{"id": webhook["id"].upper(), "name": "AP"}]).json()
    assert again["name"] == "AP" and len(emu.webhooks) == 1
    assert client.delete(f"/api/Webhook/{webhook['id']}").status_code == 200
    assert client.get("/api/Webhook").json() == []
    assert client.delete(f"/api/Webhook/{webhook['id']}").status_code == 404


def test_post_returns_an_object_for_one_and_an_array_for_many(api: Api) -> None:
    emu = HaloEmulator(invoices=10)
    client = api(emu)
    many = client.post("/api/Webhook", json=[{"name": "a"}, {"name": "b"}]).json()
    assert [w["name"] for w in many] == ["a", "b"]
    always_array = HaloEmulator(invoices=10, single_object_post_reply=False)
    assert isinstance(api(always_array).post("/api/Webhook", json=[{"name": "a"}]).json(), list)


def test_post_needs_an_array(api: Api) -> None:
    client = api(HaloEmulator(invoices=10))
    assert client.post("/api/Invoice", json={"client_id": 1}).status_code == 400
    assert client.post("/api/Invoice", content=b"{not json").status_code == 400


def test_invoice_create_and_partial_update(api: Api) -> None:
    emu = HaloEmulator(invoices=10, timestamp_form="zoneless")  # the replies' timestamps compared as text
    client = api(emu)
    customer = next(c for c in emu.clients.values() if not c["inactive"])
    created = client.post(
        "/api/Invoice", json=[{"client_id": customer["id"], "total": 250.5, "invoice_date": "2026-10-31T00:00:00Z"}]
    ).json()
    assert created["id"] == max(emu.invoices) and created["client_name"] == customer["name"]
    assert created["amountdue"] == 250.5 and created["paymentstatus"] == 0 and created["posted"] is False
    assert created["invoice_date"] == "2026-10-31T00:00:00" and created["datepaid"] == NO_DATE
    updated = client.post("/api/Invoice", json=[{"id": created["id"], "duedate": "2026-12-01T00:00:00+02:00"}])
    assert updated.status_code == 200
    assert updated.json()["duedate"] == "2026-11-30T22:00:00" and updated.json()["total"] == 250.5
    bad = client.post("/api/Invoice", json=[{"id": created["id"], "total": "abc"}])
    assert bad.status_code == 400 and "[0].total" in bad.json()
    assert client.post("/api/Invoice", json=[{"client_id": 999_999}]).status_code == 400
    assert client.post("/api/Invoice", json=[{"id": 999_999, "total": 1}]).status_code == 400


def test_payment_post_recomputes_the_invoice(api: Api) -> None:
    emu = HaloEmulator(invoices=200, timestamp_form="zoneless")  # the replies' timestamps compared as text
    client = api(emu)
    invoice = next(i for i in emu.invoices.values() if i["paymentstatus"] == 0 and i["posted"] and not i["voided"])
    total = invoice["total"]
    part = round(total / 4, 2)
    payment = client.post(
        "/api/InvoicePayment",
        json=[{"invoice_id": invoice["id"], "amount": part, "date": "2026-10-30T00:00:00", "thirdpartyid": "ap_1"}],
    ).json()
    assert payment["thirdpartyid"] == "ap_1" and payment["client_id"] == invoice["client_id"]
    after = client.get(f"/api/Invoice/{invoice['id']}").json()
    assert after["amountpaid"] == part and after["amountdue"] == round(total - part, 2)
    assert after["paymentstatus"] == 1 and after["datepaid"] == NO_DATE
    assert after["last_modified"] == emu.now.strftime("%Y-%m-%dT%H:%M:%S")
    rest = round(total - part, 2)
    client.post("/api/InvoicePayment", json=[{"invoice_id": invoice["id"], "amount": rest, "date": "2026-10-31"}])
    settled = emu.invoices[invoice["id"]]
    assert settled["amountdue"] == 0 and settled["paymentstatus"] == 2
    assert settled["datepaid"] == "2026-10-31T00:00:00"
    too_much = client.post("/api/InvoicePayment", json=[{"invoice_id": invoice["id"], "amount": 1}])
    assert too_much.status_code == 400


def test_customer_and_agreement_writes(api: Api) -> None:
    emu = HaloEmulator(invoices=10)
    client = api(emu)
    customer = client.post("/api/Client", json=[{"name": "Brand New LLC", "_isimport": True}]).json()
    assert customer["name"] == "Brand New LLC" and customer["alastupdate"] == customer["datecreated"]
    renamed = client.post("/api/client", json=[{"id": customer["id"], "name": "Renamed LLC"}]).json()
    assert renamed["name"] == "Renamed LLC"
    contract = client.post("/api/ClientContract", json=[{"client_id": customer["id"], "subtype": 2}]).json()
    assert contract["client_name"] == "Renamed LLC" and contract["subtype"] == 2 and contract["ref"].startswith("RSA-")
    assert client.post("/api/Client", json=[{"name": ""}]).status_code == 400


def test_listings_show_changes_made_after_a_page_was_served(api: Api) -> None:
    emu = HaloEmulator(invoices=100, rate_limit=None)
    client = api(emu)
    first = client.get("/api/Invoice", params={"pageinate": "true", "page_size": 10}).json()["invoices"][0]
    emu.edit_invoice(first["id"], total=first["total"] + 1)
    again = client.get("/api/Invoice", params={"pageinate": "true", "page_size": 10}).json()["invoices"][0]
    assert again == emu.invoices[first["id"]] and again["total"] == round(first["total"] + 1, 2)


# ---- issue 12: currencies, deleted invoices --------------------------------------------------------------------------


def test_currency_lists_each_currencys_iso_code_by_id(api: Api) -> None:
    client = api(HaloEmulator(invoices=10))
    currencies = client.get("/api/Currency").json()
    assert [(row["id"], row["code"], row["symbol"]) for row in currencies] == [
        (1, "USD", "$"), (2, "CAD", "CA$"), (3, "GBP", "£")]
    assert all(row["name"] and row["conversion_rate"] for row in currencies)
    assert api(HaloEmulator(invoices=10), token=False).get("/api/Currency").status_code == 401


def test_a_deleted_invoice_is_gone_from_listings_and_its_single_read(api: Api) -> None:
    emu = HaloEmulator(invoices=100)
    client = api(emu)
    invoice_id = next(i for i, row in emu.invoices.items() if row["amountdue"] > 0)

    deleted = emu.delete_invoice(invoice_id)

    assert deleted["id"] == invoice_id and invoice_id not in emu.invoices
    assert client.get(f"/api/Invoice/{invoice_id}").status_code == 404
    assert invoice_id not in ids(client, "/api/Invoice", "invoices")
    with pytest.raises(InvalidRecord, match="No invoice"):
        emu.delete_invoice(invoice_id)
    emu.advance(emu.now + timedelta(hours=30))  # the clock never touches it again
    assert invoice_id not in emu.invoices
