"""Shared fixtures: a fresh database per test, settings with a test key, and a fixed clock."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from core.settings import Settings
from core.store import database as db
from tests.support.clock import NOW, TEST_KEY


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'console.db'}",
        secret_key=TEST_KEY,
        allow_local_domains=True,
        backoff_cap_s=0.05,
        fixed_now=NOW,
    )


@pytest.fixture
def engine(settings: Settings) -> Engine:
    engine = db.engine_for(settings)
    yield engine
    engine.dispose()


@pytest.fixture
def memory_settings(settings: Settings) -> Settings:
    return replace(settings, database_url="sqlite://")


def pytest_terminal_summary(terminalreporter) -> None:
    """Print the reliability figures tests record with `record_property("reliability", (group, outcome))`; works
    under xdist (user properties travel with each report)."""
    groups: dict[str, dict[str, int]] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call":
                continue
            for name, value in getattr(report, "user_properties", ()):
                if name == "reliability":
                    group, outcome = value
                    counts = groups.setdefault(group, {})
                    counts[outcome] = counts.get(outcome, 0) + 1
    if groups:
        terminalreporter.write_sep("-", "reliability")
        for group, counts in sorted(groups.items()):
            ordered = sorted(counts.items(), key=lambda item: item[0] == "converged")  # the verdict last
            terminalreporter.write_line(f"{group}: " + ", ".join(f"{n} {outcome}" for outcome, n in ordered))
