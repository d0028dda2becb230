"""The Syncs page's reconciliation with HaloPSA (customer success only): "Reconcile now" with its cost stated before,
the latest reconciliation (when, cost before and after, counts and unpaid per currency on each side, the differing
invoices) and "Resync N invoices"; and the fleet's partners with drift. Both buttons queue a
job (core.actions.reconcile); its progress shows with the other live syncs above."""

from __future__ import annotations

import streamlit as st
from sqlalchemy.engine import Engine

from core.access import Principal
from core.actions import fetches
from core.actions import reconcile as actions
from core.console import reconciliation as screen
from core.console.formatting import escape_markdown
from core.errors import ConsoleError
from ui import resources, sync_runs

SAID_KEY = "syncs.reconcile.said"


def _fleet(engine: Engine, principal: Principal) -> None:
    """The partners whose latest reconciliation found drift (the fleet's view; the Overview lists each as an issue)."""
    drifted = screen.fleet(engine, principal)
    with st.expander(f"Partners with drift from HaloPSA ({len(drifted):,})"):
        if drifted.empty:
            st.caption("No partner's latest reconciliation found an invoice differing from HaloPSA.")
        else:
            st.dataframe(drifted, hide_index=True, key="syncs.fleet_drift")


def _press(engine: Engine, principal: Principal, partner_id: int, resync: bool) -> None:
    """A button's callback (it runs before the page is drawn, so the run detail can follow the job): queue the job
    and keep what to say for the section."""
    settings = resources.get_settings()
    try:
        ask = actions.request_resync if resync else actions.request_reconcile
        job_id = ask(engine, principal, partner_id=partner_id, now=resources.now(), settings=settings)
    except ConsoleError as exc:
        st.session_state[SAID_KEY] = ("error", exc.message)
        return
    sync_runs.follow(job_id)
    what = "Resync" if resync else "Reconciliation"
    st.session_state[SAID_KEY] = ("success", f"{what} queued: its progress shows above with the other syncs; this "
                                             "section shows what it found once it finishes.")


def _latest(found: screen.Latest) -> None:
    st.caption(escape_markdown(found.headline))
    if not found.finished:
        return
    st.caption(escape_markdown(found.counts))
    if found.drift:
        st.warning(escape_markdown(f"{found.drift:,} invoices differ from HaloPSA: {found.by_kind}."))
    else:
        st.success("No invoice differs from HaloPSA.")
    st.dataframe(found.unpaid, hide_index=True, key="syncs.reconcile.unpaid")
    if not found.items.empty:  # values quoted from HaloPSA: a dataframe draws them as text, never as markdown
        st.dataframe(found.items, hide_index=True, key="syncs.reconcile.items")
    if found.more_items:
        st.caption(f"{found.more_items:,} more not shown; `python -m core reconcile --json` lists every one.")


def section(engine: Engine, principal: Principal, partner_id: int) -> None:
    if not principal.is_cs or not fetches.manual_fetch_allowed(engine, partner_id)[0]:
        return
    st.subheader("Reconciliation with HaloPSA")
    if said := st.session_state.get(SAID_KEY):  # a refusal once; a queued job's line while that job is live
        tone, text = said
        if tone == "success" and sync_runs.followed_job_live(engine, principal, partner_id):
            st.success(escape_markdown(text))
        else:
            del st.session_state[SAID_KEY]
            if tone != "success":
                st.error(escape_markdown(text))
    offer = screen.offer(engine, principal, partner_id, resources.get_settings())
    found = screen.latest(engine, principal, partner_id)
    st.caption(escape_markdown(offer.estimate))
    reconcile_at, resync_at = st.columns(2)
    reconcile_at.button("Reconcile now", key="syncs.reconcile", disabled=offer.busy is not None, on_click=_press,
                        args=(engine, principal, partner_id, False))
    if offer.busy:
        st.info(f"A reconciliation or resync is {offer.busy}: its progress shows above with the other syncs.")
    if found is not None and found.open_drift:
        resync_at.button(found.resync_label, key="syncs.resync", disabled=offer.busy is not None, on_click=_press,
                         args=(engine, principal, partner_id, True))
        resync_at.caption(escape_markdown(found.resync_note))
    if found is None:
        st.caption("Not reconciled yet.")
    else:
        _latest(found)
    _fleet(engine, principal)
