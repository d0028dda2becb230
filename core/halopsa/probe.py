"""What one HaloPSA tenant supports, found with about eight requests (reference 11: tenants differ in where tokens
come from, how many rows a page holds, whether listings sort by modification time or filter by date, which fields
list rows carry, the unpaid status codes and the currencies).

The probe only reads. Each check that the tenant refuses or ignores is a finding, never a failure: only what every
sync needs anyway (a token, the invoice listing) fails the probe, with the same reason a sync would give. The result
is plain data (`ProbeResult`, stored as JSON by the sync layer), says in plain words what it found (`describe`) and
what a client should do about it (`profile`, `changes_method`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from core.errors import HaloError
from core.halopsa import paging
from core.halopsa.client import DATESEARCH_IGNORED, HaloClient, wire_time
from core.halopsa.config import HaloConfig, TenantProfile
from core.halopsa.paging import Method
from core.halopsa.records import Invoice, RecordError, parse_invoice

ASKED = 100  # the page size asked for: the cap seen on real tenants (reference 11)
FILTER_SPAN = timedelta(days=1)  # the date filter is tried from this long before the newest sampled change


class Verdict(StrEnum):
    WORKS = "works"
    IGNORED = "ignored"  # answered, but not as asked
    REFUSED = "refused"  # answered with an error
    UNKNOWN = "unknown"  # too little data to tell


class TokenSource(StrEnum):
    AUTHINFO = "authinfo"  # named by GET /api/AuthInfo
    FALLBACK = "fallback"  # AuthInfo absent or unusable: {host}/auth/token


class RowField(StrEnum):
    """Fields list rows may lack (reference 11: list rows are a subset of detail rows)."""

    INVOICE_MODIFIED = "invoice_modified"
    CUSTOMER_MODIFIED = "customer_modified"
    CUSTOMER_EMAIL = "customer_email"
    AGREEMENT_SUBTYPE = "agreement_subtype"
    AGREEMENT_EXPIRED = "agreement_expired"


_WIRE_FIELDS = {
    RowField.INVOICE_MODIFIED: ("invoices", "last_modified"),
    RowField.CUSTOMER_MODIFIED: ("clients", "alastupdate"),
    RowField.CUSTOMER_EMAIL: ("clients", "accountsemailaddress"),
    RowField.AGREEMENT_SUBTYPE: ("contracts", "subtype"),
    RowField.AGREEMENT_EXPIRED: ("contracts", "expired"),
}
_FIELD_WORDS = {
    RowField.INVOICE_MODIFIED: "invoice rows carry their last change time",
    RowField.CUSTOMER_MODIFIED: "customer rows carry their last change time",
    RowField.CUSTOMER_EMAIL: "customer rows carry the accounts e-mail address",
    RowField.AGREEMENT_SUBTYPE: "agreement rows carry their subtype",
    RowField.AGREEMENT_EXPIRED: "agreement rows say whether they expired",
}


@dataclass(frozen=True)
class Finding:
    verdict: Verdict
    detail: str  # in plain words, for the Connection page


@dataclass(frozen=True)
class ProbeResult:
    token_url: str
    token_source: TokenSource
    page_cap: int | None  # rows per page the tenant serves at most, when fewer than asked; None: none seen
    paging: Finding
    sorted_listing: Finding
    date_filter: Finding
    fields: dict[str, bool | None]  # RowField -> carried (None: no rows to tell)
    unpaid_codes: tuple[int, ...]  # payment status codes seen on unpaid invoices of the sample
    paid_codes: tuple[int, ...]  # ... and on paid ones
    currencies: tuple[str, ...]  # ISO codes from /api/Currency
    requests: int = 0
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ProbeResult:
        data = json.loads(text)
        for name in ("paging", "sorted_listing", "date_filter"):
            data[name] = Finding(Verdict(data[name]["verdict"]), data[name]["detail"])
        data["token_source"] = TokenSource(data["token_source"])
        for name in ("unpaid_codes", "paid_codes", "currencies", "notes"):
            data[name] = tuple(data.get(name, ()))
        return cls(**data)

    def carries(self, row_field: RowField) -> bool:
        """Whether list rows carry the field; a field not seen for want of rows counts as carried (the default)."""
        return self.fields.get(row_field) is not False

    def profile(self, config: HaloConfig) -> TenantProfile:
        """What a client of this tenant should use: the token URL found, pages no longer than the tenant serves, and
        the unpaid filter widened by the codes seen on unpaid invoices (less those seen only on paid ones)."""
        page_size = min(config.page_size, self.page_cap) if self.page_cap else config.page_size
        configured = {int(code) for code in config.unpaid_payment_statuses.split(",") if code.strip().lstrip("-")
                      .isdigit()}
        only_paid = set(self.paid_codes) - set(self.unpaid_codes)
        codes = (configured | set(self.unpaid_codes)) - only_paid if configured else set()
        statuses = ",".join(str(code) for code in sorted(codes))
        return TenantProfile(token_url=self.token_url, page_size=page_size, unpaid_payment_statuses=statuses,
                             page_size_proven=self.paging.verdict == Verdict.WORKS and page_size <= ASKED)

    def changes_method(self, row_field: RowField) -> Method | None:
        """How changed records of this kind are best listed, where the probe can tell: a full scan when rows carry no
        change time; for invoices, sorted or by date filter where the tenant honours them. None: no finding (the
        customer listing's sorting, too few invoices), so runs keep finding it for themselves."""
        if not self.carries(row_field):
            return Method.SCAN
        if row_field != RowField.INVOICE_MODIFIED or self.sorted_listing.verdict == Verdict.UNKNOWN:
            return None
        if self.sorted_listing.verdict == Verdict.WORKS:
            return Method.SORTED
        return Method.DATESEARCH if self.date_filter.verdict == Verdict.WORKS else Method.SCAN

    def describe(self) -> list[str]:
        """Every finding as one sentence, in the order the Connection page shows them."""
        source = ("named by HaloPSA's AuthInfo" if self.token_source == TokenSource.AUTHINFO
                  else "the usual address, as HaloPSA's AuthInfo named none")
        said = [f"Sign-in: tokens come from {self.token_url} ({source}).",
                f"Pages: {self.paging.detail}",
                f"Changed invoices sorted newest first: {self.sorted_listing.detail}",
                f"Date filter on invoices: {self.date_filter.detail}"]
        for row_field in RowField:
            carried = self.fields.get(row_field)
            state = "yes" if carried else ("no rows to tell" if carried is None else "no")
            said.append(f"List rows: {_FIELD_WORDS[row_field]}: {state}.")
        said.append("Unpaid status codes: " + (
            f"{_codes(self.unpaid_codes)} on unpaid invoices" + (f", {_codes(self.paid_codes)} on paid ones"
                                                                  if self.paid_codes else "") + "."
            if self.unpaid_codes or self.paid_codes else "no posted invoices in the sample to tell."))
        said.append("Currencies: " + (", ".join(self.currencies) if self.currencies else "none listed") + ".")
        return said + list(self.notes)


def _codes(codes: tuple[int, ...]) -> str:
    return ("code " if len(codes) == 1 else "codes ") + ", ".join(map(str, codes))


def probe(client: HaloClient) -> ProbeResult:
    """Ask the tenant what it supports (reads only; about eight requests)."""
    first = client.stats.requests
    token_url, discovered = client.token_endpoint()
    rows = client.sample("Invoice", "invoices", {}, page_size=ASKED)
    cap, paging_finding = _paging(client, rows)
    size = min(ASKED, cap or ASKED)
    invoices = _parsed(rows)
    customers = _try_sample(client, "Client", "clients", {"includeinactive": "true"}, size)
    agreements = _try_sample(client, "ClientContract", "contracts", {"includeinactive": "true"}, size)
    samples = {"invoices": rows, "clients": customers, "contracts": agreements}
    fields = {str(row_field): _carried(samples[key], name) for row_field, (key, name) in _WIRE_FIELDS.items()}
    unpaid, paid = _status_codes(rows, invoices)
    result = ProbeResult(
        token_url=token_url, token_source=TokenSource.AUTHINFO if discovered else TokenSource.FALLBACK,
        page_cap=cap, paging=paging_finding, sorted_listing=_sorting(client, size),
        date_filter=_date_filter(client, invoices, size), fields=fields, unpaid_codes=unpaid, paid_codes=paid,
        currencies=client.currency_codes(),
    )
    return replace(result, requests=client.stats.requests - first)


def _paging(client: HaloClient, first: list[Any]) -> tuple[int | None, Finding]:
    """The page cap: a first page shorter than asked is either the whole listing or a cap; the second page of that
    size tells them apart (one more request, only then)."""
    served = len(first)
    if served > ASKED:
        return None, Finding(Verdict.IGNORED, f"HaloPSA sent {served:,} rows for a page of {ASKED}: it ignores the "
                                              "page size, so each listing is read from the answers it sends.")
    if served == ASKED:
        return None, Finding(Verdict.WORKS, f"pages of {ASKED} rows, as asked.")
    if served == 0:
        return None, Finding(Verdict.UNKNOWN, "no invoices yet, so the page cap could not be seen; listings ask "
                                              f"for {ASKED} rows a page.")
    seen = {row.get("id") for row in first if isinstance(row, dict)}
    second = client.sample("Invoice", "invoices", {}, page_size=served, page_no=2)
    if any(isinstance(row, dict) and row.get("id") not in seen for row in second):
        return served, Finding(Verdict.WORKS, f"at most {served} rows a page, fewer than the {ASKED} asked: "
                                              f"listings ask for {served}.")
    return None, Finding(Verdict.UNKNOWN, f"only {served} invoices so far, fewer than a page of {ASKED}, so the "
                                          f"page cap could not be seen; listings ask for {ASKED} rows a page.")


def _parsed(rows: list[Any]) -> list[tuple[Any, Invoice]]:
    """Each readable invoice row with its record (a poison row is left out of the probe, as a sync rejects it)."""
    parsed = []
    for raw in rows:
        try:
            parsed.append((raw, parse_invoice(raw)))
        except RecordError:
            continue
    return parsed


def _try_sample(client: HaloClient, path: str, key: str, params: Mapping[str, str], size: int) -> list[Any] | None:
    """One page of a listing that only informs the probe: None when the tenant refuses it."""
    try:
        return client.sample(path, key, params, page_size=size)
    except HaloError as error:
        if not paging.refused(error):
            raise
        return None


def _carried(rows: list[Any] | None, name: str) -> bool | None:
    dicts = [row for row in rows or () if isinstance(row, dict)]
    return any(name in row for row in dicts) if dicts else None


def _status_codes(rows: list[Any], invoices: list[tuple[Any, Invoice]]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Payment status codes tabulated against the amount due: on posted, unvoided, positive invoices."""
    unpaid: set[int] = set()
    paid: set[int] = set()
    for raw, invoice in invoices:
        code = raw.get("paymentstatus")
        if type(code) is not int or invoice.voided or not invoice.posted or invoice.credit or invoice.total_cents <= 0:
            continue
        (unpaid if invoice.amount_due_cents > 0 else paid).add(code)
    return tuple(sorted(unpaid)), tuple(sorted(paid))


def _sorting(client: HaloClient, size: int) -> Finding:
    """Whether `order=last_modified&orderdesc=true` is accepted and sorts."""
    try:
        rows = client.sample("Invoice", "invoices", {"order": "last_modified", "orderdesc": "true"}, page_size=size)
    except HaloError as error:
        if not paging.refused(error):
            raise
        return Finding(Verdict.REFUSED, f"refused ({paging.cause(error)}); changes are read by the next method that "
                                        "works.")
    keys = [invoice.last_modified for _, invoice in _parsed(rows) if invoice.last_modified is not None]
    if len(set(keys)) < 2:
        return Finding(Verdict.UNKNOWN, "too few invoices to tell; changes are read sorted until a run finds "
                                        "otherwise.")
    if all(a >= b for a, b in zip(keys, keys[1:], strict=False)):
        return Finding(Verdict.WORKS, "works; a run reads only back to its window start.")
    return Finding(Verdict.IGNORED, "ignored (the rows came back unsorted); changes are read by the next method "
                                    "that works.")


def _date_filter(client: HaloClient, invoices: list[tuple[Any, Invoice]], size: int) -> Finding:
    """Whether `datesearch=last_modified&start_date=…` filters: asked from a day before the newest change sampled;
    a row older than the filter by more than any zone reading explains shows it ignored."""
    keys = sorted(invoice.last_modified for _, invoice in invoices if invoice.last_modified is not None)
    if not keys:
        return Finding(Verdict.UNKNOWN, "no invoices with a change time to tell.")
    start: datetime = keys[-1] - FILTER_SPAN
    outside = start - DATESEARCH_IGNORED
    if keys[0] >= outside:
        return Finding(Verdict.UNKNOWN, "every sampled invoice changed within a few days, so a filter could not be "
                                        "told apart from none.")
    try:
        rows = client.sample("Invoice", "invoices", {"datesearch": "last_modified", "start_date": wire_time(start)},
                             page_size=size)
    except HaloError as error:
        if not paging.refused(error):
            raise
        return Finding(Verdict.REFUSED, f"refused ({paging.cause(error)}).")
    if any(invoice.last_modified is not None and invoice.last_modified < outside for _, invoice in _parsed(rows)):
        return Finding(Verdict.IGNORED, "ignored (rows older than the date asked came back).")
    return Finding(Verdict.WORKS, "works.")

