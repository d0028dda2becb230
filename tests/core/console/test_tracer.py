"""The invoice tracer (issue 15): every answer produced on purpose against the emulator (each invoice made so in its
HaloPSA, then synced), read back from local data; ambiguity, identifiers as typed, and who may ask."""


import pytest
from sqlalchemy import select

from core.access import Principal
from core.console import tracer
from core.console.tracer import Answer
from core.errors import AccessDenied, BadInput
from core.halopsa import records
from core.store.tables import ERROR_TABLE, INVOICE_TABLE, IntegrationRole, Role, RunKind
from core.sync import runs
from halo_emulator import FaultRule
from tests.support.clock import NOW
from tests.support.factories import add_partner
from tests.support.trace_tenant import CS, HOUR, Tenant, sync_settings_of


@pytest.fixture
def sync_settings(settings):
    return sync_settings_of(settings)


@pytest.fixture
def tenant(engine, sync_settings):
    return Tenant(engine, sync_settings)


def _one(result) -> tracer.Trace:
    assert len(result.traces) == 1, result.traces
    return result.traces[0]


def test_a_stored_eligible_invoice_says_its_last_sync_status_and_auto_pay_rule(tenant):
    made = tenant.invoice("TR-1001")
    run = tenant.sync()
    tenant.rule()
    found = tenant.trace("TR-1001")
    trace = _one(found)
    assert trace.answer == Answer.STORED and trace.halo_id == made["id"] and not found.can_look_up
    assert "is here: unpaid; auto-pay: eligible (rule: on the due date" in trace.summary
    facts = " ".join(trace.facts)
    assert f"Last changed here by run {run.run_id} at {tenant.emu.now:%Y-%m-%d %H:%M} UTC" in facts
    assert "amount due 250.00" in facts and trace.next_step == "It is listed under Show: Unpaid."


@pytest.mark.parametrize(("setup", "answer", "words"), [
    ("no rule", Answer.SUBTYPE_UNMAPPED, "is not mapped to an auto-pay rule"),
    ("disabled rule", Answer.RULE_DISABLED, "rule of its subtype (Subtype 1) is disabled"),
    ("inactive agreement", Answer.AGREEMENT_INACTIVE, "is inactive in HaloPSA"),
    ("expired agreement", Answer.AGREEMENT_EXPIRED, "ended on 2026-10-31"),
])
def test_a_stored_invoice_not_auto_paid_because_of_its_agreement_or_rule_says_so(tenant, setup, answer, words):
    tenant.invoice("TR-2001")
    if setup == "inactive agreement":
        tenant.emu.edit_contract(tenant.agreement["id"], active=False)
    if setup == "expired agreement":
        tenant.emu.edit_contract(tenant.agreement["id"], end_date="2026-10-31")
    tenant.sync()
    if setup != "no rule":
        tenant.rule(enabled=setup != "disabled rule")
    trace = _one(tenant.trace("TR-2001"))
    assert trace.answer == answer and words in trace.summary, trace.summary
    assert trace.next_step == tracer._NEXT_STEPS[answer]


def test_a_credit_note_is_stored_and_said_never_owed(engine, sync_settings):
    tenant = Tenant(engine, sync_settings, credit_note_share=0.3)
    credit = next(row for row in tenant.emu.invoices.values() if row["total"] < 0)
    tenant.sync()
    trace = _one(tenant.trace(str(credit["id"])))
    assert trace.answer == Answer.CREDIT_NOTE and "is a credit note" in trace.summary


@pytest.mark.parametrize(("make", "answer", "words"), [
    (lambda t: t.invoice("TR-3001", posted=False), Answer.DRAFT, "is not posted in HaloPSA"),
    (lambda t: t.emu.void_invoice(t.invoice("TR-3001")["id"]), Answer.VOIDED, "was voided in HaloPSA"),
])
def test_drafts_and_voided_invoices_are_stored_and_said_never_owed(tenant, make, answer, words):
    make(tenant)
    tenant.sync()
    trace = _one(tenant.trace("TR-3001"))
    assert trace.answer == answer and words in trace.summary


def test_an_invoice_deleted_in_halopsa_is_said_deleted_after_fetch_unpaid(tenant):
    made = tenant.invoice("TR-4001")
    tenant.sync()
    tenant.later()
    tenant.emu.delete_invoice(made["id"])
    tenant.sync(RunKind.FETCH_UNPAID)
    trace = _one(tenant.trace(str(made["id"])))
    assert trace.answer == Answer.DELETED and "deleted in HaloPSA" in trace.summary


def test_a_record_the_sync_could_not_read_is_said_rejected_with_its_reason_and_run(tenant):
    tenant.emu.add_fault(FaultRule(kind="malformed_record", path="/api/invoice", times=1))
    run = tenant.sync()
    with tenant.engine.connect() as conn:
        error = conn.execute(select(ERROR_TABLE.c.halo_id, ERROR_TABLE.c.reason)).one()
        assert conn.scalar(select(INVOICE_TABLE.c.id).where(INVOICE_TABLE.c.halo_id == error.halo_id)) is None
    trace = _one(tenant.trace(str(error.halo_id)))
    assert trace.answer == Answer.REJECTED and trace.halo_id == error.halo_id
    assert f"run {run.run_id} at" in trace.summary and error.reason in trace.summary
    assert "Correct the invoice in HaloPSA" in trace.next_step


def test_an_unknown_invoice_says_local_data_cannot_tell_and_offers_the_lookup(engine, sync_settings):
    tenant = Tenant(engine, sync_settings, since="2026-06-01")
    tenant.sync()
    result = tenant.trace("NOPE-1")
    trace = _one(result)
    assert trace.answer == Answer.UNKNOWN_HERE and result.can_look_up
    facts = " ".join(trace.facts)
    assert "Invoices Created Since: 2026-06-01" in facts
    assert f"The last successful sync window ended {NOW:%Y-%m-%d %H:%M} UTC." in facts
    assert "The next automatic sync runs at about 13:00 UTC." in facts  # the scheduler's own time (Syncs page)


def test_an_identifier_is_trimmed_a_hash_tolerated_and_the_upper_case_found(tenant):
    made = tenant.invoice("TR-5001")
    tenant.sync()
    for typed in ("  #TR-5001 ", "# tr-5001", str(made["id"]), f"#{made['id']}"):
        assert _one(tenant.trace(typed)).halo_id == made["id"], typed
    with pytest.raises(BadInput, match="Type an invoice number"):
        tenant.trace("  # ")


def test_an_identifier_matching_several_invoices_answers_each(tenant):
    first = tenant.invoice("TR-6001")
    second = tenant.invoice(str(first["id"]))  # its third-party number is the other's HaloPSA ID
    tenant.sync()
    result = tenant.trace(str(first["id"]))
    assert sorted(trace.halo_id for trace in result.traces) == sorted([first["id"], second["id"]])
    assert result.headline.startswith(f"“{first['id']}” matches 2 invoices")


def test_a_partner_without_a_primary_halopsa_connection_is_told_why(engine, settings):
    partner_id = add_partner(engine, settings, name="Elsewhere Ltd", now=NOW, role=IntegrationRole.SECONDARY)
    result = tracer.trace(engine, CS, partner_id, "INV-1", now=NOW, schedule_interval=HOUR)
    assert _one(result).answer == Answer.NOT_SYNCED_FROM_HALOPSA and not result.can_look_up


@pytest.mark.parametrize("principal", [
    Principal(role=Role.PM, user="pm@example.com"),
    Principal(role=Role.PARTNER, user="other@example.com", partner_id=999),
])
def test_pm_and_other_partners_users_cannot_trace(tenant, principal):
    with pytest.raises(AccessDenied):
        tenant.trace("TR-1", principal)


def test_a_partner_user_traces_its_own_invoices(tenant):
    tenant.invoice("TR-7001")
    tenant.sync()
    own = Principal(role=Role.PARTNER, user="ap@acme.example", partner_id=tenant.partner_id)
    assert _one(tenant.trace("TR-7001", own)).answer == Answer.SUBTYPE_UNMAPPED


def test_a_stored_invoice_whose_newer_version_was_rejected_says_the_copy_is_older(tenant):
    made = tenant.invoice("TR-8001")
    tenant.sync()
    later = tenant.emu.now + HOUR  # a later run could not read the invoice's newer version
    run_id = runs.start_run(tenant.engine, partner_id=tenant.partner_id, partner_name="Acme MSP",
                            kind=RunKind.SCHEDULED, trigger="schedule", actor="tests", now=later,
                            settings=tenant.settings)
    with tenant.engine.begin() as conn:
        runs.add_record_errors(conn, run_id, tenant.partner_id, [
            records.RecordError("invoice", made["id"], "total is not a number", {"id": made["id"]})])
    trace = _one(tenant.trace("TR-8001"))
    assert trace.answer == Answer.REJECTED and trace.next_step == tracer.REJECTED_STEP
    assert (f"is here as last read at {NOW:%Y-%m-%d %H:%M} UTC (unpaid), but run {run_id} at {later:%Y-%m-%d %H:%M} "
            "UTC could not read its newer version from HaloPSA (total is not a number)") in trace.summary
