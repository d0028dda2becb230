"""Fleet read models for customer success: every partner's sync health in one table, and the partners that need a
person. Built from four statements whatever the fleet's size (never one query per partner); run facts come from
index walks that read a few rows per partner, not the whole run history.

Definitions used on the Overview page:
- last successful sync: when the newest run that succeeded (or partially succeeded) finished;
- freshness: see `classify_freshness`;
- open record errors: record errors of the runs that started after the partner's latest clean run (a run that
  succeeded with nothing rejected); a clean run closes every error before it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from core.access import Principal, require_role
from core.console.formatting import ago, count
from core.errors import ErrorKind
from core.limits import check_length
from core.settings import Settings
from core.store.tables import (
    AGREEMENT_TABLE,
    CONNECTION_TABLE,
    COOLDOWN_TABLE,
    ERROR_TABLE,
    PARTNER_TABLE,
    RULE_TABLE,
    RUN_TABLE,
    IntegrationRole,
    Role,
    RunStatus,
)
from core.sync.cooldowns import MANUAL_KINDS

OK_STATUSES = (RunStatus.SUCCEEDED.value, RunStatus.PARTIAL.value)
STALE_AFTER = timedelta(hours=24)
ON_TIME_FACTOR = 1.5
CLOCK_TOLERANCE = timedelta(minutes=5)  # hosts' clocks may differ this much without a flag


class Freshness(StrEnum):
    ON_TIME = "on time"
    LATE = "late"
    FAILING = "failing"
    NOT_SYNCING = "not syncing"
    NOT_CONNECTED = "not connected"


def classify_freshness(*, role: str | None, connected_at: datetime | None, last_success: datetime | None,
                       latest_failed: bool, now: datetime, interval: timedelta) -> Freshness:
    """on time: last success within 1.5 × the schedule interval; late: within 24 h; failing: the latest run failed or
    nothing succeeded for 24 h. A new connection gets 24 h from `connected_at` before its first success is overdue."""
    if role is None:
        return Freshness.NOT_CONNECTED
    if role != IntegrationRole.PRIMARY:
        return Freshness.NOT_SYNCING
    if latest_failed:
        return Freshness.FAILING
    reference = last_success or connected_at
    if reference is None or now - reference > STALE_AFTER:
        return Freshness.FAILING
    if last_success is not None and now - last_success <= interval * ON_TIME_FACTOR:
        return Freshness.ON_TIME
    return Freshness.LATE


@dataclass
class _Facts:
    """Everything the overview and the worklist know about one partner."""

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
    open_errors: int = 0
    agreements: int = 0
    subtypes: int = 0
    rules: int = 0  # rules with a subtype id: those that can charge anything
    rules_to_repick: int = 0  # rules waiting for their subtype to be picked again (since rules moved to ids)
    cooldowns: dict[str, datetime] = field(default_factory=dict)
    latest_recorded_at: datetime | None = None  # the newest time any of its runs or cooldowns was stamped with

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


def _partners(conn: Connection) -> dict[int, _Facts]:
    """One statement: each partner with its connection, latest finished run, last success, the failures since that
    success and the record errors since its last clean run."""
    part, con, err = PARTNER_TABLE.c, CONNECTION_TABLE.c, ERROR_TABLE.c
    latest, ok, clean, later = (RUN_TABLE.alias(name) for name in ("latest", "ok", "clean", "later"))
    failed_since_ok = (
        select(func.count()).select_from(later)
        .where(later.c.partner_id == part.id, later.c.status == RunStatus.FAILED,
               ok.c.started_at.is_(None) | (later.c.started_at > ok.c.started_at))
        .scalar_subquery()
    )
    errors_since_clean = (
        select(func.count()).select_from(ERROR_TABLE.join(later, later.c.id == err.run_id))
        .where(later.c.partner_id == part.id,
               clean.c.started_at.is_(None) | (later.c.started_at > clean.c.started_at))
        .scalar_subquery()
    )
    rows = conn.execute(
        select(part.id.label("partner_id"), part.name, part.status, con.integration_role.label("role"),
               con.connected_at, con.missing_scopes,
               ok.c.finished_at.label("last_success_at"), latest.c.status.label("latest_status"),
               latest.c.error.label("latest_error"), latest.c.error_kind.label("latest_error_kind"),
               failed_since_ok.label("failed_in_row"), errors_since_clean.label("open_errors"))
        .select_from(
            PARTNER_TABLE.outerjoin(CONNECTION_TABLE, con.partner_id == part.id)
            .outerjoin(latest, latest.c.id == _newest_run(RUN_TABLE.c.finished_at.is_not(None)))
            .outerjoin(ok, ok.c.id == _newest_run(RUN_TABLE.c.status.in_(OK_STATUSES)))
            .outerjoin(clean, clean.c.id == _newest_run(RUN_TABLE.c.status == RunStatus.SUCCEEDED,
                                                        RUN_TABLE.c.rejected == 0))
        )
    )
    return {row.partner_id: _Facts(**{**row._mapping, "missing_scopes": (row.missing_scopes or "").split()})
            for row in rows}


def _add_mapping_and_cooldowns(conn: Connection, facts: dict[int, _Facts]) -> None:
    agr, rule, cool = AGREEMENT_TABLE.c, RULE_TABLE.c, COOLDOWN_TABLE.c
    subtypes = func.count(agr.subtype_id.distinct()).label("subtypes")
    agreements = select(agr.partner_id, func.count().label("n"), subtypes).group_by(agr.partner_id)
    for row in conn.execute(agreements):
        facts[row.partner_id].agreements, facts[row.partner_id].subtypes = row.n, row.subtypes
    waiting = rule.subtype_id.is_(None)
    for row in conn.execute(select(rule.partner_id, func.count().filter(~waiting).label("n"),
                                   func.count().filter(waiting).label("waiting")).group_by(rule.partner_id)):
        facts[row.partner_id].rules, facts[row.partner_id].rules_to_repick = row.n, row.waiting
    for row in conn.execute(select(cool.partner_id, cool.kind, cool.available_at, cool.last_started_at)):
        facts[row.partner_id].cooldowns[row.kind] = row.available_at
        _note_recorded(facts[row.partner_id], row.last_started_at)
    run = RUN_TABLE.c
    for row in conn.execute(select(run.partner_id, func.max(run.started_at).label("at")).group_by(run.partner_id)):
        _note_recorded(facts[row.partner_id], row.at)


def _note_recorded(item: _Facts, at: datetime | None) -> None:
    if at is not None and (item.latest_recorded_at is None or at > item.latest_recorded_at):
        item.latest_recorded_at = at


def _load(engine: Engine, principal: Principal) -> list[_Facts]:
    require_role(principal, Role.CS)
    with engine.connect() as conn:
        facts = _partners(conn)
        _add_mapping_and_cooldowns(conn, facts)
    return sorted(facts.values(), key=lambda item: item.name.lower())


def _cooldown_text(item: _Facts, kind: str, now: datetime) -> str:
    if not item.is_primary:
        return "not offered"
    available_at = item.cooldowns.get(kind)
    if available_at is None or available_at <= now:
        return "available now"
    return f"available at {available_at:%H:%M} UTC"


LEGEND = (
    "On time: last success within 1.5 × the schedule interval; late: within 24 h; failing: the latest run failed or "
    "nothing succeeded for 24 h (a new connection gets its first day). Open record errors: records rejected by the "
    "runs since the last clean run (succeeded, nothing rejected)."
)
NO_ROLE = "none"  # the role column of a partner without a connection
ROLE_CHOICES = (IntegrationRole.PRIMARY.value, IntegrationRole.SECONDARY.value, NO_ROLE)
OVERVIEW_COLUMNS = [
    "partner_id", "partner", "role", "status", "last_success_at", "last_success_ago", "freshness", "latest_run",
    "open_record_errors", "missing_permissions", "fetch_new_data", "fetch_unpaid",
]


def overview(engine: Engine, principal: Principal, *, now: datetime, settings: Settings) -> pd.DataFrame:
    """One row per partner: role, status, last success, freshness, open record errors, permissions, cooldowns."""
    interval = timedelta(seconds=settings.schedule_interval_s)
    new_data, unpaid = (kind.value for kind in MANUAL_KINDS)
    rows = [
        {
            "partner_id": item.partner_id, "partner": item.name, "role": item.role or NO_ROLE, "status": item.status,
            "last_success_at": item.last_success_at,
            "last_success_ago": ago(now - item.last_success_at) if item.last_success_at else "never",
            "freshness": classify_freshness(role=item.role, connected_at=item.connected_at,
                                            last_success=item.last_success_at, latest_failed=item.latest_failed,
                                            now=now, interval=interval).value,
            "latest_run": item.latest_status or "none",
            "open_record_errors": item.open_errors,
            "missing_permissions": ", ".join(item.missing_scopes),
            "fetch_new_data": _cooldown_text(item, new_data, now),
            "fetch_unpaid": _cooldown_text(item, unpaid, now),
        }
        for item in _load(engine, principal)
    ]
    return pd.DataFrame(rows, columns=OVERVIEW_COLUMNS)


def filter_overview(frame: pd.DataFrame, *, roles: Collection[str] = (), states: Collection[str] = (),
                    search: str = "") -> pd.DataFrame:
    """Rows matching every given filter; `search` is a case-insensitive substring of name, status or permissions."""
    check_length("search", search)
    keep = pd.Series(True, index=frame.index)
    if roles:
        keep &= frame["role"].isin(list(roles))
    if states:
        keep &= frame["freshness"].isin(list(states))
    if search.strip():
        text = frame["partner"] + " " + frame["status"] + " " + frame["missing_permissions"]
        keep &= text.str.contains(search.strip(), case=False, regex=False)
    return frame[keep]


def freshness_counts(frame: pd.DataFrame) -> dict[str, int]:
    """How many partners are in each freshness state (every state present, zero when empty)."""
    counts = frame["freshness"].value_counts()
    return {state.value: int(counts.get(state.value, 0)) for state in Freshness}


_NEXT_STEP_BY_ERROR: dict[ErrorKind, str] = {
    ErrorKind.AUTH: "HaloPSA rejected the Client ID or Secret: ask the partner for a new Client Secret and save it on "
                    "the Connection page.",
    ErrorKind.PERMISSIONS: "Ask the partner to tick the missing permissions on the API application, then verify the "
                           "connection on the Connection page.",
    ErrorKind.UNAVAILABLE: "HaloPSA did not answer: check the partner's HaloPSA is up, then run Fetch new data on the "
                           "Syncs page.",
    ErrorKind.PROTOCOL: "HaloPSA answered in an unexpected shape: check the App Domain points at HaloPSA, then run "
                        "Fetch new data on the Syncs page.",
}
_DEFAULT_NEXT_STEP = "Read the run's error on the Syncs page, fix its cause, then run Fetch new data."
WORKLIST_COLUMNS = ["partner_id", "partner", "reason", "detail", "next_step"]


def _reasons(item: _Facts, now: datetime) -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    if item.latest_failed:
        runs = f"The last {item.failed_in_row} runs failed" if item.failed_in_row > 1 else "The latest run failed"
        next_step = _NEXT_STEP_BY_ERROR.get(item.latest_error_kind, _DEFAULT_NEXT_STEP) \
            if item.latest_error_kind else _DEFAULT_NEXT_STEP
        found.append(("Latest runs failing", f"{runs}: {item.latest_error or 'no reason recorded.'}", next_step))
    reference = item.last_success_at or item.connected_at
    if item.is_primary and reference is not None and now - reference > STALE_AFTER:
        when = f"last success {ago(now - item.last_success_at)}" if item.last_success_at else "never synced"
        found.append(("No successful sync in 24 h", f"Connected, {when}.",
                      "Open the partner's Syncs page for the latest error, verify the connection, then run Fetch new "
                      "data."))
    if item.missing_scopes:
        found.append(("Missing permissions", f"The API application lacks: {', '.join(item.missing_scopes)}.",
                      "Ask the partner to tick these in HaloPSA (Configuration > Integrations > HaloPSA API > View "
                      "Applications > Permissions), then verify on the Connection page."))
    if item.latest_recorded_at is not None and item.latest_recorded_at > now + CLOCK_TOLERANCE:
        found.append(("Times in the future",
                      f"A run or cooldown of this partner is stamped {item.latest_recorded_at:%Y-%m-%d %H:%M} UTC, "
                      "after now; such times are ignored for cooldowns and scheduling.",
                      "Check the clocks of the hosts running the console, workers and scheduler (NTP), and that no "
                      "replay (HALO_CONSOLE_NOW) points at this database."))
    if item.rules_to_repick:
        one = item.rules_to_repick == 1
        found.append(("Rule without its subtype",
                      f"{count(item.rules_to_repick, 'auto-pay rule')} {'names its' if one else 'name their'} subtype "
                      "by a name that matched no single subtype id when rules moved to ids; "
                      f"{'it charges' if one else 'they charge'} nothing meanwhile.",
                      "Pick its subtype again (or delete it) under Saved rules on the Agreements page."))
    if item.agreements and not item.rules:
        found.append(("No subtype mapped",
                      f"{item.agreements} agreements synced across {item.subtypes} subtypes; none mapped to an "
                      "auto-pay rule.",
                      "Walk the partner through mapping a subtype to an auto-pay rule on the Agreements page."))
    return found


def worklist(engine: Engine, principal: Principal, *, now: datetime) -> pd.DataFrame:
    """Partners that need a person: one row per reason, with what was found and a suggested next step."""
    rows = [
        {"partner_id": item.partner_id, "partner": item.name, "reason": reason, "detail": detail, "next_step": step}
        for item in _load(engine, principal)
        for reason, detail, step in _reasons(item, now)
    ]
    return pd.DataFrame(rows, columns=WORKLIST_COLUMNS)
