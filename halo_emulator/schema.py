"""The wire fields the emulator emits per entity (names and types from the reference, section 4).

Rows are stored as plain dicts in exactly this shape: `wire(InvoiceWire(...))`. Going through a dataclass instance
has a second purpose: CPython gives instance dictionaries of one class a shared key table (PEP 412), which makes
each stored row about a third of the size of a dict literal. A 300,000-invoice tenant stays around 300 MB and is
built noticeably faster. Rows changed later are ordinary dicts; nothing depends on the sharing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def wire(record: object) -> dict[str, Any]:
    """The row dict of a wire dataclass instance (its own attribute dict, not a copy)."""
    return vars(record)


@dataclass
class ClientWire:
    id: int
    name: str
    inactive: bool
    ref: str
    toplevel_id: int
    toplevel_name: str
    main_site_id: int
    main_site_name: str
    accountsid: str
    accountsemailaddress: str
    accountsfirstname: str
    accountslastname: str
    emailinvoice: bool
    paymentterms: int
    currencyisocode: str
    default_currency_code: int
    datecreated: str
    alastupdate: str
    website: str
    main_phonenumber: str
    customertype: int
    is_vip: bool
    colour: str
    use: str


@dataclass
class ContractWire:
    id: int
    ref: str
    refextra: str
    client_id: int
    client_name: str
    site_id: int
    site_name: str
    start_date: str
    end_date: str
    started: bool
    expired: bool
    active: bool
    contract_status: str
    contracttype: int
    contracttype_name: str
    subtype: int
    billingdescription: int
    billing_description_string: str
    billingperiod: int
    billing_period_string: str
    periodchargeamount: float
    rollingcontract: bool
    dontinvoice: bool
    last_modified: str
    note: str


@dataclass
class InvoiceWire:
    id: int
    invoicenumber: str
    thirdpartyinvoicenumber: str | None
    client_id: int
    client_name: str
    sitenumber: int
    site_name: str
    invoice_date: str
    duedate: str
    posted: bool
    dateposted: str
    datepaid: str
    paymentstatus: int
    total: float
    tax_total: float
    amountpaid: float
    amountdue: float
    credit_used: float
    credit_outstanding: float
    currency: str
    currency_code: int
    currency_code_name: str
    contract_id: int
    contract_ref: str
    recurring_invoice_id: int
    voided: bool
    last_modified: str
    date_created: str
    reference: str
    sent_status: int


@dataclass
class PaymentWire:
    id: int
    invoice_id: int
    date: str
    amount: float
    method: int
    status: int
    thirdpartyid: str
    client_id: int
    client_name: str
    invoice_invoicenumber: str
    invoice_match_id: str
