"""Contract-based auto-pay rules: one rule per agreement subtype of a partner, by the subtype's HaloPSA id (its name
can change, or be another table's); validated, saved, moved to a subtype and deleted here (every change audited).
What a rule covers and why other invoices are not charged is read by core.console.agreements.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from core.access import Principal, require_partner_data
from core.console import subtypes
from core.console.formatting import amount, money_text
from core.errors import BadInput, NotFound
from core.halopsa.records import INT64_MAX
from core.limits import check_length
from core.store import audit
from core.store.database import inserted_id
from core.store.tables import AGREEMENT_TABLE, RULE_TABLE, AuditAction, AutoPayTrigger

TRIGGERS = tuple(trigger.value for trigger in AutoPayTrigger)
# The words after "N days" (or the whole text for on_due_date); Python and SQL build the same sentence from them.
TRIGGER_WORDS = {
    AutoPayTrigger.ON_DUE_DATE: "on the due date",
    AutoPayTrigger.DAYS_BEFORE_DUE: "before the due date",
    AutoPayTrigger.DAYS_AFTER_DUE: "after the due date",
    AutoPayTrigger.DAYS_AFTER_INVOICE: "after the invoice date",
}
# How the rule form names each trigger ("N" is the rule's number of days).
TRIGGER_LABELS = {
    AutoPayTrigger.ON_DUE_DATE: "On the due date",
    AutoPayTrigger.DAYS_BEFORE_DUE: "N days before the due date",
    AutoPayTrigger.DAYS_AFTER_DUE: "N days after the due date",
    AutoPayTrigger.DAYS_AFTER_INVOICE: "N days after the invoice date",
}
MAX_DAYS = 365
MAX_AMOUNT = Decimal("1000000000.00")  # a sanity bound: beyond it a typo is likelier than an invoice


@dataclass(frozen=True)
class RuleInput:
    """A rule's terms as asked for. `overdue_opt_in`: also charge invoices more overdue than the configured age
    (Settings.autopay_overdue_days) on the day they would be charged; without it they are held back."""

    subtype_id: int
    enabled: bool = True
    trigger: str = AutoPayTrigger.ON_DUE_DATE.value
    days: int = 0
    max_amount: Decimal | None = None
    overdue_opt_in: bool = False


def new_rule(subtype_id: int) -> RuleInput:
    """The terms a subtype without a rule starts from: disabled, so saving it charges nothing until someone enables
    it, seeing what that charges first."""
    return RuleInput(subtype_id, enabled=False)


@dataclass(frozen=True)
class Rule:
    """A saved rule. `subtype_id` None: a rule whose name named no single subtype when rules moved to ids (migration
    0007); it charges nothing until its subtype is picked again. `subtype` is how its subtype is shown."""

    id: int
    subtype_id: int | None
    subtype: str
    enabled: bool
    trigger: str
    days: int
    max_amount: Decimal | None
    created_by: str
    updated_at: datetime
    overdue_opt_in: bool = False

    @property
    def needs_subtype(self) -> bool:
        return self.subtype_id is None

    @property
    def description(self) -> str:
        return describe(self)

    def as_input(self, subtype_id: int) -> RuleInput:
        """The rule's terms, for `subtype_id` (its own, or the one picked for it)."""
        return RuleInput(subtype_id, self.enabled, self.trigger, self.days, self.max_amount, self.overdue_opt_in)


def starts_charging(saved: Rule | None, rule: RuleInput) -> bool:
    """Whether saving `rule` over `saved` (None: no rule yet) starts charging invoices it did not charge: it enables
    the rule, or opts an enabled rule in to long-overdue invoices. The page asks for a confirmation then."""
    if not rule.enabled:
        return False
    if saved is None or not saved.enabled:
        return True
    return rule.overdue_opt_in and not saved.overdue_opt_in


def trigger_text(trigger: str, days: int) -> str:
    """"on the due date", "1 day after the invoice date", "3 days before the due date"."""
    words = TRIGGER_WORDS[AutoPayTrigger(trigger)]
    if trigger == AutoPayTrigger.ON_DUE_DATE:
        return words
    return f"{days} {'day' if days == 1 else 'days'} {words}"


def describe(rule: RuleInput | Rule) -> str:
    """The rule in one line, for the page and the audit log: "charge 3 days after the due date, up to 2,500.00";
    ", long-overdue invoices too" when opted in to them."""
    limit = f", up to {money_text(cents_of(rule.max_amount) or 0)}" if rule.max_amount is not None else ""
    overdue = ", long-overdue invoices too" if rule.overdue_opt_in else ""
    return f"charge {trigger_text(rule.trigger, rule.days)}{limit}{overdue}{'' if rule.enabled else ' (disabled)'}"


def delete_question(rule: Rule) -> str:
    """What the page asks before deleting `rule`."""
    charging = ("its invoices stop being charged automatically" if rule.enabled and rule.subtype_id is not None
                else "it charges nothing now")
    return f"Delete the auto-pay rule for {rule.subtype} ({rule.description})? Deleting it is audited; {charging}."


def parse_amount(text: str | None) -> Decimal | None:
    """The maximum amount as typed ("2500", "2,500.00"); empty means no maximum."""
    check_length("max_amount", text)
    cleaned = (text or "").replace(",", "").strip()
    if not cleaned:
        return None
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise BadInput("Enter the maximum as an amount like 2500 or 2500.00, or leave it empty for no maximum.",
                       field="max_amount") from None
    if not value.is_finite():
        raise BadInput("Enter the maximum as an amount like 2500.00.", field="max_amount")
    return value


def validate(rule: RuleInput) -> None:
    """Refuse a rule that cannot be applied; BadInput.field names the form field to fix."""
    check_subtype_id(rule.subtype_id)
    if rule.trigger not in TRIGGERS:
        raise BadInput(f"Unknown trigger “{rule.trigger}”: choose one of {', '.join(TRIGGERS)}.", field="trigger")
    if isinstance(rule.days, bool) or not isinstance(rule.days, int) or not 0 <= rule.days <= MAX_DAYS:
        raise BadInput(f"The number of days must be a whole number from 0 to {MAX_DAYS}.", field="days")
    if not isinstance(rule.enabled, bool) or not isinstance(rule.overdue_opt_in, bool):
        raise BadInput("Turn the rule, and its long-overdue opt-in, on or off.", field="enabled")
    if rule.trigger == AutoPayTrigger.ON_DUE_DATE and rule.days != 0:
        raise BadInput("“On the due date” takes no number of days: set it to 0 or pick a trigger with days.",
                       field="days")
    if rule.max_amount is not None:
        if not rule.max_amount.is_finite():  # NaN cannot even be compared
            raise BadInput("Enter the maximum as an amount like 2500.00.", field="max_amount")
        if rule.max_amount <= 0:
            raise BadInput("The maximum amount must be more than 0.00; leave it empty for no maximum.",
                           field="max_amount")
        if rule.max_amount >= MAX_AMOUNT:
            raise BadInput(f"The maximum amount must be below {money_text(cents_of(MAX_AMOUNT) or 0)}.",
                           field="max_amount")
        if rule.max_amount != rule.max_amount.quantize(Decimal("0.01")):
            raise BadInput("The maximum amount can have at most two decimals (cents).", field="max_amount")


def cents_of(value: Decimal | None) -> int | None:
    return None if value is None else int(value * 100)


def check_subtype_id(subtype_id: object) -> None:
    """A subtype is a HaloPSA id: a whole number above 0 that fits 64 bits."""
    if isinstance(subtype_id, bool) or not isinstance(subtype_id, int) or not 0 < subtype_id <= INT64_MAX:
        raise BadInput("Pick the agreement subtype from the list.", field="subtype_id")


def _find(conn: Connection, partner_id: int, *where: Any) -> Any:
    return conn.execute(select(RULE_TABLE).where(RULE_TABLE.c.partner_id == partner_id, *where)).first()


def _subtype_or_refuse(conn: Connection, partner_id: int, subtype_id: int) -> subtypes.Named:
    """The partner's subtype `subtype_id` with its name; refused when no synced agreement has it."""
    agr = AGREEMENT_TABLE.c
    if conn.scalar(select(agr.id).where(agr.partner_id == partner_id, agr.subtype_id == subtype_id).limit(1)) is None:
        raise BadInput(f"No synced agreement has subtype {subtype_id}. Pick one of the subtypes listed on this page, "
                       "or run a sync first.", field="subtype_id")
    return subtypes.named(conn, partner_id, subtype_id)


def _subject(conn: Connection, partner_id: int, row: Any) -> str:
    """How a saved rule's subtype is shown (see subtypes.rule_subject)."""
    found = subtypes.named(conn, partner_id, row.subtype_id) if row.subtype_id is not None else None
    return subtypes.rule_subject(row.subtype_id, row.subtype_name, found.name if found else None,
                                 bool(found and found.verified))


def rule_from_row(row: Any, subject: str) -> Rule:
    """A saved rule's row, its subtype shown as `subject`."""
    return Rule(id=row.id, subtype_id=row.subtype_id, subtype=subject, enabled=bool(row.enabled),
                trigger=str(row.trigger), days=row.days, max_amount=amount(row.max_amount_cents),
                created_by=row.created_by, updated_at=row.updated_at, overdue_opt_in=bool(row.overdue_opt_in))


def _record(conn: Connection, principal: Principal, partner_id: int, now: datetime, detail: str) -> None:
    audit.record(conn, actor=principal.user, action=AuditAction.MAPPING_CHANGE, partner_id=partner_id, now=now,
                 detail=detail)


def save_rule(engine: Engine, principal: Principal, partner_id: int, rule: RuleInput, *, now: datetime) -> int:
    """Create or update the partner's rule for subtype `rule.subtype_id` (audited); returns the rule id. The subtype's
    name is kept on the rule as its label, shown while the subtype has no name; the rule matches by the id only."""
    require_partner_data(principal, partner_id)
    validate(rule)
    with engine.begin() as conn:
        subtype = _subtype_or_refuse(conn, partner_id, rule.subtype_id)
        values = {"enabled": rule.enabled, "trigger": rule.trigger, "days": rule.days,
                  "max_amount_cents": cents_of(rule.max_amount), "overdue_opt_in": rule.overdue_opt_in,
                  "updated_at": now, "subtype_name": subtype.name}
        existing = _find(conn, partner_id, RULE_TABLE.c.subtype_id == rule.subtype_id)
        if existing is None:
            rule_id = inserted_id(conn.execute(RULE_TABLE.insert().values(
                partner_id=partner_id, subtype_id=rule.subtype_id, created_by=principal.user, created_at=now,
                **values)))
            detail = f"Auto-pay rule for “{subtype.shown}” created: {describe(rule)}"
        else:
            rule_id = existing.id
            conn.execute(RULE_TABLE.update().where(RULE_TABLE.c.id == rule_id).values(**values))
            detail = (f"Auto-pay rule for “{subtype.shown}” updated: {describe(rule)}; "
                      f"was: {describe(rule_from_row(existing, subtype.shown))}")
        _record(conn, principal, partner_id, now, detail)
    return int(rule_id)


def _saved(conn: Connection, partner_id: int, rule_id: int) -> Any:
    existing = _find(conn, partner_id, RULE_TABLE.c.id == rule_id)
    if existing is None:
        raise NotFound("That auto-pay rule is not there any more; refresh the page.")
    return existing


def delete_rule(engine: Engine, principal: Principal, partner_id: int, rule_id: int, *, now: datetime) -> None:
    """Remove one of the partner's rules (audited); its invoices stop being charged automatically."""
    require_partner_data(principal, partner_id)
    with engine.begin() as conn:
        existing = _saved(conn, partner_id, rule_id)
        subject = _subject(conn, partner_id, existing)
        conn.execute(RULE_TABLE.delete().where(RULE_TABLE.c.id == existing.id))
        _record(conn, principal, partner_id, now,
                f"Auto-pay rule for “{subject}” deleted; was: {describe(rule_from_row(existing, subject))}")


def assign_subtype(engine: Engine, principal: Principal, partner_id: int, rule_id: int, subtype_id: int, *,
                   now: datetime) -> None:
    """Give a saved rule its subtype (one waiting for it since rules moved to ids), audited; refused when that
    subtype has a rule already."""
    require_partner_data(principal, partner_id)
    check_subtype_id(subtype_id)
    with engine.begin() as conn:
        existing = _saved(conn, partner_id, rule_id)
        subtype = _subtype_or_refuse(conn, partner_id, subtype_id)
        if _find(conn, partner_id, RULE_TABLE.c.subtype_id == subtype_id, RULE_TABLE.c.id != rule_id) is not None:
            raise BadInput(f"{subtype.shown} has an auto-pay rule already. Edit that rule, or delete one of the two.",
                           field="subtype_id")
        before = _subject(conn, partner_id, existing)
        conn.execute(RULE_TABLE.update().where(RULE_TABLE.c.id == rule_id)
                     .values(subtype_id=subtype_id, subtype_name=subtype.name, updated_at=now))
        _record(conn, principal, partner_id, now, f"Auto-pay rule for “{before}” now applies to “{subtype.shown}”: "
                                                  f"{describe(rule_from_row(existing, subtype.shown))}")
