"""The client against the HaloPSA emulator in process (MockTransport): listings, windows, faults, auth, rate limit."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from core.errors import AuthError, HaloUnavailable, PermissionMissing, ProtocolError, RateLimited
from core.halopsa import paging
from core.halopsa.config import REQUIRED_SCOPES
from core.halopsa.paging import rows_of
from core.halopsa.records import parse_customer, parse_invoice
from halo_emulator import EmulatorConfig, FaultRule, HaloEmulator
from tests.support.client_fakes import emulator_client
from tests.support.clock import FakeClock


def _emulator(invoices: int = 1000, clock: FakeClock | None = None, **config) -> HaloEmulator:
    clock = clock or FakeClock()
    return HaloEmulator(EmulatorConfig(seed=7, invoices=invoices, clock=clock, sleep=clock.sleep, **config))


def _ids(pages) -> list[int]:
    return [record.halo_id for page in pages for record in page.records]


def _invoice_ids(emulator: HaloEmulator, keep=lambda invoice: True) -> set[int]:
    return {row_id for row_id, row in emulator.invoices.items() if keep(parse_invoice(row))}


# -- listings ----------------------------------------------------------------------------------------------------


def test_every_entity_is_listed_exactly_once_in_few_requests() -> None:
    emulator = _emulator(5000, page_size_cap=1000)  # a tenant that honours pages of 1000 (real ones cap at 100)
    client = emulator_client(emulator, page_size=1000)
    invoices = _ids(client.iter_invoices())
    assert sorted(invoices) == sorted(emulator.invoices)
    assert sorted(_ids(client.iter_customers())) == sorted(emulator.clients)
    assert sorted(_ids(client.iter_agreements())) == sorted(emulator.contracts)
    assert len(emulator.stats.entries("/api/Invoice")) == 6  # five full pages of 1000, then the empty one


def _subtype_ids(client) -> set[int]:
    return {a.subtype_id for page in client.iter_agreements() for a in page.records if a.subtype_id is not None}


def test_the_tenants_subtype_lookup_is_verified_and_names_every_subtype() -> None:
    emulator = _emulator(1000)
    client = emulator_client(emulator)
    seen = _subtype_ids(client)
    found = client.subtype_lookup(emulator.subtype_lookup_id, seen)
    assert found.verified and seen <= found.names.keys()
    assert found.names[1] == "Managed Services"


def test_lookup_58_and_the_tenants_other_tables_are_not_verified() -> None:
    emulator = _emulator(1000)
    client = emulator_client(emulator)
    seen = _subtype_ids(client)
    assert 58 not in emulator.config.lookup_ids
    empty = client.subtype_lookup(58, seen)
    assert not empty.verified and "has no rows" in empty.finding
    priorities = client.subtype_lookup(emulator.config.lookup_ids[1], seen)  # row ids 1-4, not every subtype seen
    assert not priorities.verified and not priorities.names and "has no name for subtype" in priorities.finding


def test_a_tenant_whose_lookup_ignores_the_id_is_not_verified() -> None:
    emulator = _emulator(1000, lookup_ignores_id=True)
    client = emulator_client(emulator)
    found = client.subtype_lookup(emulator.subtype_lookup_id, _subtype_ids(client))
    assert not found.verified and not found.names
    assert f"with rows of lookup {emulator.config.lookup_ids[1]}" in found.finding


def test_a_page_size_cap_on_the_instance_is_adopted() -> None:
    emulator = _emulator(1000, page_size_cap=100)
    assert sorted(_ids(emulator_client(emulator, page_size=1000).iter_invoices())) == sorted(emulator.invoices)
    assert len(emulator.stats.entries("/api/Invoice")) == 11  # ten full pages of 100, then the empty one


def test_changed_invoices_match_what_changed_after_an_advance() -> None:
    emulator = _emulator(3000)
    start = emulator.now
    changes = emulator.advance(start + timedelta(days=3))
    since = start + timedelta(days=2)
    client = emulator_client(emulator, page_size=100)
    changed = _ids(client.iter_changed_invoices(since=since))
    expected = _invoice_ids(emulator, lambda i: i.last_modified is not None and i.last_modified >= since)
    assert sorted(changed) == sorted(expected)
    assert changes.since(since).invoice_ids() <= set(changed)
    assert len(emulator.stats.entries("/api/Invoice")) < 30  # stopped early instead of scanning all 30 pages


def test_an_instance_that_cannot_sort_by_last_modified_still_gets_every_change() -> None:
    emulator = _emulator(2000, sortable_fields=frozenset({"id"}))
    start = emulator.now
    emulator.advance(start + timedelta(days=2))
    since = start + timedelta(days=1)
    changed = _ids(emulator_client(emulator, page_size=100).iter_changed_invoices(since=since))
    expected = _invoice_ids(emulator, lambda i: i.last_modified is not None and i.last_modified >= since)
    assert expected and sorted(changed) == sorted(expected)


def test_changed_customers_match_the_tenant() -> None:
    emulator = _emulator(3000)
    start = emulator.now
    emulator.advance(start + timedelta(days=10))
    since = start + timedelta(days=1)
    changed = _ids(emulator_client(emulator, page_size=50).iter_changed_customers(since=since))
    expected = {cid for cid, row in emulator.clients.items() if parse_customer(row).last_modified >= since}
    assert sorted(changed) == sorted(expected)


def test_invoices_created_since_a_date() -> None:
    emulator = _emulator(3000)
    created_since = (emulator.now - timedelta(days=60)).date()
    listed = _ids(emulator_client(emulator, page_size=200).iter_invoices(created_since=created_since))
    expected = _invoice_ids(emulator, lambda i: i.invoice_date is not None and i.invoice_date >= created_since)
    assert expected and sorted(listed) == sorted(expected)


def test_unpaid_invoices_are_exactly_those_with_an_amount_due_and_not_voided() -> None:
    emulator = _emulator(3000)
    emulator.advance(emulator.now + timedelta(days=5))
    unpaid = _ids(emulator_client(emulator).iter_unpaid_invoices())
    expected = _invoice_ids(emulator, lambda i: i.amount_due_cents > 0 and not i.voided)
    assert expected and sorted(unpaid) == sorted(expected)


def test_get_invoice_and_a_missing_one() -> None:
    emulator = _emulator(100)
    client = emulator_client(emulator)
    some_id = next(iter(emulator.invoices))
    assert client.get_invoice(some_id) == parse_invoice(emulator.invoices[some_id])
    assert client.get_invoice(10**9) is None


# -- faults ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        FaultRule(kind="rate_limit", path="/api/invoice", times=2, after=1, retry_after=20),
        FaultRule(kind="rate_limit", path="/api/invoice", times=1),
        FaultRule(kind="status", path="/api/invoice", status=503, times=3, after=2),
        FaultRule(kind="status", path="/api/invoice", status=500, times=1),
        FaultRule(kind="status", path="/api/invoice", status=502, times=1, after=3),
        FaultRule(kind="status", path="/auth/token", status=504, times=2),
        FaultRule(kind="timeout", path="/api/invoice", times=2, after=1),
        FaultRule(kind="slow", path="/api/invoice", times=1, delay_s=120),
        FaultRule(kind="drop", path="/api/invoice", times=2, after=4),
        FaultRule(kind="drop", path="/auth/token", times=1),
        FaultRule(kind="truncated", path="/api/invoice", times=2, after=2),
        FaultRule(kind="malformed_json", path="/api/invoice", times=1, after=1),
        FaultRule(kind="token_expiry", path="/api/invoice", times=1, after=2),
    ],
    ids=lambda rule: f"{rule.kind}-{rule.path}-{rule.status or ''}",
)
def test_every_transient_fault_is_recovered_and_the_listing_is_complete(rule: FaultRule) -> None:
    emulator = _emulator(1000, rate_limit=None)
    emulator.add_fault(rule)
    events: list = []
    client = emulator_client(emulator, events=events, page_size=100)
    assert sorted(_ids(client.iter_invoices())) == sorted(emulator.invoices)
    assert rule.fired == (rule.times or 0)
    if rule.kind == "token_expiry":
        assert client.stats.token_requests == 2
    else:
        assert client.stats.retries == rule.fired
        assert [e.kind for e in events] == ["retry"] * rule.fired
    if rule.kind == "rate_limit":
        assert all(e.kind == "retry" and e.status_code == 429 for e in events)
        assert client.stats.rate_limited_responses == rule.fired
        if rule.retry_after:
            assert all(e.seconds >= rule.retry_after for e in events)


@pytest.mark.parametrize(
    ("rule", "error", "text"),
    [
        (FaultRule(kind="rate_limit", path="/api/invoice", times=None, retry_after=15), RateLimited, "rate limiting"),
        (FaultRule(kind="status", path="/api/invoice", status=503, times=None), HaloUnavailable, "(HTTP 503)"),
        (FaultRule(kind="timeout", path="/api/invoice", times=None), HaloUnavailable, "within 30 s"),
        (FaultRule(kind="drop", path="/api/invoice", times=None), HaloUnavailable, "connection failed"),
        (FaultRule(kind="malformed_json", path="/api/invoice", times=None), ProtocolError, "not valid JSON"),
        (FaultRule(kind="truncated", path="/api/invoice", times=None), ProtocolError, "not valid JSON"),
        (FaultRule(kind="status", path="/auth/token", status=502, times=None), HaloUnavailable, "(HTTP 502)"),
    ],
    ids=lambda value: value.kind if isinstance(value, FaultRule) else None,
)
def test_a_persistent_fault_fails_with_a_typed_readable_error(rule, error, text) -> None:
    emulator = _emulator(200, rate_limit=None)
    emulator.add_fault(rule)
    client = emulator_client(emulator)
    with pytest.raises(error) as caught:
        list(client.iter_invoices())
    assert text in caught.value.message
    assert "after 6 attempts" in caught.value.message or "6 times" in caught.value.message
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after == 15


def test_a_malformed_record_is_reported_by_id_and_the_rest_are_listed() -> None:
    emulator = _emulator(1000, rate_limit=None)
    rule = emulator.add_fault(FaultRule(kind="malformed_record", path="/api/invoice", on_page=2, times=1))
    pages = list(emulator_client(emulator, page_size=100).iter_invoices())
    errors = [error for page in pages for error in page.errors]
    assert [(e.entity, e.halo_id) for e in errors] == [("invoice", rule.corrupted_ids[0])]
    assert errors[0].reason and pages[1].errors == errors
    assert sorted(_ids(pages)) == sorted(set(emulator.invoices) - set(rule.corrupted_ids))


def test_records_changing_while_paging_are_never_listed_twice(monkeypatch) -> None:
    served: list[int] = []

    def spy(body, key):
        rows, count = rows_of(body, key)
        served.extend(row["id"] for row in rows)
        return rows, count

    monkeypatch.setattr(paging, "rows_of", spy)
    emulator = _emulator(2000, rate_limit=None)
    since = emulator.now - timedelta(days=90)
    in_window = _invoice_ids(emulator, lambda i: i.last_modified is not None and i.last_modified >= since)
    oldest_first = sorted(in_window, key=lambda i: emulator.invoices[i]["last_modified"])
    edited: list[int] = []

    def edit_an_unread_invoice(emu: HaloEmulator, request: httpx.Request) -> None:
        # An invoice deep in the unread part jumps to the front: every row behind it shifts one place down.
        invoice_id = oldest_first[len(edited) * 3]
        edited.append(invoice_id)
        emu.edit_invoice(invoice_id, reference=f"edited {len(edited)}")

    emulator.add_fault(FaultRule(kind="mutate", path="/api/invoice", times=4, on_request=edit_an_unread_invoice))
    listed = _ids(emulator_client(emulator, page_size=50).iter_changed_invoices(since=since))
    assert len(served) - len(set(served)) == 4  # each edit pushed a row already read onto the next page
    assert len(listed) == len(set(listed))
    assert (in_window - set(edited)) <= set(listed)  # only rows edited mid-listing may wait for the next run


# -- auth and permissions ----------------------------------------------------------------------------------------


def test_missing_permissions_are_reported_with_exactly_the_missing_names() -> None:
    emulator = _emulator(100, granted_scopes=("read:customers", "edit:invoices", "read:contracts"))
    client = emulator_client(emulator)
    assert client.verify().missing == ("admin:webhooks", "edit:contracts", "edit:customers")
    with pytest.raises(PermissionMissing) as caught:
        client.require_scopes()
    assert caught.value.missing == ["admin:webhooks", "edit:contracts", "edit:customers"]
    assert sorted(_ids(client.iter_invoices())) == sorted(emulator.invoices)  # read:invoices comes with edit


@pytest.mark.parametrize(
    ("granted", "call", "scope"),
    [
        (("read:customers", "read:contracts"), lambda c: list(c.iter_invoices()), "read:invoices"),
        (("read:invoices", "read:contracts"), lambda c: list(c.iter_customers()), "read:customers"),
        (("read:invoices", "read:customers"), lambda c: list(c.iter_agreements()), "read:contracts"),
    ],
)
def test_a_listing_without_its_permission_names_it(granted, call, scope) -> None:
    client = emulator_client(_emulator(100, granted_scopes=granted))
    with pytest.raises(PermissionMissing) as caught:
        call(client)
    assert caught.value.missing == [scope]


def test_a_fully_granted_application_passes() -> None:
    check = emulator_client(_emulator(100, granted_scopes=REQUIRED_SCOPES)).require_scopes()
    assert check.ok and set(REQUIRED_SCOPES) <= set(check.granted)


def test_a_wrong_secret_is_an_auth_error() -> None:
    emulator = _emulator(100)
    with pytest.raises(AuthError, match="rejected the client ID or secret"):
        emulator_client(emulator, secret="not-the-secret").verify()


@pytest.mark.parametrize("status", [400, 401])
def test_a_wrong_secret_is_an_auth_error_whatever_the_status(status) -> None:
    emulator = _emulator(100, bad_credentials_status=status)
    with pytest.raises(AuthError, match="rejected the client ID or secret"):
        list(emulator_client(emulator, secret="nope").iter_invoices())


def test_a_secret_rotated_mid_sync_stops_the_listing_with_an_auth_error() -> None:
    emulator = _emulator(1000, rate_limit=None)
    emulator.add_fault(
        FaultRule(kind="mutate", path="/api/invoice", after=2, on_request=lambda emu, r: emu.rotate_secret("new"))
    )
    pages = emulator_client(emulator, page_size=100).iter_invoices()
    with pytest.raises(AuthError, match="rejected the client ID or secret"):
        list(pages)


def test_tokens_expiring_by_time_are_renewed_before_the_server_refuses_them() -> None:
    clock = FakeClock()
    emulator = _emulator(1000, clock, token_ttl_s=60, rate_limit=None)
    client = emulator_client(emulator, clock, page_size=100)
    pages = client.iter_invoices()
    listed = []
    for page in pages:
        listed += [i.halo_id for i in page.records]
        clock.now += 20  # each page takes a while to store
    assert sorted(listed) == sorted(emulator.invoices)
    assert client.stats.token_requests == 4  # renewed at 54 s of every 60 s, never refused
    assert client.stats.retries == 0


@pytest.mark.parametrize(
    ("tenant", "text"), [(None, "needs a tenant"), ("other", "does not recognise the tenant 'other'")]
)
def test_tenant_problems_name_the_tenant(tenant, text) -> None:
    emulator = _emulator(100, tenant="acme", require_tenant=True, auth_info=False)  # no AuthInfo to name the tenant
    with pytest.raises(AuthError, match=text):
        emulator_client(emulator, tenant=tenant).verify()
    assert emulator_client(emulator, tenant="acme").verify().ok


# -- rate limit --------------------------------------------------------------------------------------------------


def test_a_matching_budget_never_provokes_a_429() -> None:
    clock = FakeClock()
    emulator = _emulator(3000, clock, rate_limit=(30, 3.0), count_token_requests=True)
    client = emulator_client(emulator, clock, page_size=25, rate_limit_requests=30, rate_limit_window_s=3.0)
    assert sorted(_ids(client.iter_invoices())) == sorted(emulator.invoices)
    assert emulator.stats.rate_limited == 0 and client.stats.rate_limited_responses == 0
    assert client.stats.requests == 123  # AuthInfo, a token, 120 full pages of 25, the empty page
    assert clock.now - 1_000 == pytest.approx(4 * (3.0 + 0.06))  # 4 waits of a window plus the margin
    arrivals = [entry.at for entry in emulator.stats.log]
    assert all(later - earlier >= 3.0 for earlier, later in zip(arrivals, arrivals[30:], strict=False))


def test_without_a_budget_the_instance_rate_limits_and_the_client_waits_it_out() -> None:
    clock = FakeClock()
    emulator = _emulator(3000, clock, rate_limit=(30, 3.0))
    events: list = []
    client = emulator_client(emulator, clock, events=events, page_size=25, rate_limit_requests=10_000)
    assert sorted(_ids(client.iter_invoices())) == sorted(emulator.invoices)
    assert client.stats.rate_limited_responses == emulator.stats.rate_limited > 0
    assert events and all(e.kind == "retry" and e.status_code == 429 for e in events)
