"""Snoozing an Overview issue (customer success only, audited): set it aside until a time, at most 30 days ahead,
with a reason; it comes back by itself at that time, or earlier when unsnoozed."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine

from core.access import Principal, require_role
from core.errors import BadInput, NotFound
from core.health.issues import ISSUE_KINDS
from core.limits import check_length, check_one_line
from core.store import audit
from core.store.tables import ISSUE_TABLE, AuditAction, IssueType, Role

MAX_SNOOZE = timedelta(days=30)


def _open_issue(conn: Connection, issue_id: int) -> Any:
    row = conn.execute(select(ISSUE_TABLE).where(ISSUE_TABLE.c.id == issue_id)).first()
    if row is None:
        raise NotFound("That issue no longer exists; reload the Overview.", field="issue_id")
    if row.resolved_at is not None:
        raise BadInput(f"That issue resolved at {row.resolved_at:%Y-%m-%d %H:%M} UTC; there is nothing to snooze. "
                       "Reload the Overview.", field="issue_id")
    return row


def _label(row: Any) -> str:
    return ISSUE_KINDS[IssueType(row.type)].label


def snooze(engine: Engine, principal: Principal, issue_id: int, until: datetime, reason: str, *,
           now: datetime) -> None:
    """Set an open issue aside until `until` (after now, at most 30 days ahead) with a reason; audited."""
    require_role(principal, Role.CS)
    text = reason.strip()
    check_length("snooze_reason", text)
    check_one_line("snooze_reason", text)
    if not text:
        raise BadInput("Say why the issue can wait (the reason shows next to it for everyone).",
                       field="snooze_reason")
    if until <= now:
        raise BadInput(f"Pick an end after now ({now:%Y-%m-%d %H:%M} UTC).", field="snooze_until")
    if until > now + MAX_SNOOZE:
        raise BadInput(f"A snooze lasts at most {MAX_SNOOZE.days} days: pick an end on or before "
                       f"{now + MAX_SNOOZE:%Y-%m-%d %H:%M} UTC.", field="snooze_until")
    with engine.begin() as conn:
        row = _open_issue(conn, issue_id)
        conn.execute(update(ISSUE_TABLE).where(ISSUE_TABLE.c.id == issue_id)
                     .values(snoozed_until=until, snooze_reason=text, snoozed_by=principal.user))
        audit.record(conn, actor=principal.user, action=AuditAction.SNOOZE_ISSUE, partner_id=row.partner_id, now=now,
                     detail=f"{_label(row)} snoozed until {until:%Y-%m-%d %H:%M} UTC: {text}")


def unsnooze(engine: Engine, principal: Principal, issue_id: int, *, now: datetime) -> None:
    """End an issue's snooze now; audited."""
    require_role(principal, Role.CS)
    with engine.begin() as conn:
        row = _open_issue(conn, issue_id)
        if row.snoozed_until is None or row.snoozed_until <= now:
            raise BadInput("That issue is not snoozed.", field="issue_id")
        conn.execute(update(ISSUE_TABLE).where(ISSUE_TABLE.c.id == issue_id)
                     .values(snoozed_until=None, snooze_reason=None, snoozed_by=None))
        audit.record(conn, actor=principal.user, action=AuditAction.UNSNOOZE_ISSUE, partner_id=row.partner_id,
                     now=now, detail=f"{_label(row)} snooze ended early")
