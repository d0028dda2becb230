"""Client-side rolling-window request budget, so a sync never provokes HaloPSA's 429.

Hosted HaloPSA allows 300 requests per rolling 5 minutes per tenant (reference 5.1). The budget remembers when the
last `limit` requests were sent and hands out send slots: while `limit` requests fall within the last `window_s`,
the next slot opens when the oldest of them leaves the window, plus a small margin. The margin covers the gap between
our send time and the server's receive time (latency jitter, clock granularity), so the server never counts
`limit + 1` requests in its own window.

One budget per tenant is shared by every HaloClient in the process (`shared_budget`), because the server counts per
tenant, not per connection.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

MIN_MARGIN_S = 0.05
MARGIN_FRACTION = 0.02


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
        self.margin_s = max(MIN_MARGIN_S, MARGIN_FRACTION * window_s) if margin_s is None else margin_s
        self._clock = clock
        # Send times of the last `limit` slots, oldest first. Slots are handed out in non-decreasing time order,
        # so when the deque is full its head is the request that must leave the window before the next one.
        self._slots: deque[float] = deque(maxlen=limit)
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Claim the next send slot; return the seconds the caller must sleep before sending (0 when free)."""
        with self._lock:
            now = self._clock()
            at = now
            if len(self._slots) == self.limit:
                at = max(now, self._slots[0] + self.window_s + self.margin_s)
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
