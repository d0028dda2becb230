"""Fleet read models for customer success: every partner's sync health in one table, tiles that partition the
fleet, and the issues worklist (core.health.issues keeps the issues; this reads them). The partners' facts come from
core.health.facts in a few statements whatever the fleet's size (never one query per partner).

Definitions used on the Overview page:
- last successful sync: when the newest run that succeeded (or partially succeeded) finished;
- freshness: see `classify_freshness`; standing (the tiles): see `standing`;
- open record errors: see core.health.facts.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine

from core.access import Principal, page_spec, require_role
from core.console.formatting import ago
from core.health.facts import PartnerFacts, partner_facts
from core.health.issues import (
    ISSUE_KINDS,
    OWNER_LABELS,
    SEVERITY_ORDER,
    SEVERITY_RANK,
    STALE_AFTER,
    duration_text,
    link,
)
from core.limits import check_length
from core.settings import Settings
from core.store.tables import ISSUE_TABLE, PARTNER_TABLE, IntegrationRole, IssueType, Role
from core.sync.cooldowns import MANUAL_KINDS

ON_TIME_FACTOR = 1.5


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


class Standing(StrEnum):
    """The Overview's tiles: every partner in exactly one."""

    ON_TIME = "on time"
    LATE = "late"
    FAILING = "failing"
    BY_DESIGN = "not syncing by design"
    NEVER_SYNCED = "never synced"


def standing(item: PartnerFacts, *, now: datetime, interval: timedelta) -> Standing:
    """not syncing by design: HaloPSA is its secondary integration; never synced: no successful sync ever (a partner
    without a connection included); otherwise its freshness (on time, late or failing)."""
    if item.role == IntegrationRole.SECONDARY:
        return Standing.BY_DESIGN
    if item.role is None or item.last_success_at is None:
        return Standing.NEVER_SYNCED
    fresh = classify_freshness(role=item.role, connected_at=item.connected_at, last_success=item.last_success_at,
                               latest_failed=item.latest_failed, now=now, interval=interval)
    return {Freshness.ON_TIME: Standing.ON_TIME, Freshness.LATE: Standing.LATE}.get(fresh, Standing.FAILING)


def _load(engine: Engine, principal: Principal, now: datetime) -> list[PartnerFacts]:
    require_role(principal, Role.CS)
    with engine.connect() as conn:
        return partner_facts(conn, now=now)


def _cooldown_text(item: PartnerFacts, kind: str, now: datetime) -> str:
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
    "open_record_errors", "missing_permissions", "fetch_new_data", "fetch_unpaid", "standing",
]
NEVER = "never"  # a last success that never happened, in words (never a raw "None")


def overview(engine: Engine, principal: Principal, *, now: datetime, settings: Settings) -> pd.DataFrame:
    """One row per partner: role, status, last success (UTC, as text: "never" when none), freshness, open record
    errors, permissions, cooldowns and its standing (the tile it counts in)."""
    interval = timedelta(seconds=settings.schedule_interval_s)
    new_data, unpaid = (kind.value for kind in MANUAL_KINDS)
    rows = [
        {
            "partner_id": item.partner_id, "partner": item.name, "role": item.role or NO_ROLE, "status": item.status,
            "last_success_at": f"{item.last_success_at:%Y-%m-%d %H:%M}" if item.last_success_at else NEVER,
            "last_success_ago": ago(now - item.last_success_at) if item.last_success_at else NEVER,
            "freshness": classify_freshness(role=item.role, connected_at=item.connected_at,
                                            last_success=item.last_success_at, latest_failed=item.latest_failed,
                                            now=now, interval=interval).value,
            "latest_run": item.latest_status or "none",
            "open_record_errors": item.open_errors,
            "missing_permissions": ", ".join(item.missing_scopes),
            "fetch_new_data": _cooldown_text(item, new_data, now),
            "fetch_unpaid": _cooldown_text(item, unpaid, now),
            "standing": standing(item, now=now, interval=interval).value,
        }
        for item in _load(engine, principal, now)
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


def fleet_tiles(frame: pd.DataFrame) -> dict[str, int]:
    """How many partners are in each standing: every standing present (zero when none), and the counts add up to
    the number of partners."""
    counts = frame["standing"].value_counts()
    return {state.value: int(counts.get(state.value, 0)) for state in Standing}


# ---- the issues worklist ------------------------------------------------------------------------------------------

FLEET = "Whole fleet"  # the partner column of an issue of the fleet (no live worker)
ISSUE_COLUMNS = ["issue_id", "partner_id", "severity", "type", "owner", "partner", "found", "first_seen",
                 "last_seen", "next_step", "link", "snoozed", "page", "fix_label"]
RESOLVED_COLUMNS = ["issue_id", "partner_id", "type", "severity", "owner", "partner", "found", "first_seen",
                    "resolved_at", "reopened"]
RESOLVED_WITHIN = timedelta(days=7)
WORKLIST_ROWS = 500  # issues listed at once: a fleet-wide outage opens one per partner
SEVERITY_CHOICES = tuple(severity.value for severity in SEVERITY_ORDER)
OWNER_CHOICES = tuple(OWNER_LABELS.values())
TYPE_CHOICES = tuple(kind.label for kind in ISSUE_KINDS.values())
ISSUES_LEGEND = (
    "Ordered by severity, then age (first seen, oldest first); snoozed issues come last. An issue resolves itself "
    "once its problem has not been seen for its type's clean period, and reopens when the problem comes back."
)


def _issue_rows(engine: Engine, principal: Principal, *conditions: Any) -> list[Any]:
    require_role(principal, Role.CS)
    issue = ISSUE_TABLE.c
    with engine.connect() as conn:
        return list(conn.execute(
            select(ISSUE_TABLE, PARTNER_TABLE.c.name.label("partner"))
            .select_from(ISSUE_TABLE.outerjoin(PARTNER_TABLE, PARTNER_TABLE.c.id == issue.partner_id))
            .where(*conditions)))


def _columns(rows: list[Any]) -> dict[str, list[Any]]:
    """The issue rows (with their partner's name) a column at a time: a fleet-wide outage lists thousands."""
    names = [column.name for column in ISSUE_TABLE.c] + ["partner"]
    return {name: [row[index] for row in rows] for index, name in enumerate(names)}


def _common(raw: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """The columns every issue row has; its type, severity and owner come back from the database as their enums."""
    return {"issue_id": raw["id"], "partner_id": raw["partner_id"],
            "severity": [severity.value for severity in raw["severity"]],
            "type": [ISSUE_KINDS[issue_type].label for issue_type in raw["type"]],
            "owner": [OWNER_LABELS[owner] for owner in raw["owner"]],
            "partner": [partner or FLEET for partner in raw["partner"]], "found": raw["detail"],
            "first_seen": raw["first_seen"]}


def _fix_label(issue_type: IssueType, partner: str | None) -> str:
    title = page_spec(ISSUE_KINDS[issue_type].page).title
    return f"Open {title} for {partner}" if partner else f"Open {title}"


def _snooze_text(until: datetime | None, reason: str | None, by: str | None, now: datetime) -> str:
    return f"snoozed until {until:%Y-%m-%d %H:%M} UTC: {reason} (by {by})" if until is not None and until > now else ""


def issues(engine: Engine, principal: Principal, *, now: datetime) -> pd.DataFrame:
    """The open issues, by severity then age (first seen, oldest first), the snoozed ones after the others (in the
    same order) with "snoozed until X: reason (by whom)"; a snooze whose end has passed counts no more."""
    rows = sorted(_issue_rows(engine, principal, ISSUE_TABLE.c.resolved_at.is_(None)), key=lambda row: (
        row.snoozed_until is not None and row.snoozed_until > now, SEVERITY_RANK[row.severity], row.first_seen,
        row.id))
    raw = _columns(rows)
    kinds = [ISSUE_KINDS[issue_type] for issue_type in raw["type"]]
    pairs = list(zip(raw["type"], raw["partner_id"], raw["partner"], strict=True))
    return pd.DataFrame({
        **_common(raw), "last_seen": raw["last_seen"], "next_step": [kind.next_step for kind in kinds],
        "link": [link(issue_type, partner_id) for issue_type, partner_id, _ in pairs],
        "page": [kind.page for kind in kinds],
        "fix_label": [_fix_label(issue_type, partner) for issue_type, _, partner in pairs],
        "snoozed": [_snooze_text(*snooze, now) for snooze in zip(raw["snoozed_until"], raw["snooze_reason"],
                                                                   raw["snoozed_by"], strict=True)],
    }, columns=ISSUE_COLUMNS)


def listed_issues(frame: pd.DataFrame) -> pd.DataFrame:
    """The first WORKLIST_ROWS of the (filtered) worklist, in its order: what the page lists and acts on. The most
    severe and oldest come first, so a long list cut there hides the least urgent; filters reach the rest."""
    return frame.head(WORKLIST_ROWS)


def worklist_caption(listed: int, matching: int, open_count: int) -> str:
    """What the worklist shows of the open issues, and how to see the others when it is cut."""
    shown = (f"{matching:,} of {open_count:,} open issues" if listed == matching
             else f"The first {listed:,} of {matching:,} matching issues ({open_count:,} open); filter by severity, "
                  "owner or type to list the others")
    return f"{shown}. {ISSUES_LEGEND}"


def filter_issues(frame: pd.DataFrame, *, severities: Collection[str] = (), owners: Collection[str] = (),
                  types: Collection[str] = ()) -> pd.DataFrame:
    """Rows matching every given filter (each one of SEVERITY_CHOICES, OWNER_CHOICES, TYPE_CHOICES)."""
    keep = pd.Series(True, index=frame.index)
    for column, chosen in (("severity", severities), ("owner", owners), ("type", types)):
        if chosen:
            keep &= frame[column].isin(list(chosen))
    return frame[keep]


def recently_resolved(engine: Engine, principal: Principal, *, now: datetime) -> pd.DataFrame:
    """Issues resolved in the last 7 days, the newest first."""
    rows = _issue_rows(engine, principal, ISSUE_TABLE.c.resolved_at >= now - RESOLVED_WITHIN)
    rows.sort(key=lambda row: (row.resolved_at, row.id), reverse=True)
    raw = _columns(rows)
    return pd.DataFrame({**_common(raw), "resolved_at": raw["resolved_at"], "reopened": raw["reopened"]},
                        columns=RESOLVED_COLUMNS)


@dataclass(frozen=True)
class PickedIssue:
    """One listed issue as the page acts on it: the page that fixes it (a pages/ file), the link's words, the partner
    the link names (None: the fleet's issue), and its snooze in words ("" when not snoozed)."""

    issue_id: int
    page_path: str
    fix_label: str
    partner_id: int | None
    snoozed: str


def picked_issue(frame: pd.DataFrame, issue_id: int) -> PickedIssue:
    row = frame[frame["issue_id"] == issue_id].iloc[0]
    partner_id = row["partner_id"]
    return PickedIssue(issue_id=issue_id, page_path=f"pages/{row['page']}.py", fix_label=str(row["fix_label"]),
                       partner_id=None if pd.isna(partner_id) else int(partner_id), snoozed=str(row["snoozed"]))


def issue_choices(frame: pd.DataFrame) -> dict[int, str]:
    """Each listed issue as a snooze form names it: severity, type, partner."""
    return {int(issue_id): f"{severity} · {label} · {partner}" for issue_id, severity, label, partner in
            zip(frame["issue_id"].tolist(), frame["severity"], frame["type"], frame["partner"], strict=True)}


def issue_types() -> pd.DataFrame:
    """The legend: each issue type's severity, escalation, owner, clean period and the page that fixes it."""
    return pd.DataFrame([
        {"type": kind.label, "severity": kind.severity.value, "escalates": kind.escalation_text,
         "owner": OWNER_LABELS[kind.owner], "resolves_after": f"{duration_text(kind.clean_period)} clean",
         "fixed_on": page_spec(kind.page).title}
        for kind in ISSUE_KINDS.values()
    ])
