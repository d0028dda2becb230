"""The tracer's live lookup: when local data cannot tell where an invoice stands, ask the partner's HaloPSA once, on a
person's explicit request (the Invoices page's button, `trace --live`), and classify its answer (core.console.tracer).

Who may: customer success for any partner, a partner's user for its own; product managers never (they see no one
partner's invoices). The request goes through the tenant's rate budget shared with the workers (the client factory
the worker uses); when that budget would make the lookup wait, it is refused at once with when to try again, never
queued behind syncs. Nothing is stored: the lookup only reports. Every lookup is audited, failed ones included.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from core.access import Principal, require_partner_data
from core.console import tracer
from core.console.tracer import Answer, TraceResult
from core.errors import ConsoleError, HaloError, Refused, format_duration
from core.halopsa.number_search import THIRD_PARTY, find_by_number
from core.halopsa.transport import ClientEvent
from core.settings import Settings
from core.store import audit
from core.store.tables import CONNECTION_TABLE, AuditAction
from core.sync.connector import ClientFactory, stored_client_factory

MAX_WAIT_S = 2.0
"""The longest the lookup waits for the tenant's rate budget (a person is waiting); past it, it is refused."""
LOOKUP_NEXT_STEP = ("Nothing was stored. Try the lookup again in a few minutes; the Connection page says whether "
                    "HaloPSA accepts the credentials.")


class BudgetBusy(Refused):
    """Looking up would make a person wait: the tenant's rate budget is spent by syncs for now, or HaloPSA itself asks
    to wait (a long rate limit); refused, with when to try again."""

    def __init__(self, seconds: float, *, by_halopsa: bool = False) -> None:
        self.seconds = seconds
        wait = format_duration(timedelta(seconds=seconds))
        why = (f"HaloPSA is rate limiting this partner's tenant for the next {wait}" if by_halopsa
               else f"This partner's HaloPSA request budget is in use by syncs for the next {wait}")
        super().__init__(f"{why}, so the lookup was not sent. Try again after that; nothing was stored.")


def _impatient(event: ClientEvent) -> None:
    """Stop before a wait a person should not sit through: the budget's pacing, or a long rate limit."""
    if event.kind == "rate_budget" and event.seconds > MAX_WAIT_S:
        raise BudgetBusy(event.seconds)
    if event.kind == "resume_later":
        raise BudgetBusy(event.seconds, by_halopsa=True)


def _searched(halo_id: int | None, method: str | None) -> str:
    if halo_id is not None:
        return "looked up by HaloPSA ID"
    if method == THIRD_PARTY:
        return "searched by third-party invoice number"
    return "searched by invoice number"


def _ask(client: Any, text: str, halo_id: int | None, ctx: tracer.Context) -> tuple[list[tracer.Trace], list[str]]:
    if halo_id is not None:
        return [tracer.classify_live(client.get_invoice(halo_id), text, ctx, searched=_searched(halo_id, None))], []
    found = find_by_number(client, text)
    if found.method is None:
        return [tracer.Trace(
            Answer.UNKNOWN_HERE, f"This HaloPSA cannot search invoices by number (it ignored or refused "
            f"{' and '.join(found.tried)}), so “{text}” could not be looked up.",
            "Trace the invoice by its HaloPSA ID instead (HaloPSA shows it on the invoice's page).")], []
    notes = [] if found.complete else ["HaloPSA's search matched more invoices than one page holds: some may be "
                                       "missing here. Trace by the HaloPSA ID to be sure."]
    searched = _searched(None, found.method)
    traces = [tracer.classify_live(invoice, text, ctx, searched=searched) for invoice in found.invoices]
    return traces or [tracer.classify_live(None, text, ctx, searched=searched)], notes


def look_up(engine: Engine, principal: Principal, partner_id: int, identifier: str, *, now: datetime,
            settings: Settings, client_factory: ClientFactory | None = None) -> TraceResult:
    """The tracer's answer, asking HaloPSA once when local data cannot tell (otherwise the local answer, with no
    request). Raises ConsoleError with what to do when HaloPSA cannot be asked or fails; audited either way."""
    require_partner_data(principal, partner_id)
    interval = timedelta(seconds=settings.schedule_interval_s)
    local = tracer.trace(engine, principal, partner_id, identifier, now=now, schedule_interval=interval)
    if not local.can_look_up:
        return local
    text, halo_id = local.identifier, tracer.halo_id_of(local.identifier)
    ctx = tracer.context(engine, partner_id, now=now, schedule_interval=interval)
    with engine.connect() as conn:
        connection = conn.execute(select(CONNECTION_TABLE).where(CONNECTION_TABLE.c.partner_id == partner_id)).first()
    factory = client_factory or stored_client_factory(settings, engine=engine)
    requests = 0
    try:
        with factory(connection, _impatient) as client:
            try:
                traces, notes = _ask(client, text, halo_id, ctx)
            finally:
                requests = client.stats.requests
    except ConsoleError as exc:
        failure = exc.retold(LOOKUP_NEXT_STEP) if isinstance(exc, HaloError) else exc
        _audit(engine, principal, partner_id, now, f"“{text}”: not answered ({failure.message}); {requests} "
                                                   "requests")
        raise failure from None
    result = TraceResult(text, traces, live=True, requests=requests, notes=notes)
    answers = ", ".join(sorted({trace.answer.value for trace in traces}))
    _audit(engine, principal, partner_id, now, f"“{text}”: {answers}; {requests} requests")
    return result


def _audit(engine: Engine, principal: Principal, partner_id: int, now: datetime, detail: str) -> None:
    with engine.begin() as conn:
        audit.record(conn, actor=principal.user, action=AuditAction.TRACE_LOOKUP, partner_id=partner_id, now=now,
                     detail=f"Invoice looked up in HaloPSA: {detail}")
