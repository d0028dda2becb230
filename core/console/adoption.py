"""Adoption metrics for product managers and customer success: aggregates only.

Every function takes a Principal (cs or pm) and returns counts, sums, shares and medians computed in SQL: no secrets,
no invoice rows and no per-invoice detail, so a pm may see them. Everything but the unpaid value on auto-pay (a state
of now) covers one `Period` of whole UTC days: the funnel follows the partners that connected in it up to its last
day; per-day series bucket runs by the UTC day they started; manual fetches and cooldown refusals count those in it
(a refusal is dated by its "manual_fetch_refused" audit event). The week-over-week table compares the period's last
7 days with the 7 before them. Money is shown per currency, never added across currencies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Date, and_, case, func, select, tuple_
from sqlalchemy.engine import Engine
from sqlalchemy.sql import Selectable

from core.access import Principal, require_role
from core.console import exports
from core.console.formatting import Tile, change, currency_label, money_in, money_text, number
from core.errors import BadInput, format_duration
from core.store import run_days
from core.store.tables import (
    AGREEMENT_TABLE,
    AUDIT_TABLE,
    CONNECTION_TABLE,
    DATA_SYNC_KINDS,
    INVOICE_TABLE,
    OK_STATUSES,
    PARTNER_TABLE,
    RULE_TABLE,
    RUN_TABLE,
    UNPAID_STATUSES,
    AuditAction,
    IntegrationRole,
    Role,
)
from core.sync.cooldowns import LABELS, refusal_detail

STAGES = (
    ("Connected", "connected_at"),
    ("First successful sync", "first_sync_at"),
    ("Subtype mapped", "first_rule_at"),
    ("Auto-pay rule enabled", "first_enabled_at"),
)
FUNNEL_COLUMNS = ["stage", "partners", "share_of_connected", "median_hours_from_previous",
                  "median_from_previous", "median_hours_from_connect", "median_from_connect", "stopped_here"]
PARTNER_COLUMNS = ["partner", "integration", "connected_on", "hours_to_first_sync", "to_first_sync",
                   "hours_to_first_rule", "to_first_rule", "enabled_rules", "runs_finished", "successful_runs",
                   "success_rate", "records_created", "manual_fetches", "cooldown_refusals"]
MAX_PERIOD_DAYS = 366
WEEK = 7
STOPPED_NAMES = 10  # partners named per funnel stage; the rest are counted
NOT_REACHED = "not reached"
CUSTOM = 0
PRESETS = {7: "Last 7 days", 30: "Last 30 days", 90: "Last 90 days", CUSTOM: "Pick dates"}
"""The page's period choices: the days up to today, or dates picked."""
INTEGRATION_LABELS = {IntegrationRole.PRIMARY.value: "Primary", IntegrationRole.SECONDARY.value: "Secondary"}


@dataclass(frozen=True)
class Period:
    """Whole UTC days from `first` to `last`, both included."""

    first: date
    last: date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise BadInput("The end date is before the start date. Pick an end date on or after the start date.",
                           field="period")
        if self.days > MAX_PERIOD_DAYS:
            raise BadInput(f"The dates span {self.days:,} days; pick at most {MAX_PERIOD_DAYS}.", field="period")

    @classmethod
    def ending(cls, last: date, days: int) -> Period:
        """The `days` days up to and including `last`."""
        return cls(last - timedelta(days=days - 1), last)

    @classmethod
    def chosen(cls, today: date, preset: int, dates: Sequence[date]) -> Period:
        """The period a person chose: a preset of PRESETS ending today, or (CUSTOM) the dates picked (one date while
        the second is still to be picked: that day)."""
        if preset not in PRESETS:
            raise BadInput("Pick one of the periods offered.", field="period")
        if preset != CUSTOM:
            return cls.ending(today, preset)
        if not dates:
            raise BadInput("Pick a start date and an end date.", field="period")
        return cls(dates[0], dates[-1])

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The first moment after the period (exclusive)."""
        return datetime.combine(self.last + timedelta(days=1), time(), tzinfo=UTC)

    def describe(self) -> str:
        return f"{self.first:%Y-%m-%d}" if self.first == self.last else f"{self.first:%Y-%m-%d} to {self.last:%Y-%m-%d}"

    def index(self) -> pd.DatetimeIndex:
        return pd.date_range(start=self.first, end=self.last, freq="D", name="day")

    def weeks(self) -> tuple[Period, Period]:
        """The period's last 7 days and the 7 before them (reaching before the period when it is shorter)."""
        this = Period.ending(self.last, WEEK)
        return this, Period.ending(this.first - timedelta(days=1), WEEK)


def _allow(principal: Principal) -> None:
    require_role(principal, Role.CS, Role.PM)


def _read(engine: Engine, query: Selectable) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(query, conn)


def _stage_times(engine: Engine) -> pd.DataFrame:
    """One row per connected partner: its integration, when it connected and reached each stage (NaT if not yet),
    and its enabled auto-pay rules now."""
    run, rule, part, con = RUN_TABLE.c, RULE_TABLE.c, PARTNER_TABLE.c, CONNECTION_TABLE.c
    # the oldest successful run, found by walking the (partner_id, started_at) index forward: a few rows per partner
    first_sync = (select(run.finished_at).where(run.partner_id == part.id, run.status.in_(OK_STATUSES),
                                                run.kind.in_(DATA_SYNC_KINDS))
                  .order_by(run.started_at, run.id).limit(1).scalar_subquery())
    rules = (select(rule.partner_id, func.min(rule.created_at).label("first_rule_at"),
                    func.min(rule.created_at).filter(rule.enabled.is_(True)).label("first_enabled_at"),
                    func.count().filter(rule.enabled.is_(True)).label("enabled_rules"))
             .group_by(rule.partner_id).subquery())
    query = (
        select(part.id.label("partner_id"), part.name.label("partner"), con.integration_role, con.connected_at,
               first_sync.label("first_sync_at"), rules.c.first_rule_at, rules.c.first_enabled_at,
               func.coalesce(rules.c.enabled_rules, 0).label("enabled_rules"))
        .select_from(PARTNER_TABLE.join(CONNECTION_TABLE, con.partner_id == part.id)
                     .outerjoin(rules, rules.c.partner_id == part.id))
        .order_by(part.name)
    )
    frame = _read(engine, query)
    for _, column in STAGES:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def _by_end(times: pd.DataFrame, period: Period) -> pd.DataFrame:
    """The stage times as they stood at the period's end: later ones not reached yet."""
    end = pd.Timestamp(period.end)
    clipped = times[times["connected_at"] < end].copy()
    for _, column in STAGES[1:]:
        clipped[column] = clipped[column].where(clipped[column] < end)
    return clipped


def _median(durations: pd.Series) -> timedelta | None:
    found = durations.dropna()
    return pd.Timedelta(found.median()).to_pytimedelta() if len(found) else None


def _hours(delta: timedelta | None) -> float | None:
    return delta.total_seconds() / 3600 if delta is not None else None


def elapsed(delta: timedelta | None) -> str:
    """A time to reach a stage: "3 h 1 min", "4 days 2 h"; "not reached" without one."""
    return NOT_REACHED if delta is None or pd.isna(delta) else _elapsed_seconds(delta.total_seconds())


def _elapsed_seconds(seconds: float) -> str:
    if seconds != seconds:  # NaN: not reached
        return NOT_REACHED
    if seconds < 2 * 86_400:
        return format_duration(timedelta(seconds=seconds))
    days, rest = divmod(int(seconds), 86_400)
    return f"{days} days {rest // 3600} h"


def _names(partners: list[str]) -> str:
    shown = ", ".join(partners[:STOPPED_NAMES])
    return f"{shown} and {number(len(partners) - STOPPED_NAMES)} more" if len(partners) > STOPPED_NAMES else shown


def _funnel(times: pd.DataFrame, period: Period) -> pd.DataFrame:
    cohort = _by_end(times, period)
    cohort = cohort[(cohort["integration_role"] == IntegrationRole.PRIMARY)
                    & (cohort["connected_at"] >= pd.Timestamp(period.start))]
    reached = pd.Series(True, index=cohort.index)
    rows = []
    for position, (stage, column) in enumerate(STAGES):
        reached = reached & cohort[column].notna()
        at = cohort.loc[reached, column]
        previous = _median(at - cohort.loc[reached, STAGES[position - 1][1]]) if position else None
        from_connect = _median(at - cohort.loc[reached, "connected_at"]) if position else None
        last = position + 1 == len(STAGES)
        stopped: list[str] = [] if last else list(cohort.loc[reached & cohort[STAGES[position + 1][1]].isna(),
                                                             "partner"])
        rows.append({
            "stage": stage, "partners": int(reached.sum()),
            "share_of_connected": float(reached.sum() / len(cohort)) if len(cohort) else 0.0,
            "median_hours_from_previous": _hours(previous),
            "median_from_previous": format_duration(previous) if previous is not None else "",
            "median_hours_from_connect": _hours(from_connect),
            "median_from_connect": elapsed(from_connect) if from_connect is not None else "",
            "stopped_here": _names(stopped),
        })
    return pd.DataFrame(rows, columns=FUNNEL_COLUMNS)


def funnel(engine: Engine, principal: Principal, period: Period) -> pd.DataFrame:
    """Activation funnel over the partners with HaloPSA as primary integration that connected in the period, as they
    stood at its end: partners per stage (a stage counts only when every earlier one was reached), the median time
    from the previous stage and from connecting, and who stopped at each stage."""
    _allow(principal)
    return _funnel(_stage_times(engine), period)


@dataclass(frozen=True)
class Activity:
    """The runs and cooldown refusals from the day before the period's last two weeks or its first day, whichever is
    earlier (`first`), to its last: run totals (run_days.TOTALS) by day, kind and manual, and over the period by
    partner and manual; refusals by partner, day and fetch. Read once for every chart and table."""

    first: date
    runs_by_day: pd.DataFrame
    runs_by_partner: pd.DataFrame
    refusals: pd.DataFrame


def _activity(engine: Engine, period: Period) -> Activity:
    event = AUDIT_TABLE.c
    first = min(period.first, period.weeks()[1].first)
    day = func.date(event.at, type_=Date).label("day")
    fetch = case(*((event.detail == refusal_detail(kind), kind.value) for kind in LABELS)).label("fetch")
    refusals = _read(engine, select(event.partner_id, day, fetch, func.count().label("refusals"))
                     .where(event.action == AuditAction.MANUAL_FETCH_REFUSED,
                            event.at >= datetime.combine(first, time(), tzinfo=UTC), event.at < period.end)
                     .group_by(event.partner_id, day, fetch))
    by_day = run_days.totals(engine, first, period.last, ["day", "kind", "manual"])
    return Activity(first, by_day.assign(day=pd.to_datetime(by_day["day"])),
                    run_days.totals(engine, period.first, period.last, ["partner_id", "manual"]),
                    refusals.assign(day=pd.to_datetime(refusals["day"])))


def _daily(activity: Activity, period: Period) -> pd.DataFrame:
    """Per UTC day of the activity: records created, invoices read, finished and successful runs, manual fetches (and
    those that found nothing new) per fetch, and refusals per fetch. Zero-filled, by day."""
    runs = activity.runs_by_day
    manual = runs[runs["manual"]]
    names = {"created": "records_created", "invoices_read": "invoices_read", "finished": "finished_runs",
             "successful": "successful_runs"}
    columns: list[pd.DataFrame | pd.Series] = [runs.groupby("day")[list(names)].sum().rename(columns=names)]
    for kind in LABELS:
        of_kind = manual[manual["kind"] == kind.value].groupby("day")
        columns += [of_kind["runs"].sum().rename(f"fetches:{kind.value}"),
                    of_kind["empty"].sum().rename(f"empty:{kind.value}")]
    refused = activity.refusals.groupby(["day", "fetch"])["refusals"].sum().unstack("fetch")
    columns.append(refused.reindex(columns=[kind.value for kind in LABELS]).add_prefix("refusals:"))
    index = pd.date_range(start=activity.first, end=period.last, freq="D", name="day")
    return pd.concat(columns, axis=1, sort=True).reindex(index).fillna(0).astype("int64")


def _within(daily: pd.DataFrame, period: Period) -> pd.DataFrame:
    return daily.loc[pd.Timestamp(period.first):pd.Timestamp(period.last)]


def _records(daily: pd.DataFrame, period: Period) -> pd.DataFrame:
    return _within(daily, period)[["records_created", "invoices_read"]].reset_index()


def records_per_day(engine: Engine, principal: Principal, period: Period) -> pd.DataFrame:
    """Records created (sum of SyncRun.created: invoices, customers, agreements) and invoices read, per day."""
    _allow(principal)
    return _records(_daily(_activity(engine, period), period), period)


def _success(daily: pd.DataFrame, period: Period) -> pd.DataFrame:
    frame = _within(daily, period)[["finished_runs", "successful_runs"]].reset_index()
    frame["success_rate"] = frame["successful_runs"] / frame["finished_runs"].where(frame["finished_runs"] > 0)
    return frame


def success_rate_per_day(engine: Engine, principal: Principal, period: Period) -> pd.DataFrame:
    """Per day: finished runs, those that succeeded or partially succeeded, and their share (NaN without runs)."""
    _allow(principal)
    return _success(_daily(_activity(engine, period), period), period)


def _manual(daily: pd.DataFrame, period: Period) -> pd.DataFrame:
    frame = _within(daily, period)[[f"fetches:{kind.value}" for kind in LABELS]]
    return frame.rename(columns={f"fetches:{kind.value}": label for kind, label in LABELS.items()}).reset_index()


def manual_fetches_per_day(engine: Engine, principal: Principal, period: Period) -> pd.DataFrame:
    """Manual fetches started per day, one column per fetch (labelled as on the Syncs page)."""
    _allow(principal)
    return _manual(_daily(_activity(engine, period), period), period)


def _pressure(daily: pd.DataFrame, period: Period) -> pd.DataFrame:
    sums = _within(daily, period).sum()
    frame = pd.DataFrame([{"fetch": label, "fetches": int(sums[f"fetches:{kind.value}"]),
                           "refusals": int(sums[f"refusals:{kind.value}"]),
                           "empty_fetches": int(sums[f"empty:{kind.value}"])} for kind, label in LABELS.items()])
    frame["refusals_per_fetch"] = frame["refusals"] / frame["fetches"].where(frame["fetches"] > 0)
    return frame[["fetch", "fetches", "refusals", "refusals_per_fetch", "empty_fetches"]]


def cooldown_pressure(engine: Engine, principal: Principal, period: Period) -> pd.DataFrame:
    """Per manual fetch, in the period: fetches run, presses refused by the cooldown, refusals per fetch, and fetches
    that found nothing new (a hint partners do not trust the automatic sync)."""
    _allow(principal)
    return _pressure(_daily(_activity(engine, period), period), period)


def autopay_coverage(engine: Engine, principal: Principal) -> pd.DataFrame:
    """Fleet-wide now, per currency (no currency: a group of its own): unpaid value, the part on agreements whose
    subtype has an enabled auto-pay rule, and that part's share. Most unpaid invoices first."""
    _allow(principal)
    inv, agr, rule = INVOICE_TABLE.c, AGREEMENT_TABLE.c, RULE_TABLE.c
    unpaid = inv.status.in_(UNPAID_STATUSES)
    # two reads, each cheap at fleet scale: every unpaid invoice once, without joins; then only the invoices of the
    # agreements an enabled rule covers, looked up through the invoices' (partner, agreement) index
    totals = _read(engine, select(inv.currency, func.count().label("invoices"),
                                  func.sum(inv.amount_due_cents).label("unpaid_cents"))
                   .where(unpaid).group_by(inv.currency))
    on_rules = (select(agr.partner_id, agr.halo_id)
                .join(RULE_TABLE, and_(rule.partner_id == agr.partner_id, rule.subtype_id == agr.subtype_id))
                .where(rule.enabled.is_(True)))
    covered = _read(engine, select(inv.currency, func.sum(inv.amount_due_cents).label("covered_cents"))
                    .where(unpaid, tuple_(inv.partner_id, inv.agreement_halo_id).in_(on_rules))
                    .group_by(inv.currency))
    frame = totals.merge(covered, on="currency", how="left")  # pandas matches a missing currency to a missing one
    frame["covered_cents"] = frame["covered_cents"].fillna(0).astype("int64")
    frame = frame.assign(missing=frame["currency"].isna()).sort_values(
        ["missing", "invoices", "currency"], ascending=[True, False, True]).drop(columns="missing")
    frame["share"] = frame["covered_cents"] / frame["unpaid_cents"].where(frame["unpaid_cents"] > 0)
    frame["unpaid"] = [money_text(int(cents)) for cents in frame["unpaid_cents"]]
    frame["covered"] = [money_text(int(cents)) for cents in frame["covered_cents"]]
    frame["code"] = frame["currency"].astype(object).where(frame["currency"].notna(), None)
    frame["currency"] = [currency_label(code) for code in frame["code"]]
    return frame.reset_index(drop=True)


def _per_partner_runs(activity: Activity, period: Period) -> pd.DataFrame:
    """Per partner, in the period: finished and successful runs, records created, manual fetches and refusals."""
    runs = activity.runs_by_partner
    refusals = activity.refusals[activity.refusals["day"] >= pd.Timestamp(period.first)]
    totals = runs.assign(manual_fetches=runs["runs"].where(runs["manual"], 0)).groupby("partner_id")[
        ["finished", "successful", "created", "manual_fetches"]].sum()
    return pd.concat([totals.rename(columns={"finished": "runs_finished", "successful": "successful_runs",
                                             "created": "records_created"}),
                      refusals.groupby("partner_id")["refusals"].sum().rename("cooldown_refusals")], axis=1, sort=True)


def _breakdown(times: pd.DataFrame, activity: pd.DataFrame, period: Period) -> pd.DataFrame:
    frame = _by_end(times, period).set_index("partner_id")
    counts = ["runs_finished", "successful_runs", "records_created", "manual_fetches", "cooldown_refusals"]
    frame = frame.join(activity.reindex(columns=counts)).fillna(dict.fromkeys(counts, 0))
    frame[counts] = frame[counts].astype("int64")
    to_sync, to_rule = frame["first_sync_at"] - frame["connected_at"], frame["first_rule_at"] - frame["connected_at"]
    frame = frame.assign(
        integration=frame["integration_role"].map(INTEGRATION_LABELS),
        connected_on=frame["connected_at"].dt.date,
        hours_to_first_sync=to_sync.dt.total_seconds() / 3600,
        to_first_sync=[_elapsed_seconds(s) for s in to_sync.dt.total_seconds().tolist()],
        hours_to_first_rule=to_rule.dt.total_seconds() / 3600,
        to_first_rule=[_elapsed_seconds(s) for s in to_rule.dt.total_seconds().tolist()],
        success_rate=frame["successful_runs"] / frame["runs_finished"].where(frame["runs_finished"] > 0),
    )
    return frame.reset_index(drop=True)[PARTNER_COLUMNS]


def partner_breakdown(engine: Engine, principal: Principal, period: Period) -> pd.DataFrame:
    """One row per partner connected by the period's end (by name): its integration, when it connected, the time from
    connecting to its first successful sync and to its first mapped subtype (as of the period's end), its enabled
    auto-pay rules now, and its runs, success rate, records created, manual fetches and refusals in the period."""
    _allow(principal)
    return _breakdown(_stage_times(engine), _per_partner_runs(_activity(engine, period), period), period)


def _count_in(times: pd.Series, period: Period) -> int:
    return int(((times >= pd.Timestamp(period.start)) & (times < pd.Timestamp(period.end))).sum())


def _rate(sums: pd.Series) -> float | None:
    return float(sums["successful_runs"] / sums["finished_runs"]) if sums["finished_runs"] else None


def _weekly(times: pd.DataFrame, daily: pd.DataFrame, period: Period) -> pd.DataFrame:
    weeks = period.weeks()
    sums = [_within(daily, week).sum() for week in weeks]
    counts: dict[str, list[int]] = {
        "Partners connected": [_count_in(times["connected_at"], week) for week in weeks],
        "First successful syncs": [_count_in(times["first_sync_at"], week) for week in weeks],
        "Subtypes first mapped": [_count_in(times["first_rule_at"], week) for week in weeks],
        "Runs finished": [int(s["finished_runs"]) for s in sums],
        "Records created": [int(s["records_created"]) for s in sums],
        "Manual fetches": [sum(int(s[f"fetches:{kind.value}"]) for kind in LABELS) for s in sums],
        "Cooldown refusals": [sum(int(s[f"refusals:{kind.value}"]) for kind in LABELS) for s in sums],
    }
    table = [{"measure": measure, "this_week": number(now), "previous_week": number(then),
              "change": change(now, then)} for measure, (now, then) in counts.items()]
    rate, rate_before = (_rate(s) for s in sums)
    moved = ("" if rate is None or rate_before is None else "no change" if rate == rate_before
             else f"{(rate - rate_before) * 100:+.1f} points")
    table.insert(4, {"measure": "Sync success rate", "this_week": _percent(rate),
                     "previous_week": _percent(rate_before), "change": moved})
    return pd.DataFrame(table, columns=["measure", "this_week", "previous_week", "change"])


def _percent(rate: float | None) -> str:
    return f"{rate:.0%}" if rate is not None else "no runs"


def week_over_week(engine: Engine, principal: Principal, period: Period) -> pd.DataFrame:
    """The period's last 7 days against the 7 before them: partners connected, first successful syncs, subtypes
    first mapped, runs finished, the sync success rate, records created, manual fetches and cooldown refusals, each
    as shown with its change."""
    _allow(principal)
    return _weekly(_stage_times(engine), _daily(_activity(engine, period), period), period)


@dataclass(frozen=True)
class AdoptionReport:
    period: Period
    connected: int  # partners connected by the period's end, HaloPSA primary
    secondary: int  # and with HaloPSA as secondary integration
    funnel: pd.DataFrame
    records: pd.DataFrame
    success: pd.DataFrame
    manual: pd.DataFrame
    pressure: pd.DataFrame
    coverage: pd.DataFrame
    partners: pd.DataFrame
    weekly: pd.DataFrame

    def notes(self) -> dict[str, str]:
        """What each part of the page covers, in plain words, by part: dates, weekly, funnel, partners, coverage."""
        this, before = self.period.weeks()
        dates, last = self.period.describe(), f"{self.period.last:%Y-%m-%d}"
        return {
            "dates": f"Dates: {dates} (whole days, UTC). Every chart, table and tile follows them, except the unpaid "
                     "value on auto-pay, which is as of now.",
            "weekly": f"The last 7 days of the dates ({this.describe()}) against the 7 days before them "
                      f"({before.describe()}).",
            "funnel": f"Partners with HaloPSA as primary integration that connected {dates}, and how far each had got "
                      f"by the end of {last}.",
            "partners": f"Every partner connected by the end of {last}. Times from connecting are as they stood then; "
                        f"runs, records, fetches and refusals are those {dates}.",
            "coverage": "Unpaid invoices now, whatever the dates: one row per currency, never added across "
                        "currencies.",
        }

    def tiles(self) -> list[Tile]:
        """The headline numbers, formatted for the page's metric tiles: one auto-pay share per currency."""
        stages = self.funnel.set_index("stage")
        cohort, activated = int(stages["partners"].iloc[0]), int(stages["partners"].iloc[-1])
        finished = int(self.success["finished_runs"].sum())
        rate = f"{self.success['successful_runs'].sum() / finished:.0%}" if finished else "no runs"
        dates = self.period.describe()
        tiles = [
            Tile("Partners connected", number(cohort),
                 f"HaloPSA as primary integration, connected {dates}; {number(self.connected)} connected by then in "
                 f"all, {number(self.secondary)} more with HaloPSA as secondary integration."),
            Tile("Auto-pay enabled", f"{number(activated)} of {number(cohort)}",
                 f"Of the partners connected {dates}: those with an enabled auto-pay rule by the end."),
            Tile("Median time to first sync", str(stages.loc["First successful sync", "median_from_connect"])
                 or "none yet", f"From connecting to the first successful sync, partners connected {dates}."),
            Tile("Median time to first mapped subtype", str(stages.loc["Subtype mapped", "median_from_connect"])
                 or "none yet", f"From connecting to the first auto-pay rule saved, partners connected {dates}."),
            Tile("Sync success rate", rate,
                 f"Runs that succeeded or partially succeeded, of {number(finished)} finished {dates}."),
            Tile("Manual fetches", number(int(self.pressure["fetches"].sum())),
                 f"Fetch new data and Fetch unpaid invoices started {dates}."),
            Tile("Cooldown refusals", number(int(self.pressure["refusals"].sum())),
                 f"Presses on a fetch that was still cooling down, {dates}."),
        ]
        for row in self.coverage.to_dict("records"):
            share = f"{row['share']:.0%}" if pd.notna(row["share"]) else "nothing unpaid"
            covered = money_in(int(row["covered_cents"]), row["code"])
            unpaid = money_in(int(row["unpaid_cents"]), row["code"])
            tiles.append(Tile(f"Unpaid on auto-pay ({row['currency']})", share,
                              f"{covered} of {unpaid} unpaid is on agreements whose subtype has an enabled rule (now, "
                              "whatever the dates)."))
        if not len(self.coverage):
            tiles.append(Tile("Unpaid on auto-pay", "no unpaid invoices", "Nothing unpaid has synced yet."))
        return tiles


def report(engine: Engine, principal: Principal, period: Period) -> AdoptionReport:
    """Everything the Adoption page shows, over `period` (read once each: the stage times and the activity)."""
    _allow(principal)
    times, activity = _stage_times(engine), _activity(engine, period)
    daily = _daily(activity, period)
    known = _by_end(times, period)["integration_role"]
    return AdoptionReport(
        period=period, connected=int((known == IntegrationRole.PRIMARY).sum()),
        secondary=int((known == IntegrationRole.SECONDARY).sum()),
        funnel=_funnel(times, period), records=_records(daily, period), success=_success(daily, period),
        manual=_manual(daily, period), pressure=_pressure(daily, period), coverage=autopay_coverage(engine, principal),
        partners=_breakdown(times, _per_partner_runs(activity, period), period), weekly=_weekly(times, daily, period),
    )


def _export_rows(frame: pd.DataFrame, period: Period) -> list[dict[str, Any]]:
    return [{"period_first": period.first.isoformat(), "period_last": period.last.isoformat(),
             "partner": row["partner"], "integration": row["integration"],
             "connected_on": row["connected_on"].isoformat(),
             "hours_to_first_sync": _rounded(row["hours_to_first_sync"]),
             "hours_to_first_mapped_subtype": _rounded(row["hours_to_first_rule"]),
             "enabled_rules": row["enabled_rules"], "runs_finished": row["runs_finished"],
             "successful_runs": row["successful_runs"], "success_rate": _rounded(row["success_rate"], 4),
             "records_created": row["records_created"], "manual_fetches": row["manual_fetches"],
             "cooldown_refusals": row["cooldown_refusals"]}
            for row in frame.to_dict("records")]


def _rounded(value: Any, places: int = 2) -> float | None:
    return None if pd.isna(value) else round(float(value), places)


def export_csv(engine: Engine, principal: Principal, period: Period, *, now: datetime,
               throttled: bool = False) -> exports.CsvExport:
    """The per-partner breakdown as formula-safe CSV (one row per partner, numbers as numbers), with its "export"
    audit event; refused with nothing written past exports' row limit and, when `throttled` (the page's button), past
    the person's download rate."""
    _allow(principal)
    frame = partner_breakdown(engine, principal, period)
    exports.start_download(engine, principal.user, partner_id=None, rows=len(frame), now=now, throttled=throttled,
                           detail=f"Adoption per-partner CSV: {len(frame):,} rows; dates {period.describe()}")
    data, rows = exports.csv_file(_export_rows(frame, period))
    return exports.CsvExport(data=data, rows=rows)
