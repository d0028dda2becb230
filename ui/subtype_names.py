"""The "Subtype names" section of the Agreements page: which lookup of the partner's HaloPSA names its agreement
subtypes (set, checked at once, or cleared), what its last check found, and a name per subtype set here. Reading
and every write happen in core (core.console.subtypes, core.actions.subtype_names), which checks who may."""

from __future__ import annotations

from typing import Any

import streamlit as st
from sqlalchemy.engine import Engine

from core.access import Principal
from core.actions import subtype_names
from core.console.formatting import escape_markdown
from core.console.subtypes import SubtypeNames
from core.errors import ConsoleError
from core.store.tables import SubtypeLookupState
from ui import components, resources
from ui.components import act

COLUMNS: dict[str, Any] = {"subtype_id": st.column_config.NumberColumn("Id", format="%d"), "subtype": "Shown as",
                           "from_lookup": "Name from the lookup", "named_here": "Name set here",
                           "named_by": "Set by"}
EXPLAINED = ("HaloPSA names an agreement's subtype by its id only. Names come from one of its lookups, whose ids "
             "differ per tenant, and only when that lookup is verified: its rows say they belong to it and name "
             "every subtype id on the agreements. A name set here wins over the lookup's.")


def _set_lookup(engine: Engine, principal: Principal, partner_id: int, lookup_id: int | None) -> None:
    """A button callback: set (or clear) the lookup; a check that did not verify it shows as a warning."""
    try:
        outcome = subtype_names.set_lookup(engine, principal, partner_id, lookup_id, now=resources.now(),
                                           settings=resources.get_settings())
    except ConsoleError as exc:
        st.error(escape_markdown(exc.message))
        return
    verified = outcome.lookup_id is None or (outcome.checked is not None and outcome.checked.verified)
    (st.success if verified else st.warning)(escape_markdown(outcome.message))


def _lookup(engine: Engine, principal: Principal, partner_id: int, names: SubtypeNames) -> None:
    status = names.lookup
    shown = st.success if status.state == SubtypeLookupState.VERIFIED else (
        st.warning if status.state == SubtypeLookupState.UNVERIFIED else st.info)
    shown(escape_markdown(status.summary))
    id_at, set_at, clear_at = st.columns([2, 1, 1], vertical_alignment="bottom")
    lookup_id = id_at.number_input("Lookup id", min_value=1, max_value=subtype_names.LOOKUP_ID_MAX, step=1,
                                   value=status.lookup_id, key="agreements.lookup_id",
                                   placeholder="The lookup holding agreement subtypes")
    set_at.button("Set and check", key="agreements.lookup.set", disabled=lookup_id is None, on_click=_set_lookup,
                  args=(engine, principal, partner_id, None if lookup_id is None else int(lookup_id)))
    clear_at.button("Clear", key="agreements.lookup.clear", disabled=status.lookup_id is None,
                    on_click=_set_lookup, args=(engine, principal, partner_id, None))


def section(engine: Engine, principal: Principal, partner_id: int, names: SubtypeNames) -> None:
    st.subheader("Subtype names")
    st.caption(escape_markdown(EXPLAINED))
    if names.sandbox_lookup is not None:
        st.caption(f"This sandbox keeps its agreement subtype names at lookup {names.sandbox_lookup}.")
    _lookup(engine, principal, partner_id, names)
    if names.subtypes.empty:
        return
    st.dataframe(names.subtypes, hide_index=True, key="agreements.names", column_config=COLUMNS)
    shown = dict(zip(names.subtypes["subtype_id"].tolist(), names.subtypes["subtype"].tolist(), strict=True))
    pick_at, name_at, save_at, clear_at = st.columns([2, 2, 1, 1], vertical_alignment="bottom")
    subtype_id = pick_at.selectbox("Subtype", list(shown), format_func=shown.__getitem__, key="agreements.name_for")
    name = components.text_input(name_at, "Name it here", field="subtype_name", key="agreements.name")
    save_at.button("Save name", key="agreements.name.save", on_click=act, args=(
        f"Saved the name of subtype {subtype_id}.",
        lambda: subtype_names.set_name(engine, principal, partner_id, subtype_id, name, now=resources.now())))
    clear_at.button("Clear name", key="agreements.name.clear", on_click=act, args=(
        f"Cleared the name set here for subtype {subtype_id}.",
        lambda: subtype_names.set_name(engine, principal, partner_id, subtype_id, "", now=resources.now())))
