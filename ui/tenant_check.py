"""The Connection page's "What this HaloPSA supports": the last check's findings in plain words, and a button that
queues a new check (a worker runs it; core.actions.fetches.request_tenant_check)."""

from __future__ import annotations

import streamlit as st
from sqlalchemy.engine import Engine

from core.access import Principal
from core.actions import fetches
from core.console import connection as connection_screen
from core.console.formatting import escape_markdown
from core.errors import ConsoleError
from ui import resources

QUEUED = "A check is queued: a sync worker runs it (about eight requests to HaloPSA); this page shows what it finds."


def show(engine: Engine, principal: Principal, partner_id: int) -> None:
    check = connection_screen.tenant_check(engine, principal, partner_id)
    if check is None:
        return
    with st.expander("What this HaloPSA supports", expanded=check.ran_at is None or check.stale_reason is not None):
        st.caption(escape_markdown(check.headline))
        if check.findings:  # the findings quote HaloPSA (addresses, codes): drawn escaped
            st.markdown("\n".join(f"- {escape_markdown(sentence)}" for sentence in check.findings))
        if check.queued:
            st.info(QUEUED)
        elif st.button("Check again", key="connection.check_tenant"):
            try:
                fetches.request_tenant_check(engine, principal, partner_id=partner_id, now=resources.now())
            except ConsoleError as exc:
                st.error(escape_markdown(exc.message))
            else:
                st.rerun()
