"""The tenant's request budget shared by every worker process through the database, so several workers together
never send a tenant more than its limit (300 requests per rolling 5 minutes on hosted HaloPSA).

Each slot handed out is a row; handing one out is one short transaction that holds the tenant's lock (a transaction
advisory lock on PostgreSQL; SQLite has one writer at a time), reads the limit-th newest slot and writes the new one,
by the same rule as the in-process budget (`ratelimit.next_slot`). Times come from one clock: PostgreSQL's
`clock_timestamp()`, or this host's for SQLite (which lives on one host), as for leases.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Engine

from core.halopsa.ratelimit import margin_for, next_slot
from core.store.tables import RATE_SLOT_TABLE
from core.sync import jobs

SLOT = RATE_SLOT_TABLE.c


class TenantBudget:
    """One tenant's budget (`key` = base URL and tenant, as the client names it). Thread- and process-safe."""

    def __init__(self, engine: Engine, *, key: str, limit: int, window_s: float) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("a rate budget needs limit >= 1 and a positive window")
        self._engine = engine
        self.key = key
        self.limit = limit
        self.window_s = window_s
        self.margin_s = margin_for(window_s)

    def reserve(self) -> float:
        """Claim the next send slot; return the seconds to sleep before sending (0 when free)."""
        kept = timedelta(seconds=self.window_s + self.margin_s)
        with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(self.key, 0))))
            # Pruning is the transaction's first write: on SQLite it takes the write lock before anything is read.
            conn.execute(delete(RATE_SLOT_TABLE).where(SLOT.tenant_key == self.key,
                                                        SLOT.sent_at < datetime.now(UTC) - kept - kept))
            now = jobs.lease_now(conn)  # read under the lock: a slot is never dated before the wait for the lock
            oldest: datetime | None = conn.scalar(
                select(SLOT.sent_at).where(SLOT.tenant_key == self.key)
                .order_by(SLOT.sent_at.desc()).offset(self.limit - 1).limit(1)
            )
            at = next_slot(now, oldest, window_s=self.window_s, margin_s=self.margin_s)
            conn.execute(insert(RATE_SLOT_TABLE).values(tenant_key=self.key, sent_at=at))
        return (at - now).total_seconds()
