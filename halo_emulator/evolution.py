"""The tenant's clock: advancing it hour by hour raises invoices, records payments, edits, voids and deletes.

Hour `h` (hours since the epoch) gets its events from a generator seeded with (seed, h), so the books after
`advance(t)` are the same however the advance is split. Each event picks its target from the state at that moment
with its own uniform draws. Rates scale with the tenant's configured size; a small tenant still sees the odd event.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from halo_emulator.config import EmulatorConfig
from halo_emulator.dice import Dice
from halo_emulator.names import BILLING_MAILBOXES, PAYMENT_METHODS, CompanyNames, email_domain
from halo_emulator.rows import recurring_invoice_id, tax_on
from halo_emulator.state import TenantState
from halo_emulator.wire import DAY_S, HOUR_S, cents, from_seconds, money, parse_moment, stamp, to_seconds

RECURRING_RUN_HOUR = 2  # 02:00 on the 1st, as data.RECURRING_RUN_S


@dataclass
class Changes:
    """What an advance changed, id -> time of the (last) change, so tests can ask "what changed in the last hour"."""

    start: datetime
    end: datetime
    invoices_created: dict[int, datetime] = field(default_factory=dict)
    invoices_paid: dict[int, datetime] = field(default_factory=dict)
    """Invoices that received a payment (full or partial)."""
    invoices_edited: dict[int, datetime] = field(default_factory=dict)
    invoices_voided: dict[int, datetime] = field(default_factory=dict)
    invoices_deleted: dict[int, datetime] = field(default_factory=dict)
    """Invoices deleted in HaloPSA; they leave the other invoice groups (nothing can read them any more)."""
    payments_created: dict[int, datetime] = field(default_factory=dict)
    customers_created: dict[int, datetime] = field(default_factory=dict)
    customers_edited: dict[int, datetime] = field(default_factory=dict)
    agreements_edited: dict[int, datetime] = field(default_factory=dict)

    _GROUPS = (
        "invoices_created", "invoices_paid", "invoices_edited", "invoices_voided", "invoices_deleted",
        "payments_created", "customers_created", "customers_edited", "agreements_edited",
    )  # fmt: skip

    def invoice_ids(self) -> set[int]:
        """Every invoice created or changed that HaloPSA still has."""
        return {*self.invoices_created, *self.invoices_paid, *self.invoices_edited, *self.invoices_voided}

    def customer_ids(self) -> set[int]:
        return {*self.customers_created, *self.customers_edited}

    def since(self, moment: datetime) -> Changes:
        """Only the changes at or after `moment`."""
        narrowed = Changes(max(self.start, moment), self.end)
        for name in self._GROUPS:
            getattr(narrowed, name).update({k: t for k, t in getattr(self, name).items() if t >= moment})
        return narrowed

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"start": self.start.isoformat(), "end": self.end.isoformat()}
        for name in self._GROUPS:
            body[name] = {str(k): t.isoformat() for k, t in getattr(self, name).items()}
        return body


@dataclass(frozen=True)
class Event:
    at_s: int
    kind: str
    draws: tuple[float, ...]


# Expected events per hour as a function of (invoices, customers) configured.
_RATES: dict[str, Callable[[int, int], float]] = {
    "new_customer": lambda invoices, customers: max(0.01, customers / 10_000),
    "customer_edit": lambda invoices, customers: max(0.02, customers / 2_000),
    "new_invoice": lambda invoices, customers: max(0.06, invoices / 15_000),
    # about as many payments as new invoices (ad hoc + monthly recurring), so unpaid books stay level over weeks
    "payment": lambda invoices, customers: max(0.2, invoices / 7_500),
    "edit": lambda invoices, customers: max(0.04, invoices / 30_000),
    "void": lambda invoices, customers: max(0.004, invoices / 1_000_000),
    "delete": lambda invoices, customers: max(0.004, invoices / 1_000_000),
}
_KIND_ORDER = {kind: index for index, kind in enumerate(["recurring", *_RATES])}
_DRAWS = 5


def _poisson(rng: Dice, mean: float) -> int:
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    threshold, count, product = math.exp(-mean), 0, rng.random()
    while product > threshold:
        count += 1
        product *= rng.random()
    return count


def plan_hour(config: EmulatorConfig, hour: int) -> list[Event]:
    """The events of one clock hour, in time order; a pure function of the seed, the sizes and the hour."""
    rng = Dice(f"halo-emulator-hour:{config.seed}:{hour}")
    start_s = hour * HOUR_S
    events = []
    for kind, rate in _RATES.items():
        for _ in range(_poisson(rng, config.activity * rate(config.invoices, config.customer_count))):
            draws = tuple(rng.random() for _ in range(_DRAWS))
            events.append(Event(start_s + rng.randrange(HOUR_S), kind, draws))
    moment = from_seconds(start_s)
    if moment.day == 1 and moment.hour == RECURRING_RUN_HOUR:
        events.append(Event(start_s + rng.randrange(60, 600), "recurring", ()))
    events.sort(key=lambda e: (e.at_s, _KIND_ORDER[e.kind]))
    return events


class Evolution:
    """Applies planned events to the state and records them in a Changes."""

    def __init__(self, state: TenantState) -> None:
        self.state = state
        self._handlers: dict[str, Callable[[Event, Changes], None]] = {
            "recurring": self._recurring,
            "new_customer": self._new_customer,
            "customer_edit": self._customer_edit,
            "new_invoice": self._new_invoice,
            "payment": self._payment,
            "edit": self._edit,
            "void": self._void,
            "delete": self._delete,
        }

    def advance(self, from_s: int, to_s: int) -> Changes:
        """Apply every event in (from_s, to_s]."""
        changes = Changes(from_seconds(from_s), from_seconds(to_s))
        for hour in range(from_s // HOUR_S, to_s // HOUR_S + 1):
            for event in plan_hour(self.state.config, hour):
                if from_s < event.at_s <= to_s:
                    self._handlers[event.kind](event, changes)
        return changes

    def _recurring(self, event: Event, changes: Changes) -> None:
        """The monthly run: expire agreements past their end, then invoice every running recurring agreement."""
        state, at_s = self.state, event.at_s
        when = from_seconds(at_s)
        active_clients = set(state.active_clients())
        for contract in list(state.contracts.rows.values()):
            if not contract["active"] or contract["expired"]:
                continue
            end = parse_moment(contract["end_date"])
            if end is not None and to_seconds(end) < at_s - RECURRING_RUN_HOUR * HOUR_S:
                # HaloPSA keeps the flags apart: an expired agreement may still say active
                stays = state.config.stays_active_when_expired(contract["id"])
                expiry = {"expired": True} if stays else {"active": False, "expired": True}
                state.update_contract(contract["id"], expiry, at_s)
                changes.agreements_edited[contract["id"]] = when
                continue
            started = parse_moment(contract["start_date"])
            if not contract["billingperiod"] or contract["client_id"] not in active_clients:
                continue
            if started is not None and to_seconds(started) > at_s:
                continue
            net = cents(contract["periodchargeamount"])
            row = self._raise_invoice(contract["client_id"], contract["id"], net, at_s, recurring=True)
            changes.invoices_created[row["id"]] = when

    def _new_invoice(self, event: Event, changes: Changes) -> None:
        """Ad-hoc work for an active customer, against one of its agreements most of the time."""
        state = self.state
        clients = state.active_clients()
        if not clients:
            return
        pick, with_agreement, which, size, _ = event.draws
        client_id = clients[int(pick * len(clients))]
        agreements = state.agreements_by_client().get(client_id, [])
        contract_id = agreements[int(which * len(agreements))] if agreements and with_agreement < 0.8 else 0
        net = 4_500 + int(size**3 * 250_000)  # $45 to $2,545, mostly small
        row = self._raise_invoice(client_id, contract_id, net, event.at_s)
        changes.invoices_created[row["id"]] = from_seconds(event.at_s)

    def _raise_invoice(
        self, client_id: int, contract_id: int, net: int, at_s: int, *, recurring: bool = False
    ) -> dict[str, Any]:
        tax = tax_on(net, client_id)
        body = {
            "client_id": client_id,
            "contract_id": contract_id,
            "invoice_date": stamp(at_s // DAY_S * DAY_S),
            "total": money(net + tax),
            "tax_total": money(tax),
            "posted": True,
            "thirdpartyinvoicenumber": self.state.next_third_party_number(),
            "recurring_invoice_id": recurring_invoice_id(contract_id) if recurring else 0,
        }
        return self.state.create_invoice(body, at_s)

    def _payment(self, event: Event, changes: Changes) -> None:
        state = self.state
        if not len(state.payable):
            return
        pick, full, share, method_draw, reference = event.draws
        invoice = state.invoices.rows[state.payable.pick(pick)]
        due = cents(invoice["amountdue"])
        amount = due if full < 0.75 or due < 2 else max(1, int(due * (0.2 + 0.6 * share)))
        method = PAYMENT_METHODS[int(method_draw * len(PAYMENT_METHODS))][0]
        body = {
            "invoice_id": invoice["id"],
            "amount": money(amount),
            "method": method,
            "thirdpartyid": f"py_{int(reference * 2**52):013x}" if method <= 2 else "",
        }
        payment = state.record_payment(body, event.at_s)
        when = from_seconds(event.at_s)
        changes.invoices_paid[invoice["id"]] = when
        changes.payments_created[payment["id"]] = when

    def _edit(self, event: Event, changes: Changes) -> None:
        """Dunning and corrections on an open invoice: a new due date, or a changed total."""
        state = self.state
        if not len(state.payable):
            return
        pick, what, factor_draw, days_draw, _ = event.draws
        invoice = state.invoices.rows[state.payable.pick(pick)]
        if what < 0.5:
            due = parse_moment(invoice["duedate"])
            assert due is not None
            body: dict[str, Any] = {"duedate": stamp(to_seconds(due) + (7 if days_draw < 0.5 else 14) * DAY_S)}
        else:
            factor = 0.85 + 0.3 * factor_draw
            paid = cents(invoice["amountpaid"])
            tax = round(cents(invoice["tax_total"]) * factor)
            total = max(paid + 1, round(cents(invoice["total"]) * factor), tax)
            body = {"total": money(total), "tax_total": money(tax)}
        state.update_invoice(invoice["id"], body, event.at_s)
        changes.invoices_edited[invoice["id"]] = from_seconds(event.at_s)

    def _void(self, event: Event, changes: Changes) -> None:
        """Void an open invoice nobody has paid anything on yet (a mistaken invoice)."""
        state = self.state
        if not len(state.payable):
            return
        invoice = state.invoices.rows[state.payable.pick(event.draws[0])]
        if cents(invoice["amountpaid"]):
            return
        state.void_invoice(invoice["id"], event.at_s)
        changes.invoices_voided[invoice["id"]] = from_seconds(event.at_s)

    def _delete(self, event: Event, changes: Changes) -> None:
        """Delete an open invoice nobody has paid anything on (raised in error) in HaloPSA, unless the tenant is
        configured never to; planned either way, so the knob changes nothing else."""
        state = self.state
        if not state.config.invoice_deletions or not len(state.payable):
            return
        invoice = state.invoices.rows[state.payable.pick(event.draws[0])]
        if cents(invoice["amountpaid"]):
            return
        state.delete_invoice(invoice["id"])
        for group in (changes.invoices_created, changes.invoices_paid, changes.invoices_edited,
                      changes.invoices_voided):
            group.pop(invoice["id"], None)
        changes.invoices_deleted[invoice["id"]] = from_seconds(event.at_s)

    def _new_customer(self, event: Event, changes: Changes) -> None:
        state = self.state
        rng = Dice(f"halo-emulator-customer:{state.config.seed}:{event.at_s}")
        name = CompanyNames(rng, existing=state.client_names()).take()
        mailbox = BILLING_MAILBOXES[int(event.draws[0] * len(BILLING_MAILBOXES))]
        row = state.create_client({"name": name, "accountsemailaddress": f"{mailbox}@{email_domain(name)}"}, event.at_s)
        changes.customers_created[row["id"]] = from_seconds(event.at_s)

    def _customer_edit(self, event: Event, changes: Changes) -> None:
        """A new billing mailbox or phone number (names stay: renames are rare and do not need the clock)."""
        state = self.state
        clients = state.active_clients()
        if not clients:
            return
        pick, what, detail, _, _ = event.draws
        client = state.clients.rows[clients[int(pick * len(clients))]]
        if what < 0.6:
            mailbox = BILLING_MAILBOXES[int(detail * len(BILLING_MAILBOXES))]
            body = {"accountsemailaddress": f"{mailbox}@{email_domain(client['name'])}"}
        else:
            body = {"main_phonenumber": f"(555) 555-{int(detail * 10_000):04d}"}
        state.update_client(client["id"], body, event.at_s)
        changes.customers_edited[client["id"]] = from_seconds(event.at_s)
