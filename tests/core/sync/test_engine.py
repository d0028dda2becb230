"""The sync engine against the in-process emulator: backfill, scheduled, Fetch new data, Fetch unpaid invoices,
failures at every page, idempotent reruns, cooldown refunds and record errors."""

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core.access import Principal
from core.actions import connect as connections
from core.actions import fetches
from core.errors import CooldownActive, NotAllowedForRole
from core.store.tables import INVOICE_TABLE, RUN_TABLE, IntegrationRole, Role, RunKind, RunStatus, SyncRecordError
from core.sync import connector
from core.sync import engine as sync_engine
from halo_emulator import FaultRule, HaloEmulator
from tests.support.clock import NOW
from tests.support.halo_state import differences, expected_invoices, stored_invoices

CS = Principal(role=Role.CS, user="cs@example.com")
DOMAIN = "https://acme.halopsa.com"


@pytest.fixture
def sync_settings(settings):
    return replace(settings, page_size=200, max_attempts=2, backoff_cap_s=0.01, rate_limit_requests=10**6)


@pytest.fixture
def emu():
    return HaloEmulator(seed=11, invoices=1200, start=NOW, rate_limit=None, activity=25)


def connect(engine, settings, emu, *, role=IntegrationRole.PRIMARY, number_field="third_party", name="Acme MSP"):
    form = connections.ConnectionForm(partner_name=name, app_domain=DOMAIN, client_id=emu.client_id,
                                      client_secret=emu.client_secret, invoice_number_field=number_field,
                                      integration_role=role)
    partner_id, _ = connections.connect(engine, CS, form, now=emu.now, settings=settings, transport=emu.transport())
    return partner_id


def run(engine, settings, emu, partner_id, kind, trigger="schedule"):
    factory = connector.stored_client_factory(settings, transport=emu.transport())
    return sync_engine.run_sync(engine, partner_id=partner_id, kind=kind, trigger=trigger, actor="test", now=emu.now,
                         settings=settings, client_factory=factory)


def manual(engine, settings, emu, partner_id, kind):
    factory = connector.stored_client_factory(settings, transport=emu.transport())
    return fetches.start_manual_fetch(engine, CS, partner_id=partner_id, kind=kind, now=emu.now, settings=settings,
                                      client_factory=factory)


def test_backfill_stores_exactly_what_halopsa_has(engine, sync_settings, emu):
    partner_id = connect(engine, sync_settings, emu)
    result = run(engine, sync_settings, emu, partner_id, RunKind.BACKFILL, trigger="connect")
    assert result.status == RunStatus.SUCCEEDED
    assert differences(expected_invoices(emu, "third_party"), stored_invoices(engine, partner_id)) == []
    assert result.tally.invoices_seen == len(emu.invoices)
    assert result.tally.created == len(emu.invoices) + len(emu.clients) + len(emu.contracts)
    assert result.tally.pages >= len(emu.invoices) // 200


def test_scheduled_sync_converges_after_the_clock_moves_and_a_rerun_changes_nothing(engine, sync_settings, emu):
    partner_id = connect(engine, sync_settings, emu)
    run(engine, sync_settings, emu, partner_id, RunKind.BACKFILL, trigger="connect")
    changes = emu.advance(emu.now + timedelta(hours=5))
    assert changes.invoice_ids()
    first = run(engine, sync_settings, emu, partner_id, RunKind.SCHEDULED)
    assert first.status == RunStatus.SUCCEEDED and first.kind == RunKind.SCHEDULED
    assert differences(expected_invoices(emu, "third_party"), stored_invoices(engine, partner_id)) == []
    assert first.tally.created >= len(changes.invoices_created)
    again = run(engine, sync_settings, emu, partner_id, RunKind.SCHEDULED)
    assert again.tally.created == 0 and again.tally.updated == 0


def test_fetch_new_data_picks_up_exactly_the_last_hours_changes(engine, sync_settings, emu):
    partner_id = connect(engine, sync_settings, emu)
    run(engine, sync_settings, emu, partner_id, RunKind.BACKFILL, trigger="connect")
    before = stored_invoices(engine, partner_id)
    changes = emu.advance(emu.now + timedelta(hours=3))
    recent = changes.since(emu.now - timedelta(hours=1))
    result = manual(engine, sync_settings, emu, partner_id, RunKind.FETCH_NEW_DATA)
    assert result.status == RunStatus.SUCCEEDED
    expected, stored = expected_invoices(emu, "third_party"), stored_invoices(engine, partner_id)
    assert recent.invoice_ids(), "the emulator should change something every hour"
    for halo_id in recent.invoice_ids():
        assert stored[halo_id] == expected[halo_id]
    older = changes.invoice_ids() - recent.invoice_ids()
    for halo_id in older:  # changed 1-3 h ago: outside this fetch's window, so still as before
        assert stored.get(halo_id) == before.get(halo_id)
    assert result.tally.invoices_seen == len(recent.invoice_ids())


def test_fetch_unpaid_brings_every_unpaid_invoice_up_to_date_and_catches_paid_ones(engine, sync_settings, emu):
    partner_id = connect(engine, sync_settings, emu)
    run(engine, sync_settings, emu, partner_id, RunKind.BACKFILL, trigger="connect")
    changes = emu.advance(emu.now + timedelta(hours=6))
    result = manual(engine, sync_settings, emu, partner_id, RunKind.FETCH_UNPAID)
    assert result.status == RunStatus.SUCCEEDED
    expected, stored = expected_invoices(emu, "third_party"), stored_invoices(engine, partner_id)
    unpaid = {i for i, row in expected.items() if row["status"] in ("unpaid", "partially_paid")}
    for halo_id in unpaid:
        assert stored[halo_id] == expected[halo_id]
    for halo_id in changes.invoices_paid:
        assert stored[halo_id]["status"] == expected[halo_id]["status"]
    locally_unpaid = {i for i, row in stored.items() if row["status"] in ("unpaid", "partially_paid")}
    assert locally_unpaid == unpaid


def test_a_second_fetch_inside_the_cooldown_is_refused_and_a_secondary_cannot_fetch(engine, sync_settings, emu):
    partner_id = connect(engine, sync_settings, emu)
    manual(engine, sync_settings, emu, partner_id, RunKind.FETCH_NEW_DATA)
    emu.advance(emu.now + timedelta(minutes=20))
    with pytest.raises(CooldownActive, match="40 min"):
        manual(engine, sync_settings, emu, partner_id, RunKind.FETCH_NEW_DATA)
    secondary = connect(engine, sync_settings, emu, role=IntegrationRole.SECONDARY, name="Globex")
    with pytest.raises(NotAllowedForRole, match="secondary"):
        manual(engine, sync_settings, emu, secondary, RunKind.FETCH_UNPAID)


def test_a_transient_failure_gives_the_cooldown_back(engine, sync_settings, emu):
    partner_id = connect(engine, sync_settings, emu)
    emu.add_fault(FaultRule(kind="status", status=503, path="/api/invoice", times=None))
    failed = manual(engine, sync_settings, emu, partner_id, RunKind.FETCH_UNPAID)
    assert failed.status == RunStatus.FAILED and failed.cooldown_refunded
    assert "503" in failed.error and "run this fetch again now" in failed.error
    emu.clear_faults()
    assert manual(engine, sync_settings, emu, partner_id, RunKind.FETCH_UNPAID).status == RunStatus.SUCCEEDED


def test_a_persistent_429_ends_the_run_as_rate_limited_not_failed(engine, sync_settings, emu):
    partner_id = connect(engine, sync_settings, emu)
    emu.add_fault(FaultRule(kind="rate_limit", path="/api/client", times=None, retry_after=0))
    result = run(engine, sync_settings, emu, partner_id, RunKind.BACKFILL, trigger="connect")
    assert result.status == RunStatus.RATE_LIMITED
    assert "rate limiting" in result.error


def test_a_malformed_record_is_kept_as_a_record_error_and_the_run_is_partial(engine, sync_settings, emu):
    partner_id = connect(engine, sync_settings, emu)
    emu.add_fault(FaultRule(kind="malformed_record", path="/api/invoice", times=1, after=1))
    result = run(engine, sync_settings, emu, partner_id, RunKind.BACKFILL, trigger="connect")
    assert result.status == RunStatus.PARTIAL and result.tally.rejected == 1
    with engine.connect() as conn:
        error = conn.execute(select(SyncRecordError)).one()
    assert error.entity == "invoice" and "amount" in error.reason
    emu.clear_faults()
    emu.advance(emu.now + timedelta(hours=2))
    run(engine, sync_settings, emu, partner_id, RunKind.FETCH_UNPAID)
    rerun = run(engine, sync_settings, emu, partner_id, RunKind.BACKFILL)
    assert rerun.status == RunStatus.SUCCEEDED
    assert differences(expected_invoices(emu, "third_party"), stored_invoices(engine, partner_id)) == []


@pytest.mark.parametrize(("kind", "page_size"), [(RunKind.BACKFILL, 200), (RunKind.FETCH_NEW_DATA, 3),
                                               (RunKind.FETCH_UNPAID, 25)])
def test_a_failure_at_any_page_then_a_rerun_converges_without_duplicates(engine, sync_settings, kind, page_size):
    sync_settings = replace(sync_settings, page_size=page_size)
    emu = HaloEmulator(seed=5, invoices=700, start=NOW, rate_limit=None, activity=25)
    partner_id = connect(engine, sync_settings, emu)
    if kind != RunKind.BACKFILL:
        run(engine, sync_settings, emu, partner_id, RunKind.BACKFILL, trigger="connect")
        emu.advance(emu.now + timedelta(minutes=50))
    pages = 0
    while True:
        rule = emu.add_fault(FaultRule(kind="drop", path="/api/invoice", times=None, after=pages))
        failed = run(engine, sync_settings, emu, partner_id, kind, trigger="schedule")
        emu.clear_faults()
        if rule.fired == 0:
            break  # the run never reached page `pages`: every failure point was tried
        assert failed.status == RunStatus.FAILED and "did not answer" in failed.error
        rerun = run(engine, sync_settings, emu, partner_id, kind, trigger="schedule")
        assert rerun.status == RunStatus.SUCCEEDED
        stored = stored_invoices(engine, partner_id)
        expected = expected_invoices(emu, "third_party")
        if kind == RunKind.FETCH_NEW_DATA:
            expected = {i: row for i, row in expected.items() if i in stored}
        assert differences(expected, stored) == []
        pages += 1
    assert pages >= 2
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(INVOICE_TABLE)) == len(stored_invoices(engine, partner_id))


def test_a_permission_removed_after_connect_is_recorded_on_the_connection(engine, sync_settings, emu):
    partner_id = connect(engine, sync_settings, emu)
    emu.set_scopes(("read:customers", "edit:customers", "read:invoices", "read:contracts", "edit:contracts"))
    result = run(engine, sync_settings, emu, partner_id, RunKind.BACKFILL, trigger="connect")
    assert result.status == RunStatus.SUCCEEDED
    with engine.connect() as conn:
        missing = conn.exec_driver_sql("select missing_scopes from connection").scalar()
    assert missing == "admin:webhooks edit:invoices"
    emu.set_scopes(("read:customers",))
    failed = run(engine, sync_settings, emu, partner_id, RunKind.SCHEDULED)
    assert failed.status == RunStatus.FAILED and "read:contracts" in failed.error


@pytest.mark.parametrize("times", [1, None], ids=["retried-then-answered", "never-answered"])
def test_a_runs_request_count_includes_every_retry_even_when_the_run_fails(engine, sync_settings, emu, times):
    """The run table's Requests said 0 for a run whose every attempt HaloPSA refused: only pages stored updated it."""
    partner_id = connect(engine, sync_settings, emu)
    run(engine, sync_settings, emu, partner_id, RunKind.BACKFILL, trigger="connect")
    emu.advance(emu.now + timedelta(hours=2))
    emu.add_fault(FaultRule(kind="status", status=503, path="/api/client", times=times))
    before = emu.stats.requests
    result = run(engine, sync_settings, emu, partner_id, RunKind.SCHEDULED)
    assert result.status == (RunStatus.SUCCEEDED if times else RunStatus.FAILED)
    with engine.connect() as conn:
        stored = conn.scalar(select(RUN_TABLE.c.requests).where(RUN_TABLE.c.id == result.run_id))
    assert stored == result.tally.requests == emu.stats.requests - before > 0


@pytest.mark.parametrize(("fault", "status"), [("status", 503), ("rate_limit", 429)])
def test_a_run_records_its_retries_and_the_429s_among_its_answers(engine, sync_settings, emu, fault, status):
    """The support bundle lists each run's retries and 429 answers: a run that met one refusal, then an answer."""
    partner_id = connect(engine, sync_settings, emu)
    run(engine, sync_settings, emu, partner_id, RunKind.BACKFILL, trigger="connect")
    emu.advance(emu.now + timedelta(hours=2))
    emu.add_fault(FaultRule(kind=fault, status=status, path="/api/client", times=1, retry_after=0))
    result = run(engine, sync_settings, emu, partner_id, RunKind.SCHEDULED)
    assert result.status == RunStatus.SUCCEEDED
    with engine.connect() as conn:
        stored = conn.execute(select(RUN_TABLE.c.retries, RUN_TABLE.c.rate_limited)
                              .where(RUN_TABLE.c.id == result.run_id)).one()
    assert tuple(stored) == (1, 1 if status == 429 else 0)
