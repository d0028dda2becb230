"""The invoice arithmetic every change goes through, so amounts and statuses can never disagree.

amountdue = total - amountpaid (0 once voided); paymentstatus follows the amounts: nothing paid -> unpaid, something
paid but not all -> partially paid, all paid (or nothing to pay) -> paid. The codes are configurable because the
real enum is UNCONFIRMED (reference section 4.3).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from halo_emulator.config import EmulatorConfig
from halo_emulator.wire import NO_DATE, cents, money


class PaymentCodes(NamedTuple):
    unpaid: int
    partial: int
    paid: int

    @classmethod
    def of(cls, config: EmulatorConfig) -> PaymentCodes:
        return cls(config.status_unpaid, config.status_partial, config.status_paid)

    def status(self, total_cents: int, paid_cents: int) -> int:
        if paid_cents >= total_cents:
            return self.paid
        return self.partial if paid_cents > 0 else self.unpaid


def settle(row: dict[str, Any], codes: PaymentCodes, *, paid_at: str | None = None) -> None:
    """Recompute `amountdue`, `paymentstatus` and `datepaid` of an invoice row in place from its amounts.

    `paid_at` is the wire time to use as `datepaid` if the invoice has just become fully paid; an invoice that
    was already paid keeps its date.
    """
    total = cents(row["total"])
    paid = cents(row["amountpaid"])
    voided = bool(row.get("voided"))
    row["amountdue"] = 0.0 if voided else money(total - paid)
    row["paymentstatus"] = codes.status(total, paid)
    if paid < total or paid <= 0:
        row["datepaid"] = NO_DATE
    elif row.get("datepaid") in (None, "", NO_DATE):
        row["datepaid"] = paid_at or row["last_modified"]


def is_payable(row: dict[str, Any]) -> bool:
    """Posted, not voided, something still due: what a payment or a dunning edit can touch."""
    return bool(row.get("posted")) and not row.get("voided") and row["amountdue"] > 0
