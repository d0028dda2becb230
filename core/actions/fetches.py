"""What a person can do to a partner's sync: start a manual fetch (checked for access, role and integration)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Engine

from core.access import Principal, require_partner_access, require_role
from core.errors import NotAllowedForRole, NotFound
from core.settings import Settings
from core.store import audit
from core.store.tables import CONNECTION_TABLE, AuditAction, IntegrationRole, Role, RunKind, RunTrigger
from core.sync import engine as sync_engine
from core.sync.connector import ClientFactory
from core.sync.cooldowns import LABELS
from core.sync.runs import ProgressFn, RunResult

SECONDARY_MESSAGE = (
    "Manual fetches are offered only when HaloPSA is the primary integration. For this partner HaloPSA is the "
    "secondary integration: invoices come from the primary one, and only payment status is sent back to HaloPSA."
)


def manual_fetch_allowed(engine: Engine, partner_id: int) -> tuple[bool, str | None]:
    """Whether the partner may run manual fetches at all, and if not, why in plain words."""
    with engine.connect() as conn:
        role = conn.scalar(
            select(CONNECTION_TABLE.c.integration_role).where(CONNECTION_TABLE.c.partner_id == partner_id)
        )
    if role is None:
        return False, "This partner has no HaloPSA connection yet. Connect it first."
    if role != IntegrationRole.PRIMARY:
        return False, SECONDARY_MESSAGE
    return True, None


def start_manual_fetch(
    engine: Engine,
    principal: Principal,
    *,
    partner_id: int,
    kind: str,
    now: datetime,
    settings: Settings,
    client_factory: ClientFactory,
    progress: ProgressFn | None = None,
) -> RunResult:
    """Run Fetch new data or Fetch unpaid invoices now; refused by the cooldown, a running sync or a secondary role."""
    require_role(principal, Role.CS, Role.PARTNER)
    require_partner_access(principal, partner_id)
    if kind not in (RunKind.FETCH_NEW_DATA, RunKind.FETCH_UNPAID):
        raise NotFound(f"Unknown manual fetch “{kind}”.")
    manual_kind = RunKind(kind)
    allowed, reason = manual_fetch_allowed(engine, partner_id)
    if not allowed:
        raise NotAllowedForRole(reason or SECONDARY_MESSAGE)
    result = sync_engine.run_sync(
        engine, partner_id=partner_id, kind=manual_kind, trigger=RunTrigger.MANUAL, actor=principal.user, now=now,
        settings=settings, client_factory=client_factory, progress=progress,
    )
    with engine.begin() as conn:
        audit.record(conn, actor=principal.user, action=AuditAction.MANUAL_FETCH, partner_id=partner_id, now=now,
                     detail=f"{LABELS[manual_kind]}: run {result.run_id} {result.status}")
    return result
