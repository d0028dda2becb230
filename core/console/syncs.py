"""Sync-history read models for the Syncs page: the filtered, paged run table, one run with its record errors, the
state of both manual fetches (cooldown, who ran it last, what it found) and the data behind the history charts.

Every function takes a Principal: cs sees any partner, a partner user only its own, pm none (AccessDenied).
Filters, paging and the per-day aggregation run in SQL; pandas only shapes the (bounded) rows a view shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.engine import Engine

from core.access import Principal, require_partner_access, require_role
from core.console import formatting
from core.errors import NotFound
from core.store.tables import ERROR_TABLE, JOB_TABLE, RUN_TABLE, JobState, Role, RunKind, RunStatus
from core.sync import cooldowns, jobs, worker_presence

KIND_LABELS: dict[str, str] = {
    RunKind.BACKFILL.value: "Backfill",
    RunKind.SCHEDULED.value: "Scheduled",
    RunKind.RENUMBER.value: "Renumber invoices",
    RunKind.PROBE.value: "Check HaloPSA",
    **{kind.value: label for kind, label in cooldowns.LABELS.items()},
}
STATUS_LABELS: dict[str, str] = {status.value: status.value.replace("_", " ").capitalize() for status in RunStatus}
MAX_PAGE_SIZE = 200
CHART_RUN_LIMIT = 500
RUN_COLUMNS = ["Run", "Kind", "Trigger", "By", "Status", "Started (UTC)", "Duration (s)", "Created", "Updated",
               "Unchanged", "Rejected", "Requests", "Error"]
ERROR_COLUMNS = ["Entity", "HaloPSA ID", "Reason", "Excerpt"]


def _require_runs_access(principal: Principal, partner_id: int) -> None:
    """Run history is per-partner detail: cs or the partner itself, never pm."""
    require_role(principal, Role.CS, Role.PARTNER)
    require_partner_access(principal, partner_id)


def _at(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "never"


def countdown(delta: timedelta) -> str:
    """`H:MM:SS`, rounded up so a locked button never reads 0:00:00."""
    seconds = max(0, int(-(-delta.total_seconds() // 1)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


@dataclass(frozen=True)
class RunFilter:
    """Which runs a view shows; empty kinds/statuses mean all, dates are UTC days and inclusive."""

    kinds: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    start: date | None = None
    end: date | None = None

    @classmethod
    def from_inputs(cls, kinds: Sequence[str], statuses: Sequence[str],
                    dates: Sequence[date] | date | None) -> RunFilter:
        """Build from widget values; a date range picker gives (), (start,) while picking, or (start, end)."""
        if isinstance(dates, date):
            dates = (dates,)
        picked = sorted(dates or ())
        return cls(kinds=tuple(kinds), statuses=tuple(statuses), start=picked[0] if picked else None,
                   end=picked[-1] if picked else None)

    def where(self, partner_id: int) -> list[ColumnElement[bool]]:
        run = RUN_TABLE.c
        clauses: list[ColumnElement[bool]] = [run.partner_id == partner_id]
        if self.kinds:
            clauses.append(run.kind.in_(self.kinds))
        if self.statuses:
            clauses.append(run.status.in_(self.statuses))
        if self.start:
            clauses.append(run.started_at >= datetime.combine(self.start, time(), tzinfo=UTC))
        if self.end:
            clauses.append(run.started_at < datetime.combine(self.end + timedelta(days=1), time(), tzinfo=UTC))
        return clauses


def _duration_s(started: pd.Series, finished: pd.Series) -> pd.Series:
    return (pd.to_datetime(finished, utc=True) - pd.to_datetime(started, utc=True)).dt.total_seconds()


@dataclass(frozen=True)
class RunPage:
    rows: pd.DataFrame
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))

    @property
    def choices(self) -> dict[int, str]:
        """Run id -> a one-line label, for picking a run on this page."""
        return {
            int(row["Run"]):
                f"#{row['Run']} · {row['Kind']} · {row['Started (UTC)']:%Y-%m-%d %H:%M} · {row['Status']}"
            for _, row in self.rows.iterrows()
        }


def runs_page(engine: Engine, principal: Principal, partner_id: int, *, filters: RunFilter = RunFilter(),
              page: int = 0, page_size: int = 50) -> RunPage:
    """One page of the partner's runs, newest first; `page` is zero-based and clamped to the last page."""
    _require_runs_access(principal, partner_id)
    page_size = min(max(1, page_size), MAX_PAGE_SIZE)
    run = RUN_TABLE.c
    where = filters.where(partner_id)
    with engine.connect() as conn:
        total = int(conn.scalar(select(func.count()).select_from(RUN_TABLE).where(*where)) or 0)
        page = min(max(0, page), max(0, -(-total // page_size) - 1))
        columns = (run.id, run.kind, run.trigger, run.triggered_by, run.status, run.started_at, run.finished_at,
                   run.created, run.updated, run.unchanged, run.rejected, run.requests, run.error)
        rows = conn.execute(
            select(*columns).where(*where).order_by(run.started_at.desc(), run.id.desc())
            .limit(page_size).offset(page * page_size)
        ).all()
    frame = pd.DataFrame([tuple(row) for row in rows], columns=[column.name for column in columns])
    table = pd.DataFrame({
        "Run": frame["id"], "Kind": frame["kind"].map(KIND_LABELS), "Trigger": frame["trigger"],
        "By": frame["triggered_by"], "Status": frame["status"].map(STATUS_LABELS),
        "Started (UTC)": pd.to_datetime(frame["started_at"], utc=True),
        "Duration (s)": _duration_s(frame["started_at"], frame["finished_at"]),
        "Created": frame["created"], "Updated": frame["updated"], "Unchanged": frame["unchanged"],
        "Rejected": frame["rejected"], "Requests": frame["requests"], "Error": frame["error"],
    }, columns=RUN_COLUMNS)
    return RunPage(rows=table, total=total, page=page, page_size=page_size)


@dataclass(frozen=True)
class RunDetail:
    run_id: int
    status: str
    headline: str
    counts: dict[str, int]
    error: str | None
    errors: pd.DataFrame
    errors_total: int


def run_detail(engine: Engine, principal: Principal, partner_id: int, run_id: int, *,
               error_limit: int = 200) -> RunDetail:
    """One run of the partner with its record errors (first `error_limit`) and the reason for each."""
    _require_runs_access(principal, partner_id)
    err = ERROR_TABLE.c
    with engine.connect() as conn:
        run = conn.execute(
            select(RUN_TABLE).where(RUN_TABLE.c.id == run_id, RUN_TABLE.c.partner_id == partner_id)
        ).first()
        if run is None:
            raise NotFound(f"Run #{run_id} is not one of this partner's runs.")
        errors_total = int(conn.scalar(select(func.count()).select_from(ERROR_TABLE).where(err.run_id == run_id)) or 0)
        errors = conn.execute(
            select(err.entity, err.halo_id, err.reason, err.excerpt).where(err.run_id == run_id)
            .order_by(err.id).limit(error_limit)
        ).all()
    took = (f", took {(run.finished_at - run.started_at).total_seconds():.0f} s" if run.finished_at
            else ", still running")
    window = f" over {_at(run.window_start)} to {_at(run.window_end)}" if run.window_start else ""
    headline = (f"{KIND_LABELS.get(run.kind, run.kind)} run #{run.id} ({run.trigger}) started {_at(run.started_at)} "
                f"by {run.triggered_by}{took}{window}: {STATUS_LABELS.get(run.status, run.status).lower()}; "
                f"{run.requests} requests, {run.pages} pages, {run.customers_seen} customers, "
                f"{run.agreements_seen} agreements and {run.invoices_seen} invoices read.")
    return RunDetail(
        run_id=run.id, status=run.status, headline=headline,
        counts={"Created": run.created, "Updated": run.updated, "Unchanged": run.unchanged, "Rejected": run.rejected},
        error=run.error, errors=pd.DataFrame([tuple(row) for row in errors], columns=ERROR_COLUMNS),
        errors_total=errors_total,
    )


@dataclass(frozen=True)
class ManualFetch:
    """One manual fetch as its button shows it: locked until when, and the last run's who and what."""

    kind: str
    label: str
    available_at: datetime | None
    remaining: timedelta
    last_actor: str | None
    last_started_at: datetime | None
    last_status: str | None
    last_created: int
    last_updated: int

    @property
    def locked(self) -> bool:
        return self.remaining > timedelta(0)

    @property
    def availability(self) -> str:
        if not self.locked:
            return "Available now."
        assert self.available_at is not None
        return f"Available in {countdown(self.remaining)}, at {_at(self.available_at)}."

    @property
    def last_run(self) -> str:
        if self.last_started_at is None:
            return "Not run yet."
        found = (f"{STATUS_LABELS.get(self.last_status, self.last_status).lower()}: {self.last_created} created, "
                 f"{self.last_updated} updated" if self.last_status else "its run record is gone")
        return f"Last run by {self.last_actor} at {_at(self.last_started_at)}, {found}."


def manual_fetch_states(engine: Engine, principal: Principal, partner_id: int, *, now: datetime) -> list[ManualFetch]:
    """Both manual fetches of a partner; cheap enough for a once-a-second timer (two indexed reads)."""
    _require_runs_access(principal, partner_id)
    run = RUN_TABLE.c
    with engine.connect() as conn:
        states = cooldowns.states(conn, partner_id, now=now)
        run_ids = [s.last_run_id for s in states.values() if s.last_run_id is not None]
        last_runs = {
            row.id: row for row in conn.execute(
                select(run.id, run.status, run.created, run.updated)
                .where(run.id.in_(run_ids), run.partner_id == partner_id)
            )
        } if run_ids else {}
    result = []
    for state in states.values():
        last = last_runs.get(state.last_run_id)
        result.append(ManualFetch(
            kind=state.kind, label=state.label, available_at=state.available_at, remaining=state.remaining(now),
            last_actor=state.last_actor, last_started_at=state.last_started_at,
            last_status=last.status if last else None, last_created=last.created if last else 0,
            last_updated=last.updated if last else 0,
        ))
    return result


@dataclass(frozen=True)
class ChartData:
    daily: pd.DataFrame
    per_run: pd.DataFrame


def chart_data(engine: Engine, principal: Principal, partner_id: int, *, filters: RunFilter = RunFilter(),
               run_limit: int = CHART_RUN_LIMIT) -> ChartData:
    """Runs per UTC day and status (aggregated in SQL), plus the newest `run_limit` runs' counts and durations."""
    _require_runs_access(principal, partner_id)
    run = RUN_TABLE.c
    where = filters.where(partner_id)
    day = func.date(run.started_at)
    with engine.connect() as conn:
        daily = conn.execute(
            select(day.label("day"), run.status, func.count().label("runs")).where(*where)
            .group_by(day, run.status).order_by(day, run.status)
        ).all()
        per_run = conn.execute(
            select(run.id, run.kind, run.status, run.started_at, run.finished_at, run.created, run.updated)
            .where(*where).order_by(run.started_at.desc(), run.id.desc()).limit(run_limit)
        ).all()
    daily_frame = pd.DataFrame([tuple(row) for row in daily], columns=["day", "status", "runs"])
    daily_frame["day"] = pd.to_datetime(daily_frame["day"])
    runs_frame = pd.DataFrame([tuple(row) for row in per_run],
                              columns=["run_id", "kind", "status", "started_at", "finished_at", "created", "updated"])
    runs_frame["started_at"] = pd.to_datetime(runs_frame["started_at"], utc=True)
    runs_frame["duration_s"] = _duration_s(runs_frame["started_at"], runs_frame["finished_at"])
    oldest_first = runs_frame.drop(columns="finished_at").iloc[::-1].reset_index(drop=True)
    return ChartData(daily=daily_frame, per_run=oldest_first)



@dataclass(frozen=True)
class LiveSync:
    """A partner's queued or running sync as the Syncs page shows it live, straight from the database."""

    job_id: int
    label: str
    state: str  # "queued" | "running" | "waiting" | "cancelling"
    text: str
    requested_by: str
    cancellable: bool  # by this principal: customer success, while it is not already being cancelled


def live_syncs(engine: Engine, principal: Principal, partner_id: int, *, now: datetime) -> list[LiveSync]:
    """Queued and running syncs of a partner, each with what it is doing now (pages and records so far, or the
    wait it is in and until when); read once a second by the page, so two indexed reads."""
    _require_runs_access(principal, partner_id)
    job, run = JOB_TABLE.c, RUN_TABLE.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(job.id, job.kind, job.state, job.requested_by, job.created_at, job.not_before,
                   job.cancel_requested_by, run.message, run.waiting_until, run.pages, run.invoices_seen,
                   run.status.label("run_status"))
            .select_from(JOB_TABLE.outerjoin(RUN_TABLE, run.id == job.run_id))
            .where(job.partner_id == partner_id, job.state.in_([JobState.QUEUED, JobState.RUNNING]))
            .order_by(job.created_at, job.id)
        ).all()
        queue_now = jobs.lease_now(conn)  # a job's start time is on the queue's clock, a run's waits on the run's
    return [_live(row, now, queue_now, may_cancel=principal.is_cs) for row in rows]


def _live(row: Any, now: datetime, queue_now: datetime, *, may_cancel: bool) -> LiveSync:
    label = KIND_LABELS.get(row.kind, str(row.kind))
    if row.cancel_requested_by:
        state, text = "cancelling", f"Cancelling (asked by {row.cancel_requested_by}); it stops at its next page."
    elif row.state == JobState.QUEUED:
        state = "queued"
        text = (f"Queued by {row.requested_by} at {_at(row.created_at)}; waiting for a worker."
                if row.not_before <= queue_now else f"Queued; starts after {_at(row.not_before)}.")
    elif row.waiting_until is not None and row.waiting_until > now:
        state, text = "waiting", f"{row.message or 'Waiting on HaloPSA'} Next try at {_at(row.waiting_until)}."
    else:
        state = "running"
        text = f"Running: {row.message or 'starting'} ({formatting.count(row.pages or 0, 'page')} so far)."
    return LiveSync(job_id=row.id, label=label, state=state, text=text, requested_by=row.requested_by,
                    cancellable=may_cancel and state != "cancelling")


def workers_alive(engine: Engine, *, within: timedelta = timedelta(seconds=30)) -> int:
    """How many worker processes reported in lately (none: nothing queued will run)."""
    with engine.connect() as conn:
        return worker_presence.alive(conn, within=within)
