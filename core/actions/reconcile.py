"""What customer success can do about drift from HaloPSA: queue a reconciliation of a partner (read-only; a worker
runs it; one at a time per partner, never beside another sync of it), queue a targeted resync of the differing
invoices the latest one found, or (the command line) run a reconciliation here and now. Each is audited."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from core.access import Principal, require_partner_access, require_role
from core.actions.fetches import SECONDARY_MESSAGE, manual_fetch_allowed, require_readable_secret
from core.errors import NotAllowedForRole, NotFound
from core.settings import Settings
from core.store import audit
from core.store.tables import CONNECTION_TABLE, PARTNER_TABLE, AuditAction, Role, RunKind, RunTrigger
from core.sync import jobs, reconcile, worker
from core.sync.connector import ClientFactory
from core.sync.runs import ProgressFn, RunResult

NOTHING_TO_RESYNC = ("The latest reconciliation left no differing invoice to read again. Press Reconcile now to "
                     "compare again first.")


def _check(engine: Engine, principal: Principal, partner_id: int) -> None:
    require_role(principal, Role.CS)
    require_partner_access(principal, partner_id)
    allowed, reason = manual_fetch_allowed(engine, partner_id)
    if not allowed:
        raise NotAllowedForRole((reason or SECONDARY_MESSAGE).replace("Manual fetches are", "Reconciliation is"))


def _partner_name(conn: Connection, partner_id: int) -> str:
    return conn.scalar(select(PARTNER_TABLE.c.name).where(PARTNER_TABLE.c.id == partner_id)) or "the partner"


def request_reconcile(engine: Engine, principal: Principal, *, partner_id: int, now: datetime, settings: Settings,
                      trigger: RunTrigger = RunTrigger.REQUEST) -> int:
    """Queue a reconciliation of the partner (customer success only), audited with its estimated cost. Refused
    (SyncAlreadyQueued) while one is queued or running. Returns the job's id."""
    _check(engine, principal, partner_id)
    require_readable_secret(engine, settings, partner_id)
    with engine.connect() as conn:
        connection = conn.execute(select(CONNECTION_TABLE).where(CONNECTION_TABLE.c.partner_id == partner_id)).one()
    planned = reconcile.estimate(engine, partner_id, connection, settings)
    with engine.begin() as conn:
        job_id = jobs.enqueue(conn, partner_id=partner_id, partner_name=_partner_name(conn, partner_id),
                              kind=RunKind.RECONCILE, trigger=trigger, requested_by=principal.user, now=now)
        audit.record(conn, actor=principal.user, action=AuditAction.RECONCILE, partner_id=partner_id, now=now,
                     detail=f"Reconciliation with HaloPSA: requested (job {job_id}); estimated {planned.text}")
    return job_id


def request_resync(engine: Engine, principal: Principal, *, partner_id: int, now: datetime,
                   settings: Settings) -> int:
    """Queue a targeted resync of the latest reconciliation's open drift (customer success only), audited. Refused
    when nothing is left to resync, or while one is queued or running. Returns the job's id."""
    _check(engine, principal, partner_id)
    require_readable_secret(engine, settings, partner_id)
    with engine.begin() as conn:
        differing = reconcile.open_drift(conn, partner_id)
        if not differing:
            raise NotFound(NOTHING_TO_RESYNC)
        job_id = jobs.enqueue(conn, partner_id=partner_id, partner_name=_partner_name(conn, partner_id),
                              kind=RunKind.RESYNC, trigger=RunTrigger.REQUEST, requested_by=principal.user, now=now)
        chosen = min(len(differing), reconcile.RESYNC_CAP)
        audit.record(conn, actor=principal.user, action=AuditAction.RESYNC, partner_id=partner_id, now=now,
                     detail=f"Resync of {chosen:,} differing invoices: requested (job {job_id}; about {chosen:,} "
                            "requests)")
    return job_id


def reconcile_now(engine: Engine, principal: Principal, *, partner_id: int, now: datetime, settings: Settings,
                  client_factory: ClientFactory, progress: ProgressFn | None = None) -> RunResult:
    """Queue a reconciliation and run it here and now under the same lease and fencing as a worker (the command
    line): refused like `request_reconcile`, and while another sync of the partner runs (the job is withdrawn)."""
    job_id = request_reconcile(engine, principal, partner_id=partner_id, now=now, settings=settings)
    return worker.run_job_now(engine, settings, client_factory, job_id, lease=timedelta(seconds=settings.lease_s),
                              progress=progress, now=now)
