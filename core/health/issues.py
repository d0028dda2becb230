"""The fleet's issues: one row per problem per partner (or of the whole fleet), opened, escalated, resolved after a
clean period and reopened in place, each change written once as an IssueEvent (the worklist's history and the alerts'
source).

Every type's severity, escalation, owner, clean period, the page that fixes it and its next step live in one table,
`ISSUE_KINDS`; the Overview's legend is drawn from it.

`evaluate` may run in two schedulers at once: every change is a conditional UPDATE on the row's state read before it
(or an INSERT the unique (partner_id, type) constraint guards), and only the writer whose statement changed the row
writes its event. The fleet's own issues (partner_id NULL, which a unique constraint does not guard, NULLs being
distinct) are inserted by an INSERT … WHERE NOT EXISTS under a transaction lock (PostgreSQL's advisory lock; SQLite
writes one transaction at a time).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, exists, func, insert, literal, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from core.console.formatting import count
from core.errors import ErrorKind
from core.health.facts import WORKER_BEAT_WITHIN, PartnerFacts, QueueFacts, partner_facts, queue_facts
from core.settings import Settings
from core.store.database import inserted_id
from core.store.tables import (
    ISSUE_EVENT_TABLE,
    ISSUE_TABLE,
    IssueChange,
    IssueOwner,
    IssueSeverity,
    IssueType,
    RunStatus,
)

STALE_AFTER = timedelta(hours=24)
CLOCK_TOLERANCE = timedelta(minutes=5)  # hosts' clocks may differ this much without a flag
RATE_LIMITED_RUNS = 3  # this many runs in a row ended at HaloPSA's rate limit: it is holding the partner back
SEVERITY_ORDER = (IssueSeverity.CRITICAL, IssueSeverity.HIGH, IssueSeverity.MEDIUM, IssueSeverity.LOW)
SEVERITY_RANK = {severity: rank for rank, severity in enumerate(SEVERITY_ORDER)}  # 0: the most severe
OWNER_LABELS = {IssueOwner.PARTNER: "partner", IssueOwner.OURS: "ours", IssueOwner.HALOPSA: "HaloPSA side"}
_FLEET_LOCK = 0x1550E  # PostgreSQL advisory lock key taken while inserting a fleet-wide issue


@dataclass(frozen=True)
class IssueKind:
    """What one issue type means: how bad, who fixes it, when it resolves itself, where it is fixed."""

    type: IssueType
    label: str
    severity: IssueSeverity
    owner: IssueOwner
    clean_period: timedelta  # resolved once not seen for this long
    page: str  # the console page (core.access.PAGES slug) that fixes it
    next_step: str
    escalation: tuple[IssueSeverity, timedelta] | None = None  # (to, once the partner has been down this long)

    @property
    def escalation_text(self) -> str:
        if self.escalation is None:
            return "does not escalate"
        to, after = self.escalation
        return f"{to.value} after {duration_text(after)} without a success"


def duration_text(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    if minutes % (24 * 60) == 0 and minutes >= 48 * 60:
        return f"{minutes // (24 * 60)} days"
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


_KINDS = (
    IssueKind(IssueType.AUTH_FAILED, "Auth failed", IssueSeverity.HIGH, IssueOwner.PARTNER, timedelta(hours=2),
              "connection", "Ask the partner for a new Client Secret (HaloPSA rejected the Client ID or Secret) and "
              "save it on the Connection page.", (IssueSeverity.CRITICAL, STALE_AFTER)),
    IssueKind(IssueType.PERMISSIONS_MISSING, "Permissions missing", IssueSeverity.HIGH, IssueOwner.PARTNER,
              timedelta(hours=2), "connection",
              "Ask the partner to tick the missing permissions in HaloPSA (Configuration > Integrations > HaloPSA API "
              "> View Applications > Permissions), then verify on the Connection page."),
    IssueKind(IssueType.FAILING_RUNS, "Failing runs", IssueSeverity.HIGH, IssueOwner.HALOPSA, timedelta(hours=3),
              "syncs", "Read the run's error on the Syncs page; check the partner's HaloPSA is up and its App Domain "
              "points at HaloPSA, then run Fetch new data.", (IssueSeverity.CRITICAL, STALE_AFTER)),
    IssueKind(IssueType.NO_RECENT_SUCCESS, "No success for 24 h", IssueSeverity.HIGH, IssueOwner.OURS,
              timedelta(hours=2), "syncs", "Open the partner's Syncs page: check a sync is queued or running and a "
              "worker runs, verify the connection, then run Fetch new data.",
              (IssueSeverity.CRITICAL, timedelta(days=3))),
    IssueKind(IssueType.RATE_LIMITED, "Rate limited for long", IssueSeverity.MEDIUM, IssueOwner.HALOPSA,
              timedelta(hours=6), "syncs", "Ask the partner whether other integrations share the API application's "
              "rate limit in HaloPSA; the syncs go on where they stopped meanwhile."),
    IssueKind(IssueType.RECORD_ERRORS, "Record errors", IssueSeverity.LOW, IssueOwner.PARTNER, timedelta(hours=24),
              "syncs", "Read the errors by reason on the Syncs page and ask the partner to fix those records in "
              "HaloPSA; the next sync reads them again."),
    IssueKind(IssueType.SUBTYPE_UNMAPPED, "Subtype unmapped", IssueSeverity.LOW, IssueOwner.PARTNER,
              timedelta(hours=1), "agreements", "Walk the partner through mapping a subtype to an auto-pay rule (or "
              "picking a rule's subtype again) on the Agreements page."),
    IssueKind(IssueType.STALE_CLOCK, "Clock ahead", IssueSeverity.MEDIUM, IssueOwner.OURS, timedelta(hours=1),
              "syncs", "Check the clocks of the hosts running the console, workers and scheduler (NTP), and that no "
              "replay (HALO_CONSOLE_NOW) points at this database."),
    IssueKind(IssueType.DRIFT, "Drift from HaloPSA", IssueSeverity.MEDIUM, IssueOwner.OURS, timedelta(hours=1),
              "syncs", "Open the partner's Syncs page, read the differing invoices of the latest reconciliation and "
              "press Resync; then Reconcile now to check nothing differs any more."),
    IssueKind(IssueType.WORKER_DOWN, "Worker down", IssueSeverity.CRITICAL, IssueOwner.OURS, timedelta(minutes=15),
              "syncs", "Start a worker (`python -m core worker`, as `make run` does) and check its log."),
)
ISSUE_KINDS: dict[IssueType, IssueKind] = {kind.type: kind for kind in _KINDS}


def link(issue_type: IssueType, partner_id: int | None) -> str:
    """The console URL of the page that fixes it, naming the partner (`?partner=ID`, as the sidebar picker reads)."""
    page = f"/{ISSUE_KINDS[issue_type].page}"
    return page if partner_id is None else f"{page}?partner={partner_id}"


# ---- what is wrong now --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    partner_id: int | None
    type: IssueType
    severity: IssueSeverity
    detail: str


def _at(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _down_for(item: PartnerFacts, now: datetime) -> timedelta | None:
    """How long since the partner last succeeded (or connected, when it never did); None when neither is known."""
    reference = item.last_success_at or item.connected_at
    return None if reference is None else now - reference


def _severity(kind: IssueKind, down_for: timedelta | None) -> IssueSeverity:
    if kind.escalation is not None and (down_for is None or down_for >= kind.escalation[1]):
        return kind.escalation[0]
    return kind.severity


def _since(item: PartnerFacts) -> str:
    return f"since the last success at {_at(item.last_success_at)}" if item.last_success_at else "and none succeeded"


def _partner_findings(item: PartnerFacts, now: datetime) -> Iterable[tuple[IssueType, str]]:
    """(type, what we found) for each problem of one connected partner."""
    kind = item.latest_error_kind
    error = item.latest_error or "no reason recorded."
    runs = f"{count(item.failed_in_row, 'run')} failed in a row {_since(item)}"
    if item.latest_failed and kind == ErrorKind.AUTH:
        yield IssueType.AUTH_FAILED, f"HaloPSA refused the credentials; {runs}: {error}"
    if item.missing_scopes:
        yield IssueType.PERMISSIONS_MISSING, f"The API application lacks: {', '.join(item.missing_scopes)}."
    elif item.latest_failed and kind == ErrorKind.PERMISSIONS:
        yield IssueType.PERMISSIONS_MISSING, f"HaloPSA refused a permission; {runs}: {error}"
    if item.latest_failed and kind not in (ErrorKind.AUTH, ErrorKind.PERMISSIONS):
        yield IssueType.FAILING_RUNS, f"{runs[0].upper()}{runs[1:]}: {error}"
    down_for = _down_for(item, now)
    if item.is_primary and not item.latest_failed and down_for is not None and down_for > STALE_AFTER:
        yield IssueType.NO_RECENT_SUCCESS, (f"Last success at {_at(item.last_success_at)}." if item.last_success_at
                                            else f"Connected at {_at(item.connected_at or now)}, never synced.")
    if item.latest_status == RunStatus.RATE_LIMITED and item.rate_limited_in_row >= RATE_LIMITED_RUNS:
        yield IssueType.RATE_LIMITED, (f"The last {item.rate_limited_in_row} runs stopped at HaloPSA's rate limit "
                                       f"{_since(item)}.")
    if item.open_errors:
        yield IssueType.RECORD_ERRORS, f"{count(item.open_errors, 'record')} rejected since the last clean run."
    unmapped = []
    if item.agreements and not item.rules:
        unmapped.append(f"{item.agreements:,} agreements synced across {item.subtypes:,} subtypes; none mapped to an "
                        "auto-pay rule.")
    if item.rules_to_repick:
        one = item.rules_to_repick == 1
        unmapped.append(f"{count(item.rules_to_repick, 'auto-pay rule')} "
                        f"{'waits for its' if one else 'wait for their'} subtype to be picked again; "
                        f"{'it charges' if one else 'they charge'} nothing meanwhile.")
    if unmapped:
        yield IssueType.SUBTYPE_UNMAPPED, " ".join(unmapped)
    if item.drift and item.drift_at is not None:
        kinds = zip(("missing here", "extra here (deleted in HaloPSA)", "with another amount",
                     "with another status"), item.drift_by_kind, strict=True)
        found = ", ".join(f"{number:,} {what}" for what, number in kinds if number)
        yield IssueType.DRIFT, (f"The reconciliation at {_at(item.drift_at)} found {count(item.drift, 'invoice')} "
                                f"differing from HaloPSA ({found}).")
    if item.latest_recorded_at is not None and item.latest_recorded_at > now + CLOCK_TOLERANCE:
        yield IssueType.STALE_CLOCK, (f"A run or cooldown is stamped {_at(item.latest_recorded_at)}, after now; such "
                                      "times are ignored for cooldowns and scheduling.")


def findings(partners: Iterable[PartnerFacts], queue: QueueFacts, *, now: datetime) -> list[Finding]:
    """Every problem seen now: each connected partner's, and the fleet's (no live worker while jobs wait)."""
    found = [Finding(item.partner_id, issue_type, _severity(ISSUE_KINDS[issue_type], _down_for(item, now)), detail)
             for item in partners if item.role is not None
             for issue_type, detail in _partner_findings(item, now)]
    if queue.worker_down:
        found.append(Finding(None, IssueType.WORKER_DOWN, ISSUE_KINDS[IssueType.WORKER_DOWN].severity,
                             f"{count(queue.stuck_jobs, 'queued sync')} due and no worker reported in the last "
                             f"{WORKER_BEAT_WITHIN.seconds} s."))
    return found


# ---- the issues' life ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Change:
    """One change `evaluate` made, as its IssueEvent row says it."""

    event_id: int
    issue_id: int
    partner_id: int | None
    type: IssueType
    change: IssueChange
    severity: IssueSeverity
    detail: str


def _event(conn: Connection, issue_id: int, finding_or_row: Any, change: IssueChange, severity: IssueSeverity,
           detail: str, now: datetime) -> Change:
    issue_type = IssueType(finding_or_row.type)
    event_id = inserted_id(conn.execute(insert(ISSUE_EVENT_TABLE).values(
        issue_id=issue_id, partner_id=finding_or_row.partner_id, type=issue_type, change=change, severity=severity,
        at=now, detail=detail)))
    return Change(event_id, issue_id, finding_or_row.partner_id, issue_type, change, severity, detail)


def _open(engine: Engine, finding: Finding, now: datetime) -> Change | None:
    values = {"partner_id": finding.partner_id, "type": finding.type, "severity": finding.severity,
              "owner": ISSUE_KINDS[finding.type].owner, "detail": finding.detail, "first_seen": now,
              "last_seen": now, "reopened": 0}
    issue = ISSUE_TABLE.c
    try:
        with engine.begin() as conn:
            if finding.partner_id is not None:  # the unique (partner_id, type) constraint keeps one
                issue_id = inserted_id(conn.execute(insert(ISSUE_TABLE).values(**values)))
            else:
                if conn.dialect.name == "postgresql":
                    conn.execute(select(func.pg_advisory_xact_lock(_FLEET_LOCK)))
                taken = exists().where(issue.partner_id.is_(None), issue.type == finding.type)
                source = select(*(literal(value, ISSUE_TABLE.c[name].type).label(name)
                                  for name, value in values.items())).where(~taken)
                # RETURNING, not rowcount: psycopg reports -1 rows for an INSERT … SELECT
                opened = conn.execute(insert(ISSUE_TABLE).from_select(list(values), source)
                                      .returning(issue.id)).scalar_one_or_none()
                if opened is None:
                    return None
                issue_id = int(opened)
            return _event(conn, issue_id, finding, IssueChange.OPENED, finding.severity, finding.detail, now)
    except IntegrityError:  # another evaluator opened it first, and wrote the event
        return None


def _changed(conn: Connection, row: Any, *conditions: Any, **values: Any) -> bool:
    """UPDATE the issue row only while it is still as read; True when this writer changed it."""
    statement = update(ISSUE_TABLE).where(ISSUE_TABLE.c.id == row.id, *conditions).values(**values)
    return bool(conn.execute(statement).rowcount == 1)


def _reopen(engine: Engine, row: Any, finding: Finding, now: datetime) -> Change | None:
    issue = ISSUE_TABLE.c
    with engine.begin() as conn:
        if not _changed(conn, row, issue.resolved_at == row.resolved_at, resolved_at=None,
                        reopened=issue.reopened + 1, severity=finding.severity, detail=finding.detail, last_seen=now):
            return None
        return _event(conn, row.id, row, IssueChange.REOPENED, finding.severity, finding.detail, now)


def _escalate(engine: Engine, row: Any, finding: Finding, now: datetime) -> Change | None:
    issue = ISSUE_TABLE.c
    with engine.begin() as conn:
        if not _changed(conn, row, issue.resolved_at.is_(None), issue.severity == row.severity,
                        severity=finding.severity, detail=finding.detail, last_seen=now):
            return None
        return _event(conn, row.id, row, IssueChange.ESCALATED, finding.severity, finding.detail, now)


def _resolve(engine: Engine, row: Any, now: datetime) -> Change | None:
    issue = ISSUE_TABLE.c
    with engine.begin() as conn:
        if not _changed(conn, row, issue.resolved_at.is_(None), issue.last_seen == row.last_seen, resolved_at=now):
            return None
        return _event(conn, row.id, row, IssueChange.RESOLVED, IssueSeverity(row.severity), row.detail, now)


def _touch(engine: Engine, seen: list[tuple[Any, Finding]], now: datetime) -> None:
    """Still seen: one statement for all the open issues seen again (last seen now, what we found now)."""
    if not seen:
        return
    issue = ISSUE_TABLE.c
    statement = (update(ISSUE_TABLE).where(issue.id == bindparam("issue_id"), issue.resolved_at.is_(None))
                 .values(last_seen=now, detail=bindparam("new_detail")))
    with engine.begin() as conn:
        conn.execute(statement, [{"issue_id": row.id, "new_detail": finding.detail} for row, finding in seen])


def _read(engine: Engine, *, now: datetime) -> tuple[dict[tuple[int | None, IssueType], Finding], dict[Any, Any]]:
    """What is wrong now, and the issue rows as they stand: every write after this is conditional on these rows."""
    with engine.connect() as conn:
        current = {(found.partner_id, found.type): found
                   for found in findings(partner_facts(conn, now=now), queue_facts(conn), now=now)}
        rows = {(row.partner_id, IssueType(row.type)): row for row in conn.execute(select(ISSUE_TABLE))}
    return current, rows


def evaluate(engine: Engine, *, now: datetime, settings: Settings) -> list[Change]:
    """Bring the issue table in line with what is wrong at `now`; returns the changes this call made (each also an
    IssueEvent row). Reads the fleet in a few statements, writes one statement for every issue still seen and one
    transaction per change."""
    del settings  # the rules are the table above; the callers pass what every evaluation of the console gets
    current, rows = _read(engine, now=now)
    changes: list[Change | None] = []
    seen: list[tuple[Any, Finding]] = []
    for key, finding in current.items():
        row = rows.get(key)
        if row is None:
            changes.append(_open(engine, finding, now))
        elif row.resolved_at is not None:
            changes.append(_reopen(engine, row, finding, now))
        elif SEVERITY_RANK[finding.severity] < SEVERITY_RANK[IssueSeverity(row.severity)]:
            changes.append(_escalate(engine, row, finding, now))
        else:
            seen.append((row, finding))
    _touch(engine, seen, now)
    for key, row in rows.items():
        if key not in current and row.resolved_at is None \
                and now - row.last_seen >= ISSUE_KINDS[IssueType(row.type)].clean_period:
            changes.append(_resolve(engine, row, now))
    return [change for change in changes if change is not None]
