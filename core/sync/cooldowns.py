"""Manual-fetch cooldowns: Fetch new data once per hour, Fetch unpaid invoices once per 12 hours, per partner.

Enforced by one conditional UPDATE (`... WHERE available_at <= now`): whichever tab, process or replica gets
rowcount 1 owns the fetch; everyone else is refused with the exact time it becomes available. No check-then-act.
A run that fails for a transient reason gives the cooldown back (`refund`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Connection

from core.errors import CooldownActive
from core.settings import Settings
from core.store import audit
from core.store.tables import COOLDOWN_TABLE, JOB_TABLE, AuditAction, RunKind

MANUAL_KINDS = (RunKind.FETCH_NEW_DATA, RunKind.FETCH_UNPAID)
LABELS = {RunKind.FETCH_NEW_DATA: "Fetch new data", RunKind.FETCH_UNPAID: "Fetch unpaid invoices"}
_NEVER = datetime(2000, 1, 1, tzinfo=UTC)


def cooldown_length(kind: str, settings: Settings) -> timedelta:
    seconds = settings.cooldown_new_data_s if kind == RunKind.FETCH_NEW_DATA else settings.cooldown_unpaid_s
    return timedelta(seconds=seconds)


def ensure_rows(conn: Connection, partner_id: int) -> None:
    """Create the partner's cooldown rows (available at once) if they are missing."""
    present = set(conn.scalars(select(COOLDOWN_TABLE.c.kind).where(COOLDOWN_TABLE.c.partner_id == partner_id)))
    missing = [k.value for k in MANUAL_KINDS if k.value not in present]
    if missing:
        conn.execute(COOLDOWN_TABLE.insert(),
                     [{"partner_id": partner_id, "kind": k, "available_at": _NEVER} for k in missing])


def claim(
    conn: Connection, *, partner_id: int, kind: str, actor: str, now: datetime, settings: Settings,
    run_id: int | None = None, job_id: int | None = None,
) -> datetime:
    """Take the cooldown for one manual fetch or raise CooldownActive; returns when it becomes available again."""
    until = now + cooldown_length(kind, settings)
    c = COOLDOWN_TABLE.c
    result = conn.execute(
        update(COOLDOWN_TABLE)
        # a cooldown started on a clock ahead of this one (a wrong clock, a replay) is not trusted
        .where(c.partner_id == partner_id, c.kind == kind, or_(c.available_at <= now, c.last_started_at > now))
        .values(previous_available_at=c.available_at, available_at=until, last_started_at=now,
                last_actor=actor, last_run_id=run_id, last_job_id=job_id)
    )
    if result.rowcount == 1:
        return until
    available_at = conn.scalar(select(c.available_at).where(c.partner_id == partner_id, c.kind == kind))
    raise CooldownActive(LABELS[RunKind(kind)], available_at or now, now)


def record_refusal(conn: Connection, *, partner_id: int, kind: str, actor: str | None = None,
                   now: datetime | None = None) -> None:
    """Count a press on a locked button (the adoption page's cooldown-pressure metric) and, given who pressed and
    when, date it with a "manual_fetch_refused" audit event (the Adoption page counts those within its dates)."""
    c = COOLDOWN_TABLE.c
    conn.execute(
        update(COOLDOWN_TABLE)
        .where(c.partner_id == partner_id, c.kind == kind)
        .values(refused_count=c.refused_count + 1)
    )
    if actor is not None and now is not None:
        audit.record(conn, actor=actor, action=AuditAction.MANUAL_FETCH_REFUSED, partner_id=partner_id, now=now,
                     detail=refusal_detail(kind))


def refusal_detail(kind: str) -> str:
    """The audit detail of a refused press: the fetch's label first, so a reader can group refusals by fetch."""
    return f"{LABELS[RunKind(kind)]}: refused by the cooldown"


def refund(conn: Connection, *, partner_id: int, kind: str, run_id: int | None = None,
           job_id: int | None = None) -> None:
    """Give back a cooldown taken by `run_id` or by the press that queued `job_id` (a transient failure, a cancel):
    only if no later fetch has taken it since."""
    c = COOLDOWN_TABLE.c
    taken_by = [c.last_run_id == run_id] if run_id is not None else []
    if job_id is not None:
        taken_by.append(c.last_job_id == job_id)
    if taken_by:
        conn.execute(
            update(COOLDOWN_TABLE)
            .where(c.partner_id == partner_id, c.kind == kind, or_(*taken_by))
            .values(available_at=c.previous_available_at)
        )


@dataclass(frozen=True)
class CooldownState:
    kind: str
    label: str
    available_at: datetime | None
    last_started_at: datetime | None
    last_actor: str | None
    last_run_id: int | None
    refused_count: int

    def remaining(self, now: datetime) -> timedelta:
        if self.available_at is None or self.available_at <= now:
            return timedelta(0)
        return self.available_at - now


def _ahead(row: Any, now: datetime) -> bool:
    return row.last_started_at is not None and row.last_started_at > now


def states(conn: Connection, partner_id: int, *, now: datetime) -> dict[str, CooldownState]:
    """Both cooldowns of a partner; `available_at` is None when the fetch is available now or was never run, or
    when it was started on a clock ahead of `now` (not trusted, see `claim`)."""
    rows = conn.execute(
        select(COOLDOWN_TABLE, JOB_TABLE.c.run_id.label("job_run_id"))
        .select_from(COOLDOWN_TABLE.outerjoin(JOB_TABLE, JOB_TABLE.c.id == COOLDOWN_TABLE.c.last_job_id))
        .where(COOLDOWN_TABLE.c.partner_id == partner_id)
    ).all()
    found = {row.kind: row for row in rows}
    result: dict[str, CooldownState] = {}
    for kind in MANUAL_KINDS:
        row = found.get(kind.value)
        result[kind.value] = CooldownState(
            kind=kind.value,
            label=LABELS[kind],
            available_at=row.available_at if row and row.available_at > _NEVER and not _ahead(row, now) else None,
            last_started_at=row.last_started_at if row else None,
            last_actor=row.last_actor if row else None,
            last_run_id=(row.last_run_id or row.job_run_id) if row else None,
            refused_count=row.refused_count if row else 0,
        )
    return result
