"""The Connection page's setup form: one widget per ConnectionForm field with a slot under it for that field's
error, how it is filled from the stored connection, and what Continue does (verify and save through
core.actions.connect, then backfill a primary integration)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import streamlit as st
from sqlalchemy.engine import Engine
from streamlit.delta_generator import DeltaGenerator

from core.access import Principal
from core.actions import connect
from core.console import connection as connection_screen
from core.console.formatting import escape_markdown
from core.errors import ConsoleError, PermissionMissing
from core.settings import Settings
from ui import components, resources

LABELS = connection_screen.FIELD_LABELS
LOADED_KEY = "connection.loaded"
# Where each field's error shows, under its widget; the None slot, under the form, takes errors of the whole form.
Slots = dict[str | None, DeltaGenerator]


def fill(loaded_for: tuple[str, int | None], stored: connection_screen.StoredConnection | None,
         partner_name: str) -> None:
    """Fill the form once per partner edited, and again after another page dropped its widget state."""
    if st.session_state.get(LOADED_KEY) != loaded_for or "connection.app_domain" not in st.session_state:
        values = stored.form_values() if stored else connection_screen.blank_form_values(partner_name)
        st.session_state.update({f"connection.{name}": value for name, value in values.items()})
        st.session_state[LOADED_KEY] = loaded_for


def form(*, editing: bool, has_stored: bool) -> Slots | None:
    """Draw the form; once Continue was clicked, the error slots of its fields, else None."""
    slots: Slots = {}

    def field(name: str, widget: Callable[..., object] | None = None, *args: object, **kwargs: Any) -> None:
        """A form widget keyed by its ConnectionForm name (no widget: a text input bounded by core.limits), with a
        slot under it for that field's error."""
        if widget is None:
            components.text_input(st, LABELS[name], field=name, key=f"connection.{name}", **kwargs)
        else:
            widget(LABELS[name], *args, key=f"connection.{name}", **kwargs)
        slots[name] = st.empty()

    with st.form("connection.form"):
        field("partner_name", disabled=editing)
        field("app_domain", placeholder="acme.halopsa.com", help="The address you open HaloPSA at.")
        field("client_id")
        field("client_secret", type="password",
              help=("Leave empty to keep the stored secret (for the same App Domain and tenant only)."
                    if has_stored else "Shown once when HaloPSA generates it."))
        field("invoices_created_since", st.date_input, value=None, min_value=date(2000, 1, 1),
              max_value=resources.now().date(), help="Optional: sync only invoices created on or after this day "
                                                     "(empty: all). Not needed for a secondary integration.")
        field("invoice_number_field", st.radio, list(connection_screen.NUMBER_LABELS), horizontal=True,
              format_func=connection_screen.NUMBER_LABELS.get)
        field("integration_role", st.radio, list(connection_screen.ROLE_LABELS), horizontal=True,
              format_func=connection_screen.ROLE_LABELS.get,
              help="Primary: invoices come from HaloPSA. Secondary: another system owns invoices.")
        with st.expander("Advanced"):
            field("tenant", help="Only if HaloPSA's API Details show a Tenant.")
        submitted = st.form_submit_button("Continue", type="primary", key="connection.continue")
    slots[None] = st.empty()
    return slots if submitted else None


RENUMBER_QUEUED = ("Renumbering queued: a sync worker renumbers every stored invoice of this partner by the new "
                   "Invoice Number Field at once; until then they keep their current numbers.")
BACKFILL_QUEUED = ("Backfill queued: a sync worker reads every customer, agreement and invoice of this partner; "
                   "its progress shows on the Syncs page.")


def submit(engine: Engine, principal: Principal, settings: Settings, *, new_partner: bool, slots: Slots) -> None:
    """Verify and save what was typed, showing the permission checklist; a refusal shows under the field it concerns.
    A saved primary integration's backfill is queued: a worker runs it, and the Syncs page shows its progress."""
    entered = connect.ConnectionForm(**{name: st.session_state[f"connection.{name}"] for name in LABELS})
    try:
        if new_partner:
            connection_screen.require_new_partner_name(engine, principal, entered.partner_name)
        with st.spinner("Checking the credentials and permissions with HaloPSA…"):
            connected = connect.connect_and_backfill(engine, principal, entered, now=resources.now(),
                                                     settings=settings)
    except ConsoleError as exc:
        slots.get(connection_screen.error_field(exc), slots[None]).error(escape_markdown(exc.message))
        if isinstance(exc, PermissionMissing):
            st.markdown(connection_screen.checklist_markdown(connection_screen.from_missing(exc.missing)))
        return
    st.session_state[LOADED_KEY] = None  # the next run reloads the form without the typed secret
    st.markdown(connection_screen.checklist_markdown(connection_screen.from_verification(connected.verification)))
    st.success(f"Saved the connection for {escape_markdown(entered.partner_name)}.")
    if connected.renumber_job is not None:
        st.info(RENUMBER_QUEUED)
    if connected.backfill_job is not None:
        st.info(BACKFILL_QUEUED)
