"""Connecting a partner to HaloPSA: validate the form, verify with HaloPSA (token plus the seven permissions), and
only then save. A bad input or a failed verification saves nothing and says why; editing keeps the stored secret
unless a new one is given."""

from __future__ import annotations

import unicodedata
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from core.access import Principal, require_partner_access, require_role
from core.errors import (
    AccessDenied,
    BadInput,
    ConsoleError,
    HaloError,
    PermissionMissing,
    RateLimited,
    SyncAlreadyQueued,
    format_duration,
)
from core.halopsa.app_domain import normalize_app_domain
from core.halopsa.config import REQUIRED_SCOPES
from core.halopsa.probe import ProbeResult, probe
from core.limits import check_length
from core.settings import Settings
from core.store import audit
from core.store.database import inserted_id
from core.store.secrets import secret_box
from core.store.tables import (
    CONNECTION_TABLE,
    PARTNER_TABLE,
    AuditAction,
    IntegrationRole,
    NumberField,
    PartnerStatus,
    Role,
    RunKind,
    RunTrigger,
)
from core.sync import cooldowns, jobs, probes, worker
from core.sync.connector import ClientFactory, build_client
from core.sync.listings import requests_text
from core.sync.runs import ProgressFn, RunResult

# What connecting is doing, announced in this order (`progress`); a retry or a wait HaloPSA asks for is announced too
STEP_DOMAIN = "Checking the App Domain"
STEP_TOKEN = "Asking HaloPSA for a token"
STEP_PERMISSIONS = "Checking the permissions"
STEP_PROBE = "Checking what this HaloPSA supports"
STEP_SAVE = "Saving"
STEPS = (STEP_DOMAIN, STEP_TOKEN, STEP_PERMISSIONS, STEP_PROBE, STEP_SAVE)
TRY_AGAIN = "try again"  # what a failed connect tells the person to do; the Connection page names its button
PROBE_LATER = "The first sync after saving checks again."  # the probe failed, the credentials work
CHECK_NOTE = " (a check: nothing saved)"


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class ConnectionForm:
    """What the setup form (or `python -m core connect`) submits; strings as typed."""

    partner_name: str
    app_domain: str
    client_id: str
    client_secret: str | None = None
    invoices_created_since: date | str | None = None
    invoice_number_field: str = NumberField.HALO_ID
    integration_role: str = IntegrationRole.PRIMARY
    tenant: str | None = None


@dataclass(frozen=True)
class CleanForm:
    partner_name: str
    app_domain: str
    client_id: str
    client_secret: str
    invoices_created_since: date | None
    invoice_number_field: NumberField
    integration_role: IntegrationRole
    tenant: str | None
    partner_id: int | None


@dataclass(frozen=True)
class Verification:
    """What HaloPSA said to the form's credentials: the permissions, and what the tenant supports (probed once the
    permissions are all there; None with `probe_error` when the probe could not finish: the first sync probes)."""

    app_domain: str
    granted: tuple[str, ...]
    missing: tuple[str, ...]
    probe: ProbeResult | None = None
    probe_error: str | None = None

    @property
    def ok(self) -> bool:
        return not self.missing

    def checklist(self) -> list[tuple[str, bool]]:
        """Each required permission and whether the application has it, in the order HaloPSA's screen lists them."""
        return [(scope, scope not in self.missing) for scope in REQUIRED_SCOPES]


def _parse_since(value: date | str | None, today: date) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        parsed = value
    else:
        try:
            parsed = date.fromisoformat(value.strip())
        except ValueError:
            raise BadInput(
                f"Invoices Created Since must be a date like 2025-01-31, not “{value.strip()[:40]}”.",
                field="invoices_created_since",
            ) from None
    if parsed > today:
        raise BadInput("Invoices Created Since cannot be in the future.", field="invoices_created_since")
    if parsed.year < 2000:
        raise BadInput("Invoices Created Since must be in the year 2000 or later.", field="invoices_created_since")
    return parsed


def _existing(engine: Engine, partner_name: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            select(PARTNER_TABLE.c.id, CONNECTION_TABLE.c.client_secret_encrypted, CONNECTION_TABLE.c.app_domain,
                   CONNECTION_TABLE.c.tenant)
            .select_from(PARTNER_TABLE.outerjoin(CONNECTION_TABLE, CONNECTION_TABLE.c.partner_id == PARTNER_TABLE.c.id))
            .where(PARTNER_TABLE.c.name == partner_name)
        ).first()


TEXT_FIELDS = {"partner_name": "Partner name", "client_id": "Client ID", "client_secret": "Client Secret",
               "tenant": "Tenant"}


def _refuse_control_characters(form: ConnectionForm) -> None:
    """Control characters other than white space (which is trimmed) are never part of these values; a NUL
    above all, which PostgreSQL cannot store."""
    for field, label in TEXT_FIELDS.items():
        value = getattr(form, field) or ""
        if any(unicodedata.category(char) == "Cc" and not char.isspace() for char in value):
            raise BadInput(f"{label} contains a control character; type or paste it again.", field=field)


def validate_form(engine: Engine, principal: Principal, form: ConnectionForm, *, settings: Settings,
                  today: date) -> CleanForm:
    """Check every field; raises BadInput naming the field, or AccessDenied. Reads, never writes."""
    for field in ("app_domain", *TEXT_FIELDS):  # as typed, before anything reads them
        check_length(field, getattr(form, field))
    _refuse_control_characters(form)
    name = " ".join((form.partner_name or "").split())
    if not name:
        raise BadInput("Partner name is required.", field="partner_name")
    if principal.role == Role.PM:
        raise AccessDenied("Product managers cannot change connections.")
    existing = _existing(engine, name)
    if principal.role == Role.PARTNER and (existing is None or existing.id != principal.partner_id):
        raise AccessDenied("A partner account can only edit its own connection.")
    domain = normalize_app_domain(
        form.app_domain, allow_local=settings.allow_local_domains, sandbox_enabled=settings.sandbox_enabled
    )
    client_id = (form.client_id or "").strip()
    if not client_id:
        raise BadInput("Client ID is required: copy it from the API application in HaloPSA.", field="client_id")
    if any(ch.isspace() for ch in client_id):
        raise BadInput("Client ID must be the value HaloPSA shows, without spaces.", field="client_id")
    secret = form.client_secret or ""
    if secret.strip() != secret:
        secret = secret.strip()
    tenant = (form.tenant or "").strip() or None
    if not secret:
        secret = _stored_secret(existing, domain, tenant, settings)
    try:
        number_field = NumberField(form.invoice_number_field)
    except ValueError:
        raise BadInput("Invoice Number Field must be HaloPSA ID or Third Party Invoice Number.",
                       field="invoice_number_field") from None
    try:
        role = IntegrationRole(form.integration_role)
    except ValueError:
        raise BadInput("Integration must be primary or secondary.", field="integration_role") from None
    if tenant and not all(ch.isalnum() or ch in "-_." for ch in tenant):
        raise BadInput("Tenant may hold only letters, digits, dots, dashes and underscores.", field="tenant")
    since = _parse_since(form.invoices_created_since, today) if role == IntegrationRole.PRIMARY else None
    return CleanForm(
        partner_name=name, app_domain=domain, client_id=client_id, client_secret=secret,
        invoices_created_since=since, invoice_number_field=number_field, integration_role=role, tenant=tenant,
        partner_id=existing.id if existing else None,
    )


def _stored_secret(existing: Any, domain: str, tenant: str | None, settings: Settings) -> str:
    """An empty Client Secret keeps the stored one, but only for the App Domain and tenant it was entered for: a
    stored secret is never sent to another host."""
    if existing is None or existing.client_secret_encrypted is None:
        raise BadInput("Client Secret is required: generate one on the API application in HaloPSA.",
                       field="client_secret")
    if (domain, tenant) != (existing.app_domain, existing.tenant):
        raise BadInput("The App Domain or tenant changed, so enter the Client Secret again: the stored one is only "
                       f"ever sent to {existing.app_domain}.", field="client_secret")
    return secret_box(settings).decrypt(existing.client_secret_encrypted)


def verify(clean: CleanForm, *, settings: Settings, transport: Any = None,
           progress: ProgressFn | None = None) -> Verification:
    """Ask HaloPSA for a token and compare the granted scopes with the seven the integration needs; with all seven,
    probe what the tenant supports. Each step, and each retry or wait on the way, is announced to `progress`."""
    say = progress or _quiet
    say(STEP_TOKEN)
    with build_client(
        app_domain=clean.app_domain, client_id=clean.client_id, client_secret=clean.client_secret,
        tenant=clean.tenant, settings=settings, transport=transport, on_event=lambda event: say(event.reason),
    ) as client:
        check = client.verify()
        say(STEP_PERMISSIONS)
        verification = Verification(app_domain=clean.app_domain, granted=tuple(check.granted),
                                    missing=tuple(check.missing))
        if not verification.ok:
            return verification
        say(STEP_PROBE)
        try:
            return replace(verification, probe=probe(client))
        except HaloError as error:  # the credentials work: saving goes ahead, and the first sync probes again
            return replace(verification, probe_error=error.retold(PROBE_LATER).message)


def save(engine: Engine, principal: Principal, clean: CleanForm, verification: Verification, *, now: datetime,
         settings: Settings) -> int:
    """Store a verified connection (creating the partner if new); returns the partner id."""
    # checked here too, not only in validate_form: only cs creates partners, a partner user edits only its own
    if clean.partner_id is None:
        require_role(principal, Role.CS)
    else:
        require_role(principal, Role.CS, Role.PARTNER)
        require_partner_access(principal, clean.partner_id)
    if not verification.ok:
        raise PermissionMissing(list(verification.missing))
    encrypted = secret_box(settings).encrypt(clean.client_secret)
    values = {
        "app_domain": clean.app_domain, "tenant": clean.tenant, "client_id": clean.client_id,
        "client_secret_encrypted": encrypted, "invoices_created_since": clean.invoices_created_since,
        "invoice_number_field": clean.invoice_number_field.value, "integration_role": clean.integration_role.value,
        "granted_scopes": " ".join(verification.granted), "missing_scopes": "", "last_verified_at": now,
        "last_error": None,
    }
    with engine.begin() as conn:
        partner_id = clean.partner_id
        if partner_id is None:
            partner_id = inserted_id(conn.execute(
                PARTNER_TABLE.insert().values(name=clean.partner_name, status=PartnerStatus.CONNECTED, created_at=now)
            ))
        else:
            require_partner_access(principal, partner_id)
        previous = conn.execute(select(CONNECTION_TABLE).where(CONNECTION_TABLE.c.partner_id == partner_id)).first()
        if previous is None:
            conn.execute(CONNECTION_TABLE.insert().values(partner_id=partner_id, connected_at=now,
                                                          numbered_by=clean.invoice_number_field, **values))
            action, detail = AuditAction.CONNECT, f"{clean.integration_role.value} integration at {clean.app_domain}"
        else:
            conn.execute(update(CONNECTION_TABLE).where(CONNECTION_TABLE.c.partner_id == partner_id).values(**values))
            action, detail = AuditAction.EDIT_CONNECTION, _describe_changes(previous, values)
            if previous.invoice_number_field != clean.invoice_number_field.value:
                _queue_renumbering(conn, principal, partner_id, clean.partner_name, now)
        conn.execute(update(PARTNER_TABLE).where(PARTNER_TABLE.c.id == partner_id)
                     .values(status=PartnerStatus.CONNECTED))
        cooldowns.ensure_rows(conn, partner_id)
        audit.record(conn, actor=principal.user, action=action, partner_id=partner_id, now=now, detail=detail)
    if verification.probe is not None:
        probes.record(engine, int(partner_id), clean, verification.probe, {}, now=now)
    return int(partner_id)


def _describe_changes(previous: Any, values: dict[str, Any]) -> str:
    labels = {"app_domain": "App Domain", "tenant": "tenant", "client_id": "Client ID",
              "invoices_created_since": "Invoices Created Since", "invoice_number_field": "Invoice Number Field",
              "integration_role": "integration role"}
    changed = [label for key, label in labels.items() if getattr(previous, key) != values[key]]
    if previous.client_secret_encrypted != values["client_secret_encrypted"]:
        changed.append("Client Secret (re-encrypted)")
    return "changed: " + ", ".join(changed) if changed else "verified again, nothing changed"


def _queue_renumbering(conn: Any, principal: Principal, partner_id: int, partner_name: str, now: datetime) -> None:
    """A worker renumbers the stored invoices in one transaction; until then every page is still written by the old
    field, so the numbering is never mixed. One already queued reads the field when it runs, so it serves."""
    with suppress(SyncAlreadyQueued):
        jobs.enqueue(conn, partner_id=partner_id, partner_name=partner_name, kind=RunKind.RENUMBER,
                     trigger=RunTrigger.EDIT, requested_by=principal.user, now=now)


def nothing_saved(error: HaloError, again: str) -> HaloError:
    """The error as a connect tells it: nothing was saved, and what to do (`again`, after the wait HaloPSA asked
    for), instead of what a sync would do next."""
    wait = error.retry_after if isinstance(error, RateLimited) else None
    after = f" after {format_duration(timedelta(seconds=wait))}" if wait else ""
    return error.retold(f"Nothing was saved; {again}{after}.")


def _audited_verify(engine: Engine, principal: Principal, clean: CleanForm, *, now: datetime, settings: Settings,
                    transport: Any, progress: ProgressFn | None = None, again: str = TRY_AGAIN,
                    note: str = "") -> Verification:
    """`verify`, with every attempt in the audit log whatever its outcome: who tried, for which partner, at which
    App Domain (a failed or refused edit saves nothing else). A HaloPSA failure says nothing was saved."""
    tried = f"{clean.partner_name} at {clean.app_domain}" + (f" (tenant {clean.tenant})" if clean.tenant else "")
    try:
        verification = verify(clean, settings=settings, transport=transport, progress=progress)
    except Exception as exc:
        told = nothing_saved(exc, again) if isinstance(exc, HaloError) else exc
        reason = told.message if isinstance(told, ConsoleError) else "an unexpected error"
        _audit_verification(engine, principal, clean, now, f"{tried}: failed: {reason}{note}")
        if told is not exc:
            raise told from exc
        raise
    outcome = ("all permissions granted" if verification.ok
               else f"permissions missing: {', '.join(verification.missing)}")
    if verification.probe is not None:
        outcome += f"; checked what it supports ({requests_text(verification.probe.requests)})"
    elif verification.probe_error:
        outcome += f"; could not check what it supports: {verification.probe_error}"
    _audit_verification(engine, principal, clean, now, f"{tried}: {outcome}{note}")
    return verification


def _audit_verification(engine: Engine, principal: Principal, clean: CleanForm, now: datetime, detail: str) -> None:
    with engine.begin() as conn:
        audit.record(conn, actor=principal.user, action=AuditAction.VERIFY_CONNECTION, partner_id=clean.partner_id,
                     now=now, detail=detail)


def connect(engine: Engine, principal: Principal, form: ConnectionForm, *, now: datetime, settings: Settings,
            transport: Any = None, progress: ProgressFn | None = None,
            again: str = TRY_AGAIN) -> tuple[int, Verification]:
    """Validate, verify and save in that order, announcing each step (STEPS) to `progress`; raises (with nothing
    saved) when any step refuses, a HaloPSA failure saying so and what to do (`again`)."""
    _, partner_id, verification = _connect(engine, principal, form, now=now, settings=settings, transport=transport,
                                           progress=progress, again=again)
    return partner_id, verification


def _connect(engine: Engine, principal: Principal, form: ConnectionForm, *, now: datetime, settings: Settings,
             transport: Any, progress: ProgressFn | None, again: str) -> tuple[CleanForm, int, Verification]:
    say = progress or _quiet
    say(STEP_DOMAIN)
    clean = validate_form(engine, principal, form, settings=settings, today=now.date())
    verification = _audited_verify(engine, principal, clean, now=now, settings=settings, transport=transport,
                                   progress=say, again=again)
    if not verification.ok:
        raise PermissionMissing(list(verification.missing))
    say(STEP_SAVE)
    return clean, save(engine, principal, clean, verification, now=now, settings=settings), verification


@dataclass(frozen=True)
class Checked:
    """A connection checked without saving anything: what HaloPSA answered (permissions, and what the tenant supports
    once all seven are there), and a warning when another partner is connected to the same HaloPSA tenant."""

    verification: Verification
    tenant_warning: str | None = None


def check_connection(engine: Engine, principal: Principal, form: ConnectionForm, *, now: datetime,
                     settings: Settings, transport: Any = None, progress: ProgressFn | None = None,
                     again: str = TRY_AGAIN) -> Checked:
    """Validate and verify as connecting does (the same steps, audited as a verification), but save nothing: missing
    permissions are returned, not raised."""
    say = progress or _quiet
    say(STEP_DOMAIN)
    clean = validate_form(engine, principal, form, settings=settings, today=now.date())
    verification = _audited_verify(engine, principal, clean, now=now, settings=settings, transport=transport,
                                   progress=say, again=again, note=CHECK_NOTE)
    return Checked(verification, shared_tenant(engine, principal, app_domain=clean.app_domain,
                                               client_id=clean.client_id, partner_id=clean.partner_id))


def shared_tenant(engine: Engine, principal: Principal, *, app_domain: str, client_id: str,
                  partner_id: int | None) -> str | None:
    """A warning (never a refusal) when a partner other than `partner_id` is connected to the same HaloPSA tenant:
    the same App Domain (as stored, whatever its case) and Client ID. Customer success is told which partners; a
    partner user only that there is one."""
    require_role(principal, Role.CS, Role.PARTNER)
    if partner_id is not None:
        require_partner_access(principal, partner_id)
    query = (select(PARTNER_TABLE.c.name)
             .select_from(PARTNER_TABLE.join(CONNECTION_TABLE, CONNECTION_TABLE.c.partner_id == PARTNER_TABLE.c.id))
             .where(func.lower(CONNECTION_TABLE.c.app_domain) == app_domain.lower(),
                    CONNECTION_TABLE.c.client_id == client_id)
             .order_by(PARTNER_TABLE.c.name))
    if partner_id is not None:
        query = query.where(PARTNER_TABLE.c.id != partner_id)
    with engine.connect() as conn:
        others = list(conn.scalars(query))
    if not others:
        return None
    if principal.role != Role.CS:
        return ("Another partner is already connected to this HaloPSA tenant (the same App Domain and Client ID). "
                "Ask customer success to check that this is intended.")
    named = ", ".join(others[:3]) + (f" and {len(others) - 3:,} more" if len(others) > 3 else "")
    return (f"{named} {'is' if len(others) == 1 else 'are'} already connected to this HaloPSA tenant (the same App "
            "Domain and Client ID): both partners would sync, and could charge, the same invoices. Check that this "
            "is the partner you meant.")


@dataclass(frozen=True)
class Connected:
    """A saved connection; for a primary integration its first backfill: queued (`backfill_job`), and how it ended
    when the caller ran it here (`backfill`); and the renumbering an Invoice Number Field change queued."""

    partner_id: int
    verification: Verification
    backfill_job: int | None = None
    backfill: RunResult | None = None
    renumber_job: int | None = None
    tenant_warning: str | None = None  # another partner is connected to the same HaloPSA tenant


def connect_and_backfill(engine: Engine, principal: Principal, form: ConnectionForm, *, now: datetime,
                         settings: Settings, client_factory: ClientFactory | None = None,
                         progress: ProgressFn | None = None, transport: Any = None,
                         again: str = TRY_AGAIN) -> Connected:
    """The one path from the connection form to synced data, used by the Connection page, the CLI and the demo:
    validate, verify and save (nothing saved when a step refuses), then queue a primary integration's backfill.
    With a client factory the backfill runs here, under the same lease and fencing as a worker (CLI, demo); without
    one a worker runs it (the console never runs a sync)."""
    clean, partner_id, verification = _connect(engine, principal, form, now=now, settings=settings,
                                               transport=transport, progress=progress, again=again)
    with engine.connect() as conn:
        renumber_job = jobs.waiting_job(conn, partner_id, RunKind.RENUMBER)
    warning = shared_tenant(engine, principal, app_domain=clean.app_domain, client_id=clean.client_id,
                            partner_id=partner_id)
    saved = Connected(partner_id, verification, renumber_job=renumber_job, tenant_warning=warning)
    if form.integration_role != IntegrationRole.PRIMARY:
        return saved
    try:
        with engine.begin() as conn:
            job_id = jobs.enqueue(conn, partner_id=partner_id, partner_name=form.partner_name, kind=RunKind.BACKFILL,
                                  trigger=RunTrigger.CONNECT, requested_by=principal.user, now=now)
    except SyncAlreadyQueued:  # an edit of a partner whose backfill is still queued: that one will do
        return saved
    if client_factory is None:
        return replace(saved, backfill_job=job_id)
    if progress:
        progress("Backfilling customers, agreements and invoices")
    backfill = worker.run_job_now(engine, settings, client_factory, job_id,
                                  lease=timedelta(seconds=settings.lease_s), progress=progress, now=now)
    return replace(saved, backfill_job=job_id, backfill=backfill)
