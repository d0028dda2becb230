"""How every screen names an agreement subtype, and the Agreements screen's "Subtype names" section.

A subtype is its HaloPSA id. Its name is the one set in the console (which wins) or the one its HaloPSA lookup gave:
verified by the lookup's last check, or kept from before it and marked not verified (core.sync.subtypes). `NAME` and
`VERIFIED` are those rules in SQL, for a query that joins the names (`with_names`); `shown` draws the result with
`formatting.subtype_label`, so the id is always beside the name and an unverified name says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
from sqlalchemy import func, select, true, union
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FromClause, Join

from core.access import Principal, require_partner_data
from core.console.formatting import subtype_label
from core.halopsa.app_domain import is_sandbox_domain
from core.store.tables import (
    AGREEMENT_TABLE,
    CONNECTION_TABLE,
    SUBTYPE_LOOKUP_TABLE,
    SUBTYPE_NAME_TABLE,
    SubtypeLookupState,
)

_NAMES = SUBTYPE_NAME_TABLE.c
NAME: ColumnElement[str] = func.coalesce(_NAMES.override_name, _NAMES.lookup_name)
VERIFIED: ColumnElement[bool] = _NAMES.override_name.is_not(None) | (_NAMES.lookup_verified == true())
NO_LOOKUP = ("No lookup is set, so no subtype names come from HaloPSA: lookup ids differ per tenant, and none is known "
             "to hold agreement subtypes. Enter the id of the lookup that does, or name the subtypes here.")


def with_names(source: FromClause, partner_id: Any, subtype_id: Any) -> Join:
    """`source` LEFT JOIN the names of the partner's subtypes, on the subtype id `source` has."""
    return source.outerjoin(SUBTYPE_NAME_TABLE, (_NAMES.partner_id == partner_id) & (_NAMES.subtype_id == subtype_id))


def name_columns() -> list[ColumnElement[Any]]:
    """The name and whether it is verified, as `shown` reads them from a row."""
    return [NAME.label("shown_name"), VERIFIED.label("shown_verified")]


def shown(row: Any) -> str | None:
    """The subtype of a row holding `subtype_id` and the `name_columns`, as every screen shows it."""
    return subtype_label(row.subtype_id, row.shown_name, bool(row.shown_verified))


@dataclass(frozen=True)
class Named:
    """One subtype of a partner with its name (None: none known) and whether that name is verified."""

    subtype_id: int
    name: str | None
    verified: bool

    @property
    def shown(self) -> str:
        return subtype_label(self.subtype_id, self.name, self.verified) or ""


def named(conn: Connection, partner_id: int, subtype_id: int) -> Named:
    """The partner's subtype `subtype_id` with its name."""
    row = conn.execute(select(*name_columns()).where(_NAMES.partner_id == partner_id,
                                                     _NAMES.subtype_id == subtype_id)).first()
    return Named(subtype_id, row.shown_name, bool(row.shown_verified)) if row else Named(subtype_id, None, False)


def rule_subject(subtype_id: int | None, label: str | None, name: str | None, verified: bool) -> str:
    """How a rule's subtype is shown: as any subtype, by the label the rule was saved with (marked not verified) when
    its subtype has no name now; a rule without a subtype id (since rules moved to ids) by its label and that."""
    if subtype_id is None:
        return f"{label} (subtype to pick again)"
    if name:
        return subtype_label(subtype_id, name, verified) or ""
    return subtype_label(subtype_id, label, False) or ""


@dataclass(frozen=True)
class LookupStatus:
    """Which lookup names the partner's subtypes, and what its last check found."""

    lookup_id: int | None = None
    state: SubtypeLookupState | None = None
    finding: str = ""
    checked_at: datetime | None = None
    set_by: str | None = None

    @property
    def summary(self) -> str:
        """The lookup and its last check, in plain words."""
        if self.lookup_id is None:
            return NO_LOOKUP
        checked = f"checked {self.checked_at:%Y-%m-%d %H:%M} UTC" if self.checked_at else ""
        if self.state == SubtypeLookupState.VERIFIED:
            return f"Lookup {self.lookup_id} is verified ({checked}): {self.finding}"
        if self.state == SubtypeLookupState.UNVERIFIED:
            return (f"Lookup {self.lookup_id} is not verified ({checked}): {self.finding} Check the lookup id with "
                    "whoever administers your HaloPSA, or name the subtypes here.")
        waiting = self.finding or "The next sync that reads agreements checks it."
        return f"Lookup {self.lookup_id} (set by {self.set_by}) is not checked yet. {waiting}"


@dataclass(frozen=True)
class SubtypeNames:
    lookup: LookupStatus
    subtypes: pd.DataFrame
    """One row per subtype on the agreements or named here: its id, how it is shown, the name from the lookup (and
    whether verified), the name set here and who set it."""
    sandbox_lookup: int | None = None
    """For a partner on a sandbox tenant: the lookup holding its subtype names (a real tenant's administrator knows
    its own)."""


def _sandbox_lookup(app_domain: str | None) -> int | None:
    if not app_domain or not is_sandbox_domain(app_domain):
        return None
    from core.demo import sandbox  # lazily: loads the emulator only for a sandbox partner

    return sandbox.lookup_ids(urlsplit(app_domain).hostname or "")[0]


def subtype_names(engine: Engine, principal: Principal, partner_id: int) -> SubtypeNames:
    """The partner's subtype lookup and the names of its subtypes (cs, or the partner's own users)."""
    require_partner_data(principal, partner_id)
    agr = AGREEMENT_TABLE.c
    ids = union(select(agr.subtype_id.label("subtype_id")).where(agr.partner_id == partner_id,
                                                                 agr.subtype_id.is_not(None)),
                select(_NAMES.subtype_id).where(_NAMES.partner_id == partner_id,
                                                _NAMES.override_name.is_not(None))).subquery("ids")
    query = (select(ids.c.subtype_id, *name_columns(), _NAMES.lookup_name, _NAMES.lookup_verified,
                    _NAMES.override_name, _NAMES.override_by, _NAMES.override_at)
             .select_from(with_names(ids, partner_id, ids.c.subtype_id)).order_by(ids.c.subtype_id))
    with engine.connect() as conn:
        found = conn.execute(select(SUBTYPE_LOOKUP_TABLE)
                             .where(SUBTYPE_LOOKUP_TABLE.c.partner_id == partner_id)).first()
        rows = conn.execute(query).all()
        app_domain = conn.scalar(select(CONNECTION_TABLE.c.app_domain)
                                 .where(CONNECTION_TABLE.c.partner_id == partner_id))
    lookup = LookupStatus() if found is None else LookupStatus(found.lookup_id, found.state, found.finding,
                                                               found.checked_at, found.set_by)
    frame = pd.DataFrame([{
        "subtype_id": int(row.subtype_id), "subtype": shown(row),
        "from_lookup": _lookup_text(row.lookup_name, bool(row.lookup_verified)),
        "named_here": row.override_name,
        "named_by": f"{row.override_by}, {row.override_at:%Y-%m-%d %H:%M} UTC" if row.override_name else None,
    } for row in rows], columns=["subtype_id", "subtype", "from_lookup", "named_here", "named_by"])
    return SubtypeNames(lookup=lookup, subtypes=frame, sandbox_lookup=_sandbox_lookup(app_domain))


def _lookup_text(name: str | None, verified: bool) -> str | None:
    if name is None:
        return None
    return name if verified else f"{name} (not verified)"
