"""Contract-based auto-pay rules: one rule per agreement subtype of a partner; validated, saved and deleted here
(every change audited). What a rule covers and why other invoices are not charged is read by core.console.agreements.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from core.access import Principal, require_partner_data
from core.console.formatting import amount, money
from core.errors import BadInput, NotFound
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
    subtype_name: str
    enabled: bool = True
    trigger: str = AutoPayTrigger.ON_DUE_DATE.value
    days: int = 0
    max_amount: Decimal | None = None


@dataclass(frozen=True)
class Rule:
    subtype_name: str
    enabled: bool
    trigger: str
    days: int
    max_amount: Decimal | None
    created_by: str
    updated_at: datetime

    @property
    def description(self) -> str:
        return describe(self.as_input())

    def as_input(self) -> RuleInput:
        return RuleInput(self.subtype_name, self.enabled, self.trigger, self.days, self.max_amount)


def trigger_text(trigger: str, days: int) -> str:
    """"on the due date", "1 day after the invoice date", "3 days before the due date"."""
    words = TRIGGER_WORDS[AutoPayTrigger(trigger)]
    if trigger == AutoPayTrigger.ON_DUE_DATE:
        return words
    return f"{days} {'day' if days == 1 else 'days'} {words}"


def describe(rule: RuleInput) -> str:
    """The rule in one line, for the page and the audit log: "charge 3 days after the due date, up to 2500.00"."""
    limit = f", up to {money(cents_of(rule.max_amount))}" if rule.max_amount is not None else ""
    return f"charge {trigger_text(rule.trigger, rule.days)}{limit}{'' if rule.enabled else ' (disabled)'}"


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
    if not rule.subtype_name.strip():
        raise BadInput("Pick the agreement subtype the rule applies to.", field="subtype_name")
    if "\x00" in rule.subtype_name:  # no subtype can hold it (PostgreSQL text cannot), so no rule can match one
        raise BadInput("The agreement subtype holds a NUL character; pick the subtype from the list again.",
                       field="subtype_name")
    if rule.trigger not in TRIGGERS:
        raise BadInput(f"Unknown trigger “{rule.trigger}”: choose one of {', '.join(TRIGGERS)}.", field="trigger")
    if isinstance(rule.days, bool) or not isinstance(rule.days, int) or not 0 <= rule.days <= MAX_DAYS:
        raise BadInput(f"The number of days must be a whole number from 0 to {MAX_DAYS}.", field="days")
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
            raise BadInput(f"The maximum amount must be below {money(cents_of(MAX_AMOUNT))}.", field="max_amount")
        if rule.max_amount != rule.max_amount.quantize(Decimal("0.01")):
            raise BadInput("The maximum amount can have at most two decimals (cents).", field="max_amount")


def cents_of(value: Decimal | None) -> int | None:
    return None if value is None else int(value * 100)


def _subtype_exists(conn: Connection, partner_id: int, subtype_name: str) -> bool:
    agr = AGREEMENT_TABLE.c
    return conn.scalar(select(agr.id).where(agr.partner_id == partner_id, agr.subtype_name == subtype_name)
                       .limit(1)) is not None


def _find(conn: Connection, partner_id: int, subtype_name: str) -> Any:
    return conn.execute(select(RULE_TABLE).where(RULE_TABLE.c.partner_id == partner_id,
                                                 RULE_TABLE.c.subtype_name == subtype_name)).first()


def rule_from_row(row: Any) -> Rule:
    return Rule(subtype_name=row.subtype_name, enabled=bool(row.enabled), trigger=str(row.trigger), days=row.days,
                max_amount=amount(row.max_amount_cents), created_by=row.created_by, updated_at=row.updated_at)


def save_rule(engine: Engine, principal: Principal, partner_id: int, rule: RuleInput, *, now: datetime) -> int:
    """Create or update the partner's rule for `rule.subtype_name` (audited); returns the rule id."""
    require_partner_data(principal, partner_id)
    validate(rule)
    values = {"enabled": rule.enabled, "trigger": rule.trigger, "days": rule.days,
              "max_amount_cents": cents_of(rule.max_amount), "updated_at": now}
    with engine.begin() as conn:
        if not _subtype_exists(conn, partner_id, rule.subtype_name):
            raise BadInput(f"No synced agreement has the subtype “{rule.subtype_name}”. Pick one of the subtypes "
                           "listed on this page, or run a sync first.", field="subtype_name")
        existing = _find(conn, partner_id, rule.subtype_name)
        if existing is None:
            rule_id = inserted_id(conn.execute(RULE_TABLE.insert().values(
                partner_id=partner_id, subtype_name=rule.subtype_name, created_by=principal.user, created_at=now,
                **values)))
            detail = f"Auto-pay rule for “{rule.subtype_name}” created: {describe(rule)}"
        else:
            rule_id = existing.id
            conn.execute(RULE_TABLE.update().where(RULE_TABLE.c.id == rule_id).values(**values))
            detail = (f"Auto-pay rule for “{rule.subtype_name}” updated: {describe(rule)}; "
                      f"was: {rule_from_row(existing).description}")
        audit.record(conn, actor=principal.user, action=AuditAction.MAPPING_CHANGE, partner_id=partner_id, now=now,
                     detail=detail)
    return int(rule_id)


def delete_rule(engine: Engine, principal: Principal, partner_id: int, subtype_name: str, *, now: datetime) -> None:
    """Remove the partner's rule for a subtype (audited); its invoices stop being charged automatically."""
    require_partner_data(principal, partner_id)
    with engine.begin() as conn:
        existing = _find(conn, partner_id, subtype_name)
        if existing is None:
            raise NotFound(f"There is no auto-pay rule for “{subtype_name}” any more; refresh the page.")
        conn.execute(RULE_TABLE.delete().where(RULE_TABLE.c.id == existing.id))
        audit.record(conn, actor=principal.user, action=AuditAction.MAPPING_CHANGE, partner_id=partner_id, now=now,
                     detail=f"Auto-pay rule for “{subtype_name}” deleted; was: {rule_from_row(existing).description}")
