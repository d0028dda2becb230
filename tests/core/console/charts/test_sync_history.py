from datetime import timedelta

import pandas as pd

from core.console import syncs
from core.console.charts import sync_history
from tests.support.clock import NOW

DAILY = pd.DataFrame({"day": pd.to_datetime(["2026-10-31", "2026-11-01", "2026-11-02", "2026-11-02", "2026-11-02"]),
                      "status": ["succeeded", "failed", "succeeded", "partial", "running"], "runs": [1, 1, 1, 1, 1]})
PER_RUN = pd.DataFrame({
    "run_id": [1, 2, 3, 4, 5],
    "kind": ["scheduled"] * 4 + ["fetch_unpaid"],
    "status": ["succeeded", "failed", "succeeded", "partial", "running"],
    "started_at": [NOW - timedelta(hours=h) for h in (50, 26, 2, 1, 0)],
    "created": [50, 26, 2, 1, 0], "updated": [1, 1, 1, 1, 0],
    "duration_s": [120.0, 120.0, 120.0, 120.0, None],
})
data = syncs.ChartData(daily=DAILY, per_run=PER_RUN)


def test_runs_over_time_stacks_one_coloured_trace_per_status():
    fig = sync_history.runs_over_time_figure(data.daily)
    names = {trace.name for trace in fig.data}
    assert names == {"Succeeded", "Failed", "Partial", "Running"}
    assert fig.layout.barmode == "stack"
    assert fig.layout.xaxis.title.text == "Day (UTC)" and fig.layout.yaxis.title.text == "Runs (count)"
    assert sum(sum(trace.y) for trace in fig.data) == 5
    failed = next(trace for trace in fig.data if trace.name == "Failed")
    assert failed.marker.color == sync_history.STATUS_COLOURS["failed"]


def test_records_per_run_has_created_and_updated_in_records():
    fig = sync_history.records_per_run_figure(data.per_run)
    assert [trace.name for trace in fig.data] == ["Created", "Updated"]
    assert list(fig.data[0].y) == [50, 26, 2, 1, 0]
    assert fig.layout.yaxis.title.text == "Records (count)" and "UTC" in fig.layout.xaxis.title.text


def test_duration_per_run_is_in_seconds_and_skips_runs_still_going():
    fig = sync_history.duration_per_run_figure(data.per_run)
    assert fig.layout.yaxis.title.text == "Duration (seconds)"
    assert sum(len(trace.y) for trace in fig.data) == 4
    assert all(value == 120.0 for trace in fig.data for value in trace.y)


def test_empty_history_still_titles_its_axes_and_says_why_it_is_blank():
    empty = syncs.ChartData(daily=pd.DataFrame(columns=["day", "status", "runs"]),
                              per_run=pd.DataFrame(columns=["run_id", "kind", "status", "started_at", "created",
                                                            "updated", "duration_s"]))
    for fig in (sync_history.runs_over_time_figure(empty.daily), sync_history.records_per_run_figure(empty.per_run),
                sync_history.duration_per_run_figure(empty.per_run)):
        assert fig.layout.yaxis.title.text and fig.layout.title.text
        assert fig.layout.annotations[0].text == "No runs match the filters."
