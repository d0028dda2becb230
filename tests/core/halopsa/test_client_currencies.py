"""Currencies as ISO codes (issue 12): from an invoice row's `currency_code_name`, else from `/api/Currency` by the
row's `currency_code`, read once per client; never the symbol in `currency`."""

from __future__ import annotations

import pytest

from halo_emulator import EmulatorConfig, FaultRule, HaloEmulator
from tests.support.client_fakes import emulator_client
from tests.support.clock import FakeClock


def _emulator(**config) -> HaloEmulator:
    clock = FakeClock()
    return HaloEmulator(EmulatorConfig(seed=7, invoices=300, clock=clock, sleep=clock.sleep, **config))


def _iso_by_invoice(emulator: HaloEmulator) -> dict[int, str]:
    return {i: emulator.clients[row["client_id"]]["currencyisocode"] for i, row in emulator.invoices.items()}


def _currencies(pages) -> dict[int, str | None]:
    return {invoice.halo_id: invoice.currency for page in pages for invoice in page.records}


def test_rows_without_the_code_name_are_named_from_the_currency_list_once() -> None:
    emulator = _emulator(currency_code_name=False)
    client = emulator_client(emulator, page_size=50)

    assert _currencies(client.iter_invoices()) == _iso_by_invoice(emulator)
    assert len(emulator.stats.entries("/api/Currency")) == 1  # read once for the whole listing
    one = max(emulator.invoices)
    invoice = client.get_invoice(one)
    assert invoice is not None and invoice.currency == _iso_by_invoice(emulator)[one]
    assert len(emulator.stats.entries("/api/Currency")) == 1


def test_rows_with_the_code_name_cost_no_look_up() -> None:
    emulator = _emulator()
    client = emulator_client(emulator, page_size=100)

    assert _currencies(client.iter_invoices()) == _iso_by_invoice(emulator)
    assert emulator.stats.entries("/api/Currency") == []


@pytest.mark.parametrize("status", [403, 404, 400])
def test_an_unreadable_currency_list_leaves_the_currency_unknown_never_the_symbol(status: int) -> None:
    emulator = _emulator(currency_code_name=False)
    emulator.add_fault(FaultRule(kind="status", status=status, path="/api/currency", times=None))
    client = emulator_client(emulator, page_size=100)

    currencies = _currencies(client.iter_invoices())

    assert set(currencies.values()) == {None}
    assert len(currencies) == len(emulator.invoices)
