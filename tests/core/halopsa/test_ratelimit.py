"""The client-side rolling-window budget: never more than `limit` sends per window, and little time lost."""

from __future__ import annotations

import math
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.halopsa.ratelimit import RateBudget, shared_budget
from tests.support.client_fakes import FakeHalo, invoice_row, make_client
from tests.support.clock import FakeClock


def _send_times(budget: RateBudget, clock: FakeClock, gaps: list[float]) -> list[float]:
    """Each request arrives `gap` seconds after the previous send, waits for its slot, then is sent."""
    times = []
    for gap in gaps:
        clock.now += gap
        clock.sleep(budget.reserve())
        times.append(clock.now)
    return times


def test_requests_within_the_limit_go_at_once() -> None:
    clock = FakeClock()
    budget = RateBudget(limit=5, window_s=10, clock=clock)
    assert [budget.reserve() for _ in range(5)] == [0] * 5


def test_the_next_request_waits_for_the_oldest_to_leave_the_window_plus_a_margin() -> None:
    clock = FakeClock()
    budget = RateBudget(limit=3, window_s=10, clock=clock)
    times = _send_times(budget, clock, [0, 1, 1, 0, 0])
    start = times[0]
    assert [t - start for t in times] == pytest.approx([0, 1, 2, 10.2, 11.2])


def test_margin_is_two_percent_of_the_window_but_at_least_50_ms() -> None:
    assert RateBudget(limit=300, window_s=300).margin_s == 6
    assert RateBudget(limit=30, window_s=3).margin_s == 0.06
    assert RateBudget(limit=5, window_s=1).margin_s == 0.05


@given(
    limit=st.integers(min_value=1, max_value=20),
    window=st.floats(min_value=0.5, max_value=600),
    gaps=st.lists(st.floats(min_value=0, max_value=30), min_size=1, max_size=200),
)
def test_no_window_ever_holds_more_than_the_limit(limit: int, window: float, gaps: list[float]) -> None:
    clock = FakeClock()
    budget = RateBudget(limit=limit, window_s=window, clock=clock)
    times = _send_times(budget, clock, gaps)
    for earlier, later in zip(times, times[limit:], strict=False):
        assert later - earlier >= window + budget.margin_s - 1e-9


@given(limit=st.integers(min_value=1, max_value=50), requests=st.integers(min_value=1, max_value=500))
def test_a_burst_takes_little_more_than_the_theoretical_minimum(limit: int, requests: int) -> None:
    clock = FakeClock()
    budget = RateBudget(limit=limit, window_s=3, clock=clock)
    times = _send_times(budget, clock, [0.001] * requests)  # 1 ms per request
    minimum = (math.ceil(requests / limit) - 1) * 3
    elapsed = times[-1] - times[0]
    assert elapsed <= minimum * 1.03 + requests * 0.001 + 1e-9


def test_threads_sharing_a_budget_never_exceed_it() -> None:
    clock = FakeClock()
    budget = RateBudget(limit=10, window_s=5, clock=clock)
    slots: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(20):
            at = clock() + budget.reserve()
            with lock:
                slots.append(at)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    slots.sort()
    assert len(slots) == 160
    assert all(later - earlier >= 5 for earlier, later in zip(slots, slots[10:], strict=False))


def test_one_budget_per_tenant_and_clock() -> None:
    clock = FakeClock()
    a = shared_budget(key="https://a.halopsa.com|", limit=300, window_s=300, clock=clock)
    assert shared_budget(key="https://a.halopsa.com|", limit=300, window_s=300, clock=clock) is a
    assert shared_budget(key="https://a.halopsa.com|x", limit=300, window_s=300, clock=clock) is not a
    assert shared_budget(key="https://a.halopsa.com|", limit=300, window_s=300, clock=FakeClock()) is not a


def test_clients_of_one_tenant_share_the_budget_and_announce_their_waits() -> None:
    clock, events = FakeClock(), []
    fake = FakeHalo(lists={"invoice": ("invoices", [invoice_row(i) for i in range(1, 36)])}, clock=clock)
    shared = {"base_url": "https://shared.halopsa.test", "rate_limit_requests": 5, "rate_limit_window_s": 10}
    first = make_client(fake, clock, events=events, page_size=10, **shared)
    second = make_client(fake, clock, events=events, page_size=10, **shared)
    for client in (first, second):  # four pages each: three full, then a short one
        assert len([i for p in client.iter_invoices() for i in p.records]) == 35
    # 2 AuthInfo + 2 token requests + 2 x 4 pages = 12 requests at 5 per 10 s (+0.2 s margin): three bursts
    start = fake.times[0]
    assert [t - start for t in fake.times] == pytest.approx([0] * 5 + [10.2] * 5 + [20.4] * 2)
    assert [e.kind for e in events] == ["rate_budget", "rate_budget"]
    assert events[0].seconds == pytest.approx(10.2)
    assert events[0].reason == "Pacing requests to stay within HaloPSA's limit of 5 requests per 10 s; waiting 10 s"
    assert first.stats.waited_s + second.stats.waited_s == sum(clock.sleeps) == pytest.approx(20.4)
