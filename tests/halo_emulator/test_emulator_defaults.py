"""Realistic by default (issue 12): what a tenant left at its defaults does that the documentation does not say, and
the knob that turns each quirk off. The shapes themselves are held to the evidence in test_emulator_evidence.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest

from halo_emulator import NO_DATE, EmulatorConfig, HaloEmulator
from tests.support.evidence import ZONELESS, ZULU

Api = Callable[..., httpx.Client]
ENTITIES = (("/api/Client", "clients"), ("/api/ClientContract", "contracts"), ("/api/Invoice", "invoices"),
            ("/api/InvoicePayment", "payments"))


def _listed(client: httpx.Client, path: str, key: str) -> list[dict]:
    rows: list[dict] = client.get(path, params={"includeinactive": "true"}).json()[key]
    return rows


def _stamps(row: dict) -> list[str]:
    return [value for value in row.values() if isinstance(value, str) and (ZULU.match(value) or ZONELESS.match(value))]


def test_the_defaults_are_the_quirks_the_evidence_shows() -> None:
    config = EmulatorConfig()
    assert (config.page_size_cap, config.retry_after_header, config.timestamp_form) == (100, False, "mixed")
    assert config.credit_note_share > 0 and config.draft_share > 0 and config.invoice_deletions
    assert config.expired_stays_active is None  # drawn per agreement


@pytest.mark.parametrize(("path", "key"), ENTITIES)
def test_each_record_keeps_one_timestamp_form_drawn_from_the_seed(api: Api, path: str, key: str) -> None:
    emu = HaloEmulator(invoices=300, rate_limit=None)
    rows = _listed(api(emu), path, key)

    zulu = {row["id"] for row in rows if all(ZULU.match(stamp) for stamp in _stamps(row))}
    zoneless = {row["id"] for row in rows if all(ZONELESS.match(stamp) for stamp in _stamps(row))}
    assert zulu and zoneless and zulu | zoneless == {row["id"] for row in rows}
    again = HaloEmulator(invoices=300, rate_limit=None)
    assert _listed(api(again), path, key) == rows, "the same seed draws the same forms"
    other = HaloEmulator(invoices=300, seed=8, rate_limit=None)
    assert {r["id"] for r in _listed(api(other), path, key) if ZULU.match(_stamps(r)[0])} != zulu
    stored = getattr(emu, key).values()
    assert all(ZONELESS.match(stamp) for row in stored for stamp in _stamps(row)), "kept zone-less, written per form"


def test_a_records_form_holds_on_its_single_read_and_after_an_edit(api: Api) -> None:
    emu = HaloEmulator(invoices=300, rate_limit=None)
    client = api(emu)
    listed = {row["id"]: row for row in _listed(client, "/api/Invoice", "invoices")}
    open_ids = [i for i, row in emu.invoices.items() if row["posted"] and row["amountdue"] > 0]
    zulu = next(i for i in open_ids if listed[i]["last_modified"].endswith("Z"))
    zoneless = next(i for i in open_ids if not listed[i]["last_modified"].endswith("Z"))

    for invoice_id, form in ((zulu, ZULU), (zoneless, ZONELESS)):
        single = client.get(f"/api/Invoice/{invoice_id}", params={"includedetails": "true"}).json()
        assert single == {**listed[invoice_id], "payments": single["payments"]}
        edited = client.post("/api/Invoice", json=[{"id": invoice_id, "duedate": "2026-12-24"}]).json()
        assert form.match(edited["duedate"]) and form.match(edited["last_modified"])
        assert all(form.match(stamp) for stamp in _stamps(edited))


@pytest.mark.parametrize(("form", "pattern"), [("z", ZULU), ("zoneless", ZONELESS)])
def test_the_timestamp_form_can_be_forced(api: Api, form: str, pattern) -> None:
    emu = HaloEmulator(invoices=50, rate_limit=None, timestamp_form=form)
    client = api(emu)
    for path, key in ENTITIES:
        assert all(pattern.match(stamp) for row in _listed(client, path, key) for stamp in _stamps(row)), path
    sentinel = client.get(f"/api/Invoice/{next(i for i, r in emu.invoices.items() if r['datepaid'] == NO_DATE)}")
    assert sentinel.json()["datepaid"] == (NO_DATE + "Z" if form == "z" else NO_DATE)


def test_an_unknown_timestamp_form_is_refused() -> None:
    with pytest.raises(ValueError, match="timestamp_form"):
        EmulatorConfig(timestamp_form="local")


def test_expired_agreements_stay_active_or_not_per_agreement_in_the_books_and_on_the_clock() -> None:
    emu = HaloEmulator(invoices=2000, rate_limit=None)
    config = emu.config
    expired = [row for row in emu.contracts.values() if row["expired"]]
    assert {row["active"] for row in expired} == {True, False}
    assert all(row["active"] == config.stays_active_when_expired(row["id"]) for row in expired)

    running = [row["id"] for row in emu.contracts.values() if row["active"] and not row["expired"]
               and row["end_date"] != "0001-01-01T00:00:00"]  # fmt: skip
    emu.advance(emu.now + timedelta(days=3 * 365))
    lapsed = [emu.contracts[i] for i in running if emu.contracts[i]["expired"]]
    assert {row["active"] for row in lapsed} == {True, False}
    assert all(row["active"] == config.stays_active_when_expired(row["id"]) for row in lapsed)


def test_the_clock_deletes_the_odd_unpaid_invoice_from_listings_and_single_reads(api: Api) -> None:
    emu = HaloEmulator(invoices=1000, rate_limit=None, activity=20)
    client = api(emu)
    before = dict(emu.invoices)

    changes = emu.advance(emu.now + timedelta(days=30))

    deleted = set(changes.invoices_deleted)
    assert deleted and all(before.get(i, {"amountpaid": 0})["amountpaid"] == 0 for i in deleted)
    listed = {row["id"] for row in client.get("/api/Invoice").json()["invoices"]}
    assert not deleted & listed and not deleted & set(emu.invoices)
    assert all(client.get(f"/api/Invoice/{i}").status_code == 404 for i in deleted)
    assert not deleted & changes.invoice_ids(), "nothing can read a deleted invoice: it leaves the other groups"
    assert changes.invoice_ids() <= listed


def test_deletions_can_be_turned_off(api: Api) -> None:
    emu = HaloEmulator(invoices=1000, rate_limit=None, activity=20, invoice_deletions=False)
    changes = emu.advance(emu.now + timedelta(days=30))
    assert not changes.invoices_deleted
    assert set(emu.invoices) >= set(HaloEmulator(invoices=1000).invoices)


def test_drafts_are_in_the_books_by_default_and_can_be_left_out() -> None:
    drafts = [row for row in HaloEmulator(invoices=1000).invoices.values() if not row["posted"]]
    assert drafts and all(row["dateposted"] == NO_DATE and row["amountpaid"] == 0 for row in drafts)
    assert all(row["posted"] for row in HaloEmulator(invoices=1000, draft_share=0.0).invoices.values())
