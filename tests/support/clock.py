"""The fixed moment tests run at, the test encryption key, and a hand-driven monotonic clock."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.fernet import Fernet

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
TEST_KEY = Fernet.generate_key().decode()


class FakeClock:
    """Monotonic clock and sleep in one: it moves only when told to (`tick`) or slept on, and records each sleep."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
