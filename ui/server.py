"""The console's web server: Streamlit (app.py) plus the sign-in routes and the session gate (ui.session_routes).
`make run` starts it with `streamlit run ui/server.py`; `streamlit run app.py` alone has no sign-in page."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware

from ui import session_routes
from ui.auth import oidc_configured

app = st.App(Path(__file__).resolve().parent.parent / "app.py", routes=session_routes.routes(),
             middleware=[Middleware(session_routes.SessionGate, oidc=oidc_configured())])
