"""The tenant's request budget shared through the database: processes that each hand out send slots never put more
than `limit` requests of one tenant in any window together, lose little time doing so, and keep tenants apart."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from core.store import database
from core.store.tables import RATE_SLOT_TABLE
from core.sync.tenant_budget import TenantBudget

LIMIT, WINDOW_S = 5, 2.0
PROCESSES, THREADS, SLOTS = 3, 3, 4  # 36 slots: about seven windows' worth, claimed at once from nine threads


def _claim(url: str, key: str, start: Any) -> None:
    """One process whose threads all claim slots at once (claiming is enough: a slot is a send time, slept or not)."""
    engine = database.make_engine(url)
    budget = TenantBudget(engine, key=key, limit=LIMIT, window_s=WINDOW_S)
    threads = [threading.Thread(target=lambda: [budget.reserve() for _ in range(SLOTS)]) for _ in range(THREADS)]
    start.wait()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()


def _most_in_any_window(sends: list[float], window_s: float) -> int:
    sends = sorted(sends)
    return max(sum(1 for t in sends[i:] if t < first + window_s) for i, first in enumerate(sends))


def _slots_claimed_by_processes(engine: Any, url: str, key: str) -> list[float]:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    processes = [context.Process(target=_claim, args=(url, key, start)) for _ in range(PROCESSES)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    with engine.connect() as conn:
        sent = conn.scalars(select(RATE_SLOT_TABLE.c.sent_at).where(RATE_SLOT_TABLE.c.tenant_key == key)).all()
    return [moment.timestamp() for moment in sent]


def test_processes_sharing_a_tenant_never_exceed_its_limit_in_any_window_together(engine, settings):
    sends = _slots_claimed_by_processes(engine, settings.database_url, "https://acme.halopsa.com|")

    assert len(sends) == PROCESSES * THREADS * SLOTS
    assert _most_in_any_window(sends, WINDOW_S) == LIMIT
    # and little time is lost: the last slot opens about one window per `LIMIT` sends after the first
    windows = len(sends) // LIMIT - (len(sends) % LIMIT == 0)
    assert max(sends) - min(sends) < windows * (WINDOW_S + 0.2) + 1.0


def test_each_tenant_has_its_own_budget_and_old_slots_are_pruned(engine):
    acme = TenantBudget(engine, key="https://acme.halopsa.com|", limit=2, window_s=60)
    globex = TenantBudget(engine, key="https://globex.halopsa.com|", limit=2, window_s=60)

    assert [acme.reserve(), acme.reserve()] == [0, 0]
    assert acme.reserve() > 59  # the third waits for the first to leave the minute
    assert [globex.reserve(), globex.reserve()] == [0, 0]  # another tenant is not held back

    with engine.begin() as conn:
        conn.execute(RATE_SLOT_TABLE.update().values(sent_at=datetime.now(UTC) - timedelta(hours=1)))
    assert acme.reserve() == 0
    with engine.connect() as conn:
        left = conn.scalar(select(func.count()).select_from(RATE_SLOT_TABLE)
                           .where(RATE_SLOT_TABLE.c.tenant_key == "https://acme.halopsa.com|"))
    assert left == 1  # the hour-old slots were pruned as the new one was handed out
