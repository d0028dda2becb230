"""The demo seed, replayed over two days (the full three weeks run in the browser test's set-up): scheduled syncs at
their own hour, record errors to group, and sandbox tenants whose subtype names live at a lookup id of their own
(Northwind sets its tenant's subtype lookup, names verified, and maps two subtypes by id; Tailspin sets another
table's, not verified; Contoso sets none, subtypes shown by id)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from core.access import Principal
from core.actions import trace_lookup
from core.console import agreements, overview, reconciliation, subtypes, syncs, tracer
from core.console.tracer import Answer
from core.demo import sandbox, seed
from core.demo.traceable import traceable
from core.store.tables import (
    AUDIT_TABLE,
    ERROR_TABLE,
    ISSUE_EVENT_TABLE,
    PARTNER_TABLE,
    RUN_TABLE,
    Role,
    RunKind,
    RunStatus,
    SubtypeLookupState,
)
from tests.support.clock import NOW

CS = Principal(role=Role.CS, user="cs@demo.local")
END = NOW.replace(minute=0)


def _seeded(engine, settings, days: int) -> Iterator[dict[str, int]]:
    """The partners' ids by name, after `days` of replay (the later partners connect after the first days)."""
    sandbox.REGISTRY.clear()
    seed.seed(engine, settings=settings, now=NOW, days=days)
    with engine.connect() as conn:
        yield dict(conn.execute(select(PARTNER_TABLE.c.name, PARTNER_TABLE.c.id)).all())
    sandbox.REGISTRY.clear()


@pytest.fixture
def seeded(engine, settings) -> Iterator[dict[str, int]]:
    yield from _seeded(engine, settings, 2)


@pytest.fixture
def seeded_week(engine, settings) -> Iterator[dict[str, int]]:
    yield from _seeded(engine, settings, 7)


def test_replayed_scheduled_syncs_start_at_their_own_hour_not_at_the_moment_of_seeding(engine, seeded):
    """Every scheduled run of the replay was stamped with the seeding's wall clock: hundreds of runs in one second,
    which the Syncs page drew as a barcode with durations of 0."""
    with engine.connect() as conn:
        starts = list(conn.scalars(select(RUN_TABLE.c.started_at).where(RUN_TABLE.c.kind == RunKind.SCHEDULED)))
    assert len(starts) > 20
    assert all(END - timedelta(days=2) <= start < END + timedelta(minutes=1) for start in starts)
    assert len({start.replace(minute=0, second=0, microsecond=0) for start in starts}) > 20


def test_the_demo_has_record_errors_of_several_kinds_to_group(engine, seeded):
    northwind = seeded["Northwind IT"]
    with engine.connect() as conn:
        partial = list(conn.scalars(select(RUN_TABLE.c.id).where(
            RUN_TABLE.c.partner_id == northwind, RUN_TABLE.c.status == RunStatus.PARTIAL)))
        entities = set(conn.scalars(select(ERROR_TABLE.c.entity).where(ERROR_TABLE.c.partner_id == northwind)))
    assert len(partial) >= 2 and entities >= {"invoice", "customer", "agreement"}
    groups = [syncs.run_detail(engine, CS, northwind, run_id).error_groups for run_id in partial]
    assert all(not group.empty and group["Example HaloPSA ID"].str.fullmatch(r"\d+").all() for group in groups)


@pytest.mark.slow
def test_the_demo_seeds_rules_mapped_by_subtype_id_and_each_lookup_story(engine, seeded_week):
    northwind, tailspin = seeded_week["Northwind IT"], seeded_week["Tailspin Technologies"]
    contoso = seeded_week["Contoso Managed Services"]

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


def test_the_demo_shows_issues_with_their_history(engine, seeded):
    listed = overview.issues(engine, CS, now=NOW)
    found = {(row.partner, row.type) for row in listed.itertuples()}
    assert ("Litware Systems", "Subtype unmapped") in found  # two days in: before anyone mapped its subtypes
    assert ("Northwind IT", "Record errors") in found
    with engine.connect() as conn:
        events = conn.execute(select(ISSUE_EVENT_TABLE.c.at)).scalars().all()
    assert len(events) >= len(listed)
    assert all(END - timedelta(days=2) <= at <= NOW for at in events)  # each at its replayed hour
    with engine.connect() as conn:  # the replay's presses (minutes into their hour) never look stamped in the future
        assert not conn.execute(select(ISSUE_EVENT_TABLE.c.id).where(ISSUE_EVENT_TABLE.c.type == "stale_clock")).all()


@pytest.mark.slow
def test_the_demo_holds_an_invoice_of_each_kind_the_tracer_answers(engine, settings, seeded_week):
    """Issue 15: the README and the browser test trace these; each answers as its kind, the last three only from
    HaloPSA (the sandbox books, looked up once each)."""
    sandbox.REGISTRY.pinned_now = NOW
    examples = traceable(engine, settings, now=NOW)
    assert set(examples) == set(Answer) - {Answer.RULE_DISABLED, Answer.AGREEMENT_INACTIVE, Answer.AGREEMENT_EXPIRED,
                                           Answer.MISSED, Answer.UNKNOWN_HERE, Answer.NOT_SYNCED_FROM_HALOPSA}
    for answer, example in examples.items():
        partner_id = seeded_week[example.partner]
        local = tracer.trace(engine, CS, partner_id, example.identifier, now=NOW, schedule_interval=timedelta(hours=1))
        assert local.can_look_up == example.live, (answer, example)
        found = (trace_lookup.look_up(engine, CS, partner_id, example.identifier, now=NOW, settings=settings)
                 if example.live else local)
        assert [trace.answer for trace in found.traces] == [answer], (example, found.traces)
    stalled = examples[Answer.NOT_SYNCED_YET].partner
    with engine.connect() as conn:  # customer success cancelled its last scheduled syncs, so that invoice waits
        assert conn.scalar(select(AUDIT_TABLE.c.partner_id).where(AUDIT_TABLE.c.action == "cancel_sync")) == (
            seeded_week[stalled])


def test_the_last_hours_reconciliation_of_contoso_is_on_its_syncs_page(engine, seeded_week):
    found = reconciliation.latest(engine, CS, seeded_week[seed.RECONCILED])
    assert found is not None and found.finished and "by cs@demo.local" in found.headline
