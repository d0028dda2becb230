"""SQLModel tables. Money is integer cents and HaloPSA ids are integers, both BIGINT; each timestamp is timezone-aware
UTC (stored naive-UTC, read back aware). The schema changes only through a migration (core/store/migrations)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Dialect, Index, String, Table, TypeDecorator, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.errors import ErrorKind


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC without a zone (SQLite has none) and hands back aware UTC datetimes."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        # combine() rather than replace(tzinfo=...): the same value at a quarter of the cost, once per stored row
        moment = value.astimezone(UTC)
        return datetime.combine(moment.date(), moment.time())

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        return datetime.combine(value.date(), value.time(), UTC) if value is not None else None

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], Any] | None:
        """SQLite stores the text `YYYY-MM-DD HH:MM:SS.ffffff`: write it in one step instead of SQLAlchemy's two
        (process_bind_param, then the dialect's formatting through a dict), once per stored timestamp. The text is
        checked against SQLAlchemy's own at first use; any other dialect (or storage format) keeps the standard."""
        standard = super().bind_processor(dialect)
        if dialect.name != "sqlite" or standard is None:
            return standard

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            if value.tzinfo is not UTC:
                value = value.astimezone(UTC)
            # %-formatting: half the time of the equivalent f-string, once per stored timestamp of every synced row
            return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (  # noqa: UP031
                value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond)

        probe = datetime(987, 6, 5, 4, 3, 2, 1, tzinfo=timezone(timedelta(hours=-3)))
        return process if process(probe) == standard(probe) else standard


def utc_field(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class IntegrationRole(StrEnum):
    PRIMARY = "primary"
    SECONDARY = "secondary"


class NumberField(StrEnum):
    HALO_ID = "halo_id"
    THIRD_PARTY = "third_party"


class PartnerStatus(StrEnum):
    DRAFT = "draft"
    CONNECTED = "connected"
    ERROR = "error"
    DISCONNECTED = "disconnected"


class RunKind(StrEnum):
    BACKFILL = "backfill"
    SCHEDULED = "scheduled"
    FETCH_NEW_DATA = "fetch_new_data"
    FETCH_UNPAID = "fetch_unpaid"
    RENUMBER = "renumber"  # stored invoices renumbered after an Invoice Number Field change; reads no HaloPSA
    PROBE = "probe"  # checks what the partner's HaloPSA supports (core.halopsa.probe); stores no records
    RECONCILE = "reconcile"  # compares HaloPSA's invoices with the stored ones (core.sync.reconcile); writes no invoice
    RESYNC = "resync"  # re-reads by id exactly the invoices the latest reconciliation found differing


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"
    RATE_LIMITED = "rate_limited"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"


class InvoiceStatus(StrEnum):
    """An invoice as HaloPSA has it. Stored as text (EnumText over a plain string column), so a new word needs no
    migration. Only unpaid and partially paid invoices are owed (UNPAID_STATUSES): a credit note, a draft, a voided
    invoice or one deleted in HaloPSA never is, nor is it ever auto-paid."""

    PAID = "paid"
    UNPAID = "unpaid"
    PARTIALLY_PAID = "partially_paid"
    VOIDED = "voided"
    CREDIT = "credit"  # a credit note (negative total)
    DRAFT = "draft"  # not posted in HaloPSA: a draft or awaiting approval
    DELETED = "deleted"  # not found by id and absent from HaloPSA's listings; kept for history


class Role(StrEnum):
    CS = "cs"
    PARTNER = "partner"
    PM = "pm"


class RunTrigger(StrEnum):
    """Who asked for a run: a person pressing a fetch, the scheduler, connecting a partner (its backfill), editing
    its connection (a renumbering), or a person asking for a check of its HaloPSA."""

    MANUAL = "manual"
    SCHEDULE = "schedule"
    CONNECT = "connect"
    EDIT = "edit"
    REQUEST = "request"  # asked for from the console without a cooldown (a check of what the HaloPSA supports)


class AuditAction(StrEnum):
    CONNECT = "connect"
    EDIT_CONNECTION = "edit_connection"
    MANUAL_FETCH = "manual_fetch"
    MAPPING_CHANGE = "mapping_change"
    EXPORT = "export"
    CANCEL_SYNC = "cancel_sync"
    VERIFY_CONNECTION = "verify_connection"  # every credentials check with HaloPSA, failed ones included
    SIGN_IN = "sign_in"  # a sign-in that worked
    SIGN_IN_FAILED = "sign_in_failed"  # a wrong e-mail or password
    SIGN_IN_LOCKED = "sign_in_locked"  # refused unchecked: too many recent failures for the account or the client
    SIGN_OUT = "sign_out"
    TENANT_CHECK = "tenant_check"  # asked for a check of what the partner's HaloPSA supports
    SUBTYPE_NAMES = "subtype_names"  # the subtype lookup set or cleared, a subtype's name set or cleared
    MANUAL_FETCH_REFUSED = "manual_fetch_refused"  # a press refused by the cooldown, dated for the Adoption page
    SNOOZE_ISSUE = "snooze_issue"  # an Overview issue set aside until a time, with a reason
    UNSNOOZE_ISSUE = "unsnooze_issue"  # its snooze ended early
    TRACE_LOOKUP = "trace_lookup"  # an invoice looked up live in HaloPSA by the tracer (what was asked, the answer)
    RECONCILE = "reconcile"  # asked for a comparison of HaloPSA's invoices with the stored ones
    RESYNC = "resync"  # asked for the differing invoices of the latest reconciliation to be read again


class ThrottleScope(StrEnum):
    """What a sign-in failure counter counts: one account (the e-mail typed) or one client (its address)."""

    ACCOUNT = "account"
    CLIENT = "client"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"


class Lane(StrEnum):
    """Long jobs (first backfills, unpaid refreshes) may hold only some of a worker's threads, so short ones (scheduled
    syncs, Fetch new data) are never stuck behind them."""

    SHORT = "short"
    LONG = "long"


class AutoPayTrigger(StrEnum):
    """When a contract-based auto-pay rule charges an invoice."""

    ON_DUE_DATE = "on_due_date"
    DAYS_BEFORE_DUE = "days_before_due"
    DAYS_AFTER_DUE = "days_after_due"
    DAYS_AFTER_INVOICE = "days_after_invoice"


class EnumText(TypeDecorator[StrEnum]):
    """A stored vocabulary: written as the enum's text (an unknown word is refused), read back as the enum member."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[StrEnum]) -> None:
        super().__init__()
        self.enum = enum

    def process_bind_param(self, value: str | None, dialect: object) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: object) -> StrEnum | None:
        return None if value is None else self.enum(value)


class Int64(TypeDecorator[int]):
    """BIGINT, read back as `int`: money in cents and HaloPSA ids are 64-bit. PostgreSQL sums a BIGINT as NUMERIC,
    which the driver hands over as Decimal; `func.sum(column)` keeps this type, so a sum of cents is an int there too.
    SQLite already returns ints: nothing is processed there."""

    impl = BigInteger
    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], int | None] | None:
        if dialect.name == "sqlite":
            return None

        def process(value: Any) -> int | None:
            return None if value is None else int(value)

        return process


def big_field(*, nullable: bool = False) -> Any:
    """A BIGINT column (see Int64)."""
    return Field(default=None, sa_type=Int64, nullable=nullable) if nullable else Field(sa_type=Int64)


def enum_field(enum: type[StrEnum], default: StrEnum | None = None, *, nullable: bool = False) -> Any:
    """A column typed by a stored vocabulary (see EnumText)."""
    return Field(default=default, sa_column=Column(EnumText(enum), nullable=nullable, default=default))


class Partner(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    status: PartnerStatus = enum_field(PartnerStatus, PartnerStatus.DRAFT)
    created_at: datetime = utc_field(nullable=False)
    # The run lock: one sync at a time per partner, taken and released by conditional updates.
    lock_run_id: int | None = None
    lock_heartbeat_at: datetime | None = utc_field()


class Connection(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(foreign_key="partner.id", unique=True)
    app_domain: str
    tenant: str | None = None
    client_id: str
    client_secret_encrypted: str
    invoices_created_since: date | None = None
    invoice_number_field: NumberField = enum_field(NumberField, NumberField.HALO_ID)
    # The field the stored invoices are numbered by: every page is written by it, and a renumber job moves it to
    # `invoice_number_field` with every invoice in one transaction, so the numbering is never mixed.
    numbered_by: NumberField = enum_field(NumberField, NumberField.HALO_ID)
    integration_role: IntegrationRole = enum_field(IntegrationRole, IntegrationRole.PRIMARY)
    granted_scopes: str = ""
    missing_scopes: str = ""
    connected_at: datetime = utc_field(nullable=False)
    last_verified_at: datetime | None = utc_field()
    last_error: str | None = None


class Customer(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("partner_id", "halo_id"),)
    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(foreign_key="partner.id")
    halo_id: int = big_field()
    name: str
    inactive: bool = False
    billing_email: str | None = None
    currency: str | None = None
    halo_last_modified: datetime | None = utc_field()
    synced_at: datetime = utc_field(nullable=False)


class Agreement(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("partner_id", "halo_id"),)
    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(foreign_key="partner.id")
    halo_id: int = big_field()
    ref: str | None = None
    customer_halo_id: int | None = big_field(nullable=True)
    subtype_id: int | None = big_field(nullable=True)  # its name: SubtypeName, by partner and id
    type_name: str | None = None
    start_date: date | None = None
    end_date: date | None = None
    active: bool = True
    halo_last_modified: datetime | None = utc_field()
    synced_at: datetime = utc_field(nullable=False)


class Invoice(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("partner_id", "halo_id"),
        Index("ix_invoice_partner_status_due", "partner_id", "status", "due_date"),
        # the Agreements page totals and classifies a partner's invoices per agreement from this index alone
        Index("ix_invoice_partner_agreement", "partner_id", "agreement_halo_id", "currency", "status", "due_date",
              "amount_due_cents", "invoice_date", "voided", "halo_id"),
        # the fleet's unpaid value per currency (Adoption) is read from this index alone
        Index("ix_invoice_status_currency", "status", "currency", "amount_due_cents"),
        # the invoice tracer finds an invoice by the number typed (migration 0013)
        Index("ix_invoice_partner_number", "partner_id", "display_number"),
        Index("ix_invoice_partner_third_party", "partner_id", "third_party_number"),
    )
    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(foreign_key="partner.id")
    halo_id: int = big_field()
    invoice_number: str | None = None
    third_party_number: str | None = None
    display_number: str
    number_is_fallback: bool = False
    customer_halo_id: int | None = big_field(nullable=True)
    customer_name: str | None = None
    agreement_halo_id: int | None = big_field(nullable=True)
    agreement_ref: str | None = None
    invoice_date: date | None = None
    due_date: date | None = None
    total_cents: int = big_field()
    amount_paid_cents: int = big_field()
    amount_due_cents: int = big_field()
    currency: str | None = None
    posted: bool = False
    voided: bool = False
    status: InvoiceStatus = enum_field(InvoiceStatus)
    halo_last_modified: datetime | None = utc_field()
    first_seen_run_id: int | None = None
    last_changed_run_id: int | None = None
    synced_at: datetime = utc_field(nullable=False)


class AutoPayRule(SQLModel, table=True):
    """Maps one agreement subtype of a partner, by its HaloPSA id, to a contract-based auto-pay rule. `subtype_name`
    is only the name shown when it was saved (a label, never matched); a rule without a `subtype_id` (one whose name
    named no single subtype when rules moved to ids, migration 0007) matches nothing until its subtype is picked
    again. An invoice more overdue than the configured age on the day it would be charged is charged only by a rule
    opted in to that (`overdue_opt_in`)."""

    __table_args__ = (UniqueConstraint("partner_id", "subtype_id"),)
    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(foreign_key="partner.id")
    subtype_id: int | None = big_field(nullable=True)
    subtype_name: str | None = None
    enabled: bool = True
    trigger: AutoPayTrigger = enum_field(AutoPayTrigger, AutoPayTrigger.ON_DUE_DATE)
    days: int = 0
    max_amount_cents: int | None = big_field(nullable=True)
    created_by: str
    created_at: datetime = utc_field(nullable=False)
    updated_at: datetime = utc_field(nullable=False)
    overdue_opt_in: bool = False  # also charges invoices overdue beyond Settings.autopay_overdue_days (migration 0009)


class SubtypeLookupState(StrEnum):
    """What the last check of a partner's subtype lookup found (core.halopsa.lookups)."""

    UNCHECKED = "unchecked"  # set, and not checked since (HaloPSA could not be asked then)
    VERIFIED = "verified"  # its rows are that lookup's and name every subtype id on the agreements
    UNVERIFIED = "unverified"  # no names taken from it; `SubtypeLookup.finding` says why


class SubtypeLookup(SQLModel, table=True):
    """Which of its HaloPSA's lookups names a partner's agreement subtypes (lookup ids differ per tenant, so there is
    none until someone sets it), and what its last check found."""

    partner_id: int = Field(foreign_key="partner.id", primary_key=True)
    lookup_id: int | None = None
    state: SubtypeLookupState = enum_field(SubtypeLookupState, SubtypeLookupState.UNCHECKED)
    finding: str = ""  # the last check in plain words
    checked_at: datetime | None = utc_field()
    set_by: str
    set_at: datetime = utc_field(nullable=False)


class SubtypeName(SQLModel, table=True):
    """The name of one agreement subtype of a partner: the one its lookup gave (verified by the last check, or kept
    from before it and marked not verified) and a name set in the console, which wins."""

    partner_id: int = Field(foreign_key="partner.id", primary_key=True)
    subtype_id: int = Field(sa_column=Column(Int64, primary_key=True, autoincrement=False))
    lookup_name: str | None = None
    lookup_verified: bool = False
    override_name: str | None = None
    override_by: str | None = None
    override_at: datetime | None = utc_field()


class RunCounters(SQLModel):
    """What a run has done so far, defined once: the columns of a run record and the engine's running tally."""

    requests: int = 0  # every HTTP request sent: token requests, retries and refused ones included
    retries: int = 0  # of those, requests sent again after a failure or a rate limit (migration 0012)
    rate_limited: int = 0  # answers of HTTP 429 (migration 0012)
    pages: int = 0
    customers_seen: int = 0
    agreements_seen: int = 0
    invoices_seen: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0


class SyncRun(RunCounters, table=True):
    # the scheduler reads the last interval's runs of every partner by started_at, Adoption a span's totals: the
    # started_at index carries the columns they read, so they walk the index alone
    __table_args__ = (Index("ix_syncrun_partner_started", "partner_id", "started_at"),
                      Index("ix_syncrun_finished", "finished_at"),  # the runs past the run-day mark (run_days)
                      Index("ix_syncrun_started_totals", "started_at", "partner_id", "kind", "trigger", "status",
                            "finished_at", "window_end", "created", "updated", "invoices_seen"))
    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(foreign_key="partner.id")
    kind: RunKind = enum_field(RunKind)
    trigger: RunTrigger = enum_field(RunTrigger)
    triggered_by: str
    status: RunStatus = enum_field(RunStatus, RunStatus.RUNNING)
    started_at: datetime = utc_field(nullable=False)
    finished_at: datetime | None = utc_field()
    heartbeat_at: datetime | None = utc_field()
    window_start: datetime | None = utc_field()
    window_end: datetime | None = utc_field()
    worker: str | None = None
    job_id: int | None = Field(default=None, index=True)
    message: str | None = None  # the latest progress line ("Invoices: 1,200 read", "HaloPSA is rate limiting; …")
    waiting_until: datetime | None = utc_field()  # set while the run waits (rate limit, retry), cleared after
    error_kind: ErrorKind | None = enum_field(ErrorKind, nullable=True)
    error: str | None = None


class DayTotals(SQLModel):
    """What runs of one day add up to, defined once: the columns of RunDay and FleetRunDay."""

    runs: int = 0
    finished: int = 0
    successful: int = 0  # succeeded or partially succeeded
    created: int = big_field()
    invoices_read: int = big_field()
    empty: int = 0  # created and updated nothing


class RunDay(DayTotals, table=True):
    """Totals of one partner's finished runs of one kind started on one UTC day, by hand or not, rolled up by the
    scheduler (core.store.run_days) so the Adoption page does not walk every run of the fleet."""

    day: date = Field(primary_key=True)  # first in the key: the page reads a span of days
    partner_id: int = Field(foreign_key="partner.id", primary_key=True)
    kind: RunKind = Field(sa_column=Column(EnumText(RunKind), primary_key=True))
    manual: bool = Field(primary_key=True)


class FleetRunDay(DayTotals, table=True):
    """RunDay summed over the fleet: the Adoption page's charts read a row per day, not one per partner and day."""

    day: date = Field(primary_key=True)
    kind: RunKind = Field(sa_column=Column(EnumText(RunKind), primary_key=True))
    manual: bool = Field(primary_key=True)


class SyncRecordError(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="syncrun.id", index=True)
    partner_id: int = Field(foreign_key="partner.id", index=True)
    entity: str
    halo_id: int | None = big_field(nullable=True)
    reason: str
    excerpt: str


class Cooldown(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("partner_id", "kind"),)
    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(foreign_key="partner.id")
    kind: RunKind = enum_field(RunKind)
    available_at: datetime = utc_field(nullable=False)
    previous_available_at: datetime | None = utc_field()
    last_started_at: datetime | None = utc_field()
    last_actor: str | None = None
    last_run_id: int | None = None
    last_job_id: int | None = None
    refused_count: int = 0


class Job(SQLModel, table=True):
    """A sync asked for: queued until a worker claims it under a lease, then done or cancelled. `active_key`
    ("partner:kind") is set only while queued or running, so a unique index allows one such job per partner and kind."""

    __table_args__ = (Index("ix_job_claim", "state", "not_before"),)
    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(foreign_key="partner.id", index=True)
    kind: RunKind = enum_field(RunKind)
    trigger: RunTrigger = enum_field(RunTrigger)
    requested_by: str
    lane: Lane = enum_field(Lane, Lane.SHORT)
    state: JobState = enum_field(JobState, JobState.QUEUED)
    active_key: str | None = Field(default=None, unique=True)
    not_before: datetime = utc_field(nullable=False)
    created_at: datetime = utc_field(nullable=False)
    started_at: datetime | None = utc_field()
    finished_at: datetime | None = utc_field()
    lease_owner: str | None = None
    lease_expires_at: datetime | None = utc_field()
    lease_epoch: int = 0
    attempts: int = 0
    run_id: int | None = None
    cancel_requested_by: str | None = None
    outcome: str | None = None  # why it ended or was handed back, in plain words


class AuditEvent(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = utc_field(nullable=False, index=True)
    actor: str
    partner_id: int | None = Field(default=None, foreign_key="partner.id", index=True)
    action: AuditAction = enum_field(AuditAction)
    detail: str = ""


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(unique=True, index=True)
    name: str
    role: Role = enum_field(Role)
    partner_id: int | None = Field(default=None, foreign_key="partner.id")
    password_hash: str


class RateSlot(SQLModel, table=True):
    """One request a worker was allowed to send to a tenant (`tenant_key` = base URL and tenant): the rate budget's
    memory, shared by every process; slots older than the budget's window are pruned as new ones are handed out."""

    __table_args__ = (Index("ix_rateslot_tenant_sent", "tenant_key", "sent_at"),)
    id: int | None = Field(default=None, primary_key=True)
    tenant_key: str
    sent_at: datetime = utc_field(nullable=False)


class ConsoleSession(SQLModel, table=True):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is stored, so a copy of the database
    cannot sign anyone in. Ended by sign-out (`revoked_at`), idleness (`last_seen_at`) or age (`expires_at`)."""

    token_hash: str = Field(primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    created_at: datetime = utc_field(nullable=False)
    last_seen_at: datetime = utc_field(nullable=False)
    expires_at: datetime = utc_field(nullable=False)
    revoked_at: datetime | None = utc_field()
    client: str = ""  # the address it signed in from, for the audit log


class SignInThrottle(SQLModel, table=True):
    """Recent sign-in failures of one account or client, and until when further attempts are refused unchecked."""

    scope: ThrottleScope = Field(sa_column=Column(EnumText(ThrottleScope), primary_key=True))
    key: str = Field(primary_key=True)
    failures: int = 0
    last_failure_at: datetime = utc_field(nullable=False)
    locked_until: datetime | None = utc_field()


class Setting(SQLModel, table=True):
    """Small facts the database keeps about itself, one text value per key (e.g. the sandbox epoch), so every
    console and worker sharing the database agrees on them."""

    key: str = Field(primary_key=True)
    value: str


class Listing(StrEnum):
    """A listing whose method depends on the tenant (reference 11), remembered per partner between runs."""

    INVOICE_CHANGES = "invoice_changes"
    CUSTOMER_CHANGES = "customer_changes"
    UNPAID_INVOICES = "unpaid_invoices"


class ListingMethod(StrEnum):
    SORTED = "sorted"  # newest first by modification time, stopping at the window start
    DATESEARCH = "datesearch"  # HaloPSA's date filter, checked here
    FILTERED = "filtered"  # HaloPSA's unpaid status filter, checked here, then what it missed one by one
    SCAN = "scan"  # the whole listing, filtered here


class ListingChoice(SQLModel, table=True):
    """How one of a partner's listings is read from its HaloPSA: learnt by its runs (a method the tenant refuses or
    does not honour gives way to the next, and later runs start there) or set by a probe. It holds only for the tenant
    it was learnt on (`tenant_key`): a connection moved to another App Domain or tenant starts afresh."""

    partner_id: int = Field(foreign_key="partner.id", primary_key=True)
    listing: Listing = Field(sa_column=Column(EnumText(Listing), primary_key=True))
    tenant_key: str
    method: ListingMethod = enum_field(ListingMethod)
    reason: str = ""
    decided_at: datetime = utc_field(nullable=False)


class TenantProbe(SQLModel, table=True):
    """What a probe found a partner's HaloPSA supports (core.halopsa.probe), as JSON, with when it ran and its cost in
    requests. Like a remembered listing method it holds only for the tenant it ran on; `stale_reason` says why the
    next run checks again (a run met an answer the probe did not foresee, or someone asked)."""

    partner_id: int = Field(foreign_key="partner.id", primary_key=True)
    tenant_key: str
    ran_at: datetime = utc_field(nullable=False)
    requests: int = 0
    result: str
    stale_reason: str | None = None


class IssueType(StrEnum):
    """A problem the Overview's worklist tracks, one open issue per partner and type (WORKER_DOWN: fleet-wide)."""

    AUTH_FAILED = "auth_failed"
    PERMISSIONS_MISSING = "permissions_missing"
    FAILING_RUNS = "failing_runs"
    NO_RECENT_SUCCESS = "no_recent_success"
    RATE_LIMITED = "rate_limited"
    RECORD_ERRORS = "record_errors"
    SUBTYPE_UNMAPPED = "subtype_unmapped"
    STALE_CLOCK = "stale_clock"
    WORKER_DOWN = "worker_down"
    DRIFT = "drift"  # the latest reconciliation found invoices that differ between HaloPSA and the stored copy


class IssueSeverity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class IssueOwner(StrEnum):
    """Who can fix it: the partner (in their HaloPSA or on the console), us, or HaloPSA's side."""

    PARTNER = "partner"
    OURS = "ours"
    HALOPSA = "halopsa"


class IssueChange(StrEnum):
    OPENED = "opened"
    ESCALATED = "escalated"
    REOPENED = "reopened"
    RESOLVED = "resolved"


class AlertChannel(StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"


class DeliveryState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # gave up after its attempts; the reason is kept


class Issue(SQLModel, table=True):
    """One problem of one partner (partner_id None: the fleet's, such as no live worker). The row lives on: it is
    resolved after its type's clean period and reopened (`reopened` counts) when the problem comes back."""

    __table_args__ = (UniqueConstraint("partner_id", "type"),)
    id: int | None = Field(default=None, primary_key=True)
    partner_id: int | None = Field(default=None, foreign_key="partner.id", index=True)
    type: IssueType = enum_field(IssueType)
    severity: IssueSeverity = enum_field(IssueSeverity)
    owner: IssueOwner = enum_field(IssueOwner)
    detail: str = ""
    first_seen: datetime = utc_field(nullable=False)
    last_seen: datetime = utc_field(nullable=False)
    resolved_at: datetime | None = utc_field()
    reopened: int = 0
    snoozed_until: datetime | None = utc_field()
    snooze_reason: str | None = None
    snoozed_by: str | None = None


class IssueEvent(SQLModel, table=True):
    """A change of an issue (opened, escalated, reopened, resolved): the worklist's history and the alerts' source."""

    id: int | None = Field(default=None, primary_key=True)
    issue_id: int = Field(foreign_key="issue.id", index=True)
    partner_id: int | None = Field(default=None, foreign_key="partner.id")
    type: IssueType = enum_field(IssueType)
    change: IssueChange = enum_field(IssueChange)
    severity: IssueSeverity = enum_field(IssueSeverity)
    at: datetime = utc_field(nullable=False, index=True)
    detail: str = ""


class AlertDelivery(SQLModel, table=True):
    """One issue event to send on one channel: an outbox row a worker sends and retries, so sending never blocks or
    fails a sync."""

    __table_args__ = (UniqueConstraint("event_id", "channel"),
                      Index("ix_alertdelivery_due", "state", "next_attempt_at"))
    id: int | None = Field(default=None, primary_key=True)
    event_id: int = Field(foreign_key="issueevent.id")
    channel: AlertChannel = enum_field(AlertChannel)
    state: DeliveryState = enum_field(DeliveryState, DeliveryState.PENDING)
    attempts: int = 0
    next_attempt_at: datetime = utc_field(nullable=False)
    sent_at: datetime | None = utc_field()
    last_error: str | None = None


class DriftKind(StrEnum):
    """How one invoice differs between HaloPSA and the stored copy, as a reconciliation found it. The first four are
    drift (a targeted resync reads them again); OUTSIDE_SCOPE is a stored invoice HaloPSA now dates before the
    connection's Invoices Created Since: reported, never resynced."""

    MISSING_HERE = "missing_here"  # in HaloPSA (in scope), never stored here
    EXTRA_HERE = "extra_here"  # stored here, absent from HaloPSA's listing (deleted there)
    AMOUNT_DIFFERS = "amount_differs"  # total, amount due or currency differ
    STATUS_DIFFERS = "status_differs"
    OUTSIDE_SCOPE = "outside_scope"  # stored here, dated before Invoices Created Since in HaloPSA now


class Reconciliation(SQLModel, table=True):
    """One comparison of a partner's HaloPSA invoices with the stored ones (a RECONCILE run): the counts on each side,
    the unpaid count and amount per currency on each side (JSON `{"USD": [count, cents]}`, never summed across
    currencies), its cost in requests estimated before and used after, and how many invoices differ by kind."""

    __table_args__ = (Index("ix_reconciliation_partner_started", "partner_id", "started_at"),)
    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(foreign_key="partner.id")
    run_id: int | None = Field(default=None, index=True)
    job_id: int | None = None
    requested_by: str
    started_at: datetime = utc_field(nullable=False)
    finished_at: datetime | None = utc_field()
    invoices_created_since: date | None = None
    requests_estimated: int = 0
    requests_used: int = 0
    halo_invoices: int = 0  # in scope
    local_invoices: int = 0  # in scope, deleted ones not counted
    halo_outside_scope: int = 0  # dated before Invoices Created Since in HaloPSA: not synced on purpose, not drift
    pending: int = 0  # changed in HaloPSA after the last sync window: the next sync brings them, not drift
    unreadable: int = 0  # rows HaloPSA sent that could not be read (the syncs reject them too)
    halo_unpaid: str = "{}"
    local_unpaid: str = "{}"
    missing_here: int = 0
    extra_here: int = 0
    amount_differs: int = 0
    status_differs: int = 0
    outside_scope: int = 0
    drift: int = 0  # invoices that differ (missing, extra, amount or status), each counted once


class DriftItem(SQLModel, table=True):
    """One invoice a reconciliation found differing, with HaloPSA's value and the stored one as short text; cleared
    (when, by which run) once a targeted resync read it again."""

    __table_args__ = (UniqueConstraint("reconciliation_id", "kind", "halo_id"),
                      Index("ix_driftitem_partner_cleared", "partner_id", "cleared_at"))
    id: int | None = Field(default=None, primary_key=True)
    reconciliation_id: int = Field(foreign_key="reconciliation.id", index=True)
    partner_id: int = Field(foreign_key="partner.id")
    halo_id: int = big_field()
    kind: DriftKind = enum_field(DriftKind)
    halo_value: str | None = None
    local_value: str | None = None
    cleared_at: datetime | None = utc_field()
    cleared_by_run: int | None = None


def _table(model: type[SQLModel]) -> Table:
    return model.__table__  # type: ignore[attr-defined, no-any-return]


# Core (SQLAlchemy) handles of the tables: the sync's bulk writes and the read models' queries use these.
PARTNER_TABLE = _table(Partner)
CONNECTION_TABLE = _table(Connection)
CUSTOMER_TABLE = _table(Customer)
AGREEMENT_TABLE = _table(Agreement)
INVOICE_TABLE = _table(Invoice)
RULE_TABLE = _table(AutoPayRule)
RUN_TABLE = _table(SyncRun)
RUN_DAY_TABLE = _table(RunDay)
FLEET_DAY_TABLE = _table(FleetRunDay)
ERROR_TABLE = _table(SyncRecordError)
COOLDOWN_TABLE = _table(Cooldown)
JOB_TABLE = _table(Job)
AUDIT_TABLE = _table(AuditEvent)
USER_TABLE = _table(User)
SETTING_TABLE = _table(Setting)
RATE_SLOT_TABLE = _table(RateSlot)
SESSION_TABLE = _table(ConsoleSession)
THROTTLE_TABLE = _table(SignInThrottle)
LISTING_TABLE = _table(ListingChoice)
PROBE_TABLE = _table(TenantProbe)
SUBTYPE_LOOKUP_TABLE = _table(SubtypeLookup)
SUBTYPE_NAME_TABLE = _table(SubtypeName)
ISSUE_TABLE = _table(Issue)
ISSUE_EVENT_TABLE = _table(IssueEvent)
ALERT_DELIVERY_TABLE = _table(AlertDelivery)
RECONCILIATION_TABLE = _table(Reconciliation)
DRIFT_TABLE = _table(DriftItem)
UNPAID_STATUSES = (InvoiceStatus.UNPAID.value, InvoiceStatus.PARTIALLY_PAID.value)
OK_STATUSES = (RunStatus.SUCCEEDED.value, RunStatus.PARTIAL.value)  # a run that succeeded (partially: some rejected)
# the runs that bring a partner's data: one of them succeeding is a successful sync (a probe, a renumbering, a
# reconciliation or a resync of a few invoices succeeding says nothing about the syncs keeping the data fresh)
DATA_SYNC_KINDS = tuple(kind.value for kind in (RunKind.BACKFILL, RunKind.SCHEDULED, RunKind.FETCH_NEW_DATA,
                                                RunKind.FETCH_UNPAID))
