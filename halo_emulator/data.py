"""Deterministic books of an MSP: customers, agreements, ~18 months of invoices and their payments.

Everything is a pure function of the config (seed and sizes), so two emulators built alike hold identical rows.
Moments are epoch seconds until a row is written (wire.py). Invoices are mostly the monthly recurring invoices of
agreements (run at 02:00 on the 1st, like a recurring-invoice schedule), the rest ad-hoc work with or without an
agreement; older invoices are mostly paid, recent ones often open.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from halo_emulator.config import EmulatorConfig
from halo_emulator.dice import Dice
from halo_emulator.ledger import PaymentCodes
from halo_emulator.names import (
    CONTRACT_TYPES,
    CURRENCIES,
    CURRENCY_BY_ISO,
    SUBTYPES,
    CompanyNames,
    Subtype,
)
from halo_emulator.rows import (
    Row,
    client_row,
    contract_row,
    credit_note_row,
    invoice_row,
    payment_row,
    pick_payment_method,
    tax_on,
)
from halo_emulator.wire import DAY_S, HOUR_S, OPEN_END, from_seconds, to_seconds, wire_seconds

HISTORY_MONTHS = 18
RECURRING_RUN_S = 2 * HOUR_S
"""Recurring invoices are raised at 02:00 on the 1st (the evolution clock does the same)."""
NO_AGREEMENT_SHARE = 0.15
MISSING_THIRD_PARTY_SHARE = 0.08
VOID_SHARE = 0.01

_SUBTYPE_WEIGHTS = [s.weight for s in SUBTYPES]
_SEAT_CHANGES = (1.0, 1.0, 1.0, 1.0, 1.0, 0.95, 1.05, 1.1)
_CURRENCY_WEIGHTS = [c.weight for c in CURRENCIES]
# (days past due upper bound, P(unpaid), P(partially paid)); older invoices are mostly settled.
_OPEN_ODDS = ((0, 0.60, 0.05), (30, 0.35, 0.08), (90, 0.15, 0.05), (None, 0.04, 0.02))


@dataclass
class Books:
    """The generated rows. Payments are built on first use: most syncs never list them, and they are a third of
    the generation time of a large tenant."""

    clients: dict[int, Row]
    contracts: dict[int, Row]
    invoices: dict[int, Row]
    payments: Callable[[], dict[int, Row]]


def month_start(seconds: int, months_back: int = 0) -> int:
    """Epoch seconds of the 1st of the month containing `seconds`, `months_back` months earlier."""
    moment = from_seconds(seconds)
    index = moment.year * 12 + moment.month - 1 - months_back
    return to_seconds(datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC))


def months_between(first_s: int, end_s: int) -> list[int]:
    """Month starts from `first_s`'s month whose recurring run happened before `end_s`."""
    months = []
    index = 0
    current = month_start(first_s)
    while current + RECURRING_RUN_S < end_s:
        months.append(current)
        index += 1
        current = month_start(first_s, -index)
    return months


def generate(config: EmulatorConfig) -> Books:
    rng = Dice(f"halo-emulator-books:{config.seed}")
    start_s = to_seconds(config.start)
    horizon_s = month_start(start_s, HISTORY_MONTHS)
    clients = _clients(rng, config.customer_count, horizon_s, start_s)
    contracts = _contracts(rng, config, list(clients.values()), horizon_s, start_s)
    credit_notes = round(config.invoices * config.credit_note_share)
    invoices, receipts = _invoices(rng, config, config.invoices - credit_notes, clients, contracts, horizon_s, start_s)
    if credit_notes:
        _credit_notes(config, credit_notes, invoices, clients, contracts, start_s)
    return Books(clients, contracts, invoices, lambda: _payments(config.seed, receipts, invoices))


def _next_id(rng: random.Random, previous: int, gap_share: float) -> int:
    """Ids rise with small holes (deleted records), so nothing may assume they are contiguous."""
    return previous + 1 + (rng.random() < gap_share)


def _clients(rng: random.Random, count: int, horizon_s: int, start_s: int) -> dict[int, Row]:
    names = CompanyNames(rng)
    clients: dict[int, Row] = {}
    client_id = 11
    for _ in range(count):
        client_id = _next_id(rng, client_id, 0.1)
        if rng.random() < 0.85:
            created_s = horizon_s - rng.randrange(HOUR_S, 4 * 365 * DAY_S)
        else:
            created_s = horizon_s + rng.randrange(0, start_s - horizon_s - 60 * DAY_S)
        clients[client_id] = client_row(
            client_id,
            names.take(),
            created_s=created_s,
            updated_s=created_s + rng.randrange(0, start_s - created_s),
            inactive=rng.random() < 0.03,
            currency=rng.choices(CURRENCIES, weights=_CURRENCY_WEIGHTS)[0],
            rng=rng,
        )
    if all(c["inactive"] for c in clients.values()):
        first = next(iter(clients))
        clients[first] = {**clients[first], "inactive": False}
    return clients


def _contracts(
    rng: random.Random, config: EmulatorConfig, clients: list[Row], horizon_s: int, start_s: int
) -> dict[int, Row]:
    contracts: dict[int, Row] = {}
    sequences: Counter[tuple[str, int]] = Counter()
    earliest_start = month_start(start_s, 2 * HISTORY_MONTHS)
    contract_id = 20
    for _ in range(config.agreement_count):
        contract_id = _next_id(rng, contract_id, 0.05)
        client = rng.choice(clients)
        subtype: Subtype = rng.choices(SUBTYPES, weights=_SUBTYPE_WEIGHTS)[0]
        lo = max(wire_seconds(client["datecreated"]), earliest_start)
        hi = max(lo + DAY_S, start_s - 20 * DAY_S)
        begin_s = (rng.randrange(lo, hi) // DAY_S) * DAY_S
        end_s, active, expired = _lifetime(rng, client["inactive"], begin_s, horizon_s, start_s)
        active = active or (expired and config.stays_active_when_expired(contract_id))  # HaloPSA keeps them apart
        charge = 0 if not subtype.recurring else rng.randint(subtype.charge_min, subtype.charge_max) // 5 * 500
        prefix = CONTRACT_TYPES[subtype.contract_type].prefix
        year = from_seconds(begin_s).year
        sequences[prefix, year] += 1
        last_s = min(start_s, end_s + DAY_S if end_s is not None else start_s)
        contracts[contract_id] = contract_row(
            contract_id,
            f"{prefix}-{year}-{sequences[prefix, year]:04d}",
            client,
            subtype,
            start_s=begin_s,
            end_s=end_s,
            active=active,
            expired=expired,
            charge_cents=charge,
            modified_s=begin_s + rng.randrange(0, max(1, last_s - begin_s)),
        )
    return contracts


def _lifetime(
    rng: random.Random, client_inactive: bool, begin_s: int, horizon_s: int, start_s: int
) -> tuple[int | None, bool, bool]:
    """(end, active, expired): open-ended, fixed-term (maybe expired), cancelled, or ended with a lost customer."""
    if client_inactive:
        lo = max(begin_s + 60 * DAY_S, horizon_s + 30 * DAY_S)
        end_s = rng.randrange(lo, max(lo + DAY_S, start_s - 60 * DAY_S)) // DAY_S * DAY_S
        return min(end_s, start_s - DAY_S), False, True
    draw = rng.random()
    if draw < 0.65:
        return None, True, False
    if draw < 0.97:
        end_s = begin_s + rng.choice((12, 24, 36)) * 30 * DAY_S
        return end_s, end_s >= start_s, end_s < start_s
    end_s = rng.randrange(begin_s + DAY_S, max(begin_s + 2 * DAY_S, start_s)) // DAY_S * DAY_S
    return min(end_s, start_s - DAY_S), False, False


def _invoices(
    rng: random.Random,
    config: EmulatorConfig,
    count: int,
    clients: dict[int, Row],
    contracts: dict[int, Row],
    horizon_s: int,
    start_s: int,
) -> tuple[dict[int, Row], list[tuple[int, int, int]]]:
    specs = _invoice_specs(rng, count, clients, contracts, horizon_s, start_s)
    specs.sort(key=lambda spec: spec[0])
    codes = PaymentCodes.of(config)
    chance = rng.random
    invoices: dict[int, Row] = {}
    receipts: list[tuple[int, int, int]] = []
    third_party_seq = 4_000 + rng.randrange(0, 3_000)
    invoice_id = 1_000
    for issued_s, client, contract, net, recurring in specs:
        invoice_id += 1 + (chance() < 0.04)
        tax = tax_on(net, client["id"])
        terms = client["paymentterms"]
        posted_s: int | None = min(issued_s + int(chance() * 6 * HOUR_S), start_s - 1)
        if start_s - issued_s < 3 * DAY_S and chance() < config.draft_share:
            posted_s = None
        if posted_s is None:
            third_party: str | None = ""
        elif chance() < MISSING_THIRD_PARTY_SHARE:
            third_party = "" if chance() < 0.5 else None
        else:
            third_party_seq += 1
            third_party = f"INV-{third_party_seq:06d}"
        voided = posted_s is not None and chance() < VOID_SHARE
        if voided or posted_s is None:
            installments = []
        else:
            installments = _settlement(rng, net + tax, (issued_s // DAY_S + terms) * DAY_S, posted_s, terms, start_s)
        last_s = installments[-1][0] if installments else (posted_s or issued_s)
        if voided:
            last_s = min(start_s - 1, last_s + HOUR_S + int(chance() * 10 * DAY_S))
        row = invoice_row(
            invoice_id,
            client,
            contract,
            number_prefix=config.invoice_number_prefix,
            third_party_number=third_party,
            issued_s=issued_s,
            net_cents=net,
            tax_cents=tax,
            posted_s=posted_s,
            codes=codes,
            currency=CURRENCY_BY_ISO[client["currencyisocode"]],
            paid_cents=sum(amount for _, amount in installments),
            paid_s=last_s if installments else None,
            voided=voided,
            modified_s=last_s,
            recurring=recurring,
            currency_code_name=config.currency_code_name,
        )
        invoices[invoice_id] = row
        receipts.extend((at_s, invoice_id, amount) for at_s, amount in installments)
    return invoices, receipts


def _credit_notes(
    config: EmulatorConfig,
    count: int,
    invoices: dict[int, Row],
    clients: dict[int, Row],
    contracts: dict[int, Row],
    start_s: int,
) -> None:
    """`count` credit notes, each for part of a posted invoice (one may be credited twice), drawn with their own dice
    and raised after the last invoice so ids still rise with creation time."""
    rng = Dice(f"halo-emulator-credits:{config.seed}")
    codes = PaymentCodes.of(config)
    creditable = [row["id"] for row in invoices.values() if row["posted"] and not row["voided"] and row["total"] > 0]
    if not creditable:
        return
    credited = rng.choices(creditable, k=count)
    after_s = max(wire_seconds(row["date_created"]) for row in invoices.values()) + 1
    drawn = [
        (after_s + int(rng.random() * max(1, start_s - 1 - after_s)), invoice_id, 0.1 + 0.9 * rng.random())
        for invoice_id in credited
    ]
    for credit_id, (issued_s, invoice_id, share) in enumerate(sorted(drawn), start=max(invoices) + 1):
        invoice = invoices[invoice_id]
        client = clients[invoice["client_id"]]
        invoices[credit_id] = credit_note_row(
            credit_id, invoice, client, contracts.get(invoice["contract_id"]), share=share, issued_s=issued_s,
            number_prefix=config.invoice_number_prefix, codes=codes,
            currency=CURRENCY_BY_ISO[client["currencyisocode"]], currency_code_name=config.currency_code_name,
        )


def _payments(seed: int, receipts: list[tuple[int, int, int]], invoices: dict[int, Row]) -> dict[int, Row]:
    """Payment rows for the (time, invoice id, cents) receipts, numbered in the order they were received."""
    rng = Dice(f"halo-emulator-payments:{seed}")
    payments: dict[int, Row] = {}
    for payment_id, (at_s, invoice_id, amount) in enumerate(sorted(receipts), start=501):
        method, reference = pick_payment_method(rng)
        payments[payment_id] = payment_row(
            payment_id, invoices[invoice_id], amount_cents=amount, at_s=at_s, method=method, thirdpartyid=reference
        )
    return payments


def _settlement(
    rng: random.Random, total: int, due_s: int, posted_s: int, terms: int, start_s: int
) -> list[tuple[int, int]]:
    """The payments (time, cents) a posted invoice has received by `start`: none, a partial one, or paid in 1-2."""
    if total <= 0:
        return []
    days_overdue = (start_s - due_s) / DAY_S
    _, p_unpaid, p_partial = next(odds for odds in _OPEN_ODDS if odds[0] is None or days_overdue < odds[0])
    chance = rng.random
    draw = chance()
    if draw < p_unpaid:
        return []
    # Around the due date, sometimes weeks late: a triangular spread from the posting to 25 days past due.
    paid_s = posted_s + HOUR_S + int((chance() + chance()) * 0.5 * (terms + 25) * DAY_S)
    if paid_s >= start_s:
        return []  # not paid yet: the payment would come after the books were drawn up
    if draw < p_unpaid + p_partial:
        return [(paid_s, max(1, int(total * (0.2 + 0.6 * chance()))))]
    if chance() < 0.08 and paid_s - posted_s > 2:
        first = max(1, int(total * (0.3 + 0.4 * chance())))
        return [(posted_s + (paid_s - posted_s) // 2, first), (paid_s, total - first)]
    return [(paid_s, total)]


def _invoice_specs(
    rng: random.Random,
    count: int,
    clients: dict[int, Row],
    contracts: dict[int, Row],
    horizon_s: int,
    start_s: int,
) -> list[tuple[int, Row, Row | None, int, bool]]:
    """(issued, client, agreement or None, net cents, recurring) for exactly `count` invoices."""
    windows = {cid: _agreement_window(c, clients[c["client_id"]], horizon_s, start_s) for cid, c in contracts.items()}
    with_agreement = count - round(count * NO_AGREEMENT_SHARE)
    months = months_between(horizon_s, start_s)
    slots = [
        (month, contract)
        for contract in contracts.values()
        if contract["billingperiod"] and (window := windows[contract["id"]]) is not None
        for month in months
        if window[0] <= month <= window[1]
    ]
    if len(slots) > with_agreement:
        slots = rng.sample(slots, with_agreement)
    chance = rng.random
    specs: list[tuple[int, Row, Row | None, int, bool]] = [
        (
            month + RECURRING_RUN_S + int(chance() * 1_800),
            clients[contract["client_id"]],
            contract,
            _recurring_net(rng, contract),
            True,
        )
        for month, contract in slots
    ]
    open_agreements = [(c, window) for c in contracts.values() if (window := windows[c["id"]]) is not None]
    for _ in range(with_agreement - len(slots)):
        if not open_agreements:
            break
        contract, (lo, hi) = open_agreements[int(chance() * len(open_agreements))]
        specs.append((_working_hour(rng, lo, hi), clients[contract["client_id"]], contract, _adhoc_net(rng), False))
    active = [(c, max(horizon_s, wire_seconds(c["datecreated"]))) for c in clients.values() if not c["inactive"]]
    while len(specs) < count:
        client, lo = active[int(chance() * len(active))]
        specs.append((_working_hour(rng, lo, start_s - HOUR_S), client, None, _adhoc_net(rng), False))
    return specs


def _agreement_window(contract: Row, client: Row, horizon_s: int, start_s: int) -> tuple[int, int] | None:
    """When invoices may be raised against an agreement inside the history, or None if never."""
    lo = max(wire_seconds(contract["start_date"]), horizon_s, wire_seconds(client["datecreated"]))
    hi = start_s - HOUR_S
    if contract["end_date"] != OPEN_END:
        hi = min(hi, wire_seconds(contract["end_date"]))
    return (lo, hi) if lo < hi else None


def _working_hour(rng: random.Random, lo: int, hi: int) -> int:
    """A moment in [lo, hi) during office hours when the day allows."""
    day = (lo + int(rng.random() * (hi - lo))) // DAY_S * DAY_S
    moment = day + 8 * HOUR_S + int(rng.random() * 10 * HOUR_S)
    return min(max(moment, lo), hi - 1) if hi > lo else lo


def _recurring_net(rng: random.Random, contract: Row) -> int:
    """The agreement's monthly charge, with the odd seat-count change."""
    charge: int = round(contract["periodchargeamount"] * 100)
    return round(charge * _SEAT_CHANGES[int(rng.random() * len(_SEAT_CHANGES))])


def _adhoc_net(rng: random.Random) -> int:
    """Ad-hoc work (labour, parts): skewed towards small amounts, median around $400."""
    return max(4_500, round(math.exp(rng.gauss(6.0, 0.9)) * 100))
