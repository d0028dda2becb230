"""Who is asking: a Principal travels into every view and action, and the checks live here, not in the UI."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import AccessDenied
from core.store.tables import Role


@dataclass(frozen=True)
class Principal:
    role: Role
    user: str
    partner_id: int | None = None

    def __post_init__(self) -> None:
        if self.role == Role.PARTNER and self.partner_id is None:
            raise AccessDenied("A partner account must belong to a partner.")

    @property
    def is_cs(self) -> bool:
        return self.role == Role.CS


@dataclass(frozen=True)
class PageSpec:
    """One screen of the console: pages/<slug>.py, its sidebar title and icon (plain strings for the UI to draw),
    and the roles that may open it."""

    slug: str
    title: str
    icon: str
    roles: tuple[Role, ...]


# The one page registry: the UI builds its navigation from it and every page checks it again (ui.auth.require_page).
PAGES: tuple[PageSpec, ...] = (
    PageSpec("overview", "Overview", ":material/dashboard:", (Role.CS,)),
    PageSpec("connection", "Connection", ":material/link:", (Role.CS, Role.PARTNER)),
    PageSpec("syncs", "Syncs", ":material/sync:", (Role.CS, Role.PARTNER)),
    PageSpec("invoices", "Invoices", ":material/receipt_long:", (Role.CS, Role.PARTNER)),
    PageSpec("agreements", "Agreements", ":material/handshake:", (Role.CS, Role.PARTNER)),
    PageSpec("adoption", "Adoption", ":material/insights:", (Role.CS, Role.PM)),
    PageSpec("audit", "Audit log", ":material/history:", (Role.CS,)),
)


def pages_for(role: Role) -> tuple[PageSpec, ...]:
    """The pages `role` may open, in navigation order."""
    return tuple(spec for spec in PAGES if role in spec.roles)


def page_spec(slug: str) -> PageSpec:
    """The registered page `slug`; KeyError for a page the registry does not know."""
    for spec in PAGES:
        if spec.slug == slug:
            return spec
    raise KeyError(slug)


def require_partner_access(principal: Principal, partner_id: int) -> None:
    """cs may act for any partner; a partner user only for its own; pm never sees one partner's data."""
    if principal.role == Role.CS:
        return
    if principal.role == Role.PARTNER and principal.partner_id == partner_id:
        return
    raise AccessDenied("You do not have access to this partner's data.")


def require_role(principal: Principal, *roles: Role) -> None:
    if principal.role not in roles:
        raise AccessDenied("Your account cannot open this part of the console.")


def scope_partner_ids(principal: Principal, partner_ids: list[int]) -> list[int]:
    """The subset of partners this principal may see one by one (pm: none)."""
    if principal.role == Role.CS:
        return partner_ids
    if principal.role == Role.PARTNER:
        return [p for p in partner_ids if p == principal.partner_id]
    return []


def require_partner_data(principal: Principal, partner_id: int) -> None:
    """One partner's invoices, agreements or rules: cs any partner, a partner user its own; pm never."""
    require_role(principal, Role.CS, Role.PARTNER)
    require_partner_access(principal, partner_id)
