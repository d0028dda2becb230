"""The capability probe against the emulator with each quirk switched on: what it finds, in how many requests, what
it tells a client to do, and that a refused or ignored check is a finding, never a failure."""

from __future__ import annotations

import pytest

from core.errors import AuthError
from core.halopsa.config import HaloConfig
from core.halopsa.paging import Method
from core.halopsa.probe import ASKED, Finding, ProbeResult, RowField, TokenSource, Verdict, probe
from halo_emulator import DEFAULT_SORTABLE_FIELDS, EmulatorConfig, FaultRule, HaloEmulator
from tests.support.client_fakes import FakeHalo, emulator_client, invoice_row, make_client
from tests.support.clock import FakeClock

NOT_SORTABLE = DEFAULT_SORTABLE_FIELDS - {"last_modified", "alastupdate"}
MOST_REQUESTS = 10  # AuthInfo, the token, two invoice pages, sorted, filtered, customers, agreements, currencies


def _probe(invoices: int = 1000, **quirks) -> tuple[ProbeResult, HaloEmulator]:
    clock = FakeClock()
    emulator = HaloEmulator(EmulatorConfig(seed=7, invoices=invoices, clock=clock, sleep=clock.sleep,
                                           rate_limit=None, **quirks))
    client = emulator_client(emulator, clock, max_attempts=2, backoff_cap_s=0.01)
    result = probe(client)
    assert result.requests == client.stats.requests <= MOST_REQUESTS
    return result, emulator


def test_a_documented_tenant_is_found_as_documented_in_about_eight_requests() -> None:
    result, emulator = _probe(page_size_cap=ASKED)
    assert result.requests <= 9
    assert result.token_source == TokenSource.AUTHINFO and result.token_url.endswith("/auth/token")
    assert (result.page_cap, result.paging.verdict) == (None, Verdict.WORKS)
    assert result.sorted_listing.verdict == Verdict.WORKS
    assert all(result.fields.values())
    assert set(result.unpaid_codes) == {emulator.config.status_unpaid, emulator.config.status_partial}
    assert result.paid_codes == (emulator.config.status_paid,)
    assert {"USD", "CAD"} <= set(result.currencies)
    assert result.changes_method(RowField.INVOICE_MODIFIED) == Method.SORTED


def test_a_page_cap_below_what_is_asked_is_found_whatever_record_count_says() -> None:
    result, _ = _probe(page_size_cap=50, record_count_is_page_length=True)
    assert result.page_cap == 50 and result.paging.verdict == Verdict.WORKS
    assert result.profile(HaloConfig()).page_size == 50
    assert "at most 50 rows a page" in " ".join(result.describe())


def test_a_small_tenant_cannot_show_its_cap_and_says_so() -> None:
    result, _ = _probe(invoices=40)
    assert result.page_cap is None and result.paging.verdict == Verdict.UNKNOWN
    assert result.profile(HaloConfig()).page_size == ASKED


def test_a_tenant_sending_the_whole_listing_is_found_ignoring_the_page_size() -> None:
    result, _ = _probe(ignore_paging=True)
    assert result.paging.verdict == Verdict.IGNORED and "ignores the page size" in result.paging.detail


@pytest.mark.parametrize(("quirks", "sorting", "method"), [
    ({"sortable_fields": NOT_SORTABLE, "unsortable_order_status": 500, "datesearch": True}, Verdict.REFUSED,
     Method.DATESEARCH),
    ({"sortable_fields": NOT_SORTABLE, "datesearch": True}, Verdict.IGNORED, Method.DATESEARCH),
    ({"sortable_fields": NOT_SORTABLE}, Verdict.IGNORED, Method.SCAN),
])
def test_sorting_and_the_date_filter_are_found_and_choose_the_method(quirks, sorting, method) -> None:
    result, _ = _probe(**quirks)
    assert result.sorted_listing.verdict == sorting
    assert result.date_filter.verdict == (Verdict.WORKS if quirks.get("datesearch") else Verdict.IGNORED)
    assert result.changes_method(RowField.INVOICE_MODIFIED) == method
    if sorting == Verdict.REFUSED:
        assert "HTTP 500" in result.sorted_listing.detail


def test_a_tenant_without_authinfo_falls_back_to_the_usual_token_address() -> None:
    result, _ = _probe(auth_info=False)
    assert result.token_source == TokenSource.FALLBACK and result.token_url.endswith("/auth/token")
    assert "the usual address" in result.describe()[0]


def test_other_unpaid_codes_widen_the_filter_and_keep_paid_codes_out() -> None:
    result, _ = _probe(status_unpaid=5, status_partial=6, status_paid=7)
    assert result.unpaid_codes == (5, 6) and result.paid_codes == (7,)
    assert result.profile(HaloConfig(unpaid_payment_statuses="0,1")).unpaid_payment_statuses == "0,1,5,6"
    assert result.profile(HaloConfig(unpaid_payment_statuses="")).unpaid_payment_statuses == ""  # no filter stays


def test_list_rows_without_change_times_or_e_mails_are_found_and_scanned() -> None:
    invoices = [invoice_row(i, paymentstatus=0) for i in range(1, 30)]
    customers = [{"id": i, "name": f"C{i}"} for i in range(1, 5)]  # no alastupdate, no accountsemailaddress
    fake = FakeHalo(lists={"invoice": ("invoices", invoices), "client": ("clients", customers),
                           "clientcontract": ("contracts", [])})
    result = probe(make_client(fake))
    assert result.fields[RowField.CUSTOMER_MODIFIED] is False and result.fields[RowField.CUSTOMER_EMAIL] is False
    assert result.fields[RowField.AGREEMENT_SUBTYPE] is None  # no agreements to tell
    assert result.changes_method(RowField.CUSTOMER_MODIFIED) == Method.SCAN
    assert "customer rows carry their last change time: no" in " ".join(result.describe())


def test_a_refused_side_listing_is_a_finding_not_a_failure() -> None:
    clock = FakeClock()
    emulator = HaloEmulator(EmulatorConfig(seed=7, invoices=300, clock=clock, sleep=clock.sleep, rate_limit=None))
    emulator.add_fault(FaultRule(kind="status", path="/api/clientcontract", status=400, times=None))
    result = probe(emulator_client(emulator, clock, max_attempts=1))
    assert result.fields[RowField.AGREEMENT_SUBTYPE] is None


def test_wrong_credentials_fail_the_probe_as_they_would_fail_a_sync() -> None:
    clock = FakeClock()
    emulator = HaloEmulator(EmulatorConfig(seed=7, invoices=100, clock=clock, sleep=clock.sleep))
    with pytest.raises(AuthError):
        probe(emulator_client(emulator, clock, secret="wrong"))


def test_a_result_survives_its_json_and_says_every_finding() -> None:
    result, _ = _probe()
    again = ProbeResult.from_json(result.to_json())
    assert again == result
    said = again.describe()
    assert len(said) == 4 + len(RowField) + 2 and all(sentence.endswith(".") for sentence in said)
    assert isinstance(again.sorted_listing, Finding)


def test_a_page_size_seen_served_is_proven_and_an_unseen_one_is_not() -> None:
    documented, _ = _probe()
    assert documented.profile(HaloConfig()).page_size_proven
    assert not documented.profile(HaloConfig(page_size=200)).page_size_proven  # never seen above 100
    capped, _ = _probe(page_size_cap=50, record_count_is_page_length=True)
    assert capped.profile(HaloConfig()).page_size_proven
    small, _ = _probe(invoices=40)
    assert not small.profile(HaloConfig()).page_size_proven
