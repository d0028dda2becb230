"""Connection: the HaloPSA setup checklist, the stored connection (with the support bundle for customer success), and
the setup form (verify, test, save, backfill; the form is ui.connection_form)."""

import streamlit as st

from core.console import connection as connection_screen
from core.console import partners
from core.console.formatting import escape_markdown
from ui import auth, components, connection_form, resources, support_bundle, tenant_check

principal = auth.require_page("connection")
engine, settings = resources.get_engine(), resources.get_settings()
names = dict(partners.partner_choices(engine, principal))
picked = principal.partner_id if not principal.is_cs else components.selected_partner()
modes = ({"edit": f"Edit {escape_markdown(names[picked])}"} if picked in names else {}) | {
    "new": "Connect a new partner"}  # radio options are Markdown: the name is escaped
st.title("HaloPSA connection")
# keyed per partner: one radio whose option labels change with the sidebar pick showed nothing selected every second
# switch; each partner's own starts on editing it
mode = st.radio("Partner", list(modes), format_func=modes.get, horizontal=True,
                key=f"connection.mode.{picked}") if principal.is_cs else "edit"
edited = picked if mode == "edit" else None  # the partner whose connection the form edits; None: a new one
stored = connection_screen.stored_connection(engine, principal, edited) if edited is not None else None
connection_form.fill((mode, picked), stored, names.get(edited, "") if edited is not None else "")

with st.expander("Before you start, in HaloPSA", expanded=stored is None):
    st.markdown("\n".join(f"{n}. {step}" for n, step in enumerate(connection_screen.SETUP_STEPS, 1)))
    if hint := connection_screen.sandbox_hint(engine, st.session_state.get("connection.app_domain"),
                                              settings=settings):
        st.info(hint.markdown)
if stored:  # outside text (names, ids, errors from HaloPSA) is escaped: drawn as text, never as Markdown
    st.subheader(f"Stored connection: {escape_markdown(stored.partner_name)}")
    st.markdown("\n".join(f"- **{label}:** {escape_markdown(value)}" for label, value in stored.facts))
    st.markdown(connection_screen.checklist_markdown(stored.permissions))
    if stored.tenant_warning:
        st.warning(escape_markdown(stored.tenant_warning))
    if stored.last_error:
        st.error(f"Last error: {escape_markdown(stored.last_error)}")
    tenant_check.show(engine, principal, stored.partner_id)
    support_bundle.section(engine, principal, stored.partner_id, stored.partner_name)

slots = connection_form.form(editing=mode == "edit", has_stored=stored is not None)
connection_form.act(engine, principal, settings, partner_id=edited, slots=slots)
