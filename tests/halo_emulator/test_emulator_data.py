"""The generated books: deterministic, consistent, and readable by the sync's own parser."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from core.halopsa.records import parse_agreement, parse_customer, parse_invoice
from halo_emulator import NO_DATE, OPEN_END, EmulatorConfig, HaloEmulator

ZONELESS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")


def cents(value: float) -> int:
    return round(value * 100)


def test_same_seed_gives_identical_books() -> None:
    first, second = HaloEmulator(invoices=300, seed=11), HaloEmulator(invoices=300, seed=11)
    assert dict(first.clients) == dict(second.clients)
    assert dict(first.contracts) == dict(second.contracts)
    assert dict(first.invoices) == dict(second.invoices)
    assert dict(first.payments) == dict(second.payments)
    assert (first.client_id, first.client_secret) == (second.client_id, second.client_secret)


def test_different_seed_gives_different_books() -> None:
    first, second = HaloEmulator(invoices=300, seed=11), HaloEmulator(invoices=300, seed=12)
    assert [c["name"] for c in first.clients.values()] != [c["name"] for c in second.clients.values()]
    assert [i["total"] for i in first.invoices.values()] != [i["total"] for i in second.invoices.values()]
    assert first.client_id != second.client_id


@pytest.mark.parametrize(("invoices", "customers", "agreements"), [(10, None, None), (1000, None, None), (500, 7, 3)])
def test_sizes_follow_the_config(invoices: int, customers: int | None, agreements: int | None) -> None:
    config = EmulatorConfig(invoices=invoices, customers=customers, agreements=agreements)
    emu = HaloEmulator(config)
    assert len(emu.invoices) == invoices
    assert len(emu.clients) == (customers if customers is not None else max(3, invoices // 10))
    assert len(emu.contracts) == (agreements if agreements is not None else max(2, invoices // 20))


def test_config_refuses_sizes_out_of_range() -> None:
    with pytest.raises(ValueError, match="between"):
        EmulatorConfig(invoices=9)
    with pytest.raises(ValueError, match="between"):
        EmulatorConfig(invoices=300_001)


def test_invoice_amounts_and_statuses_agree(small_emu: HaloEmulator) -> None:
    for invoice in small_emu.invoices.values():
        total, paid, due = cents(invoice["total"]), cents(invoice["amountpaid"]), cents(invoice["amountdue"])
        if total < 0:  # a credit note (on by default): posted, nothing applied, its whole (negative) total due
            assert invoice["posted"] and not invoice["voided"] and paid == 0 and due == total
            continue
        assert 0 <= paid <= total
        assert due == (0 if invoice["voided"] else total - paid)
        expected_status = 2 if paid >= total else (1 if paid > 0 else 0)
        assert invoice["paymentstatus"] == expected_status
        assert (invoice["datepaid"] != NO_DATE) == (paid >= total and paid > 0)
        assert cents(invoice["tax_total"]) <= total
        if invoice["voided"]:
            assert paid == 0
        if not invoice["posted"]:
            assert invoice["dateposted"] == NO_DATE and paid == 0


def test_payments_add_up_to_amount_paid(small_emu: HaloEmulator) -> None:
    paid_by_invoice: defaultdict[int, int] = defaultdict(int)
    for payment in small_emu.payments.values():
        invoice = small_emu.invoices[payment["invoice_id"]]
        paid_by_invoice[payment["invoice_id"]] += cents(payment["amount"])
        assert payment["client_id"] == invoice["client_id"]
        assert payment["client_name"] == invoice["client_name"]
        assert payment["invoice_invoicenumber"] == invoice["invoicenumber"]
        assert payment["date"] >= invoice["dateposted"]
    for invoice_id, invoice in small_emu.invoices.items():
        assert paid_by_invoice.get(invoice_id, 0) == cents(invoice["amountpaid"])


def test_links_point_at_the_right_customer_and_agreement(small_emu: HaloEmulator) -> None:
    for contract in small_emu.contracts.values():
        assert contract["client_name"] == small_emu.clients[contract["client_id"]]["name"]
    for invoice in small_emu.invoices.values():
        client = small_emu.clients[invoice["client_id"]]
        assert invoice["client_name"] == client["name"]
        assert invoice["sitenumber"] == client["main_site_id"]
        if invoice["contract_id"]:
            contract = small_emu.contracts[invoice["contract_id"]]
            assert contract["client_id"] == invoice["client_id"]
            assert invoice["contract_ref"] == contract["ref"]
        else:
            assert invoice["contract_ref"] == ""


def test_books_look_like_an_msp(small_emu: HaloEmulator) -> None:
    invoices = list(small_emu.invoices.values())
    statuses = Counter(i["paymentstatus"] for i in invoices)
    assert 0.10 <= statuses[0] / len(invoices) <= 0.22
    assert 0.01 <= statuses[1] / len(invoices) <= 0.08
    assert 0.10 <= sum(i["contract_id"] == 0 for i in invoices) / len(invoices) <= 0.20
    assert 0.03 <= sum(not i["thirdpartyinvoicenumber"] for i in invoices) / len(invoices) <= 0.15
    assert any(i["voided"] for i in invoices)
    start = small_emu.config.start.replace(tzinfo=None).isoformat()
    assert any(i["amountdue"] > 0 and i["duedate"] < start for i in invoices), "some invoices are overdue"
    assert all(i["invoicenumber"] == str(i["id"]) for i in invoices)
    subtype_names = {1: "Managed Services", 2: "Backup", 3: "Microsoft 365"}
    assert set(subtype_names.values()) <= {subtype_names.get(c["subtype"], "") for c in small_emu.contracts.values()}
    assert any(c["end_date"] == OPEN_END for c in small_emu.contracts.values())
    assert any(not c["active"] for c in small_emu.contracts.values())
    assert len({c["name"] for c in small_emu.clients.values()}) == len(small_emu.clients)


def test_history_spans_eighteen_months_before_start(small_emu: HaloEmulator) -> None:
    dates = sorted(i["invoice_date"] for i in small_emu.invoices.values())
    first = datetime.fromisoformat(dates[0]).replace(tzinfo=UTC)
    last = datetime.fromisoformat(dates[-1]).replace(tzinfo=UTC)
    start = small_emu.config.start
    assert 500 <= (start - first).days <= 560
    assert last < start
    recurring = [i for i in small_emu.invoices.values() if i["recurring_invoice_id"]]
    assert recurring and all(i["invoice_date"][8:10] == "01" for i in recurring)


def test_ids_rise_with_creation_time(small_emu: HaloEmulator) -> None:
    created = [small_emu.invoices[i]["date_created"] for i in sorted(small_emu.invoices)]
    assert created == sorted(created)


def test_timestamps_are_zone_less(small_emu: HaloEmulator) -> None:
    invoice = next(iter(small_emu.invoices.values()))
    for name in ("invoice_date", "duedate", "dateposted", "datepaid", "last_modified", "date_created"):
        assert ZONELESS.match(invoice[name]), name
    client = next(iter(small_emu.clients.values()))
    assert ZONELESS.match(client["datecreated"]) and ZONELESS.match(client["alastupdate"])


def test_every_row_reads_with_the_sync_parser(small_emu: HaloEmulator) -> None:
    for client in small_emu.clients.values():
        assert parse_customer(client).halo_id == client["id"]
    for contract in small_emu.contracts.values():
        agreement = parse_agreement(contract)
        assert agreement.subtype_id == contract["subtype"]
        assert agreement.customer_halo_id == contract["client_id"]
        assert agreement.end_date is None or contract["end_date"] != OPEN_END
    for row in small_emu.invoices.values():
        invoice = parse_invoice(row)
        assert invoice.amount_due_cents == cents(row["amountdue"])
        assert invoice.agreement_halo_id == (row["contract_id"] or None)


def test_invoice_number_prefix_is_configurable() -> None:
    emu = HaloEmulator(invoices=20, invoice_number_prefix="HI-")
    assert all(i["invoicenumber"] == f"HI-{i['id']}" for i in emu.invoices.values())


@pytest.mark.slow
def test_a_hundred_thousand_invoices_generate_consistently() -> None:
    emu = HaloEmulator(invoices=100_000, seed=3)
    assert len(emu.invoices) == 100_000
    assert len(emu.clients) == 10_000
    open_total = sum(cents(i["amountdue"]) for i in emu.invoices.values())
    assert open_total == sum(
        cents(i["total"]) - cents(i["amountpaid"]) for i in emu.invoices.values() if not i["voided"]
    )


# ---- issue 12: credit notes, expired agreements that still say active, rows without the currency's code -----------


def test_credit_notes_are_negative_posted_invoices_naming_what_they_credit() -> None:
    emu = HaloEmulator(invoices=300, seed=11, credit_note_share=0.1)
    credits = {i: row for i, row in emu.invoices.items() if "creditlinkedtoinvoiceid" in row}
    sales = {i: row for i, row in emu.invoices.items() if i not in credits}

    assert len(emu.invoices) == 300 and len(credits) == 30  # the share of the rows asked for, raised last
    assert min(credits) > max(sales) and all(row["total"] >= 0 for row in sales.values())
    assert not any("creditlinkedtoinvoiceid" in row for row in HaloEmulator(invoices=300, seed=11,
                                                                           credit_note_share=0.0).invoices.values())
    for row in credits.values():
        credited = emu.invoices[row["creditlinkedtoinvoiceid"]]
        assert credited["posted"] and row["posted"] and not row["voided"]
        assert cents(row["total"]) < 0 and cents(row["amountdue"]) == cents(row["total"])
        assert -cents(row["total"]) <= cents(credited["total"]) and cents(row["amountpaid"]) == 0
        assert (row["client_id"], row["contract_id"]) == (credited["client_id"], credited["contract_id"])
        assert row["invoice_date"] >= credited["invoice_date"] and row["last_modified"] < emu.now.isoformat()
        assert parse_invoice(row).credit


def test_expired_agreements_can_stay_active_as_halopsa_keeps_the_flags_apart() -> None:
    plain = HaloEmulator(invoices=1000, seed=11, expired_stays_active=False)
    emu = HaloEmulator(invoices=1000, seed=11, expired_stays_active=True)

    expired = [c for c in emu.contracts.values() if c["expired"]]
    assert expired and all(c["active"] for c in expired)
    assert [c["id"] for c in plain.contracts.values() if c["expired"]] == [c["id"] for c in expired]
    assert all(not c["active"] for c in plain.contracts.values() if c["expired"])
    assert not any(parse_agreement(c).active for c in expired)
    assert dict(emu.invoices) == dict(plain.invoices)


def test_the_clock_expiring_an_agreement_follows_the_same_knob() -> None:
    emu = HaloEmulator(invoices=300, seed=11, expired_stays_active=True)
    fixed_term = [c for c in emu.contracts.values() if c["end_date"] != OPEN_END and not c["expired"]]
    assert fixed_term, "the books should hold a running fixed-term agreement"
    last_end = max(datetime.fromisoformat(c["end_date"]).replace(tzinfo=UTC) for c in fixed_term)

    emu.advance(last_end + timedelta(days=2))

    assert all(emu.contracts[c["id"]]["expired"] and emu.contracts[c["id"]]["active"] for c in fixed_term)


def test_rows_can_lack_the_currency_code_name() -> None:
    emu = HaloEmulator(invoices=100, seed=11, currency_code_name=False)
    added = emu.add_invoice(total=10.0)

    for row in [*emu.invoices.values(), added]:
        assert "currency_code_name" not in row and row["currency"] in ("$", "CA$", "£") and row["currency_code"]
    assert all("currency_code_name" in row for row in HaloEmulator(invoices=100, seed=11).invoices.values())
