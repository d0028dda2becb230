"""The reconciliation read models: the latest one of a partner (cost, counts, unpaid per currency never summed, the
differing invoices, what a resync reads), the cost of a new one, and the fleet's partners with drift."""

import json
from datetime import timedelta

import pytest

from core.access import Principal
from core.console import reconciliation as screen
from core.errors import AccessDenied
from core.store.tables import DriftKind, Role
from core.sync import reconcile
from tests.support.clock import NOW
from tests.support.factories import add_partner, add_reconciliation

CS = Principal(role=Role.CS, user="cs@example.com")


def test_no_reconciliation_yet_reads_none(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    assert screen.latest(engine, CS, partner_id) is None


def test_the_latest_reconciliation_states_cost_counts_unpaid_per_currency_and_the_differing_invoices(engine,
                                                                                                    settings):
    partner_id = add_partner(engine, settings, now=NOW)
    add_reconciliation(engine, partner_id, at=NOW - timedelta(days=1), drift={1: DriftKind.EXTRA_HERE})
    add_reconciliation(engine, partner_id, at=NOW, drift={7: DriftKind.MISSING_HERE, 8: DriftKind.STATUS_DIFFERS,
                                                          9: DriftKind.OUTSIDE_SCOPE},
                       halo_unpaid=json.dumps({"USD": [3, 30000], "CAD": [1, 5000]}),
                       local_unpaid=json.dumps({"USD": [2, 20000], "": [1, 700]}))
    latest = screen.latest(engine, CS, partner_id)
    assert latest is not None and latest.finished
    assert "estimated 3 HaloPSA requests, 3 requests used" in latest.headline and "cs@example.com" in latest.headline
    assert latest.drift == 2 and "1 missing here" in latest.by_kind and "1 with another status" in latest.by_kind
    assert latest.unpaid.to_dict("records") == [
        {"Currency": "no currency", "Unpaid in HaloPSA": 0, "Unpaid here": 1, "Due in HaloPSA": "0.00",
         "Due here": "7.00", "Difference": "-7.00"},
        {"Currency": "CAD", "Unpaid in HaloPSA": 1, "Unpaid here": 0, "Due in HaloPSA": "50.00", "Due here": "0.00",
         "Difference": "50.00"},
        {"Currency": "USD", "Unpaid in HaloPSA": 3, "Unpaid here": 2, "Due in HaloPSA": "300.00",
         "Due here": "200.00", "Difference": "100.00"},
    ]
    assert list(latest.items["HaloPSA ID"]) == ["7", "9", "8"]  # by kind, then id
    assert list(latest.items["Difference"]) == ["Missing here", "Outside Invoices Created Since", "Status differs"]
    assert latest.open_drift == 2 and latest.resync_label == "Resync 2 invoices"


def test_beyond_the_cap_a_resync_says_what_costs_less(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    add_reconciliation(engine, partner_id, at=NOW,
                       drift=dict.fromkeys(range(1, reconcile.RESYNC_CAP + 3), DriftKind.EXTRA_HERE))
    latest = screen.latest(engine, CS, partner_id)
    assert latest is not None and latest.open_drift == reconcile.RESYNC_CAP + 2
    assert latest.resync_label == f"Resync {reconcile.RESYNC_CAP} invoices" and "Fetch unpaid" in latest.resync_note


def test_the_offer_states_the_cost_before(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    offer = screen.offer(engine, CS, partner_id, settings)
    assert "HaloPSA requests" in offer.estimate and offer.busy is None


def test_the_fleet_lists_partners_whose_latest_reconciliation_found_drift(engine, settings):
    acme = add_partner(engine, settings, now=NOW, name="Acme MSP")
    globex = add_partner(engine, settings, now=NOW, name="Globex")
    initech = add_partner(engine, settings, now=NOW, name="Initech")
    add_reconciliation(engine, acme, at=NOW, drift={1: DriftKind.EXTRA_HERE})
    add_reconciliation(engine, globex, at=NOW - timedelta(hours=1), drift={1: DriftKind.EXTRA_HERE})
    add_reconciliation(engine, globex, at=NOW, drift={})  # fixed since
    add_reconciliation(engine, initech, at=NOW, drift={1: DriftKind.AMOUNT_DIFFERS, 2: DriftKind.MISSING_HERE})
    fleet = screen.fleet(engine, CS)
    assert list(fleet["Partner"]) == ["Initech", "Acme MSP"]
    assert list(fleet["Differing invoices"]) == [2, 1] and list(fleet["Still open"]) == [2, 1]


@pytest.mark.parametrize("who", [Principal(role=Role.PM, user="pm@example.com"),
                                 Principal(role=Role.PARTNER, user="p@acme.example", partner_id=1)])
def test_reconciliations_are_for_customer_success(engine, settings, who):
    partner_id = add_partner(engine, settings, now=NOW)
    for read in (lambda: screen.latest(engine, who, partner_id),
                 lambda: screen.offer(engine, who, partner_id, settings), lambda: screen.fleet(engine, who)):
        with pytest.raises(AccessDenied):
            read()
