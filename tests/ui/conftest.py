"""AppTest harness: a small console database (two partners, one account per role) and a signed-in AppTest."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import streamlit as st
from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest

from core.access import Principal
from core.health import issues
from core.settings import Settings, load_settings
from core.store.tables import IntegrationRole, NumberField, Role
from core.store.users import add_user, principal_for_email
from tests.support.clock import NOW
from tests.support.console_db import APP, PASSWORD, fill_partner, session_cookie
from tests.support.factories import add_partner
from ui.auth import COOKIE_KEY


@pytest.fixture
def console(settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> dict[str, Principal]:
    """Acme (primary) and Globex (secondary) with data, their issues evaluated; returns a principal per account name."""
    acme = add_partner(engine, settings, name="Acme MSP", now=NOW - timedelta(days=2),
                       app_domain="https://acme.halopsa.com", number_field=NumberField.THIRD_PARTY)
    globex = add_partner(engine, settings, name="Globex Partners", now=NOW - timedelta(days=2),
                         app_domain="https://globex.halopsa.com", role=IntegrationRole.SECONDARY)
    fill_partner(engine, settings, acme, "Acme", 60)
    fill_partner(engine, settings, globex, "Globex", 20)
    issues.evaluate(engine, now=NOW, settings=settings)  # as the scheduler does: the Overview lists the issues
    accounts = {"cs": ("cs@example.com", Role.CS, None), "acme": ("ap@acme.example", Role.PARTNER, acme),
                "globex": ("ap@globex.example", Role.PARTNER, globex), "pm": ("pm@example.com", Role.PM, None)}
    for email, role, partner_id in accounts.values():
        add_user(engine, email=email, name=email, role=role, password=PASSWORD, partner_id=partner_id)
    # the fixture's own key: pytest loads tests/conftest.py a second time as `conftest`, with another TEST_KEY
    for key, value in {"DATABASE_URL": settings.database_url, "HALO_CONSOLE_SECRET_KEY": settings.secret_key,
                       "HALO_DEMO": "0", "HALO_ALLOW_LOCAL_DOMAINS": "1",
                       "HALO_CONSOLE_NOW": NOW.isoformat()}.items():
        monkeypatch.setenv(key, value)
    return {name: principal_for_email(engine, email) for name, (email, _, _) in accounts.items()}


@pytest.fixture(autouse=True)
def keep_the_main_module() -> Iterator[None]:
    """Streamlit's script runner makes the page script `__main__` and leaves it there; a later test in this process
    that spawns processes (multiprocessing's spawn imports the parent's `__main__` in the child) would run a page."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture(autouse=True)
def clear_streamlit_caches() -> Iterator[None]:
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def signed_in(console: dict[str, Principal], engine: Engine, settings: Settings) -> Callable[[AppTest, str], None]:
    """`signed_in(at, "cs")` gives the AppTest that account's session, signed in through core as the sign-in page
    does, at the console's clock (HALO_CONSOLE_NOW, which a test may have moved)."""

    def sign(at: AppTest, account: str) -> None:
        at.session_state[COOKIE_KEY] = session_cookie(engine, load_settings(), console[account].user)

    return sign


@pytest.fixture
def app_as(console: dict[str, Principal], signed_in: Callable[[AppTest, str], None]) -> Callable[..., AppTest]:
    """`app_as("cs")` returns an AppTest signed in as that account, already run once."""

    def make(account: str, *, partner: str | None = None) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=30)
        signed_in(at, account)
        if partner:  # cs picks that account's partner, as the sidebar picker does (AppTest reruns skip the sidebar)
            at.session_state["partner_id"] = console[partner].partner_id
        at.run()
        return at

    return make


@pytest.fixture
def page_as(signed_in: Callable[[AppTest, str], None]) -> Callable[..., AppTest]:
    """`page_as("pm", "pages/audit.py")` runs one page script alone (no navigation) as that account, already run once:
    how the page guard is tested behind the navigation."""

    def make(account: str, page: str) -> AppTest:
        at = AppTest.from_file(str(APP.parent / page), default_timeout=30)
        signed_in(at, account)
        at.run()
        return at

    return make
