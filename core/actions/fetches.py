"""What a person can do to a partner's sync: start a manual fetch (checked for access, role and integration)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from core.access import Principal, require_partner_access, require_role
from core.errors import CooldownActive, NotAllowedForRole, NotFound
from core.settings import Settings
from core.store import audit
from core.store.secrets import secret_box
from core.store.tables import (
    CONNECTION_TABLE,
    JOB_TABLE,
    PARTNER_TABLE,
    AuditAction,
    IntegrationRole,
    JobState,
    Role,
    RunKind,
    RunTrigger,
)
from core.sync import cooldowns, jobs, worker
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


def require_readable_secret(engine: Engine, settings: Settings, partner_id: int) -> None:
    """A wrong or missing encryption key is a configuration error (SecretKeyError), told before anything is queued
    or recorded: every process sharing the database holds the same key, so no worker could run the sync either."""
    with engine.connect() as conn:
        token = conn.scalar(select(CONNECTION_TABLE.c.client_secret_encrypted)
                            .where(CONNECTION_TABLE.c.partner_id == partner_id))
    if token is not None:
        secret_box(settings).decrypt(token)


def _check_manual(engine: Engine, principal: Principal, partner_id: int, kind: str) -> RunKind:
    require_role(principal, Role.CS, Role.PARTNER)
    require_partner_access(principal, partner_id)
    if kind not in (RunKind.FETCH_NEW_DATA, RunKind.FETCH_UNPAID):
        raise NotFound(f"Unknown manual fetch “{kind}”.")
    allowed, reason = manual_fetch_allowed(engine, partner_id)
    if not allowed:
        raise NotAllowedForRole(reason or SECONDARY_MESSAGE)
    return RunKind(kind)


def request_manual_fetch(engine: Engine, principal: Principal, *, partner_id: int, kind: str, now: datetime,
                         settings: Settings) -> int:
    """Queue Fetch new data or Fetch unpaid invoices (a worker runs it): the job, the cooldown claim and the audit
    event in one transaction. Refused by the cooldown (the press is counted), a queued or running fetch of the same
    kind, or a secondary integration; a refusal leaves nothing behind. Returns the job's id."""
    manual_kind = _check_manual(engine, principal, partner_id, kind)
    require_readable_secret(engine, settings, partner_id)
    try:
        with engine.begin() as conn:
            partner_name = conn.scalar(select(PARTNER_TABLE.c.name).where(PARTNER_TABLE.c.id == partner_id)) or ""
            job_id = jobs.enqueue(conn, partner_id=partner_id, partner_name=partner_name, kind=manual_kind,
                                  trigger=RunTrigger.MANUAL, requested_by=principal.user, now=now)
            cooldowns.claim(conn, partner_id=partner_id, kind=manual_kind, actor=principal.user, now=now,
                            settings=settings, job_id=job_id)
            audit.record(conn, actor=principal.user, action=AuditAction.MANUAL_FETCH, partner_id=partner_id,
                         now=now, detail=f"{LABELS[manual_kind]}: requested (job {job_id})")
    except CooldownActive:
        with engine.begin() as conn:
            cooldowns.record_refusal(conn, partner_id=partner_id, kind=manual_kind, actor=principal.user, now=now)
        raise
    return job_id


def start_manual_fetch(engine: Engine, principal: Principal, *, partner_id: int, kind: str, now: datetime,
                       settings: Settings, client_factory: ClientFactory,
                       progress: ProgressFn | None = None) -> RunResult:
    """Queue a manual fetch and run it here and now, under the same lease and fencing as a worker (the command line):
    refused like `request_manual_fetch`, and by another sync of the partner running (the fetch is then withdrawn
    and its cooldown given back)."""
    job_id = request_manual_fetch(engine, principal, partner_id=partner_id, kind=kind, now=now, settings=settings)
    return worker.run_job_now(engine, settings, client_factory, job_id, lease=timedelta(seconds=settings.lease_s),
                              progress=progress, now=now)


def cancel_sync(engine: Engine, principal: Principal, *, partner_id: int, job_id: int, now: datetime) -> str:
    """Customer success stops a partner's queued or running sync (audited): a queued one is cancelled at once (a
    manual fetch's cooldown given back); a running one stops at its next page. Returns what happened, in words."""
    require_role(principal, Role.CS)
    require_partner_access(principal, partner_id)
    job = JOB_TABLE.c
    with engine.begin() as conn:
        row = conn.execute(select(job.kind, job.state, job.trigger).where(
            job.id == job_id, job.partner_id == partner_id,
            job.state.in_([JobState.QUEUED, JobState.RUNNING]))).first()
        if row is None:
            raise NotFound("That sync is not queued or running any more; refresh the page.")
        label = LABELS.get(row.kind, str(row.kind).replace("_", " "))
        if row.state == JobState.QUEUED:
            conn.execute(update(JOB_TABLE).where(job.id == job_id, job.state == JobState.QUEUED).values(
                state=JobState.CANCELLED, active_key=None, finished_at=now, outcome=f"Cancelled by {principal.user}."))
            if row.trigger == RunTrigger.MANUAL:
                cooldowns.refund(conn, partner_id=partner_id, kind=row.kind, job_id=job_id)
            said = f"Cancelled the queued {label}; it will not run."
        else:
            conn.execute(update(JOB_TABLE).where(job.id == job_id).values(cancel_requested_by=principal.user))
            said = f"Asked the running {label} to stop; it stops after the page it is on."
        audit.record(conn, actor=principal.user, action=AuditAction.CANCEL_SYNC, partner_id=partner_id, now=now,
                     detail=f"{label} (job {job_id}): {said}")
    return said


def request_tenant_check(engine: Engine, principal: Principal, *, partner_id: int, now: datetime) -> int:
    """Queue a check of what the partner's HaloPSA supports (a probe job; about eight requests, no cooldown), audited.
    Refused (SyncAlreadyQueued) while one is queued or running. Returns the job's id."""
    require_role(principal, Role.CS, Role.PARTNER)
    require_partner_access(principal, partner_id)
    with engine.begin() as conn:
        partner_name = conn.scalar(
            select(PARTNER_TABLE.c.name).join(CONNECTION_TABLE, CONNECTION_TABLE.c.partner_id == PARTNER_TABLE.c.id)
            .where(PARTNER_TABLE.c.id == partner_id))
        if partner_name is None:
            raise NotFound("This partner has no HaloPSA connection yet. Connect it first.")
        job_id = jobs.enqueue(conn, partner_id=partner_id, partner_name=partner_name, kind=RunKind.PROBE,
                              trigger=RunTrigger.REQUEST, requested_by=principal.user, now=now)
        audit.record(conn, actor=principal.user, action=AuditAction.TENANT_CHECK, partner_id=partner_id, now=now,
                     detail=f"Check of what HaloPSA supports: requested (job {job_id})")
    return job_id
