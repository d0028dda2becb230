"""Which workers are alive: each worker writes its beat (the database's clock) every poll, so the console can say
when nothing would run a queued sync."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection, Engine

from core.store.tables import SETTING_TABLE
from core.sync.jobs import lease_now

PREFIX = "worker:"
setting_key = SETTING_TABLE.c["key"]


def beat(engine: Engine, owner: str) -> None:
    with engine.begin() as conn:
        now = lease_now(conn).isoformat()
        # one worker beats from one thread, so the update-or-insert has no race
        if conn.execute(update(SETTING_TABLE).where(setting_key == PREFIX + owner).values(value=now)).rowcount == 0:
            conn.execute(SETTING_TABLE.insert().values(key=PREFIX + owner, value=now))


def forget(engine: Engine, owner: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(SETTING_TABLE).where(setting_key == PREFIX + owner))


def alive(conn: Connection, *, within: timedelta) -> int:
    since = lease_now(conn) - within
    beats = conn.scalars(select(SETTING_TABLE.c.value).where(setting_key.startswith(PREFIX))).all()
    return sum(1 for value in beats if datetime.fromisoformat(value) >= since)
