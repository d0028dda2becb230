"""The tracer's live lookup (issue 15): one request to the partner's HaloPSA when local data cannot tell, its answer
classified (each produced on purpose in the emulator), number search by whatever the tenant honours, within the
tenant's shared rate budget, audited, nothing stored."""

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, func, insert, select

from core.access import Principal
from core.actions import trace_lookup
from core.console.tracer import Answer
from core.errors import AccessDenied, ConsoleError
from core.store.tables import AUDIT_TABLE, INVOICE_TABLE, RATE_SLOT_TABLE, AuditAction, Role, RunKind
from core.sync import connector
from halo_emulator import FaultRule
from tests.support.trace_tenant import CS, Tenant, sync_settings_of


@pytest.fixture
def sync_settings(settings):
    return sync_settings_of(settings)


@pytest.fixture
def tenant(engine, sync_settings):
    made = Tenant(engine, sync_settings)
    made.sync()
    made.later()
    return made


def _look_up(tenant: Tenant, identifier: str, principal: Principal = CS, settings=None):
    settings = settings or tenant.settings
    factory = connector.stored_client_factory(settings, engine=tenant.engine, transport=tenant.emu.transport())
    return trace_lookup.look_up(tenant.engine, principal, tenant.partner_id, identifier, now=tenant.emu.now,
                                settings=settings, client_factory=factory)


def _stored_count(tenant: Tenant) -> int:
    with tenant.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(INVOICE_TABLE)) or 0)


def _audit(tenant: Tenant) -> list[tuple[str, str]]:
    with tenant.engine.connect() as conn:
        return [(row.actor, row.detail) for row in conn.execute(
            select(AUDIT_TABLE.c.actor, AUDIT_TABLE.c.detail).where(AUDIT_TABLE.c.action == AuditAction.TRACE_LOOKUP)
            .order_by(AUDIT_TABLE.c.id))]


def _invoice_requests(tenant: Tenant, since: int) -> list[dict[str, str]]:
    """The invoice requests the emulator logged after its `since`-th request."""
    return [dict(entry.query) for entry in tenant.emu.stats.log[since:]
            if entry.path.lower().startswith("/api/invoice")]


def test_an_invoice_raised_after_the_last_window_is_not_synced_yet_with_the_next_sync_time(tenant):
    made = tenant.invoice("TR-9001")
    stored, since = _stored_count(tenant), len(tenant.emu.stats.log)
    result = _look_up(tenant, str(made["id"]))
    trace = result.traces[0]
    assert result.live and trace.answer == Answer.NOT_SYNCED_YET and trace.halo_id == made["id"]
    assert "changed after the last sync window. An automatic sync is due now" in trace.summary
    assert _stored_count(tenant) == stored  # the lookup only reports
    assert _audit(tenant) == [(CS.user, f"Invoice looked up in HaloPSA: “{made['id']}”: not_synced_yet; "
                                        f"{result.requests} requests")]
    assert [query.get("pageinate") for query in _invoice_requests(tenant, since)] == [None]  # one read by id


def test_an_invoice_dated_before_invoices_created_since_is_said_excluded(engine, sync_settings):
    tenant = Tenant(engine, sync_settings, since="2026-10-01")
    old = tenant.invoice("TR-9101", invoice_date="2026-09-15")
    tenant.sync()
    assert _look_up(tenant, "TR-9101").traces[0].answer == Answer.EXCLUDED_BY_DATE
    trace = _look_up(tenant, str(old["id"])).traces[0]
    assert trace.answer == Answer.EXCLUDED_BY_DATE
    assert "is dated 2026-09-15, before this connection's Invoices Created Since (2026-10-01)" in trace.summary


def test_a_draft_not_synced_yet_says_both(tenant):
    draft = tenant.invoice("TR-9201", posted=False)
    trace = _look_up(tenant, str(draft["id"])).traces[0]
    assert trace.answer == Answer.DRAFT and "It is not synced yet" in trace.summary


def test_an_invoice_changed_before_the_last_window_yet_missing_here_is_said_missed(tenant):
    made = tenant.invoice("TR-9301")
    tenant.sync(RunKind.FETCH_NEW_DATA)
    with tenant.engine.begin() as conn:
        conn.execute(delete(INVOICE_TABLE).where(INVOICE_TABLE.c.halo_id == made["id"]))
    trace = _look_up(tenant, str(made["id"])).traces[0]
    assert trace.answer == Answer.MISSED and "Run Fetch unpaid invoices" in trace.next_step


def test_an_id_halopsa_does_not_have_is_said_not_found(tenant):
    trace = _look_up(tenant, "987654321").traces[0]
    assert trace.answer == Answer.NOT_FOUND and "HaloPSA has no invoice “987654321” (looked up by HaloPSA ID)" \
        in trace.summary


def test_a_number_is_searched_by_third_party_id_then_search_when_the_tenant_ignores_it(tenant):
    made = tenant.invoice("TR-9401")
    since = len(tenant.emu.stats.log)
    result = _look_up(tenant, "tr-9401")
    assert [trace.halo_id for trace in result.traces] == [made["id"]]
    assert result.traces[0].answer == Answer.NOT_SYNCED_YET
    asked = [next(k for k in ("third_party_id", "search") if k in query) for query in _invoice_requests(tenant, since)]
    assert asked == ["third_party_id", "search"]  # this tenant ignores third_party_id: its page did not match


def test_a_tenant_that_filters_by_third_party_id_is_asked_once(engine, sync_settings):
    tenant = Tenant(engine, sync_settings, third_party_id_filter=True)
    tenant.sync()
    made = tenant.invoice("TR-9501")
    since = len(tenant.emu.stats.log)
    result = _look_up(tenant, "TR-9501")
    assert [trace.halo_id for trace in result.traces] == [made["id"]]
    assert [query.get("third_party_id") for query in _invoice_requests(tenant, since)] == ["TR-9501"]
    assert _look_up(tenant, "TR-0000").traces[0].answer == Answer.NOT_FOUND  # honoured, and searched too


def test_a_tenant_that_cannot_search_by_number_says_so_and_suggests_the_halopsa_id(engine, sync_settings):
    tenant = Tenant(engine, sync_settings, invoice_search=False)
    tenant.sync()
    tenant.invoice("TR-9601")
    trace = _look_up(tenant, "TR-9601").traces[0]
    assert trace.answer == Answer.UNKNOWN_HERE and "cannot search invoices by number" in trace.summary
    assert "by its HaloPSA ID" in trace.next_step


def test_what_local_data_tells_is_answered_without_asking_halopsa(tenant):
    made = tenant.invoice("TR-9701")
    tenant.sync(RunKind.FETCH_NEW_DATA)
    before = tenant.emu.stats.requests
    result = _look_up(tenant, "TR-9701")
    assert not result.live and result.traces[0].halo_id == made["id"]
    assert tenant.emu.stats.requests == before and _audit(tenant) == []


@pytest.mark.parametrize("principal", [
    Principal(role=Role.PM, user="pm@example.com"),
    Principal(role=Role.PARTNER, user="other@example.com", partner_id=999),
])
def test_pm_and_other_partners_users_cannot_look_up(tenant, principal):
    before = tenant.emu.stats.requests
    with pytest.raises(AccessDenied):
        _look_up(tenant, "1", principal)
    assert tenant.emu.stats.requests == before and _audit(tenant) == []


def test_a_partner_user_looks_up_its_own_invoice_audited_under_its_name(tenant):
    own = Principal(role=Role.PARTNER, user="ap@acme.example", partner_id=tenant.partner_id)
    made = tenant.invoice("TR-9801")
    assert _look_up(tenant, str(made["id"]), own).traces[0].answer == Answer.NOT_SYNCED_YET
    assert [actor for actor, _ in _audit(tenant)] == [own.user]


def test_the_lookup_spends_the_tenants_shared_budget_and_is_refused_when_syncs_used_it(tenant):
    made = tenant.invoice("TR-9901")
    result = _look_up(tenant, str(made["id"]))
    with tenant.engine.connect() as conn:
        slots = conn.scalar(select(func.count()).select_from(RATE_SLOT_TABLE)
                            .where(RATE_SLOT_TABLE.c.tenant_key == "https://acme.halopsa.com|"))
    assert slots == result.requests >= 1  # every request took a slot of the budget the workers share
    tight = replace(tenant.settings, rate_limit_requests=slots)  # the budget is spent for the next window
    before = tenant.emu.stats.requests
    with pytest.raises(trace_lookup.BudgetBusy, match="request budget is in use by syncs") as refused:
        _look_up(tenant, str(made["id"]), settings=tight)
    assert refused.value.exit_code == 3 and tenant.emu.stats.requests == before
    assert "request budget is in use by syncs" in _audit(tenant)[-1][1]


def test_a_halopsa_failure_says_what_to_do_is_audited_and_stores_nothing(tenant):
    tenant.emu.add_fault(FaultRule(kind="status", status=503, times=10**6))
    stored = _stored_count(tenant)
    with pytest.raises(ConsoleError) as failed:
        _look_up(tenant, "1234")
    assert failed.value.message.endswith(trace_lookup.LOOKUP_NEXT_STEP)
    assert _stored_count(tenant) == stored and "not answered" in _audit(tenant)[-1][1]


def test_a_busy_budget_filled_by_other_processes_is_respected(tenant):
    with tenant.engine.begin() as conn:  # slots another worker took just now fill the tenant's budget
        conn.execute(insert(RATE_SLOT_TABLE), [{"tenant_key": "https://acme.halopsa.com|",
                                                "sent_at": datetime.now(UTC)}] * 3)
    before = tenant.emu.stats.requests
    with pytest.raises(trace_lookup.BudgetBusy):
        _look_up(tenant, "1234", settings=replace(tenant.settings, rate_limit_requests=3))
    assert tenant.emu.stats.requests == before


def test_a_long_rate_limit_from_halopsa_is_refused_at_once_with_when_to_try_again(tenant):
    tenant.emu.add_fault(FaultRule(kind="rate_limit", retry_after=600, times=10**6))
    with pytest.raises(trace_lookup.BudgetBusy, match=r"^HaloPSA is rate limiting this partner's tenant for the next "
                                                      r"\d+ min, so the lookup was not sent\."):
        _look_up(tenant, "1234")
    assert "not answered" in _audit(tenant)[-1][1]
