"""Shared fixtures: a fresh database per test (SQLite, or PostgreSQL when TEST_DATABASE_URL is set: see
tests/support/databases.py), settings with a test key, a fixed clock, and real command-line processes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from core.settings import Settings
from core.store import database as db
from tests.support import databases
from tests.support.clock import NOW, TEST_KEY
from tests.support.processes import Children


def pytest_report_header() -> str:
    return f"database: {databases.engine_name()}" + (" (TEST_DATABASE_URL)" if databases.on_postgres() else "")


def pytest_sessionfinish() -> None:
    databases.drop_all()


@pytest.fixture(autouse=True)
def _drop_test_databases() -> Iterator[None]:
    """Set up before and torn down after every other fixture of a test: its PostgreSQL databases go last."""
    yield
    databases.drop_test_databases()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=databases.database_url(tmp_path),
        secret_key=TEST_KEY,
        allow_local_domains=True,
        backoff_cap_s=0.05,
        fixed_now=NOW,
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    databases.prepare(settings)
    engine = db.engine_for(settings)
    yield engine
    engine.dispose()


@pytest.fixture
def children(settings: Settings, tmp_path: Path) -> Iterator[Children]:
    """Real command-line processes on the test's database (tests/support/processes.py), none left running after."""
    started = Children(settings, tmp_path)
    yield started
    started.close()


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
