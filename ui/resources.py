"""Process-wide resources (settings, engine, client factory), cached once and shared by every session."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import streamlit as st
from sqlalchemy.engine import Engine

from core.actions.sign_in import SessionKeys
from core.demo import seed as demo
from core.settings import Settings, load_settings
from core.store import database
from core.sync import runs


@st.cache_resource(show_spinner=False)
def get_settings() -> Settings:
    return load_settings()


@st.cache_resource(show_spinner="Preparing the console (first start seeds the demo partners)…",
                   on_release=lambda engine: engine.dispose())
def get_engine() -> Engine:
    settings = get_settings()
    engine = database.engine_for(settings)
    runs.recover_interrupted(engine, now=settings.now(), settings=settings)
    if demo.should_seed(engine, settings):
        demo.seed(engine, settings=settings, now=settings.now())
    return engine



@st.cache_resource(show_spinner=False)
def get_session_keys() -> SessionKeys:
    return SessionKeys.load(get_engine(), get_settings())


def now() -> datetime:
    return get_settings().now()


def clock() -> Callable[[], datetime]:
    return get_settings().now
