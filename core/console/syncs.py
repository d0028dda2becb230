"""Sync-history read models for the Syncs page: the filtered, paged run table, one run with its record errors grouped
by reason, the state of both manual fetches (cooldown, who ran it last, what it found), what a refused press will
actually do, and the daily aggregates behind the history charts.

Every function takes a Principal: cs sees any partner, a partner user only its own, pm none (AccessDenied). A
partner user reads people and internals in plain words (core.console.audience).
Filters, paging and the per-day aggregation run in SQL; pandas only shapes the (bounded) rows a view shows.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.engine import Connection, Engine

from core.access import Principal, require_partner_access, require_role
from core.console import formatting
from core.console.audience import Audience
from core.errors import ConsoleError, CooldownActive, NotFound, SyncAlreadyQueued, format_duration
from core.store.tables import ERROR_TABLE, JOB_TABLE, RUN_TABLE, JobState, Role, RunKind, RunStatus
from core.sync import cooldowns, jobs, scheduler, worker_presence

KIND_LABELS: dict[str, str] = {
    RunKind.BACKFILL.value: "Backfill",
    RunKind.SCHEDULED.value: "Scheduled",
    RunKind.RENUMBER.value: "Renumber invoices",
    RunKind.PROBE.value: "Check HaloPSA",
    RunKind.RECONCILE.value: "Reconcile",
    RunKind.RESYNC.value: "Resync differing invoices",
    **{kind.value: label for kind, label in cooldowns.LABELS.items()},
}
STATUS_LABELS: dict[str, str] = {status.value: status.value.replace("_", " ").capitalize() for status in RunStatus}
MAX_PAGE_SIZE = 200
CHART_DAYS = 30  # the charts' days when no dates are picked: the last 30 up to the latest run
ERROR_GROUP_LIMIT = 500  # distinct (record, reason) pairs read for one run's grouped errors
# the run table leads with what happened; who, why, requests and the error scroll in from the right
RUN_COLUMNS = ["Run", "Kind", "Status", "Started (UTC)", "Duration (s)", "Created", "Updated", "Unchanged", "Rejected",
               "By", "Trigger", "Requests", "Error"]
PARTNER_HIDDEN_COLUMNS = ("Trigger",)  # "Started by" and the kind say it in plain words
ERROR_GROUP_COLUMNS = ["Record", "Reason", "Records", "Example HaloPSA ID", "Example as HaloPSA sent it"]
COUNT_NAMES = ("Created", "Updated", "Unchanged", "Rejected")
NO_WORKER_CS = ("No sync worker is running, so queued syncs will not start. Start one with `python -m core worker` "
                "(`make run` starts one beside the console).")
NO_WORKER_PARTNER = ("Our sync service is not running at the moment, so queued syncs wait until it is back; nothing "
                     "is lost. Tell customer success if this lasts more than a few minutes.")
_VALUE = re.compile(r"'[^']*'|\"[^\"]*\"|(?<![\w.-])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?(?![\w-])")


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


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


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
            clauses.append(run.started_at >= _day_start(self.start))
        if self.end:
            clauses.append(run.started_at < _day_start(self.end + timedelta(days=1)))
        return clauses

    @property
    def is_set(self) -> bool:
        return bool(self.kinds or self.statuses or self.start or self.end)

    def describe(self, *, dates: bool = True) -> str:
        """The filters that are set, in words ("" when none is); the days left out when said elsewhere."""
        parts = []
        if self.kinds:
            parts.append("kind " + " or ".join(KIND_LABELS.get(kind, kind) for kind in self.kinds))
        if self.statuses:
            parts.append("status " + " or ".join(STATUS_LABELS.get(status, status) for status in self.statuses))
        if dates and self.start and self.end:
            parts.append(f"started {self.start} to {self.end} (UTC)" if self.start != self.end
                         else f"started on {self.start} (UTC)")
        return "; ".join(parts)


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
        """Run id -> a one-line label, for picking a run on this page: what does not change while the run goes on
        (a picker keeps the label it first drew for its value, so a status there would still say running)."""
        return {
            int(row["Run"]): f"#{row['Run']} · {row['Kind']} · {row['Started (UTC)']:%Y-%m-%d %H:%M}"
            for _, row in self.rows.iterrows()
        }


def run_columns(role: Role) -> list[str]:
    """The run table's columns as a reader of this role sees them (plain words for a partner user)."""
    audience = Audience(partner_view=role == Role.PARTNER)
    hidden = PARTNER_HIDDEN_COLUMNS if audience.partner_view else ()
    return [audience.term(name) for name in RUN_COLUMNS if name not in hidden]


def runs_page(engine: Engine, principal: Principal, partner_id: int, *, filters: RunFilter = RunFilter(),
              page: int = 0, page_size: int = 50) -> RunPage:
    """One page of the partner's runs, newest first; `page` is zero-based and clamped to the last page."""
    _require_runs_access(principal, partner_id)
    page_size = min(max(1, page_size), MAX_PAGE_SIZE)
    run = RUN_TABLE.c
    where = filters.where(partner_id)
    with engine.connect() as conn:
        audience = Audience.of(conn, principal, partner_id)
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
        "By": frame["triggered_by"].map(audience.who), "Status": frame["status"].map(STATUS_LABELS),
        "Started (UTC)": pd.to_datetime(frame["started_at"], utc=True),
        "Duration (s)": _duration_s(frame["started_at"], frame["finished_at"]),
        "Created": frame["created"], "Updated": frame["updated"], "Unchanged": frame["unchanged"],
        "Rejected": frame["rejected"], "Requests": frame["requests"],
        "Error": frame["error"].map(audience.words, na_action="ignore"),
    }, columns=RUN_COLUMNS)
    table = table.drop(columns=list(PARTNER_HIDDEN_COLUMNS) if audience.partner_view else [])
    return RunPage(rows=table.rename(columns=audience.term), total=total, page=page, page_size=page_size)


@dataclass(frozen=True)
class RunDetail:
    run_id: int
    status: str
    headline: str
    counts: dict[str, int]
    error: str | None
    records_note: str  # what became of the records this run read, true for a run still going or stopped early
    error_groups: pd.DataFrame  # the records it could not read, one row per reason, with an example
    errors_total: int


def run_detail(engine: Engine, principal: Principal, partner_id: int, run_id: int) -> RunDetail:
    """One run of the partner: what it did, what became of the records it read, and the records it could not read,
    grouped by reason with an example each."""
    _require_runs_access(principal, partner_id)
    with engine.connect() as conn:
        run = conn.execute(
            select(RUN_TABLE).where(RUN_TABLE.c.id == run_id, RUN_TABLE.c.partner_id == partner_id)
        ).first()
        if run is None:
            raise NotFound(f"Run #{run_id} is not one of this partner's runs.")
        audience = Audience.of(conn, principal, partner_id)
        errors_total = int(conn.scalar(
            select(func.count()).select_from(ERROR_TABLE).where(ERROR_TABLE.c.run_id == run_id)) or 0)
        groups = _error_groups(conn, run_id) if errors_total else _no_error_groups()
    return RunDetail(
        run_id=run.id, status=run.status, headline=_headline(run, audience),
        counts={audience.term(name): getattr(run, name.lower()) for name in COUNT_NAMES},
        error=audience.words(run.error), records_note=_records_note(run, errors_total), error_groups=groups,
        errors_total=errors_total,
    )


def _headline(run: Any, audience: Audience) -> str:
    took = f", took {_seconds(run.finished_at - run.started_at)}" if run.finished_at else ", still running"
    window = f" over {_at(run.window_start)} to {_at(run.window_end)}" if run.window_start else ""
    started = (f"{KIND_LABELS.get(run.kind, run.kind)} run #{run.id} "
               f"{'' if audience.partner_view else f'({run.trigger}) '}started {_at(run.started_at)} "
               f"{audience.by(run.triggered_by)}{took}{window}: {STATUS_LABELS.get(run.status, run.status).lower()}")
    read = (f"{formatting.count(run.customers_seen, 'customer')}, {formatting.count(run.agreements_seen, 'agreement')} "
            f"and {formatting.count(run.invoices_seen, 'invoice')} read")
    if audience.partner_view:
        return f"{started}; {formatting.count(run.requests, 'call')} to HaloPSA; {read}."
    return (f"{started}; {formatting.count(run.requests, 'request')} (retries included), "
            f"{formatting.count(run.pages, 'page')}, {read}.")


def _seconds(took: timedelta) -> str:
    seconds = took.total_seconds()
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:,.0f} s"


def _records_note(run: Any, errors_total: int) -> str:
    """What became of the records the run read, in words that hold for a run still going or one that stopped."""
    read = run.customers_seen + run.agreements_seen + run.invoices_seen
    if errors_total:
        left_out = "were left out" if errors_total > 1 else "was left out"
        return (f"{formatting.count(errors_total, 'record')} could not be read and {left_out}; grouped by reason "
                "below, each with an example to find in HaloPSA.")
    if run.finished_at is None:
        return (f"Still running: {formatting.count(read, 'record')} read so far, none rejected." if read
                else "Still running: no records read yet.")
    if run.status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL) and run.kind == RunKind.RECONCILE:
        return (f"A reconciliation stores nothing: the {formatting.count(read, 'record')} it read were compared with "
                "the stored ones; what differs is under Reconciliation with HaloPSA.")
    if run.status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL):
        return (f"All {formatting.count(read, 'record')} this run read were stored or already up to date." if read
                else "HaloPSA had nothing new or changed for this run.")
    if read:
        return (f"The run stopped after reading {formatting.count(read, 'record')}, none rejected; what it had not "
                "read yet is read by the next sync.")
    return "The run stopped before it read any record."


def _no_error_groups() -> pd.DataFrame:
    return pd.DataFrame(columns=ERROR_GROUP_COLUMNS)


def reason_pattern(reason: str) -> str:
    """A reason with the record's own values (quoted texts, numbers) left out, so one problem is one group."""
    return _VALUE.sub("…", reason)


def _error_groups(conn: Connection, run_id: int) -> pd.DataFrame:
    """The run's record errors grouped by record and reason (SQL), then by the reason's pattern; the largest group
    first, each with an example that has a HaloPSA id when one does."""
    err = ERROR_TABLE.c
    example = func.coalesce(func.min(case((err.halo_id.is_not(None), err.id))), func.min(err.id))
    groups = conn.execute(
        select(err.entity, err.reason, func.count().label("records"), example.label("example_id"))
        .where(err.run_id == run_id).group_by(err.entity, err.reason)
        .order_by(func.count().desc(), example).limit(ERROR_GROUP_LIMIT)
    ).all()
    examples = {row.id: row for row in conn.execute(
        select(err.id, err.halo_id, err.excerpt).where(err.id.in_([group.example_id for group in groups])))}
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for group in groups:
        found = merged.setdefault((group.entity, reason_pattern(group.reason)),
                                  {"reasons": set(), "records": 0, "example_id": group.example_id})
        found["reasons"].add(group.reason)
        found["records"] += group.records
        if examples[found["example_id"]].halo_id is None:  # an example HaloPSA can find, when the group has one
            found["example_id"] = group.example_id
    rows = [{
        "Record": entity.capitalize(),
        "Reason": next(iter(found["reasons"])) if len(found["reasons"]) == 1 else pattern,
        "Records": found["records"],
        "Example HaloPSA ID": _halo_id_text(examples[found["example_id"]].halo_id),
        "Example as HaloPSA sent it": examples[found["example_id"]].excerpt,
    } for (entity, pattern), found in merged.items()]
    rows.sort(key=lambda row: -row["Records"])
    return pd.DataFrame(rows, columns=ERROR_GROUP_COLUMNS)


def _halo_id_text(halo_id: int | None) -> str:
    return str(halo_id) if halo_id is not None else "none (the record has no id)"


@dataclass(frozen=True)
class ManualFetch:
    """One manual fetch as its button shows it: locked until when, and the last run's who and what."""

    kind: str
    label: str
    available_at: datetime | None
    remaining: timedelta
    last_actor: str | None  # as this reader is told it
    last_started_at: datetime | None
    last_status: str | None
    last_created: int
    last_updated: int
    on_their_behalf: bool = False  # customer success used the partner user's cooldown

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
        found = (f"{STATUS_LABELS.get(self.last_status, self.last_status).lower()}: {self.last_created:,} created, "
                 f"{self.last_updated:,} updated" if self.last_status else "its run record is gone")
        behalf = " on your behalf" if self.on_their_behalf else ""
        return f"Last run by {self.last_actor}{behalf} at {_at(self.last_started_at)}, {found}."


def manual_fetch_states(engine: Engine, principal: Principal, partner_id: int, *, now: datetime) -> list[ManualFetch]:
    """Both manual fetches of a partner; cheap enough for a once-a-second timer (two indexed reads, three for a
    partner user)."""
    _require_runs_access(principal, partner_id)
    run = RUN_TABLE.c
    with engine.connect() as conn:
        audience = Audience.of(conn, principal, partner_id)
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
            last_actor=audience.who(state.last_actor) if state.last_actor else None,
            last_started_at=state.last_started_at, last_status=last.status if last else None,
            last_created=last.created if last else 0, last_updated=last.updated if last else 0,
            on_their_behalf=audience.on_their_behalf(state.last_actor),
        ))
    return result


def press_refused(engine: Engine, principal: Principal, partner_id: int, *, kind: str, error: ConsoleError,
                  now: datetime, schedule_interval: timedelta) -> str:
    """What a refused press of a manual fetch will actually lead to, in words: the fetch already queued or running
    (watch it), when the cooldown lets the next one start, and the next automatic sync meanwhile. Other refusals
    keep their own message."""
    _require_runs_access(principal, partner_id)
    if not isinstance(error, CooldownActive | SyncAlreadyQueued):
        return error.message
    label = KIND_LABELS.get(kind, kind)
    job = JOB_TABLE.c
    with engine.connect() as conn:
        audience = Audience.of(conn, principal, partner_id)
        active = conn.execute(select(job.state, job.requested_by, job.created_at).where(
            job.partner_id == partner_id, job.kind == kind,
            job.state.in_([JobState.QUEUED, JobState.RUNNING]))).first()
        state = cooldowns.states(conn, partner_id, now=now)[kind]
        next_sync = scheduler.next_sync_times(conn, now=now, interval=schedule_interval,
                                              partner_id=partner_id).get(partner_id)
    parts = []
    if active is not None:
        doing = "running" if active.state == JobState.RUNNING else "queued"
        parts.append(f"{label} is already {doing} (pressed {audience.by(active.requested_by)} at "
                     f"{_at(active.created_at)}): watch it below, nothing more is needed.")
    elif state.last_started_at is not None:
        parts.append(f"{label} was already run {audience.by(state.last_actor)} at {_at(state.last_started_at)}.")
    if state.available_at is not None and state.available_at > now:
        parts.append(f"The next one can start in {format_duration(state.available_at - now)}, at "
                     f"{_at(state.available_at)}.")
    elif active is not None:
        parts.append("You can press it again once it has finished.")
    if next_sync is not None:
        parts.append(f"The next automatic sync runs at about {next_sync:%H:%M} UTC." if next_sync > now
                     else "An automatic sync is due now and starts within a few minutes.")
    return " ".join(parts)


def job_run(engine: Engine, principal: Principal, partner_id: int, job_id: int) -> tuple[int | None, bool]:
    """The run a job of this partner started (its latest; None while it waits in the queue), and whether the job is
    still queued or running."""
    _require_runs_access(principal, partner_id)
    job = JOB_TABLE.c
    with engine.connect() as conn:
        row = conn.execute(
            select(job.state, select(func.max(RUN_TABLE.c.id)).where(RUN_TABLE.c.job_id == job.id).scalar_subquery())
            .where(job.id == job_id, job.partner_id == partner_id)).first()
    if row is None:
        return None, False
    state, run_id = row
    return (int(run_id) if run_id is not None else None), state in (JobState.QUEUED, JobState.RUNNING)


@dataclass(frozen=True)
class ChartData:
    """Per UTC day over the charts' days: runs by status, records created/updated/rejected, and the median and
    95th percentile of finished runs' durations."""

    daily: pd.DataFrame  # day, status, runs
    records: pd.DataFrame  # day, created, updated, rejected
    durations: pd.DataFrame  # day, p50_s, p95_s, runs
    scope: str  # which runs and days the charts show, in words
    empty: str | None  # why there is nothing to draw; None when there is


DAILY_COLUMNS = ["day", "status", "runs"]
RECORD_COLUMNS = ["day", "created", "updated", "rejected"]
DURATION_COLUMNS = ["day", "p50_s", "p95_s", "runs"]


def chart_data(engine: Engine, principal: Principal, partner_id: int, *,
               filters: RunFilter = RunFilter()) -> ChartData:
    """The history charts' daily aggregates for the filtered runs: the picked days, or else the last CHART_DAYS days
    up to the latest matching run. Counts and sums per day in SQL; the durations of the (bounded) days' finished runs
    are read to take their percentiles."""
    _require_runs_access(principal, partner_id)
    run = RUN_TABLE.c
    where = filters.where(partner_id)
    with engine.connect() as conn:
        latest = conn.scalar(select(func.max(run.started_at)).where(*where))
        if latest is None:
            return _empty_charts(filters)
        latest_day = latest.astimezone(UTC).date()
        if filters.start is None:
            first_day, last_day = latest_day - timedelta(days=CHART_DAYS - 1), latest_day
        else:
            first_day, last_day = filters.start, filters.end or latest_day
        in_range = [*where, run.started_at >= _day_start(first_day),
                    run.started_at < _day_start(last_day + timedelta(days=1))]
        day = func.date(run.started_at)
        daily = conn.execute(
            select(day.label("day"), run.status, func.count().label("runs"), func.sum(run.created),
                   func.sum(run.updated), func.sum(run.rejected))
            .where(*in_range).group_by(day, run.status).order_by(day, run.status)
        ).all()
        finished = conn.execute(
            select(run.started_at, run.finished_at).where(*in_range, run.finished_at.is_not(None))
        ).all()
    frame = pd.DataFrame([tuple(row) for row in daily], columns=[*DAILY_COLUMNS, *RECORD_COLUMNS[1:]])
    frame["day"] = pd.to_datetime(frame["day"])
    sums = RECORD_COLUMNS[1:]
    records = frame.groupby("day", as_index=False)[sums].sum().astype(dict.fromkeys(sums, int))
    scope = (f"Runs started {first_day} to {last_day} (UTC)"
             + ("" if filters.start else f": the last {CHART_DAYS} days up to the latest run; pick dates to see others")
             + (f"; {filters.describe(dates=False)}" if filters.kinds or filters.statuses else "") + ".")
    return ChartData(daily=frame[DAILY_COLUMNS], records=records, durations=_daily_durations(finished), scope=scope,
                     empty=None)


def _daily_durations(finished: Sequence[Any]) -> pd.DataFrame:
    runs = pd.DataFrame([tuple(row) for row in finished], columns=["started_at", "finished_at"])
    if runs.empty:
        return pd.DataFrame(columns=DURATION_COLUMNS)
    runs["day"] = pd.to_datetime(runs["started_at"], utc=True).dt.floor("D").dt.tz_localize(None)
    runs["seconds"] = _duration_s(runs["started_at"], runs["finished_at"])
    by_day = runs.groupby("day")["seconds"]
    return pd.DataFrame({"p50_s": by_day.quantile(0.5), "p95_s": by_day.quantile(0.95),
                         "runs": by_day.size()}).reset_index()[DURATION_COLUMNS]


def _empty_charts(filters: RunFilter) -> ChartData:
    why = (f"No runs match the filters ({filters.describe()})." if filters.is_set
           else "No runs yet: this partner has not synced.")
    return ChartData(daily=pd.DataFrame(columns=DAILY_COLUMNS), records=pd.DataFrame(columns=RECORD_COLUMNS),
                     durations=pd.DataFrame(columns=DURATION_COLUMNS), scope=why, empty=why)


@dataclass(frozen=True)
class LiveSync:
    """A partner's queued or running sync as the Syncs page shows it live, straight from the database."""

    job_id: int
    run_id: int | None  # the run it started, once a worker took it
    label: str
    state: str  # "queued" | "running" | "waiting" | "cancelling"
    text: str
    requested_by: str  # as this reader is told it
    cancellable: bool  # by this principal: customer success, while it is not already being cancelled


def live_syncs(engine: Engine, principal: Principal, partner_id: int, *, now: datetime) -> list[LiveSync]:
    """Queued and running syncs of a partner, each with what it is doing now (pages and records so far, or the
    wait it is in and until when); read once a second by the page, so two indexed reads (three for a partner
    user)."""
    _require_runs_access(principal, partner_id)
    job, run = JOB_TABLE.c, RUN_TABLE.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(job.id, job.kind, job.state, job.requested_by, job.created_at, job.not_before, job.run_id,
                   job.cancel_requested_by, run.message, run.waiting_until, run.pages, run.invoices_seen,
                   run.status.label("run_status"))
            .select_from(JOB_TABLE.outerjoin(RUN_TABLE, run.id == job.run_id))
            .where(job.partner_id == partner_id, job.state.in_([JobState.QUEUED, JobState.RUNNING]))
            .order_by(job.created_at, job.id)
        ).all()
        queue_now = jobs.lease_now(conn)  # a job's start time is on the queue's clock, a run's waits on the run's
        audience = Audience.of(conn, principal, partner_id) if rows else Audience(partner_view=False)
    return [_live(row, now, queue_now, audience, may_cancel=principal.is_cs) for row in rows]


def _live(row: Any, now: datetime, queue_now: datetime, audience: Audience, *, may_cancel: bool) -> LiveSync:
    label = KIND_LABELS.get(row.kind, str(row.kind))
    if row.cancel_requested_by:
        state = "cancelling"
        text = f"Cancelling (asked {audience.by(row.cancel_requested_by)}); it stops at its next page."
    elif row.state == JobState.QUEUED:
        state = "queued"
        text = (f"Queued {audience.by(row.requested_by)} at {_at(row.created_at)}; waiting for a worker."
                if row.not_before <= queue_now else f"Queued; starts after {_at(row.not_before)}.")
    elif row.waiting_until is not None and row.waiting_until > now:
        state, text = "waiting", f"{row.message or 'Waiting on HaloPSA'} Next try at {_at(row.waiting_until)}."
    else:
        state = "running"
        text = f"Running: {row.message or 'starting'} ({formatting.count(row.pages or 0, 'page')} so far)."
    return LiveSync(job_id=row.id, run_id=row.run_id, label=label, state=state, text=audience.words(text) or text,
                    requested_by=audience.who(row.requested_by), cancellable=may_cancel and state != "cancelling")


def workers_alive(engine: Engine, *, within: timedelta = timedelta(seconds=30)) -> int:
    """How many worker processes reported in lately (none: nothing queued will run)."""
    with engine.connect() as conn:
        return worker_presence.alive(conn, within=within)


def no_worker_text(role: Role) -> str:
    """What to say when queued syncs will not start because no worker runs: how to start one, or (to a partner user)
    that it is on our side."""
    return NO_WORKER_PARTNER if role == Role.PARTNER else NO_WORKER_CS
