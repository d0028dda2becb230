"""HaloPSA's hosted rate limit: N requests per rolling window per tenant (reference section 5.1)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable


class RollingWindow:
    """Admits a request if fewer than `limit` were admitted in the last `window_s` seconds.

    Refused requests don't count towards the limit.
    """

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._admitted: deque[float] = deque()

    def admit(self) -> int | None:
        """None if admitted, else whole seconds until the oldest request leaves the window (at least 1)."""
        now = self._clock()
        admitted = self._admitted
        while admitted and admitted[0] <= now - self.window_s:
            admitted.popleft()
        if len(admitted) < self.limit:
            admitted.append(now)
            return None
        return max(1, math.ceil(admitted[0] + self.window_s - now))
