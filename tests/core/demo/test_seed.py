"""The demo seed, replayed over two days (the full three weeks run in the browser test's set-up)."""

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from core.access import Principal
from core.console import syncs
from core.demo import sandbox, seed
from core.store.tables import ERROR_TABLE, PARTNER_TABLE, RUN_TABLE, Role, RunKind, RunStatus
from tests.support.clock import NOW

CS = Principal(role=Role.CS, user="cs@demo.local")
END = NOW.replace(minute=0)


@pytest.fixture
def demo(engine, settings) -> Iterator[None]:
    sandbox.REGISTRY.clear()
    seed.seed(engine, settings=settings, now=NOW, days=2)
    yield
    sandbox.REGISTRY.clear()


def _northwind(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(PARTNER_TABLE.c.id).where(PARTNER_TABLE.c.name == "Northwind IT"))


@pytest.mark.usefixtures("demo")
def test_replayed_scheduled_syncs_start_at_their_own_hour_not_at_the_moment_of_seeding(engine):
    """Every scheduled run of the replay was stamped with the seeding's wall clock: hundreds of runs in one second,
    which the Syncs page drew as a barcode with durations of 0."""
    with engine.connect() as conn:
        starts = list(conn.scalars(select(RUN_TABLE.c.started_at).where(RUN_TABLE.c.kind == RunKind.SCHEDULED)))
    assert len(starts) > 20
    assert all(END - timedelta(days=2) <= start < END + timedelta(minutes=1) for start in starts)
    assert len({start.replace(minute=0, second=0, microsecond=0) for start in starts}) > 20


@pytest.mark.usefixtures("demo")
def test_the_demo_has_record_errors_of_several_kinds_to_group(engine):
    northwind = _northwind(engine)
    with engine.connect() as conn:
        partial = list(conn.scalars(select(RUN_TABLE.c.id).where(
            RUN_TABLE.c.partner_id == northwind, RUN_TABLE.c.status == RunStatus.PARTIAL)))
        entities = set(conn.scalars(select(ERROR_TABLE.c.entity).where(ERROR_TABLE.c.partner_id == northwind)))
    assert len(partial) >= 2 and entities >= {"invoice", "customer", "agreement"}
    groups = [syncs.run_detail(engine, CS, northwind, run_id).error_groups for run_id in partial]
    assert all(not group.empty and group["Example HaloPSA ID"].str.fullmatch(r"\d+").all() for group in groups)
