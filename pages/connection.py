"""Connection: the HaloPSA setup checklist, the stored connection, and the setup form (verify, save, backfill)."""

from collections.abc import Callable
from datetime import date

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from core.actions import connect as connections
from core.console import connection as setup_checklist
from core.console import partners
from core.errors import ConsoleError, PermissionMissing
from core.store.tables import IntegrationRole, RunKind
from core.sync import engine as sync
from ui import auth, components, resources

LABELS = setup_checklist.FIELD_LABELS

principal = auth.require_page("connection")
engine, settings = resources.get_engine(), resources.get_settings()
names = dict(partners.partner_choices(engine, principal))
picked = principal.partner_id if not principal.is_cs else components.selected_partner()
modes = ({"edit": f"Edit {names[picked]}"} if picked in names else {}) | {"new": "Connect a new partner"}
st.title("HaloPSA connection")
mode = st.radio("Partner", list(modes), format_func=modes.get, horizontal=True, key="connection.mode") \
    if principal.is_cs else "edit"
stored = setup_checklist.stored_connection(engine, principal, picked) if mode == "edit" else None
# fill the form once per partner edited, and again after another page dropped its widget state
if st.session_state.get("connection.loaded") != (mode, picked) or "connection.app_domain" not in st.session_state:
    values = stored.form_values() if stored else setup_checklist.blank_form_values(
        names.get(picked, "") if mode == "edit" else "")
    st.session_state.update({f"connection.{name}": value for name, value in values.items()})
    st.session_state["connection.loaded"] = (mode, picked)

with st.expander("Before you start, in HaloPSA", expanded=stored is None):
    st.markdown("\n".join(f"{n}. {step}" for n, step in enumerate(setup_checklist.SETUP_STEPS, 1)))
    if hint := setup_checklist.sandbox_hint(st.session_state.get("connection.app_domain"), settings=settings):
        st.info(f"No HaloPSA at hand? The sandbox App Domain `{hint.host}` answers with Client ID "
                f"`{hint.client_id}` and Client Secret `{hint.client_secret}`.")
if stored:
    st.subheader(f"Stored connection: {stored.partner_name}")
    st.markdown("\n".join(f"- **{label}:** {value}" for label, value in stored.facts))
    st.markdown(setup_checklist.checklist_markdown(stored.permissions))
    if stored.last_error:
        st.error(f"Last error: {stored.last_error}")

slots: dict[str | None, DeltaGenerator] = {}


def field(name: str, widget: Callable[..., object], *args: object, **kwargs: object) -> None:
    """A form widget keyed by its ConnectionForm name, with a slot under it for that field's error."""
    widget(LABELS[name], *args, key=f"connection.{name}", **kwargs)
    slots[name] = st.empty()


with st.form("connection.form"):
    field("partner_name", st.text_input, disabled=mode == "edit")
    field("app_domain", st.text_input, placeholder="acme.halopsa.com", help="The address you open HaloPSA at.")
    field("client_id", st.text_input)
    field("client_secret", st.text_input, type="password",
          help="Leave empty to keep the stored secret." if stored else "Shown once when HaloPSA generates it.")
    field("invoices_created_since", st.date_input, value=None, min_value=date(2000, 1, 1),
          max_value=resources.now().date(), help="Optional: sync only invoices created on or after this day "
                                                 "(empty: all). Not needed for a secondary integration.")
    field("invoice_number_field", st.radio, list(setup_checklist.NUMBER_LABELS), horizontal=True,
          format_func=setup_checklist.NUMBER_LABELS.get)
    field("integration_role", st.radio, list(setup_checklist.ROLE_LABELS), horizontal=True,
          format_func=setup_checklist.ROLE_LABELS.get,
          help="Primary: invoices come from HaloPSA. Secondary: another system owns invoices.")
    with st.expander("Advanced"):
        field("tenant", st.text_input, help="Only if HaloPSA's API Details show a Tenant.")
    submitted = st.form_submit_button("Continue", type="primary", key="connection.continue")
slots[None] = st.empty()

if submitted:
    form = connections.ConnectionForm(**{name: st.session_state[f"connection.{name}"] for name in LABELS})
    try:
        if mode == "new":
            setup_checklist.require_new_partner_name(engine, principal, form.partner_name)
        with st.spinner("Checking the credentials and permissions with HaloPSA…"):
            partner_id, verification = connections.connect(engine, principal, form, now=resources.now(),
                                                           settings=settings)
    except ConsoleError as exc:
        slots.get(setup_checklist.error_field(exc), slots[None]).error(exc.message)
        if isinstance(exc, PermissionMissing):
            st.markdown(setup_checklist.checklist_markdown(setup_checklist.from_missing(exc.missing)))
    else:
        st.session_state["connection.loaded"] = None  # the next run reloads the form without the typed secret
        st.markdown(setup_checklist.checklist_markdown(setup_checklist.from_verification(verification)))
        st.success(f"Saved the connection for {form.partner_name}.")
        if form.integration_role == IntegrationRole.PRIMARY:
            components.run_with_status("Backfill", lambda progress: sync.run_sync(
                engine, partner_id=partner_id, kind=RunKind.BACKFILL, trigger="connect", actor=principal.user,
                now=resources.now(), settings=settings, client_factory=resources.get_client_factory(),
                progress=progress))
