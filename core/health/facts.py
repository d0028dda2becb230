"""What the fleet's health is judged on, gathered in a few statements whatever the fleet's size (never one query per
partner); run facts come from index walks that read a few rows per partner, not the whole run history.

- last successful sync: when the newest run that succeeded (or partially succeeded) finished;
- failed / rate limited in a row: runs that failed / stopped at HaloPSA's rate limit since the last success;
- open record errors: record errors of the runs that started after the partner's latest clean run (a run that
  succeeded with nothing rejected); a clean run closes every error before it;
- the newest time any of a partner's runs or cooldowns was stamped with (a stamp after now: a host's clock is off);
- drift: what the partner's latest finished reconciliation found differing from HaloPSA (a later one finding none
  clears it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, literal, select
from sqlalchemy.engine import Connection

from core.errors import ErrorKind
from core.store.tables import (
    AGREEMENT_TABLE,
    CONNECTION_TABLE,
    COOLDOWN_TABLE,
    DATA_SYNC_KINDS,
    ERROR_TABLE,
    JOB_TABLE,
    OK_STATUSES,
    PARTNER_TABLE,
    RECONCILIATION_TABLE,
    RULE_TABLE,
    RUN_TABLE,
    IntegrationRole,
    JobState,
    RunStatus,
)
from core.sync import worker_presence
from core.sync.jobs import lease_now

WORKER_BEAT_WITHIN = timedelta(seconds=30)  # a worker that beat this recently is alive
EVER = datetime(1970, 1, 1, tzinfo=UTC)
QUEUED_GRACE = timedelta(minutes=2)  # a due job waiting longer than this with no live worker: nothing will run it


@dataclass
class PartnerFacts:
    """Everything the overview and the issues know about one partner."""

    partner_id: int
    name: str
    status: str
    role: str | None
    connected_at: datetime | None
    missing_scopes: list[str]
    last_success_at: datetime | None = None
    latest_status: str | None = None
    latest_error: str | None = None
    latest_error_kind: ErrorKind | None = None
    failed_in_row: int = 0
    rate_limited_in_row: int = 0
    open_errors: int = 0
    agreements: int = 0
    subtypes: int = 0
    rules: int = 0  # rules with a subtype id: those that can charge anything
    rules_to_repick: int = 0  # rules waiting for their subtype to be picked again (since rules moved to ids)
    cooldowns: dict[str, datetime] = field(default_factory=dict)  # the running ones: kind -> when it is available
    latest_recorded_at: datetime | None = None  # the newest time any of its runs or cooldowns was stamped with
    drift: int = 0  # invoices its latest finished reconciliation found differing from HaloPSA
    drift_at: datetime | None = None  # when that reconciliation ran
    drift_by_kind: tuple[int, int, int, int] = (0, 0, 0, 0)  # missing here, extra here, amount, status

    @property
    def is_primary(self) -> bool:
        return self.role == IntegrationRole.PRIMARY

    @property
    def latest_failed(self) -> bool:
        return self.latest_status == RunStatus.FAILED


def _newest_run(*conditions: Any) -> Any:
    """Id of the partner's newest run meeting `conditions` (correlated to the outer partner row). It walks the
    (partner_id, started_at) index back from the newest run, so it reads a few rows, not the partner's history."""
    run = RUN_TABLE.c
    return (select(run.id).where(run.partner_id == PARTNER_TABLE.c.id, *conditions)
            .order_by(run.started_at.desc(), run.id.desc()).limit(1).scalar_subquery())


def _or_ever(started_at: Any) -> Any:
    """A run's start, or (no such run) the beginning of time: `later > _or_ever(x)` seeks the index from x on."""
    return func.coalesce(started_at, literal(EVER, RUN_TABLE.c.started_at.type))


def _partners(conn: Connection) -> dict[int, PartnerFacts]:
    """One statement: each partner with its connection, latest finished run, last success, the failures (or rate
    limits) in a row since that success, the record errors since its last clean run and its newest run's start (an
    index seek per partner, not a scan of the run history)."""
    part, con, err = PARTNER_TABLE.c, CONNECTION_TABLE.c, ERROR_TABLE.c
    latest, ok, clean, later = (RUN_TABLE.alias(name) for name in ("latest", "ok", "clean", "later"))

    def since_ok(status: RunStatus) -> Any:
        """Syncs ending so since the last success, counted only when the latest sync ended so (else 0: not in a
        row)."""
        counted = (select(func.count()).select_from(later)
                   .where(later.c.partner_id == part.id, later.c.status == status,
                          later.c.kind.in_(DATA_SYNC_KINDS), later.c.started_at > _or_ever(ok.c.started_at))
                   .scalar_subquery())
        return case((latest.c.status == status, counted), else_=0)

    errors_since_clean = (
        select(func.count()).select_from(ERROR_TABLE.join(later, later.c.id == err.run_id))
        .where(later.c.partner_id == part.id,
               later.c.started_at > _or_ever(clean.c.started_at))
        .scalar_subquery()
    )
    rows = conn.execute(
        select(part.id.label("partner_id"), part.name, part.status, con.integration_role.label("role"),
               con.connected_at, con.missing_scopes,
               ok.c.finished_at.label("last_success_at"), latest.c.status.label("latest_status"),
               latest.c.error.label("latest_error"), latest.c.error_kind.label("latest_error_kind"),
               since_ok(RunStatus.FAILED).label("failed_in_row"),
               since_ok(RunStatus.RATE_LIMITED).label("rate_limited_in_row"), errors_since_clean.label("open_errors"),
               select(func.max(RUN_TABLE.c.started_at)).where(RUN_TABLE.c.partner_id == part.id)
               .scalar_subquery().label("latest_started_at"))
        .select_from(
            PARTNER_TABLE.outerjoin(CONNECTION_TABLE, con.partner_id == part.id)
            .outerjoin(latest, latest.c.id == _newest_run(RUN_TABLE.c.finished_at.is_not(None),
                                                          RUN_TABLE.c.kind.in_(DATA_SYNC_KINDS)))
            .outerjoin(ok, ok.c.id == _newest_run(RUN_TABLE.c.status.in_(OK_STATUSES),
                                                  RUN_TABLE.c.kind.in_(DATA_SYNC_KINDS)))
            .outerjoin(clean, clean.c.id == _newest_run(RUN_TABLE.c.status == RunStatus.SUCCEEDED,
                                                        RUN_TABLE.c.rejected == 0))
        )
    )
    facts = {}
    for row in rows:
        values = dict(row._mapping)
        latest_started_at = values.pop("latest_started_at")
        item = facts[row.partner_id] = PartnerFacts(**{**values, "missing_scopes": (row.missing_scopes or "").split()})
        _note_recorded(item, latest_started_at)
    return facts


def _add_mapping_and_cooldowns(conn: Connection, facts: dict[int, PartnerFacts], now: datetime) -> None:
    agr, rule, cool = AGREEMENT_TABLE.c, RULE_TABLE.c, COOLDOWN_TABLE.c
    subtypes = func.count(agr.subtype_id.distinct()).label("subtypes")
    agreements = select(agr.partner_id, func.count().label("n"), subtypes).group_by(agr.partner_id)
    for row in conn.execute(agreements):
        facts[row.partner_id].agreements, facts[row.partner_id].subtypes = row.n, row.subtypes
    waiting = rule.subtype_id.is_(None)
    for row in conn.execute(select(rule.partner_id, func.count().filter(~waiting).label("n"),
                                   func.count().filter(waiting).label("waiting")).group_by(rule.partner_id)):
        facts[row.partner_id].rules, facts[row.partner_id].rules_to_repick = row.n, row.waiting
    # only the cooldowns still running or stamped after now: any other reads as "available now" and as no clock issue
    for row in conn.execute(select(cool.partner_id, cool.kind, cool.available_at, cool.last_started_at)
                            .where((cool.available_at > now) | (cool.last_started_at > now))):
        facts[row.partner_id].cooldowns[row.kind] = row.available_at
        _note_recorded(facts[row.partner_id], row.last_started_at)


def _note_recorded(item: PartnerFacts, at: datetime | None) -> None:
    if at is not None and (item.latest_recorded_at is None or at > item.latest_recorded_at):
        item.latest_recorded_at = at


def _add_drift(conn: Connection, facts: dict[int, PartnerFacts]) -> None:
    """What each partner's latest finished reconciliation found (one statement; partners without drift read none)."""
    rec = RECONCILIATION_TABLE.c
    newest = (select(rec.id).where(rec.finished_at.is_not(None), rec.partner_id == PARTNER_TABLE.c.id)
              .order_by(rec.started_at.desc(), rec.id.desc()).limit(1).correlate(PARTNER_TABLE).scalar_subquery())
    rows = conn.execute(select(PARTNER_TABLE.c.id, rec.started_at, rec.drift, rec.missing_here, rec.extra_here,
                               rec.amount_differs, rec.status_differs)
                        .select_from(PARTNER_TABLE.join(RECONCILIATION_TABLE, rec.id == newest))
                        .where(rec.drift > 0))
    for row in rows:
        item = facts[row.id]
        item.drift, item.drift_at = row.drift, row.started_at
        item.drift_by_kind = (row.missing_here, row.extra_here, row.amount_differs, row.status_differs)


def partner_facts(conn: Connection, *, now: datetime) -> list[PartnerFacts]:
    """Every partner's facts at `now`, by name (case-insensitive)."""
    facts = _partners(conn)
    _add_mapping_and_cooldowns(conn, facts, now)
    _add_drift(conn, facts)
    return sorted(facts.values(), key=lambda item: item.name.lower())


@dataclass(frozen=True)
class QueueFacts:
    """The job queue as the fleet sees it: due jobs waiting past the grace, and the workers alive to run them."""

    stuck_jobs: int
    workers_alive: int

    @property
    def worker_down(self) -> bool:
        return self.stuck_jobs > 0 and self.workers_alive == 0


def queue_facts(conn: Connection) -> QueueFacts:
    """Two statements on the queue's clock (the database's: the one jobs become due and workers beat by)."""
    job = JOB_TABLE.c
    waiting_since = lease_now(conn) - QUEUED_GRACE
    stuck = conn.scalar(select(func.count()).select_from(JOB_TABLE).where(
        job.state == JobState.QUEUED, job.not_before <= waiting_since)) or 0
    return QueueFacts(stuck_jobs=int(stuck), workers_alive=worker_presence.alive(conn, within=WORKER_BEAT_WITHIN))
