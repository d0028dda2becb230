"""One invoice of each kind the invoice tracer answers, in a seeded demo (core.demo.seed says how each came about): for
the README, the browser test and anyone trying the tracer. Kinds read from the console's data are found there and
checked by tracing them; the two only HaloPSA knows (dated before Invoices Created Since, raised after the last sync
window) are found in the partners' sandbox books, which are a pure function of their names and the stored epoch."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.engine import Engine

from core.console import tracer
from core.console.tracer import Answer
from core.demo import sandbox
from core.demo.seed import CS, DEMO_PARTNERS, STALLED
from core.halopsa.records import parse_invoice
from core.settings import Settings
from core.store.tables import (
    CONNECTION_TABLE,
    ERROR_TABLE,
    INVOICE_TABLE,
    PARTNER_TABLE,
    RUN_TABLE,
    InvoiceStatus,
)
from core.sync import window
from core.sync.streams import DELETED_NOTE, Entity

NOT_FOUND_ID = "987654321"  # no sandbox's books reach this id
_BY_STATUS = {Answer.CREDIT_NOTE: InvoiceStatus.CREDIT, Answer.DRAFT: InvoiceStatus.DRAFT,
              Answer.VOIDED: InvoiceStatus.VOIDED, Answer.DELETED: InvoiceStatus.DELETED}
_ON_AGREEMENTS = (Answer.STORED, Answer.SUBTYPE_UNMAPPED)
_CANDIDATES = 200  # invoices traced per partner at most, looking for one of each kind on agreements


@dataclass(frozen=True)
class Example:
    partner: str
    identifier: str  # as typed in the Invoices page's search box
    live: bool  # only a lookup in HaloPSA tells


def _partners(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {row.name: row.id for row in conn.execute(select(PARTNER_TABLE.c.name, PARTNER_TABLE.c.id))}


def _answer(engine: Engine, partner_id: int, identifier: str, now: datetime) -> Answer:
    found = tracer.trace(engine, CS, partner_id, identifier, now=now, schedule_interval=timedelta(hours=1))
    return found.traces[0].answer if len(found.traces) == 1 else Answer.UNKNOWN_HERE


def _local(engine: Engine, ids: dict[str, int], now: datetime) -> Iterator[tuple[Answer, Example]]:
    inv, err = INVOICE_TABLE.c, ERROR_TABLE.c
    order = [partner.name for partner in DEMO_PARTNERS if partner.name in ids]
    with engine.connect() as conn:
        for answer, status in _BY_STATUS.items():
            for name in order:
                number = conn.scalar(select(inv.display_number).where(inv.partner_id == ids[name], inv.status == status)
                                     .order_by(inv.halo_id.desc()).limit(1))
                if number is not None:
                    yield answer, Example(name, number, live=False)
                    break
        # an invoice a run could not read after it was last stored (or never stored)
        stored_at = (select(inv.synced_at).where(inv.partner_id == err.partner_id, inv.halo_id == err.halo_id)
                     .scalar_subquery())
        rejected = conn.execute(
            select(err.partner_id, err.halo_id).join(RUN_TABLE, RUN_TABLE.c.id == err.run_id)
            .where(err.entity == Entity.INVOICE.value, err.reason != DELETED_NOTE, err.halo_id.is_not(None),
                   or_(stored_at.is_(None), stored_at < RUN_TABLE.c.started_at))
            .order_by(err.id.desc()).limit(1)).first()
        candidates = {name: list(conn.scalars(
            select(inv.display_number).where(inv.partner_id == ids[name], inv.status == InvoiceStatus.UNPAID,
                                             inv.agreement_halo_id.is_not(None))
            .order_by(inv.due_date.desc()).limit(_CANDIDATES))) for name in order}
    if rejected is not None:
        name = next(name for name, partner_id in ids.items() if partner_id == rejected.partner_id)
        yield Answer.REJECTED, Example(name, str(rejected.halo_id), live=False)
    for wanted in _ON_AGREEMENTS:
        example = next((Example(name, number, live=False) for name in order for number in candidates[name]
                        if _answer(engine, ids[name], number, now) == wanted), None)
        if example is not None:
            yield wanted, example


def _live(engine: Engine, settings: Settings, ids: dict[str, int], now: datetime) -> Iterator[tuple[Answer, Example]]:
    """Invoices only HaloPSA has: in a partner's sandbox books at `now`, not stored, dated before its Invoices Created
    Since (excluded) or changed after its last successful window (not synced yet)."""
    con, inv = CONNECTION_TABLE.c, INVOICE_TABLE.c
    hosts = {partner.name: partner.host for partner in DEMO_PARTNERS}
    found: dict[Answer, Example] = {}
    for name in STALLED:
        if name not in ids:
            continue
        with engine.connect() as conn:
            since = conn.scalar(select(con.invoices_created_since).where(con.partner_id == ids[name]))
            stored = set(conn.scalars(select(inv.halo_id).where(inv.partner_id == ids[name])))
        last_end, _ = window.last_success(engine, ids[name], now=now)
        tenant = sandbox.REGISTRY.tenant(hosts[name], settings)
        tenant.catch_up(now)
        for halo_id, row in sorted(tenant.emulator.invoices.items(), reverse=True):
            if halo_id in stored or row.get("total", 0) < 0 or not row.get("posted") or row.get("voided"):
                continue
            invoice = parse_invoice(row)
            if since is not None and invoice.invoice_date is not None and invoice.invoice_date < since:
                found.setdefault(Answer.EXCLUDED_BY_DATE, Example(name, str(halo_id), live=True))
            elif last_end is not None and invoice.last_modified is not None and invoice.last_modified > last_end:
                found.setdefault(Answer.NOT_SYNCED_YET, Example(name, str(halo_id), live=True))
    yield from found.items()
    if ids:
        yield Answer.NOT_FOUND, Example(DEMO_PARTNERS[0].name if DEMO_PARTNERS[0].name in ids else min(ids),
                                        NOT_FOUND_ID, live=True)


def traceable(engine: Engine, settings: Settings, *, now: datetime) -> dict[Answer, Example]:
    """One example per tracer answer the demo holds, found as the module says."""
    ids = _partners(engine)
    return dict([*_local(engine, ids, now), *_live(engine, settings, ids, now)])
