"""The HaloPSA side of connecting: the setup steps, the seven permissions with a fix hint for each missing one, the
stored connection as the Connection page shows and pre-fills it (never its secret), and which form field an error
belongs under.

A permission is ticked (granted), crossed (missing) or unknown (never verified), from a fresh Verification, from a
PermissionMissing error, or from the scopes stored at the last verification (a later sync can add missing ones).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from core.access import Principal, require_partner_access, require_role
from core.actions.connect import Verification, shared_tenant
from core.console.formatting import count, escape_markdown
from core.errors import BadInput, ConsoleError, InvalidDomain
from core.halopsa.app_domain import SANDBOX_SUFFIX, is_sandbox_domain, normalize_app_domain
from core.halopsa.auth import check_scopes
from core.halopsa.config import REQUIRED_SCOPES
from core.settings import Settings
from core.store.tables import (
    CONNECTION_TABLE,
    INVOICE_TABLE,
    JOB_TABLE,
    PARTNER_TABLE,
    IntegrationRole,
    JobState,
    NumberField,
    Role,
    RunKind,
)
from core.sync import jobs, probes
from core.sync.listings import requests_text
from core.sync.streams import NUMBER_FIELD_LABELS

APPLICATIONS_PATH = "Configuration > Integrations > HaloPSA API > View Applications"
TRAINEE_SANDBOX = "trainee" + SANDBOX_SUFFIX

SETUP_STEPS: tuple[str, ...] = (
    "Turn off HaloPSA's native QuickBooks Online invoice sync first (Configuration > Integrations > QuickBooks "
    "Online), so invoices are not synced twice.",
    f"Create an API application: {APPLICATIONS_PATH} > New.",
    "Authentication Method: **Client ID and Secret (Services)**.",
    "Login Type: **Agent**, with an agent that can see every customer.",
    "On the application's Permissions tab tick all seven: " + ", ".join(f"`{s}`" for s in REQUIRED_SCOPES) + ".",
    "Save, then copy the Client ID and Client Secret into the form below.",
)

PERMISSION_PURPOSES: dict[str, str] = {
    "admin:webhooks": "registers webhooks so changes arrive without waiting for the hourly sync",
    "read:customers": "reads your customers",
    "edit:customers": "updates customers' payment settings",
    "read:invoices": "reads invoices and their amounts due",
    "edit:invoices": "records payments against invoices",
    "read:contracts": "reads agreements (contracts) and their subtypes",
    "edit:contracts": "updates agreements' auto-pay settings",
}

FIELD_LABELS: dict[str, str] = {
    "partner_name": "Partner name",
    "app_domain": "App Domain",
    "client_id": "Client ID",
    "client_secret": "Client Secret",
    "invoices_created_since": "Invoices Created Since",
    "invoice_number_field": "Invoice Number Field",
    "integration_role": "Integration",
    "tenant": "Tenant",
}
ROLE_LABELS = {IntegrationRole.PRIMARY.value: "Primary", IntegrationRole.SECONDARY.value: "Secondary"}
# What a failed connect or test tells the person to do (core.actions.connect: "Nothing was saved; …")
CONTINUE_AGAIN = "press Continue to try again"
TEST_AGAIN = "press Test connection to try again"
RENUMBER_QUESTION = ("Press **Save and renumber** to go ahead, or set the Invoice Number Field back and press "
                     "Continue.")
NUMBER_LABELS = {field.value: label for field, label in NUMBER_FIELD_LABELS.items()}


@dataclass(frozen=True)
class PermissionCheck:
    scope: str
    granted: bool | None
    purpose: str

    @property
    def fix(self) -> str | None:
        """What to do in HaloPSA when the permission is missing (None when granted or not yet known)."""
        if self.granted is not False:
            return None
        return (f"In HaloPSA open {APPLICATIONS_PATH}, open this console's application, tick `{self.scope}` on its "
                "Permissions tab, save, then press Continue again.")


def checklist_markdown(checks: Iterable[PermissionCheck]) -> str:
    """One line per permission: ticked, crossed (with its fix underneath) or unknown."""
    icons = {True: "✅", False: "❌", None: "❔"}
    return "\n\n".join(f"{icons[c.granted]} `{c.scope}`: {c.purpose}" + (f"  \n↳ {c.fix}" if c.fix else "")
                       for c in checks)


def _check(scope: str, granted: bool | None) -> PermissionCheck:
    return PermissionCheck(scope=scope, granted=granted, purpose=PERMISSION_PURPOSES[scope])


def from_verification(verification: Verification) -> list[PermissionCheck]:
    """The seven permissions as HaloPSA just reported them."""
    return [_check(scope, ok) for scope, ok in verification.checklist()]


def from_missing(missing: Iterable[str]) -> list[PermissionCheck]:
    """From a PermissionMissing error: every permission it does not name was granted."""
    return from_verification(Verification(app_domain="", granted=(), missing=tuple(missing)))


def from_stored(granted_scopes: str, missing_scopes: str) -> list[PermissionCheck]:
    """From the stored space-separated scopes; a permission neither granted nor missing is unknown (None)."""
    missing = set(missing_scopes.split())
    granted = granted_scopes.split()
    covered = set(REQUIRED_SCOPES) - set(check_scopes(granted).missing) if granted else set()
    return [_check(scope, False if scope in missing else True if scope in covered else None)
            for scope in REQUIRED_SCOPES]


def error_field(exc: ConsoleError) -> str | None:
    """The form field an error belongs under; None puts it under the Continue button."""
    return exc.field


def require_new_partner_name(engine: Engine, principal: Principal, name: str) -> None:
    """Connecting a *new* partner (cs only) must not silently edit an existing one that has the same name."""
    require_role(principal, Role.CS)
    name = " ".join(name.split())
    with engine.connect() as conn:
        taken = conn.scalar(select(PARTNER_TABLE.c.id).where(PARTNER_TABLE.c.name == name))
    if taken is not None:
        raise BadInput(f"A partner named “{name}” already exists. Pick it in the sidebar to edit its connection.",
                       field="partner_name")


@dataclass(frozen=True)
class SandboxHint:
    """Demo credentials of a sandbox tenant, or (both None) word that the sandbox is connected already."""

    host: str  # as normalize_app_domain writes it: letters, digits, dots and dashes
    client_id: str | None
    client_secret: str | None

    @property
    def markdown(self) -> str:
        if self.client_secret is None:
            return (f"The sandbox `{self.host}` is connected to a partner already, so its Client Secret is not shown. "
                    "To try a sandbox, enter a new name ending in `.sandbox` as the App Domain, e.g. "
                    "`yourname.sandbox`.")
        return (f"No HaloPSA at hand? The sandbox App Domain `{self.host}` answers with Client ID "
                f"`{self.client_id}` and Client Secret `{self.client_secret}`.")


def _sandbox_host(app_domain: str | None) -> str:
    """The sandbox host typed (as it would be stored), else the trainee one."""
    typed = (app_domain or "").strip()
    url = typed if "://" in typed else f"https://{typed}"
    try:
        if typed and is_sandbox_domain(url.rstrip("./")):
            host = urlsplit(normalize_app_domain(typed, sandbox_enabled=True, resolver=lambda _: [])).hostname
            return host or TRAINEE_SANDBOX
    except (InvalidDomain, ValueError):  # half-typed or not an address at all: offer the trainee sandbox
        pass
    return TRAINEE_SANDBOX


def sandbox_hint(engine: Engine, app_domain: str | None, *, settings: Settings) -> SandboxHint | None:
    """Demo credentials of the sandbox tenant typed (else the trainee one), only while no partner is connected to it:
    a connected sandbox's secret is that partner's stored secret. None when sandboxes are off."""
    if not settings.sandbox_enabled:
        return None
    from core.demo import sandbox  # lazily: loads the emulator only when a sandbox is offered

    host = _sandbox_host(app_domain)
    with engine.connect() as conn:
        connected = conn.scalar(select(CONNECTION_TABLE.c.id).where(
            func.lower(CONNECTION_TABLE.c.app_domain) == f"https://{host}").limit(1)) is not None
    if connected:
        return SandboxHint(host=host, client_id=None, client_secret=None)
    client_id, client_secret = sandbox.credentials(host)
    return SandboxHint(host=host, client_id=client_id, client_secret=client_secret)


@dataclass(frozen=True)
class StoredConnection:
    """A partner's saved connection without its secret."""

    partner_id: int
    partner_name: str
    app_domain: str
    client_id: str
    tenant: str | None
    integration_role: str
    invoice_number_field: str
    invoices_created_since: date | None
    last_verified_at: datetime | None
    last_error: str | None
    permissions: list[PermissionCheck]
    tenant_warning: str | None = None  # another partner is connected to the same HaloPSA tenant

    @property
    def facts(self) -> list[tuple[str, str]]:
        since, verified = self.invoices_created_since, self.last_verified_at
        return [
            ("App Domain", self.app_domain),
            ("Client ID", self.client_id),
            ("Integration", ROLE_LABELS.get(self.integration_role, self.integration_role)),
            ("Invoice Number Field", NUMBER_LABELS.get(self.invoice_number_field, self.invoice_number_field)),
            ("Invoices Created Since", since.isoformat() if since else "all"),
            ("Tenant", self.tenant or "none"),
            ("Last verified", verified.strftime("%Y-%m-%d %H:%M UTC") if verified else "never"),
        ]

    def form_values(self) -> dict[str, Any]:
        """What the edit form starts with; the secret field always starts empty."""
        return {"partner_name": self.partner_name, "app_domain": self.app_domain, "client_id": self.client_id,
                "client_secret": "", "invoices_created_since": self.invoices_created_since,
                "invoice_number_field": str(self.invoice_number_field), "integration_role": str(self.integration_role),
                "tenant": self.tenant or ""}


def blank_form_values(partner_name: str = "") -> dict[str, Any]:
    return {"partner_name": partner_name, "app_domain": "", "client_id": "", "client_secret": "",
            "invoices_created_since": None, "invoice_number_field": NumberField.HALO_ID.value,
            "integration_role": IntegrationRole.PRIMARY.value, "tenant": ""}


def stored_connection(engine: Engine, principal: Principal, partner_id: int) -> StoredConnection | None:
    """The partner's saved connection (None when it has none yet); cs or the partner itself only."""
    require_role(principal, Role.CS, Role.PARTNER)
    require_partner_access(principal, partner_id)
    c = CONNECTION_TABLE.c
    with engine.connect() as conn:
        row = conn.execute(
            select(PARTNER_TABLE.c.name, c.app_domain, c.client_id, c.tenant, c.integration_role,
                   c.invoice_number_field, c.invoices_created_since, c.last_verified_at, c.last_error,
                   c.granted_scopes, c.missing_scopes)
            .select_from(PARTNER_TABLE.join(CONNECTION_TABLE, c.partner_id == PARTNER_TABLE.c.id))
            .where(PARTNER_TABLE.c.id == partner_id)
        ).first()
    if row is None:
        return None
    return StoredConnection(
        partner_id=partner_id, partner_name=row.name, app_domain=row.app_domain, client_id=row.client_id,
        tenant=row.tenant,
        integration_role=row.integration_role, invoice_number_field=row.invoice_number_field,
        invoices_created_since=row.invoices_created_since, last_verified_at=row.last_verified_at,
        last_error=row.last_error, permissions=from_stored(row.granted_scopes, row.missing_scopes),
        tenant_warning=shared_tenant(engine, principal, app_domain=row.app_domain, client_id=row.client_id,
                                     partner_id=partner_id),
    )


@dataclass(frozen=True)
class TenantCheck:
    """What the last check of the partner's HaloPSA found (core.halopsa.probe), for the Connection page."""

    ran_at: datetime | None  # None: never checked on the tenant the connection reads now
    requests: int
    findings: list[str]
    stale_reason: str | None
    queued: bool  # a check is queued or running

    @property
    def headline(self) -> str:
        if self.ran_at is None:
            return "Not checked yet: the next sync checks what this HaloPSA supports first."
        text = f"Checked {self.ran_at:%Y-%m-%d %H:%M} UTC with {requests_text(self.requests)}."
        if self.stale_reason:
            text += f" The next sync checks again: {self.stale_reason}."
        return text


def tenant_check(engine: Engine, principal: Principal, partner_id: int) -> TenantCheck | None:
    """The partner's last tenant check (None without a connection); cs or the partner itself only."""
    require_role(principal, Role.CS, Role.PARTNER)
    require_partner_access(principal, partner_id)
    with engine.connect() as conn:
        connection = conn.execute(select(CONNECTION_TABLE).where(CONNECTION_TABLE.c.partner_id == partner_id)).first()
        queued = conn.scalar(select(JOB_TABLE.c.id).where(
            JOB_TABLE.c.active_key == jobs.active_key(partner_id, RunKind.PROBE))) is not None
    if connection is None:
        return None
    found = probes.stored(engine, partner_id, connection)
    if found is None:
        return TenantCheck(None, 0, [], None, queued)
    return TenantCheck(found.ran_at, found.result.requests, found.result.describe(), found.stale_reason, queued)


@dataclass(frozen=True)
class RenumberPreview:
    """What saving a new Invoice Number Field does to a partner's stored invoices, said before it is saved."""

    partner_name: str
    old_field: NumberField
    new_field: NumberField
    invoices: int  # stored invoices, every one renumbered
    fallbacks: int  # without a third-party number: numbered by their HaloPSA ID, marked as a fallback
    duplicates: int  # third-party numbers that more than one stored invoice carries
    running: RunKind | None  # a sync of the partner running now: the renumbering waits for it

    @property
    def sentences(self) -> list[str]:
        """Plain sentences, the partner's name in them as stored (escape them where drawn)."""
        old, new = NUMBER_LABELS[self.old_field], NUMBER_LABELS[self.new_field]
        if not self.invoices:
            return [f"Saving numbers {self.partner_name}'s invoices by {new} instead of {old}. No invoices are stored "
                    "yet, so nothing is renumbered: the next sync writes them by the new field."]
        said = [f"Saving renumbers all {count(self.invoices, 'stored invoice')} of {self.partner_name} by {new} "
                f"instead of {old}.",
                "A sync worker does it in one step, without a single request to HaloPSA: it takes seconds, starting "
                "as soon as a worker is free" + (f", after the {self.running.value.replace('_', ' ')} sync of this "
                                                 "partner running now ends" if self.running else "")
                + ". Until then every invoice keeps its current number; the Syncs page shows when it ran."]
        if self.new_field == NumberField.THIRD_PARTY and self.fallbacks:
            said.append(f"{count(self.fallbacks, 'invoice')} {'has' if self.fallbacks == 1 else 'have'} no third-party "
                        "number: they keep their HaloPSA ID as number, marked as a fallback.")
        if self.new_field == NumberField.THIRD_PARTY and self.duplicates:
            said.append(f"{count(self.duplicates, 'third-party number')} {'is' if self.duplicates == 1 else 'are'} "
                        "carried by more than one invoice: those invoices will show the same number.")
        return said


def renumber_preview(engine: Engine, principal: Principal, partner_id: int,
                     new_field: str) -> RenumberPreview | None:
    """What saving `new_field` as the partner's Invoice Number Field would renumber; None when it is the stored one
    (or no field at all, or the partner has no connection yet). cs or the partner itself only."""
    require_role(principal, Role.CS, Role.PARTNER)
    require_partner_access(principal, partner_id)
    try:
        field = NumberField(new_field)
    except ValueError:
        return None
    invoice = INVOICE_TABLE.c
    with engine.connect() as conn:
        row = conn.execute(
            select(PARTNER_TABLE.c.name, CONNECTION_TABLE.c.invoice_number_field)
            .select_from(PARTNER_TABLE.join(CONNECTION_TABLE, CONNECTION_TABLE.c.partner_id == PARTNER_TABLE.c.id))
            .where(PARTNER_TABLE.c.id == partner_id)
        ).first()
        if row is None or row.invoice_number_field == field:
            return None
        numbered = invoice.third_party_number.is_not(None) & (invoice.third_party_number != "")
        invoices, with_number = conn.execute(
            select(func.count(), func.count().filter(numbered)).where(invoice.partner_id == partner_id)).one()
        shared = (select(invoice.third_party_number).where(invoice.partner_id == partner_id, numbered)
                  .group_by(invoice.third_party_number).having(func.count() > 1).subquery())
        duplicates = conn.scalar(select(func.count()).select_from(shared))
        running = conn.scalar(select(JOB_TABLE.c.kind).where(
            JOB_TABLE.c.partner_id == partner_id, JOB_TABLE.c.state == JobState.RUNNING).limit(1))
    return RenumberPreview(partner_name=row.name, old_field=NumberField(row.invoice_number_field), new_field=field,
                           invoices=invoices, fallbacks=invoices - with_number, duplicates=duplicates or 0,
                           running=RunKind(running) if running else None)


def check_headline(verification: Verification) -> str:
    """What a connection check (nothing saved) found, in one sentence for the top of its result."""
    if verification.ok:
        return ("HaloPSA accepted these credentials and granted all seven permissions. Nothing was saved: press "
                "Continue to save the connection.")
    return (f"HaloPSA accepted these credentials, but the API application lacks: {', '.join(verification.missing)}. "
            "Nothing was saved: tick them in HaloPSA as shown below, then test again.")


def probe_markdown(verification: Verification) -> str | None:
    """What the check found the tenant supports, as an escaped Markdown list (it quotes HaloPSA: addresses, codes);
    None when the probe did not run (permissions missing)."""
    if verification.probe is not None:
        return "\n".join(f"- {escape_markdown(sentence)}" for sentence in verification.probe.describe())
    if verification.probe_error:
        return escape_markdown(f"Could not check what this HaloPSA supports: {verification.probe_error}")
    return None
