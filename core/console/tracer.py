"""The invoice tracer: "why isn't invoice X here?" answered from local data, in plain words with what to do next.

An identifier is whatever a person types: the number the partner shows (its Invoice Number Field), the HaloPSA ID or
the third-party number; trimmed, a leading `#` tolerated, as typed or in upper or lower case. An identifier matching
several invoices gets one answer per invoice. A stored invoice is answered by what it is and by the same auto-pay
classification as the invoice table and the rule preview (core.console.agreements); one the last sync could not read,
by its record error and run. When nothing here tells, the answer says so and a live lookup in HaloPSA
(core.actions.trace_lookup) can: it classifies what HaloPSA holds by the same rules (`classify_live`). Local reads use
the (partner, number) indexes (migration 0013). Nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from core.access import Principal, require_partner_data
from core.console import agreements, subtypes
from core.console.formatting import count, money_in
from core.errors import BadInput, NotFound
from core.halopsa.records import Invoice as HaloInvoice
from core.limits import check_length
from core.store import tables
from core.store.tables import (
    AGREEMENT_TABLE,
    CONNECTION_TABLE,
    ERROR_TABLE,
    INVOICE_TABLE,
    PARTNER_TABLE,
    RUN_TABLE,
    IntegrationRole,
    InvoiceStatus,
)
from core.sync import scheduler, window
from core.sync.streams import DELETED_NOTE, Entity

MAX_ID_DIGITS = 18  # a HaloPSA ID fits a signed 64-bit column
MAX_MATCHES = 20  # an identifier matching more invoices lists this many


class Answer(StrEnum):
    """Where an invoice stands, as the tracer answers (never stored: no migration)."""

    STORED = "stored"  # here, and charged or not by the auto-pay reason it gives
    REJECTED = "rejected"  # the sync could not read it (a record error)
    EXCLUDED_BY_DATE = "excluded_by_created_since"  # dated before the connection's Invoices Created Since
    NOT_SYNCED_YET = "not_synced_yet"  # changed in HaloPSA after the last successful sync window
    MISSED = "missed"  # HaloPSA has it, changed before the last window ended, and it is not here
    SUBTYPE_UNMAPPED = "subtype_unmapped"
    RULE_DISABLED = "rule_disabled"
    AGREEMENT_INACTIVE = "agreement_inactive"
    AGREEMENT_EXPIRED = "agreement_expired"
    CREDIT_NOTE = "credit_note"
    DRAFT = "draft"
    VOIDED = "voided"
    DELETED = "deleted"  # deleted in HaloPSA (InvoiceStatus.DELETED)
    NOT_FOUND = "not_found"  # HaloPSA has no such invoice
    UNKNOWN_HERE = "unknown_here"  # nothing stored and no record error: only HaloPSA can tell
    NOT_SYNCED_FROM_HALOPSA = "not_synced_from_halopsa"  # no connection, or HaloPSA is the secondary integration


_BY_REASON = {
    agreements.Reason.DELETED: Answer.DELETED, agreements.Reason.VOIDED: Answer.VOIDED,
    agreements.Reason.CREDIT: Answer.CREDIT_NOTE, agreements.Reason.NOT_POSTED: Answer.DRAFT,
    agreements.Reason.NOT_MAPPED: Answer.SUBTYPE_UNMAPPED, agreements.Reason.RULE_DISABLED: Answer.RULE_DISABLED,
    agreements.Reason.AGREEMENT_INACTIVE: Answer.AGREEMENT_INACTIVE,
    agreements.Reason.AGREEMENT_ENDED: Answer.AGREEMENT_EXPIRED,
}
_STATUS_WORDS = {
    InvoiceStatus.UNPAID: "unpaid", InvoiceStatus.PARTIALLY_PAID: "partially paid", InvoiceStatus.PAID: "paid",
    InvoiceStatus.VOIDED: "voided", InvoiceStatus.CREDIT: "a credit note",
    InvoiceStatus.DRAFT: "not posted (a draft or awaiting approval)", InvoiceStatus.DELETED: "deleted in HaloPSA",
}
_NEXT_STEPS = {
    Answer.SUBTYPE_UNMAPPED: "To charge it, map its agreement subtype to an auto-pay rule on the Agreements page.",
    Answer.RULE_DISABLED: "To charge it, enable the rule of its agreement subtype on the Agreements page.",
    Answer.AGREEMENT_INACTIVE: "Nothing to do here: reactivate the agreement in HaloPSA if it should still be "
                               "charged; the next sync reads it.",
    Answer.AGREEMENT_EXPIRED: "Nothing to do here: extend the agreement's end date in HaloPSA if it should still be "
                              "charged; the next sync reads it.",
    Answer.CREDIT_NOTE: "Nothing to do: a credit note is never owed nor auto-paid; it is listed under Show: Credit "
                        "notes.",
    Answer.DRAFT: "Post (approve) it in HaloPSA if it is due; the next sync reads it. Drafts are listed under Show: "
                  "Not posted.",
    Answer.VOIDED: "Nothing to do: a voided invoice is never owed. If it was voided by mistake, raise it again in "
                   "HaloPSA.",
    Answer.DELETED: "Nothing to do: it was deleted in HaloPSA and is kept here for history only.",
}


def normalise(identifier: str) -> str:
    """What is looked for: trimmed, one leading `#` dropped; refused when empty or too long."""
    check_length("search", identifier)
    text = identifier.replace("\x00", "").strip()
    text = text[1:].strip() if text.startswith("#") else text
    if not text:
        raise BadInput("Type an invoice number or HaloPSA ID to trace.", field="search")
    return text


def halo_id_of(text: str) -> int | None:
    """The identifier as a HaloPSA ID, when it can be one."""
    return int(text) if text.isdecimal() and len(text) <= MAX_ID_DIGITS and int(text) > 0 else None


@dataclass(frozen=True)
class Trace:
    """One invoice's answer: `summary` says where it stands and why, `facts` add what is known, `next_step` what to
    do. Every text may hold outside text (numbers, names from HaloPSA): escape it where drawn."""

    answer: Answer
    summary: str
    next_step: str
    facts: tuple[str, ...] = ()
    halo_id: int | None = None
    number: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"answer": self.answer.value, "halo_id": self.halo_id, "number": self.number,
                "summary": self.summary, "facts": list(self.facts), "next_step": self.next_step}


@dataclass(frozen=True)
class TraceResult:
    """The answers for one identifier (several when it matches several invoices). `live` says a lookup in HaloPSA
    answered (no local data could); `can_look_up` that one could tell more than local data."""

    identifier: str
    traces: list[Trace]
    can_look_up: bool = False
    live: bool = False
    requests: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def headline(self) -> str:
        if len(self.traces) == 1:
            return self.traces[0].summary
        return (f"“{self.identifier}” matches {count(len(self.traces), 'invoice')}: each is answered below. Use the "
                "HaloPSA ID to trace one.")

    def as_dict(self) -> dict[str, Any]:
        return {"identifier": self.identifier, "live": self.live, "requests": self.requests,
                "can_look_up": self.can_look_up, "headline": self.headline, "notes": self.notes,
                "invoices": [trace.as_dict() for trace in self.traces]}


@dataclass(frozen=True)
class Context:
    """What the answers depend on besides the invoice: the connection, the last successful window, the next sync."""

    partner_name: str
    role: IntegrationRole | None
    created_since: date | None
    last_window_end: datetime | None
    next_sync: datetime | None
    now: datetime

    def next_sync_text(self) -> str:
        """The next automatic sync as the Syncs page says it (the scheduler's own time)."""
        if self.next_sync is None:
            return "No automatic sync is scheduled for this partner."
        if self.next_sync > self.now:
            return f"The next automatic sync runs at about {self.next_sync:%H:%M} UTC."
        return "An automatic sync is due now and starts within a few minutes."


def _at(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "an unknown time"


def context(engine: Engine, partner_id: int, *, now: datetime, schedule_interval: timedelta) -> Context:
    con = CONNECTION_TABLE.c
    with engine.connect() as conn:
        name = conn.scalar(select(PARTNER_TABLE.c.name).where(PARTNER_TABLE.c.id == partner_id))
        if name is None:
            raise NotFound("That partner no longer exists.")
        connection = conn.execute(select(con.integration_role, con.invoices_created_since)
                                  .where(con.partner_id == partner_id)).first()
        next_sync = scheduler.next_sync_times(conn, now=now, interval=schedule_interval,
                                              partner_id=partner_id).get(partner_id)
    last_end, _ = window.last_success(engine, partner_id, now=now)
    return Context(partner_name=name, role=connection.integration_role if connection else None,
                   created_since=connection.invoices_created_since if connection else None,
                   last_window_end=last_end, next_sync=next_sync, now=now)


def _stored(conn: Connection, partner_id: int, text: str, halo_id: int | None, today: date) -> list[Any]:
    """The partner's invoices the identifier names, with their auto-pay category and text (agreements' rules), the
    agreement, its subtype's name and the run that last changed each. The number as typed, in upper or in lower case
    (HaloPSA's numbers are mostly one case), so the (partner, number) indexes serve each term."""
    inv, agr, rule, run = INVOICE_TABLE.c, AGREEMENT_TABLE.c, tables.RULE_TABLE.c, RUN_TABLE.c
    category, eligibility = agreements.eligibility_sql(inv, agr, rule, today=today)
    texts = sorted({text, text.upper(), text.lower()})
    wanted: list[ColumnElement[bool]] = [inv.display_number.in_(texts), inv.third_party_number.in_(texts)]
    if halo_id is not None:
        wanted.append(inv.halo_id == halo_id)
    joined = (INVOICE_TABLE
              .outerjoin(AGREEMENT_TABLE, (agr.partner_id == inv.partner_id) & (agr.halo_id == inv.agreement_halo_id))
              .outerjoin(tables.RULE_TABLE, (rule.partner_id == inv.partner_id) & (rule.subtype_id == agr.subtype_id))
              .outerjoin(RUN_TABLE, run.id == inv.last_changed_run_id))
    query = (select(inv.halo_id, inv.display_number, inv.status, inv.total_cents, inv.amount_due_cents, inv.currency,
                    inv.invoice_date, inv.due_date, inv.synced_at, inv.last_changed_run_id, inv.halo_last_modified,
                    func.coalesce(inv.agreement_ref, agr.ref).label("agreement"), agr.subtype_id, agr.end_date,
                    category.label("category"), eligibility.label("eligibility"), run.started_at.label("run_at"),
                    *subtypes.name_columns())
             .select_from(subtypes.with_names(joined, inv.partner_id, agr.subtype_id))
             # the partner in each alternative: SQLite then serves each from its own (partner, number) index
             .where(or_(*((inv.partner_id == partner_id) & term for term in wanted))).limit(MAX_MATCHES))
    # ordered here: an ORDER BY would lead SQLite to walk the partner's invoices by id instead of the number indexes
    return sorted(conn.execute(query).all(), key=lambda row: row.halo_id)


def _errors(conn: Connection, partner_id: int, text: str, halo_ids: set[int]) -> list[Any]:
    """The latest record error per invoice the identifier names (by HaloPSA id: the identifier's, the stored invoices'
    it matched; or the number quoted in the record's excerpt), deletion notes left out, with its run."""
    err, run = ERROR_TABLE.c, RUN_TABLE.c
    named: list[ColumnElement[bool]] = [err.excerpt.contains(f"'{text}'", autoescape=True)]
    if halo_ids:
        named.append(err.halo_id.in_(sorted(halo_ids)))
    query = (select(err.halo_id, err.reason, err.run_id, run.started_at, err.excerpt)
             .join(RUN_TABLE, run.id == err.run_id)
             .where(err.partner_id == partner_id, err.entity == Entity.INVOICE.value, err.reason != DELETED_NOTE,
                    or_(*named))
             .order_by(run.started_at.desc(), err.id.desc()).limit(MAX_MATCHES))
    latest: dict[Any, Any] = {}
    for row in conn.execute(query):
        latest.setdefault(row.halo_id if row.halo_id is not None else row.excerpt, row)
    return list(latest.values())


def _stored_trace(row: Any, error: Any | None, ctx: Context) -> Trace:
    status = InvoiceStatus(row.status)
    reason = row.category
    answer = _BY_REASON.get(agreements.Reason(reason), Answer.STORED) if reason != agreements.ELIGIBLE else \
        Answer.STORED
    what = f"Invoice {row.display_number} (HaloPSA ID {row.halo_id})"
    run = f"run {row.last_changed_run_id}" if row.last_changed_run_id else "a sync"
    facts = [f"Status: {_STATUS_WORDS[status]}; amount due {money_in(row.amount_due_cents, row.currency)} of "
             f"{money_in(row.total_cents, row.currency)}.",
             f"Last changed here by {run} at {_at(row.run_at or row.synced_at)}; last read {_at(row.synced_at)}.",
             f"Auto-pay: {row.eligibility}."]
    if row.agreement or row.subtype_id is not None:
        facts.append(f"Agreement: {row.agreement or 'no reference'}"
                     + (f", subtype {subtypes.shown(row)}" if row.subtype_id is not None else "") + ".")
    if error is not None and row.synced_at is not None and error.started_at > row.synced_at:
        return Trace(Answer.REJECTED, f"{what} is here as last read at {_at(row.synced_at)} ({_STATUS_WORDS[status]}), "
                     f"but run {error.run_id} at {_at(error.started_at)} could not read its newer version from HaloPSA "
                     f"({error.reason}): the copy here may be out of date.", REJECTED_STEP, tuple(facts), row.halo_id,
                     row.display_number)
    summary = {
        Answer.STORED: f"{what} is here: {_STATUS_WORDS[status]}; auto-pay: {row.eligibility}.",
        Answer.SUBTYPE_UNMAPPED: f"{what} is here, {_STATUS_WORDS[status]}, but never auto-paid: its agreement "
                                 f"subtype ({subtypes.shown(row) or 'none'}) is not mapped to an auto-pay rule.",
        Answer.RULE_DISABLED: f"{what} is here, {_STATUS_WORDS[status]}, but not auto-paid: the auto-pay rule of its "
                              f"subtype ({subtypes.shown(row)}) is disabled.",
        Answer.AGREEMENT_INACTIVE: f"{what} is here, {_STATUS_WORDS[status]}, but not auto-paid: its agreement "
                                   f"({row.agreement or 'no reference'}) is inactive in HaloPSA.",
        Answer.AGREEMENT_EXPIRED: f"{what} is here, {_STATUS_WORDS[status]}, but not auto-paid: its agreement "
                                  f"({row.agreement or 'no reference'}) ended on {row.end_date}.",
        Answer.CREDIT_NOTE: f"{what} is a credit note: it is here but never unpaid and never auto-paid.",
        Answer.DRAFT: f"{what} is not posted in HaloPSA (a draft or awaiting approval): it is here but not owed "
                      "until it is posted.",
        Answer.VOIDED: f"{what} was voided in HaloPSA: it is here but never owed.",
        Answer.DELETED: f"{what} was deleted in HaloPSA: the last sync found it neither listed nor by its id.",
    }[answer]
    if answer == Answer.STORED:
        step = ("It is listed under Show: Unpaid." if status in (InvoiceStatus.UNPAID, InvoiceStatus.PARTIALLY_PAID)
                else "It is paid, so it is not listed as unpaid; nothing to do.")
        if reason not in (agreements.ELIGIBLE, agreements.Reason.PAID.value):
            step += f" It is not auto-paid because: {reason}."
    else:
        step = _NEXT_STEPS[answer]
    return Trace(answer, summary, step, tuple(facts), row.halo_id, row.display_number)


REJECTED_STEP = ("Correct the invoice in HaloPSA (the Syncs page groups the run's record errors with an excerpt); the "
                 "next sync that reads it stores it. Tell the console's maintainers if the record looks right in "
                 "HaloPSA.")


def _rejected_trace(error: Any) -> Trace:
    what = (f"Invoice with HaloPSA ID {error.halo_id}" if error.halo_id is not None
            else "An invoice whose record names it")
    return Trace(
        Answer.REJECTED,
        f"{what} is not here: run {error.run_id} at {_at(error.started_at)} could not read it from HaloPSA "
        f"({error.reason}).", REJECTED_STEP, (f"Record error of run {error.run_id}: {error.reason}.",), error.halo_id,
        None)


def _not_from_halopsa(ctx: Context) -> Trace:
    if ctx.role is None:
        return Trace(Answer.NOT_SYNCED_FROM_HALOPSA, f"{ctx.partner_name} has no HaloPSA connection, so no invoice "
                     "is synced for it.", "Connect it on the Connection page; the first sync reads its invoices.")
    return Trace(Answer.NOT_SYNCED_FROM_HALOPSA, f"HaloPSA is the secondary integration for {ctx.partner_name}: its "
                 "invoices come from the primary integration, not from HaloPSA.",
                 "Look for it in the primary integration, or make HaloPSA the primary one on the Connection page.")


def _unknown_trace(text: str, ctx: Context) -> Trace:
    facts = [f"The last successful sync window ended {_at(ctx.last_window_end)}." if ctx.last_window_end
             else "No sync has succeeded yet.", ctx.next_sync_text()]
    if ctx.created_since is not None:
        facts.append(f"Invoices Created Since: {ctx.created_since}; invoices dated before it are never synced.")
    return Trace(Answer.UNKNOWN_HERE,
                 f"No invoice “{text}” is here and no sync reported trouble reading one: it may be dated before "
                 "Invoices Created Since, changed after the last sync, missing, or not in HaloPSA at all.",
                 "Look it up in HaloPSA to know which (one request, within the tenant's rate budget); check the "
                 "number too: the partner shows invoices by its Invoice Number Field.", tuple(facts))


def trace(engine: Engine, principal: Principal, partner_id: int, identifier: str, *, now: datetime,
          schedule_interval: timedelta) -> TraceResult:
    """Where the invoice(s) named by `identifier` stand, from local data only (a few indexed reads)."""
    require_partner_data(principal, partner_id)
    text = normalise(identifier)
    halo_id = halo_id_of(text)
    ctx = context(engine, partner_id, now=now, schedule_interval=schedule_interval)
    with engine.connect() as conn:
        rows = _stored(conn, partner_id, text, halo_id, now.date())
        errors = _errors(conn, partner_id, text, {row.halo_id for row in rows} | ({halo_id} if halo_id else set()))
    by_id = {error.halo_id: error for error in errors if error.halo_id is not None}
    traces = [_stored_trace(row, by_id.get(row.halo_id), ctx) for row in rows]
    stored_ids = {row.halo_id for row in rows}
    traces += [_rejected_trace(error) for error in errors if error.halo_id not in stored_ids
               and not (error.halo_id is None and rows)]
    if traces:
        return TraceResult(text, traces)
    if ctx.role != IntegrationRole.PRIMARY:
        return TraceResult(text, [_not_from_halopsa(ctx)])
    return TraceResult(text, [_unknown_trace(text, ctx)], can_look_up=True)


def classify_live(invoice: HaloInvoice | None, text: str, ctx: Context, *, searched: str) -> Trace:
    """What HaloPSA's answer means for an invoice not stored here: dated before Invoices Created Since; a draft,
    credit note or voided invoice; changed after the last successful window (not synced yet); or changed before it
    and still missing (a sync should have stored it). `searched` says how it was looked for."""
    if invoice is None:
        return Trace(Answer.NOT_FOUND, f"HaloPSA has no invoice “{text}” ({searched}).",
                     "Check the number with the partner: it may be mistyped, from another HaloPSA, or deleted in "
                     "HaloPSA before any sync read it. Trace it by its HaloPSA ID if you have it.")
    what = f"Invoice {invoice.third_party_number or invoice.halo_id} (HaloPSA ID {invoice.halo_id})"
    changed = invoice.last_modified
    facts = [f"In HaloPSA: dated {invoice.invoice_date or 'without a date'}, last changed {_at(changed)}; amount "
             f"due {money_in(invoice.amount_due_cents, invoice.currency)}.",
             f"The last successful sync window ended {_at(ctx.last_window_end)}." if ctx.last_window_end
             else "No sync has succeeded yet."]
    late = ctx.last_window_end is None or changed is None or changed > ctx.last_window_end
    arrives = (f"It is not synced yet: it changed after the last sync window. {ctx.next_sync_text()}" if late
               else "It changed before the last sync window ended yet is not here: run Fetch unpaid invoices on the "
                    "Syncs page, and tell the console's maintainers if it is still missing after that.")
    if ctx.created_since is not None and invoice.invoice_date is not None and invoice.invoice_date < ctx.created_since:
        return Trace(Answer.EXCLUDED_BY_DATE,
                     f"{what} is dated {invoice.invoice_date}, before this connection's Invoices Created Since "
                     f"({ctx.created_since}), so it is never synced.",
                     "If it should be collected, move Invoices Created Since back on the Connection page; the next "
                     "sync then reads it.", tuple(facts), invoice.halo_id)
    kind = (Answer.VOIDED if invoice.voided else Answer.CREDIT_NOTE if invoice.credit
            else Answer.DRAFT if not invoice.posted else None)
    if kind is not None:
        words = {Answer.VOIDED: "voided", Answer.CREDIT_NOTE: "a credit note",
                 Answer.DRAFT: "not posted (a draft or awaiting approval)"}[kind]
        return Trace(kind, f"{what} is {words} in HaloPSA, so it is never owed nor auto-paid. {arrives}",
                     _NEXT_STEPS[kind], tuple(facts), invoice.halo_id)
    if late:
        return Trace(Answer.NOT_SYNCED_YET, f"{what} is in HaloPSA but not synced yet: it changed after the last "
                     f"sync window. {ctx.next_sync_text()}",
                     "Wait for that sync, or press Fetch new data on the Syncs page when it changed in the last hour.",
                     tuple(facts), invoice.halo_id)
    return Trace(Answer.MISSED, f"{what} is in HaloPSA and changed before the last sync window ended, yet it is "
                 "not here.", "Run Fetch unpaid invoices on the Syncs page; tell the console's maintainers if it is "
                 "still missing after that.", tuple(facts), invoice.halo_id)

