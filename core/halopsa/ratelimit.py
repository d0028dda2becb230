"""Client-side rolling-window request budget, so a sync never provokes HaloPSA's 429.

Hosted HaloPSA allows 300 requests per rolling 5 minutes per tenant (reference 5.1). The budget remembers when the
last `limit` requests were sent and hands out send slots: while `limit` requests fall within the last `window_s`,
the next slot opens when the oldest of them leaves the window, plus a small margin. The margin covers the gap between
our send time and the server's receive time (latency jitter, clock granularity), so the server never counts
`limit + 1` requests in its own window.

The server counts per tenant, not per connection, so one budget per tenant is shared: by every HaloClient of the
process (`shared_budget`, the default), or by every process through the database (the sync layer's `TenantBudget`,
which a client is given through `budget_for`). Both hand out slots by `next_slot`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

MIN_MARGIN_S = 0.05
MARGIN_FRACTION = 0.02

Moment = TypeVar("Moment", float, datetime)


class Budget(Protocol):
    """What a client needs from a budget: its limit and window (for the message it shows) and send slots."""

    @property
    def limit(self) -> int: ...

    @property
    def window_s(self) -> float: ...

    def reserve(self) -> float:
        """Claim the next send slot; return the seconds the caller must sleep before sending (0 when free)."""
        ...


def margin_for(window_s: float) -> float:
    return max(MIN_MARGIN_S, MARGIN_FRACTION * window_s)


def next_slot(now: Moment, oldest: Moment | None, *, window_s: float, margin_s: float) -> Moment:
    """When the next request may be sent: now, unless `limit` requests were sent within the window, in which case
    when the oldest of those (`oldest`, the limit-th newest slot; None while fewer were sent) leaves it, plus the
    margin."""
    if oldest is None:
        return now
    if isinstance(oldest, datetime):
        return max(now, oldest + timedelta(seconds=window_s + margin_s))
    return max(now, oldest + window_s + margin_s)


class RateBudget:
    """Hands out send slots; thread-safe. `reserve()` claims one and says how long to wait before sending."""

    def __init__(
        self,
        *,
        limit: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        margin_s: float | None = None,
    ) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("a rate budget needs limit >= 1 and a positive window")
        self.limit = limit
        self.window_s = window_s
        self.margin_s = margin_for(window_s) if margin_s is None else margin_s
        self._clock = clock
        # Send times of the last `limit` slots, oldest first. Slots are handed out in non-decreasing time order,
        # so when the deque is full its head is the request that must leave the window before the next one.
        self._slots: deque[float] = deque(maxlen=limit)
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Claim the next send slot; return the seconds the caller must sleep before sending (0 when free)."""
        with self._lock:
            now = self._clock()
            oldest = self._slots[0] if len(self._slots) == self.limit else None
            at = next_slot(now, oldest, window_s=self.window_s, margin_s=self.margin_s)
            self._slots.append(at)
            return at - now


_registry: dict[tuple[str, int, float, Callable[[], float]], RateBudget] = {}
_registry_lock = threading.Lock()


def shared_budget(*, key: str, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> RateBudget:
    """The process-wide budget for one tenant (`key` = base URL + tenant).

    Budgets are also keyed by limit, window and clock: slots measured on different clocks (a test's fake clock
    and the real one) cannot be compared, so they never share a budget.
    """
    registry_key = (key, limit, window_s, clock)
    with _registry_lock:
        budget = _registry.get(registry_key)
        if budget is None:
            budget = _registry[registry_key] = RateBudget(limit=limit, window_s=window_s, clock=clock)
        return budget
