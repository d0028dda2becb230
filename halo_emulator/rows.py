"""Builders for rows in HaloPSA's wire shape, shared by the generator, the clock and the POST handlers.

Field names follow the reference (section 4); a few fields the sync never reads are kept as realistic noise.
"""

from __future__ import annotations

import random
from itertools import accumulate
from typing import Any

from halo_emulator.ledger import PaymentCodes
from halo_emulator.names import (
    BILLING_MAILBOXES,
    CONTRACT_TYPES,
    PAYMENT_METHODS,
    PEOPLE_FIRST,
    PEOPLE_LAST,
    Currency,
    Subtype,
    email_domain,
)
from halo_emulator.schema import ClientWire, ContractWire, InvoiceWire, PaymentWire, wire
from halo_emulator.wire import DAY_S, NO_DATE, OPEN_END, day_stamp, money, stamp

Row = dict[str, Any]
TAX_RATES_BP = (0, 0, 600, 725, 825, 875, 1000)
"""Sales tax in basis points; a customer's rate is fixed by its id."""
PAYMENT_TERMS_DAYS = (14, 30, 30, 30, 45)
_METHOD_IDS = [method_id for method_id, _, _ in PAYMENT_METHODS]
_METHOD_CUM_WEIGHTS = list(accumulate(weight for _, _, weight in PAYMENT_METHODS))


def tax_rate_bp(client_id: int) -> int:
    return TAX_RATES_BP[client_id % len(TAX_RATES_BP)]


def tax_on(net_cents: int, client_id: int) -> int:
    return (net_cents * tax_rate_bp(client_id) + 5_000) // 10_000


def main_site_id(client_id: int) -> int:
    return 1_000 + client_id


def recurring_invoice_id(contract_id: int) -> int:
    """The recurring-invoice template of an agreement (a separate id space in HaloPSA)."""
    return 7_000 + contract_id


def client_row(
    client_id: int,
    name: str,
    *,
    created_s: int,
    updated_s: int,
    inactive: bool,
    currency: Currency,
    rng: random.Random,
) -> Row:
    domain = email_domain(name)
    has_billing_email = rng.random() >= 0.04
    return wire(
        ClientWire(
            id=client_id,
            name=name,
            inactive=inactive,
            ref=f"C{client_id:05d}",
            toplevel_id=1,
            toplevel_name="Customers",
            main_site_id=main_site_id(client_id),
            main_site_name="Main Office",
            accountsid="",
            accountsemailaddress=f"{rng.choice(BILLING_MAILBOXES)}@{domain}" if has_billing_email else "",
            accountsfirstname=rng.choice(PEOPLE_FIRST),
            accountslastname=rng.choice(PEOPLE_LAST),
            emailinvoice=has_billing_email,
            paymentterms=rng.choice(PAYMENT_TERMS_DAYS),
            currencyisocode=currency.iso,
            default_currency_code=currency.code,
            datecreated=stamp(created_s),
            alastupdate=stamp(updated_s),
            website=f"https://www.{domain}",
            main_phonenumber=f"({rng.randint(201, 989)}) 555-{rng.randint(100, 9999):04d}",
            customertype=1,
            is_vip=rng.random() < 0.05,
            colour=f"#{rng.getrandbits(24):06x}",
            use="client",
        )
    )


def contract_row(
    contract_id: int,
    ref: str,
    client: Row,
    subtype: Subtype,
    *,
    start_s: int,
    end_s: int | None,
    active: bool,
    expired: bool,
    charge_cents: int,
    modified_s: int,
) -> Row:
    contract_type = CONTRACT_TYPES[subtype.contract_type]
    return wire(
        ContractWire(
            id=contract_id,
            ref=ref,
            refextra="",
            client_id=client["id"],
            client_name=client["name"],
            site_id=client["main_site_id"],
            site_name=client["main_site_name"],
            start_date=day_stamp(start_s),
            end_date=OPEN_END if end_s is None else day_stamp(end_s),
            started=True,
            expired=expired,
            active=active,
            contract_status="Active" if active else ("Expired" if expired else "Cancelled"),
            contracttype=contract_type.id,
            contracttype_name=contract_type.name,
            subtype=subtype.id,
            billingdescription=subtype.id,
            billing_description_string=f"{subtype.name} - Monthly" if subtype.recurring else subtype.name,
            billingperiod=1 if subtype.recurring else 0,
            billing_period_string="Monthly" if subtype.recurring else "None",
            periodchargeamount=money(charge_cents),
            rollingcontract=end_s is None,
            dontinvoice=False,
            last_modified=stamp(modified_s),
            note="",
        )
    )


def invoice_row(
    invoice_id: int,
    client: Row,
    contract: Row | None,
    *,
    number_prefix: str,
    third_party_number: str | None,
    issued_s: int,
    net_cents: int,
    tax_cents: int,
    posted_s: int | None,
    codes: PaymentCodes,
    currency: Currency,
    paid_cents: int = 0,
    paid_s: int | None = None,
    voided: bool = False,
    modified_s: int | None = None,
    recurring: bool = False,
    currency_code_name: bool = True,
) -> Row:
    """An invoice with its derived amounts already consistent (see ledger.py for the rules); `recurring` marks one
    raised by the agreement's recurring-invoice schedule; without `currency_code_name` the row names its currency only
    by symbol and by id (`currency`, `currency_code`), as some tenants' rows do."""
    total = net_cents + tax_cents
    fully_paid = paid_cents >= total and paid_cents > 0
    terms = client["paymentterms"]
    created = stamp(issued_s)
    posted = NO_DATE if posted_s is None else stamp(posted_s)
    paid = stamp(paid_s) if fully_paid and paid_s is not None else NO_DATE
    if modified_s is None or modified_s == issued_s:
        modified = created
    else:
        modified = paid if modified_s == paid_s and fully_paid else stamp(modified_s)
    row = wire(
        InvoiceWire(
            id=invoice_id,
            invoicenumber=f"{number_prefix}{invoice_id}",
            thirdpartyinvoicenumber=third_party_number,
            client_id=client["id"],
            client_name=client["name"],
            sitenumber=client["main_site_id"],
            site_name=client["main_site_name"],
            invoice_date=day_stamp(issued_s),
            duedate=day_stamp(issued_s + terms * DAY_S),
            posted=posted_s is not None,
            dateposted=posted,
            datepaid=paid,
            paymentstatus=codes.status(total, paid_cents),
            total=total / 100,
            tax_total=tax_cents / 100,
            amountpaid=paid_cents / 100,
            amountdue=0.0 if voided else (total - paid_cents) / 100,
            credit_used=0.0,
            credit_outstanding=0.0,
            currency=currency.symbol,
            currency_code=currency.code,
            currency_code_name=currency.iso,
            contract_id=contract["id"] if contract else 0,
            contract_ref=contract["ref"] if contract else "",
            recurring_invoice_id=recurring_invoice_id(contract["id"]) if contract and recurring else 0,
            voided=voided,
            last_modified=modified,
            date_created=created,
            reference="",
            sent_status=1 if posted_s is not None else 0,
        )
    )
    if not currency_code_name:
        del row["currency_code_name"]
    return row


def credit_note_row(credit_id: int, invoice: Row, client: Row, contract: Row | None, *, share: float, issued_s: int,
                    number_prefix: str, codes: PaymentCodes, currency: Currency, currency_code_name: bool) -> Row:
    """A posted credit note for `share` of `invoice`'s total: an invoice row with a negative total and amount due,
    naming the invoice it credits (`creditlinkedtoinvoiceid`), unapplied (nothing paid)."""
    total = -max(1, round(round(invoice["total"] * 100) * share))
    tax = -max(0, round(round(invoice["tax_total"] * 100) * share))
    row = invoice_row(
        credit_id, client, contract, number_prefix=number_prefix, third_party_number=f"CN-{credit_id:06d}",
        issued_s=issued_s, net_cents=total - tax, tax_cents=tax, posted_s=issued_s, codes=codes, currency=currency,
        currency_code_name=currency_code_name,
    )
    row["creditlinkedtoinvoiceid"] = invoice["id"]
    row["credit_outstanding"] = -total / 100  # none of it applied yet
    return row


def payment_row(payment_id: int, invoice: Row, *, amount_cents: int, at_s: int, method: int, thirdpartyid: str) -> Row:
    return wire(
        PaymentWire(
            id=payment_id,
            invoice_id=invoice["id"],
            date=stamp(at_s),
            amount=money(amount_cents),
            method=method,
            status=0,
            thirdpartyid=thirdpartyid,
            client_id=invoice["client_id"],
            client_name=invoice["client_name"],
            invoice_invoicenumber=invoice["invoicenumber"],
            invoice_match_id="",
        )
    )


def pick_payment_method(rng: random.Random) -> tuple[int, str]:
    """A payment method id and a processor reference (card and ACH payments carry one; checks do not)."""
    draw = rng.random() * _METHOD_CUM_WEIGHTS[-1]
    method = _METHOD_IDS[-1]
    for method_id, bound in zip(_METHOD_IDS, _METHOD_CUM_WEIGHTS, strict=True):
        if draw < bound:
            method = method_id
            break
    if method == 1:
        return method, f"ch_{rng.getrandbits(64):016x}"
    if method == 2:
        return method, f"py_{rng.getrandbits(64):016x}"
    return method, ""
