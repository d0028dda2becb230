import pandas as pd
import pytest

from core.console import syncs
from core.console.charts import sync_history

DAYS = pd.to_datetime(["2026-10-31", "2026-11-01", "2026-11-02"])
DATA = syncs.ChartData(
    daily=pd.DataFrame({"day": pd.to_datetime(["2026-10-31", "2026-11-01", "2026-11-02", "2026-11-02", "2026-11-02"]),
                        "status": ["succeeded", "failed", "succeeded", "partial", "running"],
                        "runs": [24, 1, 20, 2, 1]}),
    records=pd.DataFrame({"day": DAYS, "created": [50, 0, 3], "updated": [7, 0, 1], "rejected": [0, 0, 2]}),
    durations=pd.DataFrame({"day": DAYS, "p50_s": [1.5, 0.2, 2.0], "p95_s": [9.0, 0.2, 4.5], "runs": [24, 1, 22]}),
    scope="Runs started 2026-10-04 to 2026-11-02 (UTC).", empty=None)
EMPTY = syncs.ChartData(daily=pd.DataFrame(columns=syncs.DAILY_COLUMNS),
                        records=pd.DataFrame(columns=syncs.RECORD_COLUMNS),
                        durations=pd.DataFrame(columns=syncs.DURATION_COLUMNS), scope="", empty="No runs yet.")
FIGURES = (sync_history.runs_per_day_figure, sync_history.records_per_day_figure,
           sync_history.duration_per_day_figure)


def test_runs_per_day_stacks_one_coloured_trace_per_status():
    fig = sync_history.runs_per_day_figure(DATA)
    assert {trace.name for trace in fig.data} == {"Succeeded", "Failed", "Partial", "Running"}
    assert fig.layout.barmode == "stack"
    assert fig.layout.xaxis.title.text == "Day (UTC)" and fig.layout.yaxis.title.text == "Runs (count)"
    assert sum(sum(trace.y) for trace in fig.data) == 48
    failed = next(trace for trace in fig.data if trace.name == "Failed")
    assert failed.marker.color == sync_history.STATUS_COLOURS["failed"]


def test_records_are_one_stacked_bar_per_day_not_one_hairline_per_run():
    fig = sync_history.records_per_day_figure(DATA)
    assert [trace.name for trace in fig.data] == ["Created", "Updated", "Could not be read"]
    assert all(len(trace.x) == 3 for trace in fig.data)
    assert [list(trace.y) for trace in fig.data] == [[50, 0, 3], [7, 0, 1], [0, 0, 2]]
    assert fig.layout.barmode == "stack" and fig.layout.yaxis.title.text == "Records (count)"
    assert fig.layout.yaxis.rangemode == "nonnegative"


def test_duration_is_the_daily_median_and_95th_percentile_in_seconds():
    fig = sync_history.duration_per_day_figure(DATA)
    assert [trace.name for trace in fig.data] == ["Median", "95th percentile"]
    assert list(fig.data[0].y) == [1.5, 0.2, 2.0] and list(fig.data[1].y) == [9.0, 0.2, 4.5]
    assert fig.layout.yaxis.title.text == "Duration (seconds)" and fig.layout.yaxis.rangemode == "nonnegative"


@pytest.mark.parametrize("figure", FIGURES)
def test_an_empty_chart_says_why_and_draws_no_axes_that_could_go_negative(figure):
    fig = figure(EMPTY)
    assert not fig.data and fig.layout.title.text and fig.layout.yaxis.title.text
    assert [note.text for note in fig.layout.annotations] == ["No runs yet."]
    assert fig.layout.xaxis.visible is False and fig.layout.yaxis.visible is False


def test_days_with_runs_but_no_records_or_no_finished_run_say_so_instead_of_a_flat_line():
    quiet = syncs.ChartData(daily=DATA.daily, records=DATA.records.assign(created=0, updated=0, rejected=0),
                            durations=pd.DataFrame(columns=syncs.DURATION_COLUMNS), scope="", empty=None)
    records, durations = sync_history.records_per_day_figure(quiet), sync_history.duration_per_day_figure(quiet)
    assert [note.text for note in records.layout.annotations] == [sync_history.NO_RECORDS]
    assert [note.text for note in durations.layout.annotations] == [sync_history.NO_FINISHED]
    assert not records.data and not durations.data
