"""How one emulated HaloPSA instance behaves. Everything the reference marks UNCONFIRMED is a field here."""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from halo_emulator.dice import coin
from halo_emulator.names import OTHER_LOOKUPS

DEFAULT_START = datetime(2026, 11, 1, tzinfo=UTC)
# An API application with every permission the console asks for ticked. Spelled out here because the emulator
# imports nothing from core; tests check it still matches core.halopsa.config.REQUIRED_SCOPES.
DEFAULT_GRANTED_SCOPES: tuple[str, ...] = (
    "admin:webhooks",
    "read:customers",
    "edit:customers",
    "read:invoices",
    "edit:invoices",
    "read:contracts",
    "edit:contracts",
)
DEFAULT_SORTABLE_FIELDS: frozenset[str] = frozenset(
    {
        "id", "name", "last_modified", "invoice_date", "duedate", "date_created", "datecreated", "alastupdate",
        "client_name", "invoicenumber", "total", "amountdue", "ref", "start_date", "end_date", "date",
    }
)  # fmt: skip
LOOKUP_IDS = range(20, 200)
"""Where a tenant's lookup tables get their ids (reference 11 saw 33, 76, 82 and 147), 58 left out: nothing maps it to
agreement subtypes, and a client must not find them there by chance."""
MIN_INVOICES = 10
MAX_INVOICES = 300_000
TIMESTAMP_FORMS = ("mixed", "zoneless", "z")
"""How rows write their timestamps: `mixed` draws zone-less or `...Z` per record from the seed (both occur on real
tenants, reference section 11), or every record in the one form."""
EXPIRED_ACTIVE_SHARE = 0.5
"""With `expired_stays_active` None: the share of expired agreements that still say `active: true`."""


@dataclass(frozen=True)
class EmulatorConfig:
    """One tenant. Sizes and the seed fix the generated books; the rest are protocol knobs.

    `clock` drives token expiry and the rate limiter (monotonic seconds); `sleep` serves "slow" faults. Both are
    injectable so tests never wait on real time.
    """

    seed: int = 7
    invoices: int = 1000
    """The rows `/api/Invoice` lists at `start`, credit notes included."""
    customers: int | None = None
    agreements: int | None = None
    start: datetime = DEFAULT_START
    client_id: str | None = None
    client_secret: str | None = None
    tenant: str | None = None
    require_tenant: bool = False
    granted_scopes: tuple[str, ...] = DEFAULT_GRANTED_SCOPES
    token_ttl_s: float = 3600.0
    rate_limit: tuple[int, float] | None = (300, 300.0)
    retry_after_header: bool = False
    """A 429 from the rate limiter carries `Retry-After` (seconds until a slot frees); by default it does not: no
    evidence shows HaloPSA sending one, only a bare-text body (reference section 11)."""
    count_token_requests: bool = False
    page_size_cap: int = 100
    """The largest `page_size` honoured; a larger one is served pages of this many rows (a tenant in HAPI issue 90)."""
    default_page_size: int = 50
    bad_credentials_status: int = 401
    status_unpaid: int = 0
    status_partial: int = 1
    status_paid: int = 2
    subtype_lookup_id: int | None = None
    """The lookup id of the agreement subtype names; None: one derived from the seed and the tenant name, as lookup ids
    differ per tenant (never 58). The other lookup tables get ids of their own beside it (`lookup_ids`)."""
    lookup_ignores_id: bool = False
    """`GET /api/Lookup` ignores `lookupid` and answers with another table whatever is asked (rows whose `lookupid` is
    not the one asked), as a tenant that does not select lookups by id would."""
    sortable_fields: frozenset[str] = DEFAULT_SORTABLE_FIELDS
    payments_key: str = "payments"
    single_object_post_reply: bool = True
    invoice_number_prefix: str = ""
    activity: float = 1.0
    """Multiplies the hourly rates of new invoices, payments and edits (busier books for demos and tests)."""
    latency_s: float = 0.0
    """Every answer is held this long first (the network and the real server's own time), through `sleep` and outside
    the lock, so concurrent requests overlap as they do against a hosted HaloPSA. Control routes are not delayed."""
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    expired_token_status: int = 401
    """How a token the tenant no longer accepts (expired, revoked) is refused: 401 `invalid_token`, as documented, or
    400 with a bare `{"error": "invalid_token"}`, as some tenants answer (n8n issue 16857)."""
    auth_info: bool = True
    """`GET /api/AuthInfo` names the authorisation server; False: the route is absent (404) on this tenant."""
    auth_path: str = "/auth"
    """Where the authorisation server lives on this host (AuthInfo's `auth_url`); its token endpoint is under it."""
    record_count_is_page_length: bool = False
    """`record_count` reports the length of the page served instead of the listing's (seen on one live tenant)."""
    unsortable_order_status: int | None = None
    """An `order` on a field outside `sortable_fields`: None ignores it (natural id order); 400 or 500 refuses it."""
    datesearch: bool = False
    """`datesearch=<field>&start_date=…[&end_date=…]` filters listings (newer builds); False: ignored, as older ones."""
    third_party_id_filter: bool = False
    """`third_party_id=<number>` finds invoices by their third-party number (newer builds); False: ignored."""
    invoice_search: bool = True
    """`search=<text>` filters invoices by number and customer name; False: ignored (the whole listing is sent)."""
    ignore_paging: bool = False
    """A paginated listing sends every matching row whatever `page_size` and `page_no` ask (pages longer than asked)."""
    served_page_size: int | None = None
    """A paginated listing pages by this many rows whatever `page_size` asks (`page_no` honoured)."""
    credit_note_share: float = 0.02
    """The share of the `invoices` rows that are credit notes (at most half): an invoice row with a negative total and
    amount due, posted, naming the invoice it credits in `creditlinkedtoinvoiceid`; 0 leaves them out."""
    expired_stays_active: bool | None = None
    """HaloPSA keeps `active` and `expired` apart. None: drawn per agreement (`EXPIRED_ACTIVE_SHARE` of expired
    agreements still say `active: true`, where nobody unticked Active); True: every expired agreement does; False:
    expiring clears `active` too."""
    draft_share: float = 0.4
    """The share of invoices raised in the three days before `start` still awaiting approval (not posted, a draft);
    0 posts them all."""
    invoice_deletions: bool = True
    """The clock deletes the odd open invoice nobody has paid (gone from listings, 404 on its single read), at about
    the rate it voids one; False: nothing is ever deleted."""
    timestamp_form: str = "mixed"
    """One of `TIMESTAMP_FORMS`: how records write their timestamps on the wire."""
    currency_code_name: bool = True
    """Invoice rows carry `currency_code_name` (the ISO code); False: only `currency` (a symbol such as "$") and
    `currency_code` (an id into `/api/Currency`), as on tenants whose rows lack the name."""

    def __post_init__(self) -> None:
        if not MIN_INVOICES <= self.invoices <= MAX_INVOICES:
            raise ValueError(f"invoices must be between {MIN_INVOICES} and {MAX_INVOICES}, got {self.invoices}")
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")
        if len({self.status_unpaid, self.status_partial, self.status_paid}) != 3:
            raise ValueError("the three paymentstatus codes must differ")
        if self.activity < 0:
            raise ValueError("activity must not be negative")
        if self.latency_s < 0:
            raise ValueError("latency must not be negative")
        if self.page_size_cap < 1 or self.default_page_size < 1:
            raise ValueError("page sizes must be positive")
        if self.unsortable_order_status is not None and not 400 <= self.unsortable_order_status <= 599:
            raise ValueError("unsortable_order_status must be an HTTP error status (400-599) or None")
        if self.served_page_size is not None and self.served_page_size < 1:
            raise ValueError("served_page_size must be positive")
        if self.subtype_lookup_id is not None and self.subtype_lookup_id < 1:
            raise ValueError("subtype_lookup_id must be a positive lookup id, or None to derive one")
        if not 0.0 <= self.credit_note_share <= 0.5:
            raise ValueError("credit_note_share must be between 0 and 0.5")
        if not 0.0 <= self.draft_share <= 1.0:
            raise ValueError("draft_share must be between 0 and 1")
        if self.timestamp_form not in TIMESTAMP_FORMS:
            raise ValueError(f"timestamp_form must be one of {', '.join(TIMESTAMP_FORMS)}, got {self.timestamp_form!r}")

    @property
    def customer_count(self) -> int:
        return self.customers if self.customers is not None else max(3, self.invoices // 10)

    @property
    def agreement_count(self) -> int:
        return self.agreements if self.agreements is not None else max(2, self.invoices // 20)

    @property
    def lookup_ids(self) -> tuple[int, ...]:
        """The subtype lookup's id, then one per other lookup table: distinct, fixed by the seed and tenant name."""
        digest = hashlib.sha256(f"halo-emulator-lookups:{self.seed}:{self.tenant or ''}".encode()).digest()
        free = [number for number in LOOKUP_IDS if number not in (58, self.subtype_lookup_id)]
        drawn = random.Random(digest).sample(free, len(OTHER_LOOKUPS) + 1)
        if self.subtype_lookup_id is not None:
            drawn[0] = self.subtype_lookup_id
        return tuple(drawn)

    @property
    def resolved_client_id(self) -> str:
        """The configured client id, else a GUID derived from the seed (stable across runs)."""
        if self.client_id:
            return self.client_id
        digest = hashlib.sha256(f"halo-emulator-client-id:{self.seed}".encode()).digest()
        return str(uuid.UUID(bytes=digest[:16], version=4))

    @property
    def resolved_client_secret(self) -> str:
        """The configured secret, else two GUIDs derived from the seed (the shape HaloPSA generates)."""
        if self.client_secret:
            return self.client_secret
        digest = hashlib.sha256(f"halo-emulator-client-secret:{self.seed}".encode()).digest()
        return f"{uuid.UUID(bytes=digest[:16], version=4)}-{uuid.UUID(bytes=digest[16:], version=4)}"

    def stays_active_when_expired(self, contract_id: int) -> bool:
        """Whether this agreement still says `active: true` once it has expired (the books and the clock agree)."""
        if self.expired_stays_active is not None:
            return self.expired_stays_active
        return coin("halo-emulator-expired-active", self.seed, contract_id) < EXPIRED_ACTIVE_SHARE

    def zulu(self, entity: str, record_id: object) -> bool:
        """Whether this record writes its timestamps as `...Z` rather than zone-less (fixed per record and seed)."""
        if self.timestamp_form != "mixed":
            return self.timestamp_form == "z"
        return coin("halo-emulator-zulu", self.seed, entity, record_id) < 0.5

    @property
    def rate_limit_text(self) -> str:
        """The body a hosted instance sends with its 429 (reference section 5.1), numbers from this config."""
        if self.rate_limit is None:
            return "Rate Limit Reached"
        limit, window_s = self.rate_limit
        window = f"{int(window_s // 60)} minute" if window_s % 60 == 0 else f"{window_s:g} second"
        return f"Rate Limit Reached - {limit} Requests per rolling {window} window"
