"""Agreement subtype names as a partner's people set them on the Agreements page (customer success, or the partner's
own users; every change audited): which lookup of its HaloPSA names its subtypes, checked at once against the
subtype ids on its synced agreements (and again by every sync that reads them), and a name per subtype, which wins
over the lookup's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection, Engine

from core.access import Principal, require_partner_data
from core.actions.autopay_rules import check_subtype_id
from core.console import subtypes
from core.errors import BadInput, ConsoleError, NotFound
from core.halopsa.lookups import SubtypeLookup
from core.limits import check_length, check_one_line
from core.settings import Settings
from core.store import audit
from core.store.tables import (
    CONNECTION_TABLE,
    SUBTYPE_LOOKUP_TABLE,
    SUBTYPE_NAME_TABLE,
    AuditAction,
    SubtypeLookupState,
)
from core.sync import subtypes as kept
from core.sync.connector import ClientFactory, stored_client_factory

LOOKUP_ID_MAX = 2**31 - 1


@dataclass(frozen=True)
class LookupSet:
    """What setting the lookup did: `checked` is its check (None: cleared, or HaloPSA could not be asked: `why`)."""

    lookup_id: int | None
    checked: SubtypeLookup | None = None
    why: str = ""

    @property
    def message(self) -> str:
        """The outcome in plain words, for the page."""
        if self.lookup_id is None:
            return ("No subtype lookup is set now: subtypes show by their id unless named here. Names taken from "
                    "the lookup before are kept, marked not verified.")
        if self.checked is None:
            return (f"Lookup {self.lookup_id} is saved but could not be checked: {self.why} The next sync that reads "
                    "agreements checks it.")
        verdict = "verified" if self.checked.verified else "saved but not verified"
        return f"Lookup {self.lookup_id} is {verdict}: {self.checked.finding}"


def check_lookup_id(lookup_id: object) -> None:
    if isinstance(lookup_id, bool) or not isinstance(lookup_id, int) or not 0 < lookup_id <= LOOKUP_ID_MAX:
        raise BadInput(f"Enter the lookup id as a whole number from 1 to {LOOKUP_ID_MAX:,}, or clear it.",
                       field="lookup_id")


def _save_lookup(conn: Connection, principal: Principal, partner_id: int, lookup_id: int | None,
                 now: datetime) -> None:
    """Store the lookup, not checked yet; names taken before stay, marked not verified, until a check verifies."""
    previous = kept.lookup_of(conn, partner_id)
    values = {"lookup_id": lookup_id, "state": SubtypeLookupState.UNCHECKED, "finding": "", "checked_at": None,
              "set_by": principal.user, "set_at": now}
    if previous is None:
        conn.execute(SUBTYPE_LOOKUP_TABLE.insert().values(partner_id=partner_id, **values))
    else:
        conn.execute(update(SUBTYPE_LOOKUP_TABLE).where(SUBTYPE_LOOKUP_TABLE.c.partner_id == partner_id)
                     .values(**values))
    kept.unverify_names(conn, partner_id)
    was = "none" if previous is None or previous.lookup_id is None else str(previous.lookup_id)
    audit.record(conn, actor=principal.user, action=AuditAction.SUBTYPE_NAMES, partner_id=partner_id, now=now,
                 detail=f"Subtype lookup set to {lookup_id if lookup_id is not None else 'none'} (was {was})")


def set_lookup(engine: Engine, principal: Principal, partner_id: int, lookup_id: int | None, *, now: datetime,
               settings: Settings, client_factory: ClientFactory | None = None) -> LookupSet:
    """Set (or, with None, clear) the lookup naming the partner's subtypes, audited, and check it at once against the
    subtype ids on its synced agreements; when HaloPSA cannot be asked now, the next sync checks it."""
    require_partner_data(principal, partner_id)
    if lookup_id is not None:
        check_lookup_id(lookup_id)
    with engine.begin() as conn:
        connection = conn.execute(select(CONNECTION_TABLE).where(CONNECTION_TABLE.c.partner_id == partner_id)).first()
        if connection is None:
            raise NotFound("This partner has no HaloPSA connection: connect it on the Connection page first.")
        _save_lookup(conn, principal, partner_id, lookup_id, now)
        subtype_ids = kept.stored_subtype_ids(conn, partner_id)
    if lookup_id is None:
        return LookupSet(None)
    factory = client_factory or stored_client_factory(settings, engine=engine)
    try:
        with factory(connection, None) as client:
            result = client.subtype_lookup(lookup_id, subtype_ids)
    except ConsoleError as exc:  # HaloPSA refused the credentials, rate limited or down; the key cannot decrypt
        with engine.begin() as conn:
            kept.note_unchecked(conn, partner_id, lookup_id, exc.message)
        return LookupSet(lookup_id, why=exc.message)
    with engine.begin() as conn:
        kept.record_check(conn, partner_id, result, now=now)
    return LookupSet(lookup_id, result)


def set_name(engine: Engine, principal: Principal, partner_id: int, subtype_id: int, name: str | None, *,
             now: datetime) -> str:
    """Name one of the partner's subtypes here (it wins over the lookup's name), or with an empty name clear the name
    set here; audited. Returns how the subtype is shown now."""
    require_partner_data(principal, partner_id)
    check_subtype_id(subtype_id)
    text = (name or "").strip()
    check_length("subtype_name", text)
    check_one_line("subtype_name", text)
    names = SUBTYPE_NAME_TABLE.c
    this = (names.partner_id == partner_id) & (names.subtype_id == subtype_id)
    with engine.begin() as conn:
        row = conn.execute(select(SUBTYPE_NAME_TABLE).where(this)).first()
        overridden = row is not None and row.override_name is not None
        if subtype_id not in kept.stored_subtype_ids(conn, partner_id) and not overridden:
            raise BadInput(f"No synced agreement has subtype {subtype_id}. Pick one of the subtypes listed here, or "
                           "run a sync first.", field="subtype_id")
        before = subtypes.named(conn, partner_id, subtype_id).shown
        if text:
            values = {"override_name": text, "override_by": principal.user, "override_at": now}
            if row is None:
                conn.execute(SUBTYPE_NAME_TABLE.insert().values(partner_id=partner_id, subtype_id=subtype_id,
                                                                **values))
            else:
                conn.execute(update(SUBTYPE_NAME_TABLE).where(this).values(**values))
        elif overridden:
            conn.execute(update(SUBTYPE_NAME_TABLE).where(this)
                         .values(override_name=None, override_by=None, override_at=None))
            conn.execute(delete(SUBTYPE_NAME_TABLE).where(this, names.lookup_name.is_(None)))
        else:
            raise BadInput(f"{before} has no name set here to clear: type the name it should have.",
                           field="subtype_name")
        after = subtypes.named(conn, partner_id, subtype_id).shown
        detail = (f"Subtype {subtype_id} named “{text}” here; was shown as “{before}”" if text
                  else f"Name set here for subtype {subtype_id} cleared; shown as “{after}”, was “{before}”")
        audit.record(conn, actor=principal.user, action=AuditAction.SUBTYPE_NAMES, partner_id=partner_id, now=now,
                     detail=detail)
    return after
