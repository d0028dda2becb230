"""The Invoices page's search box explains, not only filters: when the search matches no row (or on the Trace button),
the tracer's answer for what was typed is shown under the box, with a "Look it up in HaloPSA" button when local data
cannot tell. The answers come from core.console.tracer and core.actions.trace_lookup; every text here may hold outside
text (numbers, names from HaloPSA, what was typed) and is escaped where drawn."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st
from sqlalchemy.engine import Engine

from core.access import Principal
from core.actions import trace_lookup
from core.console import tracer
from core.console.formatting import escape_markdown
from core.console.tracer import Answer, TraceResult
from core.errors import ConsoleError
from ui import resources

TRACED = "invoices.traced"  # the search text the Trace button was pressed for
LIVE = "invoices.trace_live"  # (partner, search text, the live answer) once looked up in HaloPSA
# how each answer is drawn: here as it should be (green), trouble to act on (amber), else why it is not charged (blue)
_WARN = {Answer.REJECTED, Answer.MISSED, Answer.NOT_FOUND, Answer.NOT_SYNCED_FROM_HALOPSA}


def _draw(result: TraceResult) -> None:
    box = st.container(border=True, key="invoices.trace")
    source = "HaloPSA (looked up just now; nothing stored)" if result.live else "the synced data"
    box.caption(f"Why “{escape_markdown(result.identifier)}” is or is not listed, from {source}")
    if len(result.traces) > 1:
        box.markdown(escape_markdown(result.headline))
    for trace in result.traces:
        text = escape_markdown(trace.summary)
        show = box.success if trace.answer == Answer.STORED else box.warning if trace.answer in _WARN else box.info
        show(text)
        for fact in trace.facts:
            box.markdown(f"- {escape_markdown(fact)}")
        box.markdown(f"**What to do:** {escape_markdown(trace.next_step)}")
    for note in result.notes:
        box.caption(escape_markdown(note))


def show(engine: Engine, principal: Principal, partner_id: int, term: str, matched: int) -> None:
    """Under the filter row: the Trace button for the search text, and the answer when nothing matched or the button
    was pressed; a live lookup only on its own button."""
    if not term:
        return
    if st.button("Trace", key="invoices.trace_button", help="Say where the invoice typed in Search stands and why"):
        st.session_state[TRACED] = term
    if matched and st.session_state.get(TRACED) != term:
        return
    settings = resources.get_settings()
    try:
        result = tracer.trace(engine, principal, partner_id, term, now=resources.now(),
                              schedule_interval=timedelta(seconds=settings.schedule_interval_s))
        if result.can_look_up and st.button("Look it up in HaloPSA", key="invoices.trace_lookup",
                                            help="One request to the partner's HaloPSA, within its rate budget; "
                                                 "audited, nothing stored"):
            st.session_state[LIVE] = (partner_id, term, trace_lookup.look_up(engine, principal, partner_id, term,
                                                                 now=resources.now(), settings=settings))
    except ConsoleError as exc:  # said here, and the table still shows
        st.error(escape_markdown(exc.message))
        return
    live = st.session_state.get(LIVE)
    _draw(live[2] if live is not None and live[:2] == (partner_id, term) and result.can_look_up else result)
