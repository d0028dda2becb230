"""A tenant's books and every way they change: POST handlers, the clock and test mutators all come through here.

Not thread-safe on its own; the emulator holds its lock around every call. Each change stores a new row dict
(table.py) and stamps the row's modification field with the time it is given.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from typing import Any

from halo_emulator.config import EmulatorConfig
from halo_emulator.data import Books
from halo_emulator.dice import Dice
from halo_emulator.ledger import PaymentCodes, is_payable, settle
from halo_emulator.names import CONTRACT_TYPES, CURRENCIES, CURRENCY_BY_ISO, SUBTYPES_BY_ID
from halo_emulator.rows import client_row, contract_row, invoice_row, payment_row
from halo_emulator.schema import ClientWire, ContractWire, InvoiceWire, PaymentWire
from halo_emulator.table import Row, Table
from halo_emulator.wire import NO_DATE, OPEN_END, cents, day_stamp, money, parse_moment, stamp, to_seconds, zulu

_KNOWN = {
    "client": {f.name for f in fields(ClientWire)},
    "contract": {f.name for f in fields(ContractWire)},
    "invoice": {f.name for f in fields(InvoiceWire)},
    "payment": {f.name for f in fields(PaymentWire)},
}
# Fields HaloPSA works out itself: accepted in a body but never taken from it.
_DERIVED = {
    "client": {"id", "datecreated", "alastupdate", "main_site_id"},
    "contract": {"id", "client_name", "site_name", "last_modified", "contract_status", "contracttype_name"},
    "invoice": {
        "id", "invoicenumber", "client_name", "site_name", "sitenumber", "contract_ref", "amountdue",
        "paymentstatus", "datepaid", "last_modified", "date_created", "currency", "currency_code_name", "credit_used",
        "credit_outstanding",
    },
    "payment": {"id", "client_id", "client_name", "invoice_invoicenumber"},
}  # fmt: skip
_DATES = {"invoice_date", "duedate", "dateposted", "datecreated", "start_date", "end_date", "date"}
_MONEY = {"total", "tax_total", "amountpaid", "periodchargeamount", "amount"}
_WHOLE = {
    "client_id", "contract_id", "invoice_id", "subtype", "contracttype", "method", "paymentterms", "toplevel_id",
    "recurring_invoice_id",
}  # fmt: skip


class InvalidRecord(ValueError):
    """A body HaloPSA would refuse with a 400; `field` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class IdPool:
    """Ids with O(1) add, discard and pick; the order depends only on the operations, so picks are repeatable."""

    def __init__(self, ids: Iterable[int] = ()) -> None:
        self._items: list[int] = []
        self._positions: dict[int, int] = {}
        for item in ids:
            self.add(item)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: int) -> None:
        if item not in self._positions:
            self._positions[item] = len(self._items)
            self._items.append(item)

    def discard(self, item: int) -> None:
        position = self._positions.pop(item, None)
        if position is None:
            return
        last = self._items.pop()
        if last != item:
            self._items[position] = last
            self._positions[last] = position

    def pick(self, draw: float) -> int:
        """The id at a uniform draw in [0, 1)."""
        return self._items[int(draw * len(self._items))]


def clean(entity: str, body: Mapping[str, Any], *, strict: bool) -> dict[str, Any]:
    """A body's settable fields in wire form. Directives (`_novalidate`...), derived and unknown fields are dropped,
    unless `strict` (the Python mutators), where a typo or a derived field should fail loudly."""
    result: dict[str, Any] = {}
    for name, value in body.items():
        if strict and name in _DERIVED[entity]:
            raise InvalidRecord(name, f"{name} is worked out by HaloPSA; change what it derives from instead")
        if name.startswith("_") or name in _DERIVED[entity]:
            continue
        if name not in _KNOWN[entity]:
            if strict:
                raise InvalidRecord(name, f"{entity} has no field {name!r}")
            continue
        try:
            result[name] = _field_value(name, value)
        except (TypeError, ValueError) as exc:
            raise InvalidRecord(name, f"{name}: {exc}") from None
    return result


def _field_value(name: str, value: Any) -> Any:
    if name in _DATES:
        moment = parse_moment(value)
        if moment is None:
            return OPEN_END if name == "end_date" else NO_DATE
        return stamp(to_seconds(moment))
    if name in _MONEY:
        return money(cents(value))
    if name in _WHOLE:
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
            raise ValueError(f"expected a whole number, got {value!r}")
        return int(value)
    return value


class TenantState:
    def __init__(self, config: EmulatorConfig, books: Books) -> None:
        self.config = config
        self.codes = PaymentCodes.of(config)
        self.clients = Table(books.clients, present=self._wire_form("client"))
        self.contracts = Table(books.contracts, present=self._wire_form("contract"))
        self.invoices = Table(books.invoices, present=self._wire_form("invoice"))
        self.payments = Table(loader=books.payments, present=self._wire_form("payment"))
        self.webhooks = Table({})
        self._payable: IdPool | None = None
        self._third_party_seq: int | None = None
        self._dice = Dice(f"halo-emulator-created:{config.seed}")

    def _wire_form(self, entity: str) -> Callable[[Row], Row]:
        """How a record of `entity` goes on the wire: rows are stored zone-less; a record drawn `...Z` is sent so."""
        config = self.config

        def present(row: Row) -> Row:
            return zulu(row) if config.zulu(entity, row.get("id")) else row

        return present

    # ---- indexes -------------------------------------------------------------------------------------------------

    @property
    def payable(self) -> IdPool:
        """Invoices a payment, a dunning edit or a void can touch; built on first use, then kept current."""
        if self._payable is None:
            self._payable = IdPool(i for i, row in self.invoices.rows.items() if is_payable(row))
        return self._payable

    def active_clients(self) -> list[int]:
        return self.clients.select("active", lambda: [i for i, c in self.clients.rows.items() if not c["inactive"]])

    def client_names(self) -> set[str]:
        return self.clients.select("names", lambda: {c["name"] for c in self.clients.rows.values()})

    def agreements_by_client(self) -> dict[int, list[int]]:
        """Running agreements per customer (active and not expired: HaloPSA keeps the two flags apart)."""

        def build() -> dict[int, list[int]]:
            index: dict[int, list[int]] = {}
            for contract in self.contracts.rows.values():
                if contract["active"] and not contract["expired"]:
                    index.setdefault(contract["client_id"], []).append(contract["id"])
            return index

        return self.contracts.select("active-by-client", build)

    def _store_invoice(self, row: Row) -> Row:
        self.invoices.put(row)
        if self._payable is not None:
            if is_payable(row):
                self._payable.add(row["id"])
            else:
                self._payable.discard(row["id"])
        return row

    def next_third_party_number(self) -> str:
        """The accounts package's next number (`INV-004232`), continuing from the highest one in the books."""
        if self._third_party_seq is None:
            numbers = (r["thirdpartyinvoicenumber"] or "" for r in self.invoices.rows.values())
            self._third_party_seq = max((int(n[4:]) for n in numbers if n.startswith("INV-")), default=4_000)
        self._third_party_seq += 1
        return f"INV-{self._third_party_seq:06d}"

    # ---- customers -------------------------------------------------------------------------------------------------

    def create_client(self, body: Mapping[str, Any], at_s: int, *, strict: bool = False) -> Row:
        values = clean("client", body, strict=strict)
        name = str(values.get("name") or "").strip()
        if not name:
            raise InvalidRecord("name", "A customer needs a name")
        currency = CURRENCY_BY_ISO.get(str(values.get("currencyisocode", "USD")), CURRENCIES[0])
        client_id = self.clients.next_id()
        row = client_row(
            client_id, name, created_s=at_s, updated_s=at_s, inactive=False, currency=currency, rng=self._dice
        )
        row.update(values)
        return self.clients.put(row)

    def update_client(self, client_id: int, body: Mapping[str, Any], at_s: int, *, strict: bool = False) -> Row:
        old = self._existing(self.clients, client_id, "customer")
        values = clean("client", body, strict=strict)
        row = {**old, **values, "alastupdate": stamp(at_s)}
        if not str(row["name"] or "").strip():
            raise InvalidRecord("name", "A customer needs a name")
        self.clients.put(row)
        if row["name"] != old["name"]:
            self._rename_client(client_id, row["name"])
        return row

    def _rename_client(self, client_id: int, name: str) -> None:
        """`client_name` on other records is a join in HaloPSA: it follows the customer, without a modification."""
        for table in (self.contracts, self.invoices, self.payments):
            for row in [r for r in table.rows.values() if r["client_id"] == client_id]:
                table.put({**row, "client_name": name})

    # ---- agreements ----------------------------------------------------------------------------------------------

    def create_contract(self, body: Mapping[str, Any], at_s: int, *, strict: bool = False) -> Row:
        values = clean("contract", body, strict=strict)
        client = self._client_of(values)
        subtype = SUBTYPES_BY_ID.get(values.get("subtype", 1))
        if subtype is None:
            raise InvalidRecord("subtype", f"Unknown agreement subtype {values['subtype']}")
        start_moment = parse_moment(values.get("start_date")) or parse_moment(day_stamp(at_s))
        assert start_moment is not None
        start_s = to_seconds(start_moment)
        prefix = CONTRACT_TYPES[subtype.contract_type].prefix
        year = start_moment.year
        sequence = 1 + sum(1 for c in self.contracts.rows.values() if c["ref"].startswith(f"{prefix}-{year}-"))
        row = contract_row(
            self.contracts.next_id(),
            f"{prefix}-{year}-{sequence:04d}",
            client,
            subtype,
            start_s=start_s,
            end_s=None,
            active=True,
            expired=False,
            charge_cents=cents(values.get("periodchargeamount", 0.0)),
            modified_s=at_s,
        )
        row.update(values)
        return self.contracts.put(self._contract_links(row))

    def update_contract(self, contract_id: int, body: Mapping[str, Any], at_s: int, *, strict: bool = False) -> Row:
        old = self._existing(self.contracts, contract_id, "agreement")
        values = clean("contract", body, strict=strict)
        row = {**old, **values, "last_modified": stamp(at_s)}
        return self.contracts.put(self._contract_links(row))

    def _contract_links(self, row: Row) -> Row:
        client = self._client_of(row)
        contract_type = CONTRACT_TYPES.get(row["contracttype"])
        row.update(
            client_name=client["name"],
            site_id=row.get("site_id") or client["main_site_id"],
            site_name=client["main_site_name"],
            contracttype_name=contract_type.name if contract_type else "",
            contract_status="Active" if row["active"] else ("Expired" if row["expired"] else "Cancelled"),
        )
        return row

    # ---- invoices ------------------------------------------------------------------------------------------------

    def create_invoice(self, body: Mapping[str, Any], at_s: int, *, strict: bool = False) -> Row:
        values = clean("invoice", body, strict=strict)
        client = self._client_of(values)
        contract = self._contract_of(values, client)
        issued = parse_moment(values.get("invoice_date"))
        total = cents(values.get("total", 0.0))
        tax = cents(values.get("tax_total", 0.0))
        row = invoice_row(
            self.invoices.next_id(),
            client,
            contract,
            number_prefix=self.config.invoice_number_prefix,
            third_party_number=values.get("thirdpartyinvoicenumber", ""),
            issued_s=at_s if issued is None else to_seconds(issued),
            net_cents=total - tax,
            tax_cents=tax,
            posted_s=at_s if values.get("posted") else None,
            codes=self.codes,
            currency=CURRENCY_BY_ISO.get(client["currencyisocode"], CURRENCIES[0]),
            modified_s=at_s,
            currency_code_name=self.config.currency_code_name,
        )
        row.update(values, date_created=stamp(at_s), last_modified=stamp(at_s))
        return self._store_invoice(self._invoice_links(row, at_s))

    def update_invoice(self, invoice_id: int, body: Mapping[str, Any], at_s: int, *, strict: bool = False) -> Row:
        old = self._existing(self.invoices, invoice_id, "invoice")
        values = clean("invoice", body, strict=strict)
        row = {**old, **values, "last_modified": stamp(at_s)}
        if values.get("posted") and not old["posted"] and "dateposted" not in values:
            row["dateposted"] = stamp(at_s)
        return self._store_invoice(self._invoice_links(row, at_s))

    def void_invoice(self, invoice_id: int, at_s: int) -> Row:
        return self.update_invoice(invoice_id, {"voided": True}, at_s)

    def delete_invoice(self, invoice_id: int) -> Row:
        """Deleted in HaloPSA: gone from every listing and its single read answers 404; nothing else changes."""
        row = self._existing(self.invoices, invoice_id, "invoice")
        _ = self.payments.rows  # payments are drawn from the books on first use: while every invoice is still there
        self.invoices.delete(invoice_id)
        if self._payable is not None:
            self._payable.discard(invoice_id)
        return row

    def _invoice_links(self, row: Row, at_s: int) -> Row:
        """Re-derive what HaloPSA computes: names from links, amounts and status from the ledger."""
        client = self._client_of(row)
        contract = self._contract_of(row, client)
        if cents(row["amountpaid"]) > cents(row["total"]) and not row["voided"]:
            raise InvalidRecord("total", "The invoice total is less than the amount already paid")
        if not row["posted"]:
            row["dateposted"] = NO_DATE
        row.update(
            client_name=client["name"],
            sitenumber=client["main_site_id"],
            site_name=client["main_site_name"],
            contract_id=contract["id"] if contract else 0,
            contract_ref=contract["ref"] if contract else "",
        )
        settle(row, self.codes, paid_at=stamp(at_s))
        return row

    # ---- payments ------------------------------------------------------------------------------------------------

    def record_payment(self, body: Mapping[str, Any], at_s: int, *, strict: bool = False) -> Row:
        """Record a payment and bring its invoice up to date (`amountpaid`, `amountdue`, status, `datepaid`)."""
        values = clean("payment", body, strict=strict)
        invoice = self._payment_invoice(values)
        amount = cents(values.get("amount", 0.0))
        self._check_amount(invoice, amount)
        paid_moment = parse_moment(values.get("date"))
        paid_s = at_s if paid_moment is None else to_seconds(paid_moment)
        row = payment_row(
            self.payments.next_id(),
            invoice,
            amount_cents=amount,
            at_s=paid_s,
            method=values.get("method", 1),
            thirdpartyid=str(values.get("thirdpartyid") or ""),
        )
        row.update({k: v for k, v in values.items() if k not in ("amount", "date")})
        self.payments.put(row)
        self._apply_payment(invoice, amount, paid_s, at_s)
        return row

    def update_payment(self, payment_id: int, body: Mapping[str, Any], at_s: int, *, strict: bool = False) -> Row:
        old = self._existing(self.payments, payment_id, "payment")
        values = clean("payment", body, strict=strict)
        if values.get("invoice_id", old["invoice_id"]) != old["invoice_id"]:
            raise InvalidRecord("invoice_id", "A payment cannot move to another invoice")
        row = {**old, **values}
        delta = cents(row["amount"]) - cents(old["amount"])
        invoice = self._existing(self.invoices, old["invoice_id"], "invoice")
        if delta:
            self._check_amount(invoice, delta)
        self.payments.put(row)
        if delta:
            paid_moment = parse_moment(row["date"])
            self._apply_payment(invoice, delta, at_s if paid_moment is None else to_seconds(paid_moment), at_s)
        return row

    def _payment_invoice(self, values: Mapping[str, Any]) -> Row:
        invoice = self.invoices.get(values.get("invoice_id"))
        if invoice is None:
            raise InvalidRecord("invoice_id", f"No invoice with id {values.get('invoice_id')}")
        if invoice["voided"]:
            raise InvalidRecord("invoice_id", f"Invoice {invoice['id']} is void")
        return invoice

    @staticmethod
    def _check_amount(invoice: Row, amount: int) -> None:
        if amount == 0:
            raise InvalidRecord("amount", "A payment needs an amount")
        if amount > cents(invoice["amountdue"]):
            raise InvalidRecord("amount", f"The payment exceeds the amount due on invoice {invoice['id']}")
        if cents(invoice["amountpaid"]) + amount < 0:
            raise InvalidRecord("amount", "The invoice would have a negative amount paid")

    def _apply_payment(self, invoice: Row, amount: int, paid_s: int, at_s: int) -> None:
        row = {**invoice, "amountpaid": money(cents(invoice["amountpaid"]) + amount), "last_modified": stamp(at_s)}
        settle(row, self.codes, paid_at=stamp(paid_s))
        self._store_invoice(row)

    # ---- webhooks ------------------------------------------------------------------------------------------------

    def upsert_webhook(self, body: Mapping[str, Any]) -> Row:
        values = {k: v for k, v in body.items() if not k.startswith("_")}
        webhook_id = values.pop("id", None)
        if webhook_id:
            old = self._existing(self.webhooks, str(webhook_id).lower(), "webhook")
            return self.webhooks.put({**old, **values})
        row = {
            "id": str(uuid.uuid4()),
            "name": "",
            "url": "",
            "type": 0,
            "method": 0,
            "content_type": "application/json",
            "authentication_type": 0,
            "active": True,
            "events": [],
        }
        row.update(values)
        return self.webhooks.put(row)

    # ---- helpers -------------------------------------------------------------------------------------------------

    @staticmethod
    def _existing(table: Table, row_id: Any, entity: str) -> Row:
        row = table.get(row_id)
        if row is None:
            raise InvalidRecord("id", f"No {entity} with id {row_id}")
        return row

    def _client_of(self, values: Mapping[str, Any]) -> Row:
        client = self.clients.get(values.get("client_id"))
        if client is None:
            raise InvalidRecord("client_id", f"No customer with id {values.get('client_id')}")
        return client

    def _contract_of(self, values: Mapping[str, Any], client: Row) -> Row | None:
        contract_id = values.get("contract_id") or 0
        if contract_id <= 0:
            return None
        contract = self.contracts.get(contract_id)
        if contract is None or contract["client_id"] != client["id"]:
            raise InvalidRecord("contract_id", f"Customer {client['id']} has no agreement {contract_id}")
        return contract
