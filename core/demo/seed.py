"""The demo: on first start of the embedded default, connect a handful of partners to sandbox tenants and replay
weeks of hourly history through the real sync engine on the sandbox clock, so every chart and table has real content.

Partners and their stories:
- Northwind IT: primary, Third Party Invoice Number, its subtype lookup set (names verified), subtypes mapped to
  auto-pay rules, uses manual fetches.
- Contoso Managed Services: primary, agreements synced but no subtype mapped yet, no subtype lookup (ids only); two
  days before the end its HaloPSA drifts where no sync looks (sandbox), and the last hour's reconciliation finds it.
- Fabrikam Networks: HaloPSA as the secondary integration.
- Tailspin Technologies: primary; its subtype lookup set to another table (not verified); the API application later
  loses two permissions.
- Litware Systems: primary; its HaloPSA starts failing in the last week.
A few of Northwind's records arrive unreadable (BAD_RECORDS), so the Syncs page has record errors to group.
For the invoice tracer, every kind of answer has an invoice: Northwind's unreadable invoices (rejected), credit notes,
drafts, voided and deleted invoices in the sandboxes' books, Contoso's unmapped subtypes, Tailspin's invoices dated
before its Invoices Created Since (never synced), and invoices raised after a last sync window: customer success
cancels the last scheduled syncs of Contoso or Tailspin (STALLED), from the hour after the latest invoice one of their
books raised, so that invoice is in HaloPSA and not synced yet (`traceable` names one of each).
The fleet's issues are evaluated after every replayed hour, as the scheduler does each tick, so the Overview's worklist
and its recently resolved issues carry their history.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from core.access import Principal
from core.actions import autopay_rules, subtype_names
from core.actions import connect as connections
from core.actions import fetches as actions
from core.actions import reconcile as reconciliations
from core.demo import sandbox
from core.errors import ConsoleError
from core.health import issues
from core.settings import Settings
from core.store.tables import AutoPayTrigger, IntegrationRole, NumberField, Partner, Role, RunKind
from core.store.users import add_user
from core.sync import jobs, scheduler, worker
from core.sync.connector import ClientFactory, stored_client_factory
from halo_emulator import EmulatorConfig, FaultRule
from halo_emulator.evolution import plan_hour

log = logging.getLogger(__name__)
DEMO_PASSWORD = "demo-password"
REPLAY_DAYS = 21
EVALUATE_AFTER = timedelta(minutes=59)  # into each replayed hour: after its last press (see _presses)


@dataclass(frozen=True)
class DemoPartner:
    name: str
    host: str
    connect_after: timedelta
    role: IntegrationRole = IntegrationRole.PRIMARY
    number_field: NumberField = NumberField.HALO_ID
    rules: dict[str, tuple[timedelta, autopay_rules.RuleInput]] = field(default_factory=dict)
    fetches: bool = False
    lookup: int | None = None
    """Which of its sandbox tenant's lookups is set as the subtype lookup right after connecting (0: the subtypes';
    another: one of its other tables, which does not verify); None: none."""
    created_since: timedelta | None = None
    """Invoices Created Since, this long before the replay starts; None: every invoice is synced."""


DEMO_PARTNERS = (
    DemoPartner(
        "Northwind IT", "northwind.sandbox", timedelta(hours=9), number_field=NumberField.THIRD_PARTY, fetches=True,
        lookup=0, rules={
            "Managed Services": (timedelta(days=3, hours=10), autopay_rules.RuleInput(
                subtype_id=1, enabled=True, trigger=AutoPayTrigger.ON_DUE_DATE, days=0)),
            "Backup": (timedelta(days=6, hours=15), autopay_rules.RuleInput(
                subtype_id=2, enabled=True, trigger=AutoPayTrigger.DAYS_AFTER_DUE, days=3,
                max_amount=Decimal("2500.00"))),
        },
    ),
    DemoPartner("Litware Systems", "litware.sandbox", timedelta(days=1, hours=11)),
    DemoPartner("Tailspin Technologies", "tailspin.sandbox", timedelta(days=2, hours=14), lookup=2,
                created_since=timedelta(days=7)),
    DemoPartner("Contoso Managed Services", "contoso.sandbox", timedelta(days=4, hours=10)),
    DemoPartner("Fabrikam Networks", "fabrikam.sandbox", timedelta(days=6, hours=16),
                role=IntegrationRole.SECONDARY),
)
# Records HaloPSA sends that cannot be read: (partner, hours before the end of the replay, listing). The middle record
# of that hour's first page of the listing arrives with its default field spoilt (an invoice's total "abc", a
# customer's name missing, an agreement's start date "not-a-date"); the rest of the run goes on.
BAD_RECORDS: tuple[tuple[str, int, str], ...] = (
    ("Northwind IT", 40, "/api/Invoice"), ("Northwind IT", 30, "/api/Invoice"), ("Northwind IT", 30, "/api/Client"),
    ("Northwind IT", 20, "/api/ClientContract"), ("Northwind IT", 20, "/api/Invoice"),
)
STALLED = ("Contoso Managed Services", "Tailspin Technologies")
"""Partners whose last scheduled syncs customer success cancels (see `stalled`), at most STALLED_HOURS of them."""
STALLED_HOURS = 20
RECONCILED = "Contoso Managed Services"  # reconciled in the replay's last hour: its drift shows
RECONCILE_AT = timedelta(minutes=45)
CS = Principal(role=Role.CS, user="cs@demo.local")
PM_EMAIL = "pm@demo.local"
PARTNER_EMAIL = "finance@northwind.demo"


def should_seed(engine: Engine, settings: Settings) -> bool:
    """Seed only the embedded default with sandboxes on, and only into an empty database."""
    if not settings.demo_enabled or not settings.sandbox_enabled:
        return False
    with engine.connect() as conn:
        return not conn.scalar(select(func.count()).select_from(Partner))


def _connect(engine: Engine, partner: DemoPartner, *, now: datetime, start: datetime, settings: Settings,
             factory: ClientFactory) -> int:
    client_id, client_secret = sandbox.credentials(partner.host)
    since = (start - partner.created_since).date() if partner.created_since is not None else None
    form = connections.ConnectionForm(
        partner_name=partner.name, app_domain=partner.host, client_id=client_id, client_secret=client_secret,
        invoice_number_field=partner.number_field, integration_role=partner.role, invoices_created_since=since,
    )
    partner_id = connections.connect_and_backfill(engine, CS, form, now=now, settings=settings,
                                                  client_factory=factory).partner_id
    if partner.lookup is not None:
        subtype_names.set_lookup(engine, CS, partner_id, sandbox.lookup_ids(partner.host)[partner.lookup], now=now,
                                 settings=settings, client_factory=factory)
    return partner_id


def seed(engine: Engine, *, settings: Settings, now: datetime,
         progress: Callable[[str], None] | None = None, days: int = REPLAY_DAYS) -> None:
    """Create the demo partners and accounts and replay `days` of hourly history up to `now`."""
    say = progress or (lambda message: None)
    # History is replayed in seconds, not weeks: the sandbox has no rate limit, so neither does the replay.
    replay = replace(settings, max_attempts=2, backoff_cap_s=0.01, fixed_now=None, rate_limit_requests=10**9,
                     page_size=200)
    factory = stored_client_factory(replay)
    end = now.replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    partner_ids: dict[str, int] = {}
    partner_user: Principal | None = None
    stall = stalled(end, replay)
    try:
        hour = start
        while hour <= end:
            sandbox.REGISTRY.pinned_now = hour
            for partner in DEMO_PARTNERS:
                if partner.name not in partner_ids and hour >= start + partner.connect_after:
                    partner_ids[partner.name] = _connect(engine, partner, now=hour, start=start, settings=replay,
                                                         factory=factory)
                    if partner.fetches and partner_user is None:
                        partner_user = _add_accounts(engine, partner_ids[partner.name])
            spoilt = _spoil_records(hour=hour, end=end, partner_ids=partner_ids, settings=replay)
            # the replay's syncs run on its clock: each at its hour, not all at the moment of seeding
            hourly = replace(replay, fixed_now=hour)
            scheduler.enqueue_due(engine, now=hour, settings=hourly)
            if stall is not None and hour >= stall[1] and stall[0] in partner_ids:
                _cancel_scheduled(engine, partner_ids[stall[0]], now=hour)
            worker.drain(engine, hourly, factory, lease=timedelta(seconds=hourly.lease_s))
            for rule in spoilt:
                rule.times = rule.fired  # spent: no later request meets it
            _people(engine, hour=hour, start=start, partner_ids=partner_ids, partner_user=partner_user,
                    settings=replay, factory=factory)
            if hour == end and RECONCILED in partner_ids:
                _reconcile(engine, partner_ids[RECONCILED], now=min(hour + RECONCILE_AT, now), settings=replay,
                           factory=factory)
            # as the scheduler does each tick, once the hour's presses are in: the issues carry their history
            issues.evaluate(engine, now=min(hour + EVALUATE_AFTER, now), settings=replay)
            if hour.hour == 0:
                say(f"Demo history: {(hour - start).days} of {days} days replayed")
            hour += timedelta(hours=1)
    finally:
        sandbox.REGISTRY.pinned_now = None
    say("Demo ready.")


def _raises_invoices(config: EmulatorConfig, hour: datetime) -> bool:
    """Whether a sandbox's books raise an invoice during the hour starting at `hour` (its clock is a pure function)."""
    return any(event.kind in ("new_invoice", "recurring")
               for event in plan_hour(config, int(hour.timestamp()) // 3600))


def stalled(end: datetime, settings: Settings) -> tuple[str, datetime] | None:
    """Which STALLED partner's scheduled syncs customer success cancels at the end of the replay, and from which hour:
    the one whose books raised an invoice most recently (within STALLED_HOURS), from the hour after. That invoice is
    then in HaloPSA, raised after the partner's last sync window, and not synced yet. None: neither raised one."""
    hosts = {partner.name: partner.host for partner in DEMO_PARTNERS}
    for back in range(1, STALLED_HOURS + 1):
        hour = end - timedelta(hours=back)
        for name in STALLED:
            if _raises_invoices(sandbox.REGISTRY.tenant(hosts[name], settings).emulator.config, hour):
                return name, hour + timedelta(hours=1)
    log.warning("no stalled partner raised an invoice in the last %s hours", STALLED_HOURS)
    return None


def _cancel_scheduled(engine: Engine, partner_id: int, *, now: datetime) -> None:
    """Customer success cancels the partner's queued scheduled sync (audited), as during a HaloPSA maintenance."""
    with engine.connect() as conn:
        job_id = jobs.waiting_job(conn, partner_id, RunKind.SCHEDULED)
    if job_id is not None:
        actions.cancel_sync(engine, CS, partner_id=partner_id, job_id=job_id, now=now)


def _spoil_records(*, hour: datetime, end: datetime, partner_ids: dict[str, int],
                   settings: Settings) -> list[FaultRule]:
    """Arm this hour's BAD_RECORDS on their sandbox tenants (one listing page each); returns the rules."""
    hosts = {partner.name: partner.host for partner in DEMO_PARTNERS}
    rules = []
    for name, hours_before, listing in BAD_RECORDS:
        if hour == end - timedelta(hours=hours_before) and name in partner_ids:
            tenant = sandbox.REGISTRY.tenant(hosts[name], settings)
            rules.append(tenant.emulator.add_fault(FaultRule(kind="malformed_record", path=listing, method="GET")))
    return rules


def _reconcile(engine: Engine, partner_id: int, *, now: datetime, settings: Settings, factory: ClientFactory) -> None:
    try:
        reconciliations.reconcile_now(engine, CS, partner_id=partner_id, now=now, settings=settings,
                                      client_factory=factory)
    except ConsoleError as exc:
        log.debug("demo reconciliation refused: %s", exc.message)


def _add_accounts(engine: Engine, northwind_id: int) -> Principal:
    add_user(engine, email=CS.user, name="Casey (customer success)", role=Role.CS, password=DEMO_PASSWORD)
    add_user(engine, email=PM_EMAIL, name="Priya (product)", role=Role.PM, password=DEMO_PASSWORD)
    add_user(engine, email=PARTNER_EMAIL, name="Noor (Northwind finance)", role=Role.PARTNER,
             password=DEMO_PASSWORD, partner_id=northwind_id)
    return Principal(role=Role.PARTNER, user=PARTNER_EMAIL, partner_id=northwind_id)


def _people(engine: Engine, *, hour: datetime, start: datetime, partner_ids: dict[str, int],
            partner_user: Principal | None, settings: Settings, factory: ClientFactory) -> None:
    """What people did in this hour: map subtypes, and press the manual fetch buttons (sometimes too early)."""
    for partner in DEMO_PARTNERS:
        partner_id = partner_ids.get(partner.name)
        if partner_id is None:
            continue
        for offset, rule in partner.rules.values():
            if hour == start + offset:
                actor = partner_user or CS
                autopay_rules.save_rule(engine, actor, partner_id, rule, now=hour)
        if not partner.fetches or partner_user is None:
            continue
        for kind, who, minute in _presses(hour, partner_user):
            try:
                actions.start_manual_fetch(engine, who, partner_id=partner_id, kind=kind,
                                           now=hour + timedelta(minutes=minute), settings=settings,
                                           client_factory=factory)
            except ConsoleError as exc:
                log.debug("demo press refused: %s", exc.message)


def _presses(hour: datetime, partner_user: Principal) -> list[tuple[str, Principal, int]]:
    """The week's rhythm of manual fetches: (kind, who, minute past the hour). Some land inside a cooldown."""
    if hour.hour not in (9, 15) or hour.weekday() > 4:
        return []
    weekday, morning = hour.weekday(), hour.hour == 9
    presses: list[tuple[str, Principal, int]] = []
    if morning:
        presses.append((RunKind.FETCH_NEW_DATA, partner_user, 7))
        if weekday in (0, 3):
            presses.append((RunKind.FETCH_UNPAID, partner_user, 12))
        if weekday == 4:
            presses.append((RunKind.FETCH_NEW_DATA, partner_user, 40))  # 33 min later: refused by the cooldown
    elif weekday == 0:
        presses.append((RunKind.FETCH_UNPAID, CS, 20))  # 6 h after the partner's fetch: refused
    elif weekday == 2:
        presses.append((RunKind.FETCH_NEW_DATA, CS, 30))
    return presses
