"""The demo seeds its story on sandbox tenants whose subtype names live at a lookup id of their own: Northwind sets
its tenant's subtype lookup (names verified) and maps two subtypes by id, Tailspin sets another table's (not
verified), Contoso sets none (subtypes shown by id)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from core.console import agreements, subtypes
from core.demo import sandbox, seed
from core.store.tables import PARTNER_TABLE, SubtypeLookupState
from tests.support.clock import NOW


@pytest.fixture
def seeded(engine, settings):
    sandbox.REGISTRY.clear()
    seed.seed(engine, settings=settings, now=NOW, days=7)
    with engine.connect() as conn:
        return dict(conn.execute(select(PARTNER_TABLE.c.name, PARTNER_TABLE.c.id)).all())


@pytest.mark.slow
def test_the_demo_seeds_rules_mapped_by_subtype_id_and_each_lookup_story(engine, seeded):
    northwind, tailspin = seeded["Northwind IT"], seeded["Tailspin Technologies"]
    contoso = seeded["Contoso Managed Services"]

    rules = {rule.subtype_id: rule.subtype for rule in agreements.list_rules(engine, seed.CS, northwind)}
    assert rules == {1: "Managed Services (id 1)", 2: "Backup (id 2)"}
    summary = agreements.subtype_summary(engine, seed.CS, northwind, now=NOW)
    mapped = dict(zip(summary["subtype"], summary["rule"], strict=True))
    assert mapped["Managed Services (id 1)"] == "on the due date"
    assert mapped["Backup (id 2)"] == "3 days after the due date"
    northwind_names = subtypes.subtype_names(engine, seed.CS, northwind)
    assert northwind_names.lookup.state == SubtypeLookupState.VERIFIED
    assert northwind_names.lookup.lookup_id == northwind_names.sandbox_lookup == \
        sandbox.lookup_ids("northwind.sandbox")[0] != 58

    tailspin_lookup = subtypes.subtype_names(engine, seed.CS, tailspin).lookup
    assert tailspin_lookup.state == SubtypeLookupState.UNVERIFIED and "no name for subtype" in tailspin_lookup.finding
    shown = set(agreements.subtype_summary(engine, seed.CS, contoso, now=NOW + timedelta(days=1))["subtype"])
    assert shown and all(label.startswith("Subtype ") for label in shown)
