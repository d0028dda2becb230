"""Router: page config, the auth gate, and navigation over the pages the signed-in role may open (core.access.PAGES)."""

from pathlib import Path

import streamlit as st

from core.access import PAGES, pages_for
from core.store.tables import Role
from ui import auth, components, resources

PAGES_DIR = Path(__file__).parent / "pages"
LANDING = {Role.PARTNER: "invoices"}  # the page a role opens on; others open on their first page (core.access.PAGES)

st.set_page_config(page_title="HaloPSA Sync Console", page_icon=":material/sync:", layout="wide")
resources.get_engine()
principal = auth.current_principal()
if principal is None:
    # the sign-in page answers at every page's address: a tab whose session ended stays where it was (its page and
    # partner are where the sign-in returns to), instead of being switched to another page under its running timer
    st.navigation([st.Page(auth.login_page, title="Sign in", icon=":material/login:", url_path=spec.slug,
                           default=index == 0) for index, spec in enumerate(PAGES)], position="hidden").run()
    st.stop()

allowed = pages_for(principal.role)
landing = LANDING.get(principal.role, allowed[0].slug)
pages = [
    st.Page(PAGES_DIR / f"{spec.slug}.py", title=spec.title, icon=spec.icon, url_path=spec.slug,
            default=spec.slug == landing)
    for spec in allowed
]
navigation = st.navigation(pages)
with st.sidebar:
    components.partner_picker(principal)
    st.text(f"Signed in as {principal.user} ({principal.role.value})")
    st.button("Sign out", on_click=auth.logout, key="sidebar.logout")
navigation.run()
