"""The clock: advance() changes the books plausibly, deterministically, and says exactly what it changed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from halo_emulator import NO_DATE, HaloEmulator, InvalidRecord

Api = Callable[..., httpx.Client]


def wire_time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_day_brings_new_paid_and_edited_invoices() -> None:
    emu = HaloEmulator(invoices=5000, rate_limit=None)
    start = emu.now
    changes = emu.advance(start + timedelta(days=1))
    assert emu.now == start + timedelta(days=1)
    assert changes.invoices_created and changes.invoices_paid and changes.invoices_edited
    assert changes.payments_created and changes.customers_edited
    for invoice_id, at in changes.invoices_created.items():
        row = emu.invoices[invoice_id]
        assert wire_time(row["date_created"]) == at
        assert row["posted"] and row["client_name"] == emu.clients[row["client_id"]]["name"]
    for payment_id, at in changes.payments_created.items():
        assert wire_time(emu.payments[payment_id]["date"]) == at


def test_every_change_is_stamped_inside_the_window_and_matches_the_changes() -> None:
    emu = HaloEmulator(invoices=3000, rate_limit=None)
    start = emu.now + timedelta(hours=5)
    emu.advance(start)
    before = {i: dict(r) for i, r in emu.invoices.items()}
    customers_before = {i: dict(c) for i, c in emu.clients.items()}
    end = start + timedelta(hours=30, minutes=17)
    changes = emu.advance(end)
    changed = {i for i, r in emu.invoices.items() if before.get(i) != r}
    assert changed == changes.invoice_ids()
    for invoice_id in changed:
        modified = wire_time(emu.invoices[invoice_id]["last_modified"])
        assert start < modified <= end
    for invoice_id, at in {**changes.invoices_edited, **changes.invoices_paid, **changes.invoices_voided}.items():
        assert wire_time(emu.invoices[invoice_id]["last_modified"]) >= at
    changed_customers = {i for i, c in emu.clients.items() if customers_before.get(i) != c}
    assert changed_customers == changes.customer_ids()
    for client_id in changed_customers:
        assert start < wire_time(emu.clients[client_id]["alastupdate"]) <= end


def test_changes_in_the_last_hour() -> None:
    emu = HaloEmulator(invoices=20_000, rate_limit=None)
    end = emu.now + timedelta(hours=6)
    changes = emu.advance(end)
    last_hour = changes.since(end - timedelta(hours=1))
    recent = {
        i for i, r in emu.invoices.items() if wire_time(r["last_modified"]) >= end - timedelta(hours=1)
    }
    assert last_hour.invoice_ids() == recent
    assert recent and recent < changes.invoice_ids()


def test_payments_keep_the_ledger_consistent() -> None:
    emu = HaloEmulator(invoices=2000, rate_limit=None)
    changes = emu.advance(emu.now + timedelta(days=3))
    assert changes.invoices_paid
    for invoice_id in changes.invoices_paid:
        invoice = emu.invoices[invoice_id]
        paid = sum(round(p["amount"] * 100) for p in emu.payments.values() if p["invoice_id"] == invoice_id)
        assert paid == round(invoice["amountpaid"] * 100)
        assert round(invoice["amountdue"] * 100) == round(invoice["total"] * 100) - paid
        if invoice["amountdue"] == 0:
            assert invoice["paymentstatus"] == 2 and invoice["datepaid"] != NO_DATE
        else:
            assert invoice["paymentstatus"] == 1 and invoice["datepaid"] == NO_DATE


def test_advance_is_the_same_however_it_is_split() -> None:
    whole, split = HaloEmulator(invoices=800), HaloEmulator(invoices=800)
    target = whole.now + timedelta(days=2, hours=3, minutes=20)
    whole.advance(target)
    for hours in (1.5, 7.25, 20, 51.3333333333):
        split.advance(split.now.replace(minute=0, second=0) + timedelta(hours=hours) if hours < 51 else target)
    assert split.now == whole.now
    assert dict(split.invoices) == dict(whole.invoices)
    assert dict(split.payments) == dict(whole.payments)
    assert dict(split.clients) == dict(whole.clients)


def test_recurring_run_on_the_first_invoices_running_agreements() -> None:
    emu = HaloEmulator(invoices=1000, start=datetime(2026, 11, 30, 20, tzinfo=UTC))
    changes = emu.advance(datetime(2026, 12, 1, 4, tzinfo=UTC))
    recurring = [emu.invoices[i] for i in changes.invoices_created if emu.invoices[i]["recurring_invoice_id"]]
    running = {
        c["id"]
        for c in emu.contracts.values()
        if c["active"] and not c["expired"] and c["billingperiod"] and not emu.clients[c["client_id"]]["inactive"]
    }  # an expired agreement may still say active (HaloPSA keeps the flags apart): it is not invoiced
    assert {r["contract_id"] for r in recurring} == running
    assert all(r["invoice_date"] == "2026-12-01T00:00:00" for r in recurring)
    assert all(r["total"] >= emu.contracts[r["contract_id"]]["periodchargeamount"] for r in recurring)


def test_small_tenants_still_change_now_and_then() -> None:
    emu = HaloEmulator(invoices=10)
    changes = emu.advance(emu.now + timedelta(days=3))
    assert changes.invoice_ids() or changes.customer_ids()


def test_the_clock_cannot_go_back() -> None:
    emu = HaloEmulator(invoices=10)
    with pytest.raises(ValueError, match="cannot go back"):
        emu.advance(emu.now - timedelta(seconds=1))


def test_changes_serialise_to_json() -> None:
    emu = HaloEmulator(invoices=1000)
    body = emu.advance(emu.now + timedelta(hours=12)).to_json()
    assert body["start"] == "2026-11-01T00:00:00+00:00"
    assert all(isinstance(k, str) for k in body["invoices_paid"])


# ---- direct mutators -----------------------------------------------------------------------------------------------


def test_mutators_stamp_the_current_time() -> None:
    emu = HaloEmulator(invoices=100)
    emu.advance(emu.now + timedelta(minutes=90))
    stamp = emu.now.strftime("%Y-%m-%dT%H:%M:%S")
    invoice = next(i for i in emu.invoices.values() if i["paymentstatus"] == 0 and not i["voided"] and i["posted"])
    edited = emu.edit_invoice(invoice["id"], total=invoice["total"] + 10, duedate=emu.now + timedelta(days=3))
    assert edited["last_modified"] == stamp and edited["amountdue"] == round(invoice["total"] + 10, 2)
    assert edited["duedate"] == "2026-11-04T01:30:00"
    added = emu.add_invoice(total=42.0)
    assert added["date_created"] == stamp and added["amountdue"] == 42.0 and emu.invoices[added["id"]] is added
    payment = emu.pay_invoice(added["id"], 2.0)
    assert payment["amount"] == 2.0 and emu.invoices[added["id"]]["amountdue"] == 40.0
    emu.pay_invoice(added["id"])
    assert emu.invoices[added["id"]]["paymentstatus"] == 2
    voided = emu.void_invoice(edited["id"])
    assert voided["voided"] and voided["amountdue"] == 0
    customer = emu.edit_client(added["client_id"], accountsemailaddress="ap@example.com")
    assert customer["alastupdate"] == stamp


def test_mutators_refuse_typos_and_derived_fields() -> None:
    emu = HaloEmulator(invoices=10)
    invoice_id = next(iter(emu.invoices))
    with pytest.raises(InvalidRecord, match="no field"):
        emu.edit_invoice(invoice_id, totl=5)
    with pytest.raises(InvalidRecord, match="worked out"):
        emu.edit_invoice(invoice_id, amountdue=5)
    with pytest.raises(InvalidRecord):
        emu.pay_invoice(10**9)


def test_renaming_a_customer_follows_through_to_its_invoices() -> None:
    emu = HaloEmulator(invoices=100)
    client_id = next(iter(emu.invoices.values()))["client_id"]
    emu.edit_client(client_id, name="Renamed Holdings LLC")
    assert {i["client_name"] for i in emu.invoices.values() if i["client_id"] == client_id} == {"Renamed Holdings LLC"}


def test_customer_and_agreement_mutators() -> None:
    emu = HaloEmulator(invoices=10)
    customer = emu.add_client("Fresh Start LLC", accountsemailaddress="ap@freshstart.com", currencyisocode="CAD")
    assert emu.clients[customer["id"]]["currencyisocode"] == "CAD" and customer["id"] == max(emu.clients)
    agreement = emu.add_contract(customer["id"], subtype=3, periodchargeamount=480, start_date="2026-10-01")
    assert agreement["client_name"] == "Fresh Start LLC" and agreement["ref"] == "RSA-2026-0001"
    assert agreement["end_date"] == "0001-01-01T00:00:00" and agreement["periodchargeamount"] == 480.0
    ended = emu.edit_contract(agreement["id"], active=False, expired=True, end_date="2026-10-31")
    assert ended["contract_status"] == "Expired" and ended["end_date"] == "2026-10-31T00:00:00"
    invoice = emu.add_invoice(customer["id"], contract_id=agreement["id"], total=512.5)
    assert invoice["contract_ref"] == agreement["ref"] and invoice["currency_code_name"] == "CAD"
    other = next(c for c in emu.contracts.values() if c["client_id"] != customer["id"])
    with pytest.raises(InvalidRecord, match="has no agreement"):
        emu.edit_invoice(invoice["id"], contract_id=other["id"])


@pytest.fixture(scope="module")
def ledger_emu() -> HaloEmulator:
    return HaloEmulator(invoices=10)


@settings(max_examples=40, deadline=None)
@given(amounts=st.lists(st.integers(min_value=1, max_value=20_000), min_size=1, max_size=8))
def test_any_run_of_payments_keeps_the_ledger_straight(ledger_emu: HaloEmulator, amounts: list[int]) -> None:
    emu = ledger_emu
    invoice = emu.add_invoice(total=150.0)
    for amount in amounts:
        due = round(emu.invoices[invoice["id"]]["amountdue"] * 100)
        if amount > due:
            with pytest.raises(InvalidRecord, match="exceeds"):
                emu.pay_invoice(invoice["id"], amount / 100)
            continue
        emu.pay_invoice(invoice["id"], amount / 100)
    row = emu.invoices[invoice["id"]]
    paid = sum(round(p["amount"] * 100) for p in emu.payments.values() if p["invoice_id"] == invoice["id"])
    assert round(row["amountpaid"] * 100) == paid and round(row["amountdue"] * 100) == 15_000 - paid
    assert row["paymentstatus"] == (2 if paid == 15_000 else 1 if paid else 0)
    assert (row["datepaid"] != NO_DATE) == (paid == 15_000)

