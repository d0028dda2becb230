"""The Syncs page's run history: the table of runs with its pager, the pick of one run (following the run a press
just started) and its detail (counts, the error, what became of the records it read, the records it could not read
grouped by reason)."""

from __future__ import annotations

import streamlit as st
from sqlalchemy.engine import Engine

from core.access import Principal
from core.console import syncs as syncs_screen
from core.console.audience import PLAIN_TERMS
from core.console.formatting import escape_markdown

COUNT_WIDTH = 82
PAGE_KEY, RUN_KEY = "syncs.page", "syncs.run"
FOLLOW_KEY = "syncs.follow"  # the job a press on this page queued: the detail shows its run once it starts
_COUNT = st.column_config.NumberColumn(width=COUNT_WIDTH)
_CONFIG = {
    "Run": st.column_config.NumberColumn(width=60),
    "Kind": st.column_config.TextColumn(width=150),
    "Status": st.column_config.TextColumn(width=90),
    "Started (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss", width=150),
    "Duration (s)": st.column_config.NumberColumn(format="%.2f", width=95),
    **dict.fromkeys(("Created", "Updated", "Unchanged", "Rejected", "Requests"), _COUNT),
    "By": st.column_config.TextColumn(width=170),
    "Trigger": st.column_config.TextColumn(width=85),
    "Error": st.column_config.TextColumn(width="large"),
}
RUN_COLUMNS = {**_CONFIG, **{plain: _CONFIG[name] for name, plain in PLAIN_TERMS.items()}}
ERROR_GROUP_COLUMNS = {
    "Record": st.column_config.TextColumn(width=90),
    "Reason": st.column_config.TextColumn(width="large"),
    "Records": _COUNT,
    "Example HaloPSA ID": st.column_config.TextColumn(width=140),
    "Example as HaloPSA sent it": st.column_config.TextColumn(width="large"),
}


def requested_page() -> int:
    """The 0-based page of runs the pager under the table asks for (its value from the previous run)."""
    return int(st.session_state.get(PAGE_KEY, 1)) - 1


def follow(job_id: int) -> None:
    """After a press: show the first page of runs, and the pressed fetch's run in the detail once it starts."""
    st.session_state[FOLLOW_KEY] = job_id
    st.session_state[PAGE_KEY] = 1


def followed_job_live(engine: Engine, principal: Principal, partner_id: int) -> bool:
    """Whether the fetch a press on this page queued is still queued or running."""
    job_id = st.session_state.get(FOLLOW_KEY)
    return job_id is not None and syncs_screen.job_run(engine, principal, partner_id, int(job_id))[1]


def runs_table(page: syncs_screen.RunPage) -> None:
    """One page of runs and the pager under it."""
    st.session_state[PAGE_KEY] = page.page + 1  # clamped when the filters leave fewer pages
    st.dataframe(page.rows, hide_index=True, key="syncs.runs",
                 column_config={name: RUN_COLUMNS[name] for name in page.rows.columns})
    st.columns([1, 3])[0].number_input(f"Page (of {page.pages}; {page.total:,} runs)", min_value=1,
                                       max_value=page.pages, key=PAGE_KEY)


def _pressed_run(engine: Engine, principal: Principal, partner_id: int, choices: dict[int, str]) -> int | None:
    """The run the last press on this page started, when the table lists it; else None, and why it is not shown."""
    job_id = st.session_state.get(FOLLOW_KEY)
    if job_id is None:
        return None
    run_id, live = syncs_screen.job_run(engine, principal, partner_id, int(job_id))
    if run_id is None:
        if live:
            st.caption("The fetch you pressed is queued: its run shows here as soon as it starts.")
        return None
    if run_id not in choices:
        if live:
            st.caption(f"Run #{run_id}, of the fetch you pressed, is not in the table: clear the filters to see it.")
        return None
    return run_id


def pick_run(engine: Engine, principal: Principal, partner_id: int, page: syncs_screen.RunPage) -> None:
    """The run picker under the table and the picked run's detail. The run a press started is picked once it shows
    in the table: a picker of its own (a new key) starts on it, so a pick made since stays, and no value written into
    a widget's state can lose a race with a value the browser sends back at a timer's tick."""
    choices = page.choices
    pressed = _pressed_run(engine, principal, partner_id, choices)
    if not choices:
        return
    options = list(choices)
    run_id = st.selectbox("Run detail", options, index=options.index(pressed) if pressed else 0,
                          format_func=choices.__getitem__, key=f"{RUN_KEY}.{pressed}" if pressed else RUN_KEY)
    if run_id is not None:
        run_detail(syncs_screen.run_detail(engine, principal, partner_id, run_id))


def run_detail(detail: syncs_screen.RunDetail) -> None:
    st.caption(escape_markdown(detail.headline))
    for column, (name, value) in zip(st.columns(len(detail.counts)), detail.counts.items(), strict=True):
        column.metric(name, f"{value:,}")
    if detail.error:
        st.error(escape_markdown(detail.error))
    st.caption(escape_markdown(detail.records_note))
    if detail.errors_total:
        st.dataframe(detail.error_groups, hide_index=True, key="syncs.record_errors",
                     column_config=ERROR_GROUP_COLUMNS)
