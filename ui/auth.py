"""The auth gate: Streamlit's OIDC login (st.login) where configured, local accounts otherwise."""

from __future__ import annotations

import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError

from core.access import Principal, page_spec
from core.store import users
from ui import resources

_KEY = "auth.principal"


def oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except StreamlitSecretNotFoundError:
        return False


def current_principal() -> Principal | None:
    """Who is signed in to this browser session, or None."""
    if oidc_configured():
        if not st.user.get("is_logged_in", False):
            return None
        email = str(st.user.get("email") or "")
        return users.principal_for_email(resources.get_engine(), email)
    principal = st.session_state.get(_KEY)
    return principal if isinstance(principal, Principal) else None


def login_page() -> None:
    st.title("HaloPSA Sync Console")
    if oidc_configured():
        if st.user.get("is_logged_in", False):
            st.error("Your sign-in worked, but no console account uses this e-mail address. Ask customer success "
                     "to add one.")
            st.button("Sign out", on_click=st.logout)
        else:
            st.button("Sign in", type="primary", on_click=st.login)
        return
    with st.form("login.form"):
        email = st.text_input("E-mail", key="login.email")
        password = st.text_input("Password", type="password", key="login.password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        principal = users.authenticate(resources.get_engine(), email, password)
        if principal is None:
            st.error("That e-mail and password do not match an account. Check both and try again.")
        else:
            st.session_state[_KEY] = principal
            st.rerun()
    st.caption("Demo accounts are listed in the README.")


def logout() -> None:
    if oidc_configured():
        st.logout()
    st.session_state.pop(_KEY, None)


def require_page(page: str) -> Principal:
    """Stop the page unless the signed-in role may open it (a guard behind the navigation)."""
    principal = current_principal()
    if principal is None or principal.role not in page_spec(page).roles:
        st.error("Your account cannot open this page.")
        st.stop()
    assert principal is not None
    return principal
