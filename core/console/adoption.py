"""Adoption metrics for product managers and customer success: aggregates only.

Every function takes a Principal (cs or pm) and returns counts, sums, shares and medians computed in SQL: no secrets,
no invoice rows and no per-invoice detail, so a pm may see them. Per-day series bucket runs by the UTC day they
started, over the `days` up to and including `now`'s day, with empty days filled with zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Date, Select, and_, case, func, select
from sqlalchemy.engine import Engine

from core.access import Principal, require_role
from core.console.formatting import money
from core.console.overview import OK_STATUSES
from core.errors import format_duration
from core.store.tables import (
    AGREEMENT_TABLE,
    CONNECTION_TABLE,
    COOLDOWN_TABLE,
    INVOICE_TABLE,
    PARTNER_TABLE,
    RULE_TABLE,
    RUN_TABLE,
    UNPAID_STATUSES,
    IntegrationRole,
    Role,
    RunKind,
)
from core.sync.cooldowns import LABELS

STAGES = (
    ("Connected", "connected_at"),
    ("First successful sync", "first_sync_at"),
    ("Subtype mapped", "first_rule_at"),
    ("Auto-pay rule enabled", "first_enabled_at"),
)
FUNNEL_COLUMNS = ["stage", "partners", "share_of_connected", "median_hours_from_previous",
                  "median_from_previous", "stopped_here"]


def _allow(principal: Principal) -> None:
    require_role(principal, Role.CS, Role.PM)


def _read(engine: Engine, query: Select[Any]) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(query, conn)


def _stage_times(engine: Engine) -> pd.DataFrame:
    """One row per partner with HaloPSA as its primary integration: when it reached each stage (NaT if not yet)."""
    run, rule, part, con = RUN_TABLE.c, RULE_TABLE.c, PARTNER_TABLE.c, CONNECTION_TABLE.c
    # the oldest successful run, found by walking the (partner_id, started_at) index forward: a few rows per partner
    first_sync = (select(run.finished_at).where(run.partner_id == part.id, run.status.in_(OK_STATUSES))
                  .order_by(run.started_at, run.id).limit(1).scalar_subquery())
    first_rule = select(rule.partner_id, func.min(rule.created_at).label("at")).group_by(rule.partner_id).subquery()
    first_enabled = (select(rule.partner_id, func.min(rule.created_at).label("at"))
                     .where(rule.enabled.is_(True)).group_by(rule.partner_id).subquery())
    query = (
        select(part.name.label("partner"), con.connected_at, first_sync.label("first_sync_at"),
               first_rule.c.at.label("first_rule_at"), first_enabled.c.at.label("first_enabled_at"))
        .select_from(
            PARTNER_TABLE.join(CONNECTION_TABLE, con.partner_id == part.id)
            .outerjoin(first_rule, first_rule.c.partner_id == part.id)
            .outerjoin(first_enabled, first_enabled.c.partner_id == part.id)
        )
        .where(con.integration_role == IntegrationRole.PRIMARY)
        .order_by(part.name)
    )
    frame = _read(engine, query)
    for _, column in STAGES:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def funnel(engine: Engine, principal: Principal) -> pd.DataFrame:
    """Activation funnel over partners with HaloPSA as primary integration: partners per stage (a stage counts only
    when every earlier one was reached), the median time from the previous stage, and who stopped at each stage."""
    _allow(principal)
    times = _stage_times(engine)
    reached = pd.Series(True, index=times.index)
    rows = []
    for position, (stage, column) in enumerate(STAGES):
        reached = reached & times[column].notna()
        median: timedelta | None = None
        if position and reached.any():
            previous = STAGES[position - 1][1]
            median = pd.Timedelta((times.loc[reached, column] - times.loc[reached, previous]).median()).to_pytimedelta()
        last = position + 1 == len(STAGES)
        stopped: list[str] = [] if last else list(times.loc[reached & times[STAGES[position + 1][1]].isna(), "partner"])
        rows.append({
            "stage": stage,
            "partners": int(reached.sum()),
            "share_of_connected": float(reached.sum() / len(times)) if len(times) else 0.0,
            "median_hours_from_previous": median.total_seconds() / 3600 if median is not None else None,
            "median_from_previous": format_duration(median) if median is not None else "",
            "stopped_here": ", ".join(stopped),
        })
    return pd.DataFrame(rows, columns=FUNNEL_COLUMNS)


def _days(now: datetime, days: int) -> pd.DatetimeIndex:
    return pd.date_range(end=now.date(), periods=days, freq="D", name="day")


def _per_day(engine: Engine, columns: list[Any], *conditions: Any, now: datetime, days: int,
             by: Any = None) -> pd.DataFrame:
    """Aggregate the runs meeting `conditions` by the UTC day they started (and `by`), over the last `days` days."""
    run = RUN_TABLE.c
    day = func.date(run.started_at, type_=Date).label("day")
    start = datetime.combine(now.date() - timedelta(days=days - 1), datetime.min.time(), tzinfo=now.tzinfo)
    keys = [day] if by is None else [day, by]
    frame = _read(engine, select(*keys, *columns).where(run.started_at >= start, *conditions).group_by(*keys))
    frame["day"] = pd.to_datetime(frame["day"])
    return frame


def records_per_day(engine: Engine, principal: Principal, *, now: datetime, days: int = 30) -> pd.DataFrame:
    """Records created (sum of SyncRun.created: invoices, customers, agreements) and invoices read, per day."""
    _allow(principal)
    run = RUN_TABLE.c
    frame = _per_day(engine, [func.sum(run.created).label("records_created"),
                              func.sum(run.invoices_seen).label("invoices_read")], now=now, days=days)
    return frame.set_index("day").reindex(_days(now, days), fill_value=0).astype("int64").reset_index()


def success_rate_per_day(engine: Engine, principal: Principal, *, now: datetime, days: int = 30) -> pd.DataFrame:
    """Per day: finished runs, those that succeeded or partially succeeded, and their share (NaN without runs)."""
    _allow(principal)
    run = RUN_TABLE.c
    frame = _per_day(engine, [func.count().label("finished_runs"),
                              func.count().filter(run.status.in_(OK_STATUSES)).label("successful_runs")],
                     run.finished_at.is_not(None), now=now, days=days)
    frame = frame.set_index("day").reindex(_days(now, days), fill_value=0).astype("int64").reset_index()
    frame["success_rate"] = frame["successful_runs"] / frame["finished_runs"].where(frame["finished_runs"] > 0)
    return frame


def manual_fetches_per_day(engine: Engine, principal: Principal, *, now: datetime, days: int = 30) -> pd.DataFrame:
    """Manual fetches started per day, one column per fetch (labelled as on the Syncs page)."""
    _allow(principal)
    run = RUN_TABLE.c
    frame = _per_day(engine, [func.count().label("fetches")], run.trigger == "manual", now=now, days=days,
                     by=run.kind)
    wide = frame.pivot_table(index="day", columns="kind", values="fetches", aggfunc="sum")
    wide = wide.reindex(index=_days(now, days), columns=[kind.value for kind in LABELS], fill_value=0).fillna(0)
    wide = wide.astype("int64").rename(columns={kind.value: label for kind, label in LABELS.items()})
    return wide.rename_axis(columns=None).reset_index()


def cooldown_pressure(engine: Engine, principal: Principal) -> pd.DataFrame:
    """Per manual fetch, all time: fetches run, presses refused by the cooldown, refusals per fetch, and fetches that
    found nothing new (a hint partners do not trust the automatic sync)."""
    _allow(principal)
    run, cool = RUN_TABLE.c, COOLDOWN_TABLE.c
    fetches = _read(engine, select(run.kind, func.count().label("fetches"),
                                   func.count().filter(run.created + run.updated == 0).label("empty_fetches"))
                    .where(run.trigger == "manual").group_by(run.kind)).set_index("kind")
    refusals = _read(engine, select(cool.kind, func.sum(cool.refused_count).label("refusals"))
                     .group_by(cool.kind)).set_index("kind")
    kinds = [kind.value for kind in LABELS]
    frame = pd.concat([fetches, refusals], axis=1).reindex(kinds).fillna(0).astype("int64")
    frame["refusals_per_fetch"] = frame["refusals"] / frame["fetches"].where(frame["fetches"] > 0)
    frame.index = [LABELS[RunKind(kind)] for kind in frame.index]
    return frame.rename_axis("fetch").reset_index()[
        ["fetch", "fetches", "refusals", "refusals_per_fetch", "empty_fetches"]]


def autopay_coverage(engine: Engine, principal: Principal) -> pd.DataFrame:
    """Fleet-wide, per currency: unpaid value, the part on agreements whose subtype has an enabled auto-pay rule, and
    that part's share."""
    _allow(principal)
    inv, agr, rule = INVOICE_TABLE.c, AGREEMENT_TABLE.c, RULE_TABLE.c
    covered = case((rule.id.is_not(None), inv.amount_due_cents), else_=0)
    query = (
        select(inv.currency, func.sum(inv.amount_due_cents).label("unpaid_cents"),
               func.sum(covered).label("covered_cents"))
        .select_from(
            INVOICE_TABLE.outerjoin(AGREEMENT_TABLE, and_(agr.partner_id == inv.partner_id,
                                                          agr.halo_id == inv.agreement_halo_id))
            .outerjoin(RULE_TABLE, and_(rule.partner_id == agr.partner_id, rule.subtype_id == agr.subtype_id,
                                        rule.enabled.is_(True)))
        )
        .where(inv.status.in_(UNPAID_STATUSES))
        .group_by(inv.currency)
        .order_by(func.sum(inv.amount_due_cents).desc())
    )
    frame = _read(engine, query)
    frame["currency"] = frame["currency"].fillna("unknown")
    frame["share"] = frame["covered_cents"] / frame["unpaid_cents"].where(frame["unpaid_cents"] > 0)
    frame["unpaid"] = frame["unpaid_cents"].map(money)
    frame["covered"] = frame["covered_cents"].map(money)
    return frame


@dataclass(frozen=True)
class Tile:
    """One `st.metric` tile: label, value and what it counts."""

    label: str
    value: str
    help: str


@dataclass(frozen=True)
class AdoptionReport:
    days: int
    secondary: int
    funnel: pd.DataFrame
    records: pd.DataFrame
    success: pd.DataFrame
    manual: pd.DataFrame
    pressure: pd.DataFrame
    coverage: pd.DataFrame

    def tiles(self) -> list[Tile]:
        """The headline numbers, formatted for the page's metric tiles."""
        connected, activated = int(self.funnel["partners"].iloc[0]), int(self.funnel["partners"].iloc[-1])
        finished = int(self.success["finished_runs"].sum())
        rate = f"{self.success['successful_runs'].sum() / finished:.0%}" if finished else "no runs"
        top = self.coverage.iloc[0] if len(self.coverage) else None
        share = f"{top['share']:.0%}" if top is not None and pd.notna(top["share"]) else "no unpaid invoices"
        return [
            Tile("Partners connected", str(connected),
                 f"HaloPSA as primary integration ({self.secondary} more as secondary)."),
            Tile("Auto-pay enabled", f"{activated} of {connected}",
                 "Partners with at least one enabled auto-pay rule."),
            Tile("Unpaid value on auto-pay", share,
                 f"{top['covered']} of {top['unpaid']} {top['currency']} unpaid is on agreements whose subtype has an "
                 "enabled rule." if top is not None else "Nothing unpaid has synced yet."),
            Tile("Sync success rate", rate,
                 f"Runs that succeeded or partially succeeded, of {finished:,} finished in the last {self.days} days."),
            Tile("Manual fetches", f"{int(self.manual.drop(columns='day').to_numpy().sum()):,}",
                 f"Fetch new data and Fetch unpaid invoices started in the last {self.days} days."),
            Tile("Cooldown refusals", f"{int(self.pressure['refusals'].sum()):,}",
                 "Presses on a fetch that was still cooling down (all time)."),
        ]


def _secondary_count(engine: Engine) -> int:
    con = CONNECTION_TABLE.c
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).where(con.integration_role == IntegrationRole.SECONDARY)) or 0)


def report(engine: Engine, principal: Principal, *, now: datetime, days: int = 30) -> AdoptionReport:
    """Everything the Adoption page shows, over the last `days` days."""
    _allow(principal)
    return AdoptionReport(
        days=days, secondary=_secondary_count(engine), funnel=funnel(engine, principal),
        records=records_per_day(engine, principal, now=now, days=days),
        success=success_rate_per_day(engine, principal, now=now, days=days),
        manual=manual_fetches_per_day(engine, principal, now=now, days=days),
        pressure=cooldown_pressure(engine, principal), coverage=autopay_coverage(engine, principal),
    )
