"""HaloPSA payloads shaped as the public evidence has them (`../shared/reference/halopsa-api.md`, sections 1.2, 3.1,
4, 5 and 11). Each names its source; where only the field names are evidenced (HaloPSA's own specification), the values
are what a tenant of that shape would send, never a captured payload. The emulator's answers are held to these shapes
(tests/halo_emulator/test_emulator_evidence.py) and the client reads them (tests/core/halopsa)."""

from __future__ import annotations

import re
from typing import Any

# Section 1.2, observed on a live tenant (SOP): a read-only API application asked for `scope=all` gets its granted
# permissions listed after the identity scopes; no refresh token.
TOKEN_REPLY: dict[str, Any] = {
    "token_type": "Bearer",
    "expires_in": 3600,
    "access_token": "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJjbGllbnRfaWQiOiJhcGkifQ.c2lnbmF0dXJl",
    "id_token": "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJuYW1lIjoiQVBJIEFnZW50In0.c2lnbmF0dXJl",
    "scope": "openid email profile offline_access roles read:tickets read:customers read:contracts read:invoices "
             "read:mailcampaign read:events",
}
IDENTITY_SCOPES = ("openid", "email", "profile", "offline_access", "roles")

# Section 5.3 and 11: zone-less UTC (ADPT, `2025-01-31T00:00:00`) and `...Z` (SOP; SPEC examples such as
# `2020-07-03T12:53:40.262Z`) both occur. Invoice list rows as section 4.3's illustrative row, in both forms.
ZONELESS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$")
ZULU = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
INVOICE_ROW_ZONELESS: dict[str, Any] = {
    "id": 1001, "invoicenumber": "1001", "thirdpartyinvoicenumber": "INV-0420", "client_id": 42,
    "client_name": "Acme Ltd", "sitenumber": 77, "site_name": "Main", "invoice_date": "2025-01-01T00:00:00",
    "duedate": "2025-01-31T00:00:00", "posted": True, "dateposted": "2025-01-01T09:12:00", "voided": False,
    "total": 1200.0, "tax_total": 200.0, "amountpaid": 0.0, "amountdue": 1200.0, "paymentstatus": 0, "currency": "$",
    "currency_code": 1, "contract_id": 12, "contract_ref": "MSA-2025-001", "recurring_invoice_id": 5,
    "last_modified": "2025-01-02T10:00:00", "date_created": "2025-01-01T09:00:00",
}  # fmt: skip
INVOICE_ROW_ZULU: dict[str, Any] = {
    **INVOICE_ROW_ZONELESS, "id": 1002, "invoicenumber": "1002", "thirdpartyinvoicenumber": "INV-0421",
    "invoice_date": "2025-01-01T00:00:00Z", "duedate": "2025-01-31T00:00:00Z", "dateposted": "2025-01-01T09:12:00Z",
    "last_modified": "2025-01-02T10:00:00.262Z", "date_created": "2025-01-01T09:00:00Z",
}  # fmt: skip
TIMESTAMP_FIELDS = ("invoice_date", "duedate", "dateposted", "last_modified", "date_created")

# Section 3.1 (envelope) and 11 (HAPI issue 90): a tenant serves at most 100 rows a page whatever `page_size` asks,
# with the whole listing's `record_count`, 717 there.
CAPPED_LISTING_RECORDS = 717
CAPPED_PAGE_ROWS = 100
# Section 11 (SOP addendum): on one live tenant `record_count` is the page's own length, whatever the listing holds.
PAGE_LENGTH_RECORD_COUNT = 50


def envelope(rows: list[dict[str, Any]], *, record_count: int, page_no: int = 1, page_size: int = 100,
             key: str = "invoices") -> dict[str, Any]:
    """A listing page as section 3.1 shows it: `page_no`, `page_size`, `record_count`, then the entity's array."""
    return {"page_no": page_no, "page_size": page_size, "record_count": record_count, key: rows}


def invoice_rows(first_id: int, count: int) -> list[dict[str, Any]]:
    """`count` rows shaped as INVOICE_ROW_ZONELESS with rising ids from `first_id`."""
    return [{**INVOICE_ROW_ZONELESS, "id": halo_id, "invoicenumber": str(halo_id)}
            for halo_id in range(first_id, first_id + count)]


# Section 11 (SPEC-old `ContractHeader_List`; MCP catalog): `active`, `expired`, `started` and `end_date` are separate
# fields; an agreement past its end on a tenant where nobody unticks Active says both `active` and `expired`.
EXPIRED_BUT_ACTIVE_CONTRACT: dict[str, Any] = {
    "id": 318, "ref": "MSA-2023-0007", "refextra": "", "client_id": 42, "client_name": "Acme Ltd", "site_id": 1043,
    "site_name": "Main Office", "start_date": "2023-02-01T00:00:00", "end_date": "2025-01-31T00:00:00",
    "started": True, "expired": True, "active": True, "status": 0, "contract_status": "Expired", "contracttype": 1,
    "contracttype_name": "Managed Services", "subtype": 3, "billingdescription": 3, "billingperiod": 1,
    "billing_period_string": "Monthly", "periodchargeamount": 1450.0, "rollingcontract": False,
    "dontinvoice": False, "last_modified": "2025-02-01T03:10:44.97",
}  # fmt: skip
CONTRACT_FLAGS = ("started", "expired", "active")

# Section 5.1 (KelvinTegelaar/PowerShellWarrantyReports#51, HaloAPI#31): a hosted tenant's 429 is this plain text;
# no source shows a Retry-After header (section 11).
RATE_LIMIT_TEXT = "Rate Limit Reached - 300 Requests per rolling 5 minute window"

# Section 5.2 (HAPI `New-HaloError`): an error body `{ClassName, Message}`; section 11: what an unsortable `order`
# does has no evidence, a 500 is one answer a tenant may give (SOP saw 500s for bad or missing parameters).
BAD_ORDER_500: dict[str, Any] = {
    "ClassName": "System.Data.SqlClient.SqlException", "Message": "Invalid column name 'last_modified'.",
}

# Section 11 (SPEC `includecredits`, `credit_used`, `credit_outstanding`; usehalo.com credit note guides): a posted
# credit note is an invoice row with a negative total and amount due; the date-only fields here carry an offset.
CREDIT_NOTE: dict[str, Any] = {
    "id": 2208, "invoicenumber": "CN-2208", "thirdpartyinvoicenumber": "CN-0042", "client_id": 42,
    "client_name": "Acme Ltd", "sitenumber": 1043, "site_name": "Main Office",
    "invoice_date": "2025-01-31T00:00:00+10:00", "duedate": "2025-01-31T00:00:00+10:00", "posted": True,
    "dateposted": "2025-01-31T01:02:03", "datepaid": "1900-01-01T00:00:00", "paymentstatus": 2, "total": -240.0,
    "tax_total": -21.82, "amountpaid": 0.0, "amountdue": -240.0, "credit_used": 0.0, "credit_outstanding": 240.0,
    "currency": "$", "currency_code": 4, "currency_conversion_rate": 1.0, "contract_id": 318,
    "contract_ref": "MSA-2023-0007", "creditlinkedtoinvoiceid": 2101, "voided": False,
    "last_modified": "2025-01-31T01:02:03", "date_created": "2025-01-31T01:00:00",
}  # fmt: skip
CREDIT_FIELDS = ("total", "tax_total", "amountpaid", "amountdue", "credit_used", "credit_outstanding", "posted",
                 "voided", "creditlinkedtoinvoiceid")


def same_types(row: dict[str, Any], evidence: dict[str, Any], names: tuple[str, ...]) -> bool:
    """Whether `row` carries each of `names` with the JSON type the evidence has for it (an int for a double's
    whole value aside: JSON has one number type)."""
    def kind(value: Any) -> str:
        return "number" if isinstance(value, int | float) and not isinstance(value, bool) else type(value).__name__

    return all(name in row and kind(row[name]) == kind(evidence[name]) for name in names)
