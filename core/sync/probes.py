"""A partner's capability probe (core.halopsa.probe): run when its tenant has none yet (the first sync after
connecting), when someone asks (a probe job) and at the next run after a run met an answer the probe did not foresee;
stored per partner for the tenant it ran on, and used by every run: the client adopts what it found, and the changes
listings start from the methods it found to work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from core.halopsa.client import HaloClient
from core.halopsa.probe import ProbeResult, RowField, probe
from core.store.tables import PROBE_TABLE, Listing, ListingMethod
from core.sync import listings
from core.sync.streams import Entity

_CHANGES_FIELD = {Entity.CUSTOMER: RowField.CUSTOMER_MODIFIED, Entity.INVOICE: RowField.INVOICE_MODIFIED}
NO_PROBE_YET = "this HaloPSA was not checked yet"


@dataclass(frozen=True)
class StoredProbe:
    result: ProbeResult
    ran_at: datetime
    stale_reason: str | None


def stored(engine: Engine, partner_id: int, connection: Any) -> StoredProbe | None:
    """The partner's last probe, if it ran on the tenant the connection reads now."""
    c = PROBE_TABLE.c
    with engine.connect() as conn:
        row = conn.execute(select(c.result, c.ran_at, c.stale_reason).where(
            c.partner_id == partner_id, c.tenant_key == listings.tenant_key(connection))).first()
    if row is None:
        return None
    return StoredProbe(ProbeResult.from_json(row.result), row.ran_at, row.stale_reason)


def due(found: StoredProbe | None) -> str | None:
    """Why a run should probe first, or None when the stored probe serves."""
    if found is None:
        return NO_PROBE_YET
    return found.stale_reason


def mark_stale(engine: Engine, partner_id: int, reason: str) -> None:
    """The next run probes again first (a run met an answer the stored probe did not foresee)."""
    with engine.begin() as conn:
        conn.execute(update(PROBE_TABLE).where(PROBE_TABLE.c.partner_id == partner_id)
                     .values(stale_reason=reason[:1000]))


def run(engine: Engine, partner_id: int, connection: Any, client: HaloClient,
        methods: dict[Listing, ListingMethod], *, now: datetime) -> ProbeResult:
    """Probe the tenant, store the result for it (replacing any other), and set the changes listings' methods."""
    result = probe(client)
    record(engine, partner_id, connection, result, methods, now=now)
    return result


def record(engine: Engine, partner_id: int, connection: Any, result: ProbeResult,
           methods: dict[Listing, ListingMethod], *, now: datetime) -> None:
    """Store a probe's result for the connection's tenant (replacing any other) and set the changes listings'
    methods from it (`methods`, the remembered ones, updated in place)."""
    values = {"tenant_key": listings.tenant_key(connection), "ran_at": now, "requests": result.requests,
              "result": result.to_json(), "stale_reason": None}
    with engine.begin() as conn:
        if not conn.execute(update(PROBE_TABLE).where(PROBE_TABLE.c.partner_id == partner_id).values(**values)
                            ).rowcount:
            conn.execute(PROBE_TABLE.insert().values(partner_id=partner_id, **values))
    for entity, row_field in _CHANGES_FIELD.items():
        found = result.changes_method(row_field)
        method = ListingMethod(found.value) if found is not None else None
        listing = listings.CHANGES[entity]
        if method is not None and methods.get(listing, ListingMethod.SORTED) != method:
            listings.remember(engine, partner_id, connection, listing, method, "the probe of this HaloPSA", now=now)
            methods[listing] = method

