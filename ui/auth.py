"""The auth gate: Streamlit's OIDC login (st.login) where configured; otherwise a local account's session, whose
cookie the sign-in page (ui.session_routes) set and which core checks at every page run."""

from __future__ import annotations

import json
from urllib.parse import urlencode, urlsplit

import streamlit as st
from streamlit.errors import StreamlitSecretNotFoundError

from core.access import Principal, page_spec
from core.actions.sign_in import resume_session, sign_out
from core.store import users
from core.store.sessions import COOKIE_NAME, SessionEnd
from ui import resources
from ui.session_routes import sign_in_url

# AppTest cannot send cookies: tests put the session cookie here instead (session state never comes from a browser)
COOKIE_KEY = "auth.session_cookie"
_ENDED_KEY = "auth.ended"


def oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except StreamlitSecretNotFoundError:
        return False


def _session_cookie() -> str | None:
    for cookie in (st.context.cookies.get(COOKIE_NAME), st.session_state.get(COOKIE_KEY)):
        if isinstance(cookie, str) and cookie:  # (under AppTest, st.context.cookies answers with stand-ins)
            return cookie
    return None


def current_principal() -> Principal | None:
    """Who is signed in to this browser, checked against the database at every run (so a sign-out in another tab,
    idleness or age ends it here too), or None."""
    if oidc_configured():
        if not st.user.get("is_logged_in", False):
            return None
        email = str(st.user.get("email") or "")
        return users.principal_for_email(resources.get_engine(), email)
    cookie = _session_cookie()
    if cookie is None:
        return None
    resumed = resume_session(resources.get_engine(), cookie, now=resources.now(), keys=resources.get_session_keys())
    st.session_state[_ENDED_KEY] = resumed.ended
    return resumed.principal


def end_if_signed_out() -> None:
    """For a fragment on a timer: rerun the whole page (which then shows the sign-in page) once the session has
    ended. A tick is not activity: it reads the session without extending it."""
    cookie = None if oidc_configured() else _session_cookie()
    if cookie is None:
        return
    resumed = resume_session(resources.get_engine(), cookie, now=resources.now(), keys=resources.get_session_keys(),
                             touch=False)
    if resumed.principal is None:
        _leave_for_sign_in(resumed.ended)
        st.stop()


def _leave_for_sign_in(ended: SessionEnd | None) -> None:
    """Load the sign-in page in this tab. A page load ends the tab's Streamlit session, so no timer of the page it
    was on can tick into what is drawn instead: Streamlit 1.67's frontend failed on such a tick ("'setIn' cannot be
    called on an ElementNode") and left the tab blank. The script is ours; the address is JSON-quoted with "<"
    escaped, so nothing in it can end the script element."""
    target = json.dumps(sign_in_url(_here(), ended)).replace("<", "\\u003c")
    st.html(f"<script>window.location.replace({target})</script>", unsafe_allow_javascript=True)


def _here() -> str:
    """This page's path and query (page and partner), to come back to after signing in."""
    path = urlsplit(st.context.url or "/").path or "/"
    query = urlencode(st.query_params.to_dict())
    return f"{path}?{query}" if query else path


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
    ended = st.session_state.get(_ENDED_KEY)
    ended = ended if isinstance(ended, SessionEnd) else None
    if ended is not None:
        st.info(resources.get_session_keys().policy.end_message(ended))
    st.link_button("Sign in", sign_in_url(_here(), ended), type="primary")
    _leave_for_sign_in(ended)


def logout() -> None:
    if oidc_configured():
        st.logout()
        return
    cookie = _session_cookie()
    if cookie is not None:
        sign_out(resources.get_engine(), cookie, now=resources.now(), keys=resources.get_session_keys())


def require_page(page: str) -> Principal:
    """Stop the page unless the signed-in role may open it (a guard behind the navigation)."""
    principal = current_principal()
    if principal is None:  # signed out (here or in another tab) while on this page
        login_page()
        st.stop()
    if principal.role not in page_spec(page).roles:
        st.error("Your account cannot open this page.")
        st.stop()
    assert principal is not None
    return principal
