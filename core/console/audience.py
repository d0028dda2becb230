"""Who reads a page, and how the page names people and its own internals to them.

Customer success sees everything as stored: e-mail addresses, "scheduler", triggers, request counts, scope names.
A partner user sees its own colleagues' addresses, "Customer success" for our staff (never their addresses),
"Automatic" for the scheduler, and plain words for internal terms; the HaloPSA permission names stay beside their
plain purpose, as they are the boxes to tick in HaloPSA.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Connection

from core.access import Principal
from core.console.connection import PERMISSION_PURPOSES
from core.store.tables import USER_TABLE, Role
from core.sync.scheduler import SCHEDULER_ACTOR

CUSTOMER_SUCCESS = "Customer success"
AUTOMATIC = "Automatic"
# internal column and count names -> what a partner user reads instead
PLAIN_TERMS: dict[str, str] = {
    "Trigger": "How it started",
    "By": "Started by",
    "Requests": "Calls to HaloPSA",
    "Unchanged": "Already up to date",
    "Rejected": "Could not be read",
}
_PLAIN_WORDS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(this|the|a|each|every) tenant\b", re.IGNORECASE), "your HaloPSA"),
    (re.compile(r"\btenants?\b", re.IGNORECASE), "HaloPSA"),
    (re.compile(r"\bthe scheduler\b", re.IGNORECASE), "the automatic sync"),
    (re.compile(r"\bscheduler\b", re.IGNORECASE), "automatic sync"),
)
_SCOPE = re.compile(r"\b(?:admin|read|edit):[a-z]+\b")


@dataclass(frozen=True)
class Audience:
    """How one reader of one partner's pages is told about people and internals."""

    partner_view: bool
    colleagues: frozenset[str] = frozenset()

    @classmethod
    def of(cls, conn: Connection, principal: Principal, partner_id: int) -> Audience:
        """Customer success reads things as stored; a partner user reads them in plain words, its colleagues (the
        partner's own accounts) by address. One small indexed read for a partner user, none for customer success."""
        if principal.role != Role.PARTNER:
            return cls(partner_view=False)
        user = USER_TABLE.c
        return cls(partner_view=True, colleagues=frozenset(conn.scalars(
            select(user.email).where(user.partner_id == partner_id, user.role == Role.PARTNER))))

    def who(self, actor: str | None) -> str:
        """The name of whoever started something, as this reader is told it."""
        if actor is None:
            return ""
        if not self.partner_view or actor in self.colleagues:
            return actor
        return AUTOMATIC if actor == SCHEDULER_ACTOR else CUSTOMER_SUCCESS

    def on_their_behalf(self, actor: str | None) -> bool:
        """Customer success did it for the partner user reading (e.g. used the partner's manual-fetch cooldown)."""
        return self.partner_view and actor is not None and self.who(actor) == CUSTOMER_SUCCESS

    def by(self, actor: str | None) -> str:
        """"by X", "automatically", or "by Customer success on your behalf"."""
        name = self.who(actor)
        if name == AUTOMATIC and self.partner_view:
            return "automatically"
        return f"by {name} on your behalf" if self.on_their_behalf(actor) else f"by {name}"

    def term(self, name: str) -> str:
        """A column or count name."""
        return PLAIN_TERMS.get(name, name) if self.partner_view else name

    def words(self, text: str | None) -> str | None:
        """A sentence from core (an error, a note, a live status) in words for this reader."""
        if text is None or not self.partner_view:
            return text
        for pattern, plain in _PLAIN_WORDS:
            text = pattern.sub(plain, text)
        return _SCOPE.sub(_permission, text)


def _permission(match: re.Match[str]) -> str:
    scope = match.group(0)
    purpose = PERMISSION_PURPOSES.get(scope)
    return f"{scope} (the permission that {purpose})" if purpose else scope
