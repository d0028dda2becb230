"""The Adoption page's tables, each with its columns as people read them (counts thousands separated), and the
per-partner CSV download. The frames and the CSV come from core.console.adoption."""

from __future__ import annotations

from typing import Any

import streamlit as st
from sqlalchemy.engine import Engine

from core.access import Principal
from core.console import adoption, exports
from core.console.formatting import TABLE_COUNT_FORMAT
from ui import components, resources


def count(label: str) -> Any:
    """A table column of counts, thousands separated."""
    return st.column_config.NumberColumn(label, format=TABLE_COUNT_FORMAT)


def weekly(report: adoption.AdoptionReport) -> None:
    """The period's last 7 days against the 7 before."""
    st.dataframe(report.weekly, hide_index=True, key="adoption.weekly", column_config={
        "measure": st.column_config.TextColumn("Measure", width=200), "this_week": "Final 7 days",
        "previous_week": "7 days before", "change": "Change"})


def funnel(report: adoption.AdoptionReport) -> None:
    """Partners per stage, the median times and who stopped where."""
    st.dataframe(report.funnel, hide_index=True, key="adoption.funnel",
                 column_order=["stage", "partners", "median_from_previous", "median_from_connect", "stopped_here"],
                 column_config={"stage": st.column_config.TextColumn("Stage", width=180),
                                "partners": count("Partners"),
                                "median_from_previous": st.column_config.TextColumn(
                                    "Median time from previous stage", width=200),
                                "median_from_connect": st.column_config.TextColumn(
                                    "Median time from connecting", width=200),
                                "stopped_here": st.column_config.TextColumn("Stopped at this stage", width="large")})


def partners(engine: Engine, principal: Principal, report: adoption.AdoptionReport) -> None:
    """One row per partner, and its CSV download."""
    st.dataframe(report.partners, hide_index=True, key="adoption.partners",
                 column_order=["partner", "integration", "connected_on", "to_first_sync", "to_first_rule",
                               "enabled_rules", "runs_finished", "success_rate", "records_created", "manual_fetches",
                               "cooldown_refusals"],
                 column_config={"partner": st.column_config.TextColumn("Partner", width=200),
                                "integration": "Integration", "connected_on": st.column_config.DateColumn("Connected"),
                                "to_first_sync": "Connect to first sync",
                                "to_first_rule": "Connect to first mapped subtype",
                                "enabled_rules": count("Enabled auto-pay rules"),
                                "runs_finished": count("Runs finished"),
                                "success_rate": st.column_config.NumberColumn("Success rate", format="percent"),
                                "records_created": count("Records created"),
                                "manual_fetches": count("Manual fetches"),
                                "cooldown_refusals": count("Cooldown refusals")})
    components.csv_download(
        "adoption.download", f"adoption-per-partner-{report.period.first:%Y%m%d}-{report.period.last:%Y%m%d}.csv",
        rows=len(report.partners),
        refusal=exports.download_refusal(engine, principal.user, rows=len(report.partners), now=resources.now()),
        data=lambda: adoption.export_csv(engine, principal, report.period, now=resources.now(), throttled=True).data)


def pressure(report: adoption.AdoptionReport) -> None:
    """Manual fetches and cooldown refusals per fetch."""
    st.dataframe(report.pressure, hide_index=True, key="adoption.pressure", column_config={
        "fetch": "Manual fetch", "fetches": count("Fetches run"),
        "refusals": count("Refused by cooldown"),
        "refusals_per_fetch": st.column_config.NumberColumn("Refusals per fetch", format="%.2f"),
        "empty_fetches": count("Fetches that found nothing new")})


def coverage(report: adoption.AdoptionReport) -> None:
    """The unpaid value on auto-pay, one row per currency."""
    st.dataframe(report.coverage, hide_index=True, key="adoption.coverage",
                 column_order=["currency", "invoices", "unpaid", "covered", "share"], column_config={
                     "currency": "Currency", "invoices": count("Unpaid invoices"), "unpaid": "Unpaid",
                     "covered": "On an enabled auto-pay rule",
                     "share": st.column_config.ProgressColumn("Share", format="percent", min_value=0, max_value=1)})
