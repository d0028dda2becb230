"""What the HaloPSA client needs to know: paging, rate budget, timeouts, retries and the unpaid status codes.

The client never reads the app's settings; whoever builds a client (the sync connector, tests, benches) fills one
of these in. The defaults are hosted HaloPSA's: 300 requests per rolling 5 minutes per tenant (reference 5.1).
"""

from __future__ import annotations

from dataclasses import dataclass

# The API application permissions the console needs (HaloPSA: Configuration > Integrations > HaloPSA API).
REQUIRED_SCOPES: tuple[str, ...] = (
    "admin:webhooks",
    "read:customers",
    "edit:customers",
    "read:invoices",
    "edit:invoices",
    "read:contracts",
    "edit:contracts",
)


@dataclass(frozen=True)
class HaloConfig:
    page_size: int = 100  # real tenants cap pages at 100 rows whatever is asked (reference 11)
    rate_limit_requests: int = 300
    rate_limit_window_s: float = 300.0
    http_timeout_s: float = 30.0
    max_attempts: int = 6
    backoff_cap_s: float = 60.0
    unpaid_payment_statuses: str = "0,1"  # HaloPSA `paymentstatuses` filter for unpaid listings; "" = no filter
    allow_local_domains: bool = False  # HALO_ALLOW_LOCAL_DOMAINS: connect to loopback and private addresses too
    max_page_bytes: int = 32 * 2**20  # HALO_MAX_PAGE_MB: the largest answer read (bounded memory)
    request_deadline_s: float = 120.0  # one HTTP exchange (connect, send, the whole answer) ends within this
    longest_wait_s: float = 60.0  # a rate limit asking for longer hands the sync back to the queue instead of waiting


@dataclass(frozen=True)
class TenantProfile:
    """What a probe of the tenant found that a client should use instead of the defaults (core.halopsa.probe)."""

    token_url: str
    page_size: int
    unpaid_payment_statuses: str
    page_size_proven: bool = False  # the tenant was seen serving pages of this size (or capping at it)
