"""The Connection page's setup form: one widget per ConnectionForm field with a slot under it for that field's
error, how it is filled from the stored connection, and what its buttons do through core.actions.connect: Continue
verifies and saves (asking first when the Invoice Number Field changes, as that renumbers the stored invoices), Test
connection verifies and saves nothing.

A press is acted on in the run it starts: its callback marks it pending before the run, so the run draws the buttons
disabled while it works and shows each step; then the run stores the outcome and reruns, and the next run draws the
outcome once with the buttons enabled again (and, after a new partner was connected, that partner picked)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
PENDING = "connection.pending"  # the press a button's callback marked, acted on by the run it starts
OUTCOME = "connection.outcome"  # how the last press ended, drawn once by the next run
CONFIRMING = "connection.confirming"  # (partner id, Invoice Number Field) whose renumbering was previewed
CONTINUE, CHECK, RENUMBER = "continue", "check", "renumber"
# Where each field's error shows, under its widget; the None slot, under the form, takes errors of the whole form.
Slots = dict[str | None, DeltaGenerator]


def fill(loaded_for: tuple[str, int | None], stored: connection_screen.StoredConnection | None,
         partner_name: str) -> None:
    """Fill the form once per partner edited, and again after another page dropped its widget state."""
    if st.session_state.get(LOADED_KEY) != loaded_for or "connection.app_domain" not in st.session_state:
        values = stored.form_values() if stored else connection_screen.blank_form_values(partner_name)
        st.session_state.update({f"connection.{name}": value for name, value in values.items()})
        st.session_state[LOADED_KEY] = loaded_for


def _press(action: str) -> None:
    st.session_state[PENDING] = action


def form(*, editing: bool, has_stored: bool) -> Slots:
    """Draw the form, its buttons disabled while a press is being acted on; returns the error slots."""
    slots: Slots = {}
    busy = st.session_state.get(PENDING) is not None

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
              format_func=connection_screen.NUMBER_LABELS.get,
              help="Changing it renumbers every stored invoice: the page says what that does before saving.")
        field("integration_role", st.radio, list(connection_screen.ROLE_LABELS), horizontal=True,
              format_func=connection_screen.ROLE_LABELS.get,
              help="Primary: invoices come from HaloPSA. Secondary: another system owns invoices.")
        with st.expander("Advanced"):
            field("tenant", help="Only if HaloPSA's API Details show a Tenant.")
        with st.container(horizontal=True):
            st.form_submit_button("Continue", type="primary", key="connection.continue", disabled=busy,
                                  on_click=_press, args=(CONTINUE,), help="Verify with HaloPSA, then save.")
            st.form_submit_button("Test connection", key="connection.test", disabled=busy, on_click=_press,
                                  args=(CHECK,), help="Verify with HaloPSA and show what it supports; saves nothing.")
    slots[None] = st.empty()
    return slots


RENUMBER_QUEUED = ("Renumbering queued: a sync worker renumbers every stored invoice of this partner by the new "
                   "Invoice Number Field at once; until then they keep their current numbers.")
BACKFILL_QUEUED = ("Backfill queued: a sync worker reads every customer, agreement and invoice of this partner; "
                   "its progress shows on the Syncs page.")
AGAIN = {CONTINUE: connection_screen.CONTINUE_AGAIN, RENUMBER: connection_screen.CONTINUE_AGAIN,
         CHECK: connection_screen.TEST_AGAIN}


@dataclass(frozen=True)
class Failed:
    field: str | None
    message: str
    missing: list[str] | None = None  # the permissions a PermissionMissing named


@dataclass(frozen=True)
class Saved:
    partner_name: str
    connected: connect.Connected


@dataclass(frozen=True)
class Checked:
    checked: connect.Checked


@dataclass(frozen=True)
class Confirm:
    """A changed Invoice Number Field, previewed: saving waits for the person to agree."""

    sentences: list[str]


Outcome = Failed | Saved | Checked | Confirm


def act(engine: Engine, principal: Principal, settings: Settings, *, partner_id: int | None,
        slots: Slots) -> None:
    """Act on a pending press, then rerun; without one, draw how the last press ended."""
    pressed = st.session_state.pop(PENDING, None)
    if pressed is None:
        outcome = st.session_state.pop(OUTCOME, None)
        if outcome is not None:
            _draw(outcome, slots)
        return
    entered = connect.ConnectionForm(**{name: st.session_state[f"connection.{name}"] for name in LABELS})
    try:
        outcome = _outcome(engine, principal, settings, pressed, entered, partner_id)
    except ConsoleError as exc:
        outcome = Failed(connection_screen.error_field(exc), exc.message,
                         exc.missing if isinstance(exc, PermissionMissing) else None)
    if isinstance(outcome, Saved):
        st.session_state[LOADED_KEY] = None  # the next run reloads the form from what was saved, without the secret
        if partner_id is None:  # a new partner: picked, so the page shows it and the sidebar lists it
            components.show_partner(outcome.connected.partner_id)
    st.session_state[OUTCOME] = outcome
    st.rerun()


def _outcome(engine: Engine, principal: Principal, settings: Settings, pressed: str, entered: connect.ConnectionForm,
             partner_id: int | None) -> Outcome:
    if partner_id is None:
        connection_screen.require_new_partner_name(engine, principal, entered.partner_name)
    if pressed == CHECK:
        with _steps("Testing the connection") as say:
            return Checked(connect.check_connection(engine, principal, entered, now=resources.now(),
                                                    settings=settings, progress=say, again=AGAIN[pressed]))
    wanted = (partner_id, entered.invoice_number_field)
    confirmed = pressed == RENUMBER and st.session_state.pop(CONFIRMING, None) == wanted
    preview = None if partner_id is None else connection_screen.renumber_preview(
        engine, principal, partner_id, entered.invoice_number_field)
    if preview is not None and not confirmed:  # a form that would be refused is said so first
        connect.validate_form(engine, principal, entered, settings=settings, today=resources.now().date())
        st.session_state[CONFIRMING] = wanted
        return Confirm(preview.sentences)
    with _steps("Connecting") as say:
        return Saved(entered.partner_name, connect.connect_and_backfill(
            engine, principal, entered, now=resources.now(), settings=settings, progress=say, again=AGAIN[pressed]))


@contextmanager
def _steps(title: str) -> Iterator[Callable[[str], None]]:
    """A status box naming the step under way, listing every step (and retry) so far."""
    with st.status(f"{title}…", expanded=True) as status:
        def say(step: str) -> None:
            status.update(label=f"{title}: {step}…", expanded=True)  # None would fold it (Streamlit 1.67)
            status.write(escape_markdown(step))

        yield say


def _draw(outcome: Outcome, slots: Slots) -> None:
    if isinstance(outcome, Failed):
        slots.get(outcome.field, slots[None]).error(escape_markdown(outcome.message))
        if outcome.missing is not None:
            st.markdown(connection_screen.checklist_markdown(connection_screen.from_missing(outcome.missing)))
    elif isinstance(outcome, Confirm):
        st.warning("\n\n".join([*(escape_markdown(sentence) for sentence in outcome.sentences),
                                 connection_screen.RENUMBER_QUESTION]))
        st.button("Save and renumber", type="primary", key="connection.renumber", on_click=_press, args=(RENUMBER,))
    elif isinstance(outcome, Checked):
        _draw_check(outcome.checked)
    else:
        _draw_saved(outcome)


def _draw_check(checked: connect.Checked) -> None:
    verification = checked.verification
    (st.success if verification.ok else st.error)(connection_screen.check_headline(verification))
    if checked.tenant_warning:
        st.warning(escape_markdown(checked.tenant_warning))
    st.markdown(connection_screen.checklist_markdown(connection_screen.from_verification(verification)))
    if (found := connection_screen.probe_markdown(verification)) is not None:
        st.markdown("**What this HaloPSA supports**\n\n" + found)


def _draw_saved(saved: Saved) -> None:
    connected = saved.connected
    st.success(f"Saved the connection for {escape_markdown(saved.partner_name)}.")
    if connected.tenant_warning:
        st.warning(escape_markdown(connected.tenant_warning))
    st.markdown(connection_screen.checklist_markdown(connection_screen.from_verification(connected.verification)))
    if connected.renumber_job is not None:
        st.info(RENUMBER_QUEUED)
    if connected.backfill_job is not None:
        st.info(BACKFILL_QUEUED)
