"""The Connection page's support bundle download (customer success only): the zip core.console.support_bundle makes,
built and audited only when the button is clicked."""

from __future__ import annotations

import streamlit as st
from sqlalchemy.engine import Engine

from core.access import Principal
from core.console import support_bundle
from ui import resources


def section(engine: Engine, principal: Principal, partner_id: int, partner_name: str) -> None:
    if not principal.is_cs:
        return
    st.subheader("Support bundle")
    st.caption("One zip to attach to a ticket: the connection's settings, the last check of its HaloPSA, permissions, "
               f"the last {support_bundle.RUNS} runs (requests, retries, 429 answers, durations, errors), record "
               "errors, cooldowns, jobs and open issues. It holds no secret and no customer e-mail or address; "
               "making one is in the audit log.")
    st.download_button("Download support bundle", key="connection.bundle", mime="application/zip", on_click="ignore",
                       file_name=support_bundle.file_name(partner_name, resources.now()),
                       data=lambda: support_bundle.build(engine, principal, partner_id, now=resources.now()).data)
