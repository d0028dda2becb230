"""Shared fixtures: a fresh database per test, settings with a test key, and a fixed clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.engine import Engine

from core import db
from core.settings import Settings

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
TEST_KEY = Fernet.generate_key().decode()


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
