"""The audit log: who connected, edited, fetched, mapped or exported what, and when."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Connection

from core.store.tables import AUDIT_TABLE, AuditAction


def record(conn: Connection, *, actor: str, action: AuditAction, now: datetime, partner_id: int | None = None,
           detail: str = "") -> None:
    """Append one event; `detail` is plain words and never holds a secret."""
    conn.execute(AUDIT_TABLE.insert().values(at=now, actor=actor, partner_id=partner_id, action=action, detail=detail))
