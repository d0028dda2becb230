"""A time stored in the future (a wrong clock, or a replay pointed at the live database) is never trusted: the
cooldown it set is ignored, the partner is scheduled again, and the Overview flags it."""

from datetime import timedelta

from sqlalchemy import update

from core.access import Principal
from core.console import overview
from core.health import issues
from core.store.tables import COOLDOWN_TABLE, Role, RunKind
from core.sync import cooldowns, scheduler
from tests.support.clock import NOW
from tests.support.factories import add_partner, add_run

CS = Principal(role=Role.CS, user="cs@example.com")
FUTURE = NOW + timedelta(hours=4403)


def test_a_cooldown_claimed_on_a_clock_in_the_future_does_not_lock_the_fetch(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    with engine.begin() as conn:
        cooldowns.claim(conn, partner_id=partner_id, kind=RunKind.FETCH_NEW_DATA, actor="replay", now=FUTURE,
                        settings=settings)
        state = cooldowns.states(conn, partner_id, now=NOW)[RunKind.FETCH_NEW_DATA]
    assert state.available_at is None and state.remaining(NOW) == timedelta(0)
    with engine.begin() as conn:  # the fetch can be run now, and then its cooldown holds as usual
        until = cooldowns.claim(conn, partner_id=partner_id, kind=RunKind.FETCH_NEW_DATA, actor="cs", now=NOW,
                                settings=settings)
    assert until == NOW + timedelta(seconds=settings.cooldown_new_data_s)


def test_a_partner_whose_last_run_is_stamped_in_the_future_is_scheduled_again(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=2))
    add_run(engine, settings, partner_id, at=NOW - timedelta(days=1), kind=RunKind.BACKFILL)
    add_run(engine, settings, partner_id, at=FUTURE)
    assert list(scheduler.due_partners(engine, now=NOW, settings=settings)) == [partner_id]


def test_the_overview_flags_times_in_the_future(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW - timedelta(days=2))
    add_run(engine, settings, partner_id, at=NOW - timedelta(hours=1), kind=RunKind.BACKFILL)
    issues.evaluate(engine, now=NOW, settings=settings)
    assert "Clock ahead" not in set(overview.issues(engine, CS, now=NOW)["type"])
    with engine.begin() as conn:
        conn.execute(update(COOLDOWN_TABLE).values(last_started_at=FUTURE))
    add_run(engine, settings, partner_id, at=FUTURE)
    issues.evaluate(engine, now=NOW, settings=settings)
    flagged = overview.issues(engine, CS, now=NOW)
    assert list(flagged[flagged["type"] == "Clock ahead"]["partner_id"]) == [partner_id]
