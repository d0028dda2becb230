"""Sign-in throttling: failures counted per account (the e-mail typed) and per client (its address); past a free
allowance each failure locks that key for twice as long as the last (30 s, 1 min, 2 min ... at most 15 min), and a
locked key's attempts are refused without checking the password.

An attempt is counted as a failure *before* the password is checked and forgiven if it matches, in one transaction
that holds the keys' rows (a row lock on PostgreSQL, the single writer on SQLite): simultaneous attempts cannot all
slip through before the first failure is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from core.store.tables import THROTTLE_TABLE, ThrottleScope

T = THROTTLE_TABLE.c


@dataclass(frozen=True)
class ThrottleRule:
    free_failures: int  # failures allowed before the first lock
    first_lock: timedelta
    longest_lock: timedelta
    forget_after: timedelta  # a key with no failure for this long starts again from zero

    def lock_for(self, failures: int) -> timedelta | None:
        over = failures - self.free_failures
        if over <= 0:
            return None
        doublings = min(over - 1, 20)  # far past the cap already; keeps the number small
        lock: timedelta = min(self.first_lock * 2**doublings, self.longest_lock)
        return lock


# A shared office or VPN sends many people's sign-ins from one address, hence the larger allowance per client.
RULES = {
    ThrottleScope.ACCOUNT: ThrottleRule(5, timedelta(seconds=30), timedelta(minutes=15), timedelta(hours=24)),
    ThrottleScope.CLIENT: ThrottleRule(20, timedelta(seconds=30), timedelta(minutes=15), timedelta(hours=24)),
}

Keys = dict[ThrottleScope, str]


def _ensure_rows(conn: Connection, keys: Keys, now: datetime) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    rows = [{"scope": scope, "key": key, "failures": 0, "last_failure_at": now} for scope, key in keys.items()]
    conn.execute(dialect.insert(THROTTLE_TABLE).values(rows).on_conflict_do_nothing())


def _rows(conn: Connection, keys: Keys) -> list[tuple[ThrottleScope, int, datetime, datetime | None]]:
    query = (select(T.scope, T.failures, T.last_failure_at, T.locked_until)
             .where(tuple_(T.scope, T.key).in_([(scope.value, key) for scope, key in keys.items()])))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return [(ThrottleScope(r.scope), r.failures, r.last_failure_at, r.locked_until) for r in conn.execute(query)]


def _where(scope: ThrottleScope, key: str) -> ColumnElement[bool]:
    return and_(T.scope == scope, T.key == key)


def take_attempt(conn: Connection, keys: Keys, *, now: datetime) -> datetime | None:
    """Count one attempt as a failure in advance, or, when a key is locked, count nothing and return when the last
    lock lifts. Call `forgive` when the password matched."""
    _ensure_rows(conn, keys, now)  # on SQLite this first write takes the database's write lock for the transaction
    rows = _rows(conn, keys)
    locks = [until for _, _, _, until in rows if until is not None and until > now]
    if locks:
        return max(locks)
    for scope, failures, last_failure_at, _ in rows:
        rule = RULES[scope]
        counted = 1 if now - last_failure_at > rule.forget_after else failures + 1
        lock = rule.lock_for(counted)
        conn.execute(update(THROTTLE_TABLE).where(_where(scope, keys[scope])).values(
            failures=counted, last_failure_at=now, locked_until=now + lock if lock else None))
    return None


def forgive(conn: Connection, keys: Keys) -> None:
    """The password matched: the account starts again from zero, and the client's count loses this attempt (its
    other failures stand, so one valid account cannot wash a client's guesses at others)."""
    account = keys[ThrottleScope.ACCOUNT]
    conn.execute(update(THROTTLE_TABLE).where(_where(ThrottleScope.ACCOUNT, account))
                 .values(failures=0, locked_until=None))
    client_rule = RULES[ThrottleScope.CLIENT]
    conn.execute(update(THROTTLE_TABLE)
                 .where(_where(ThrottleScope.CLIENT, keys[ThrottleScope.CLIENT]), T.failures > 0)
                 .values(failures=T.failures - 1))
    conn.execute(update(THROTTLE_TABLE)
                 .where(_where(ThrottleScope.CLIENT, keys[ThrottleScope.CLIENT]),
                        T.failures <= client_rule.free_failures)
                 .values(locked_until=None))
