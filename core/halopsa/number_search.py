"""Finding an invoice in HaloPSA by its number (not its id), whatever the tenant supports (reference 3.4 and 11).

Newer builds filter `/Invoice` by `third_party_id` (a third-party invoice number); every build documents `search`.
Neither is confirmed on every tenant, and a tenant may ignore a parameter it does not know and send the whole
listing. So each is probed and its answer checked: a filter is honoured only when every row it sends matches it. A
refusal (HTTP 4xx) or an ignored filter gives way to the next; when none is honoured, the tenant cannot search by
number and the answer says so (the HaloPSA ID still finds the invoice). One page each, at most two requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import HaloError
from core.halopsa.records import Invoice, RecordError, parse_invoice

if TYPE_CHECKING:
    from core.halopsa.client import HaloClient

PAGE = 50  # rows asked for per probe: an exact number rarely matches more
THIRD_PARTY, SEARCH = "third_party_id", "search"
NUMBER_FIELDS = ("thirdpartyinvoicenumber", "invoicenumber")


@dataclass(frozen=True)
class NumberSearch:
    """Invoices whose number is exactly the one asked (`method`: the parameter that served; None: the tenant honours
    none, so nothing could be searched). `complete` is False when the page was full (more may match)."""

    invoices: list[Invoice]
    method: str | None
    complete: bool = True
    tried: tuple[str, ...] = ()


def _same(value: Any, number: str) -> bool:
    return isinstance(value, str | int) and str(value).strip().casefold() == number.casefold()


def _names(row: Any, number: str) -> bool:
    return isinstance(row, dict) and any(_same(row.get(name), number) for name in NUMBER_FIELDS)


def _mentions(row: Any, number: str) -> bool:
    """A search hit mentions the text somewhere (HaloPSA's search spans fields this client does not read)."""
    return number.casefold() in repr(row).casefold()


def _rows(client: HaloClient, param: str, number: str) -> list[Any] | None:
    """One page of the listing filtered by `param`; None when the tenant refuses the parameter (a plain HTTP error:
    a tenant that is down, rate limiting or refusing the credentials raises as usual)."""
    try:
        return client.sample("Invoice", "invoices", {param: number}, page_size=PAGE)
    except HaloError as exc:
        if type(exc) is not HaloError:
            raise
        return None


def _parsed(client: HaloClient, rows: list[Any], number: str) -> list[Invoice]:
    found = []
    for row in rows:
        if _names(row, number):
            try:
                found.append(parse_invoice(row, client.currency_code))
            except RecordError:
                continue  # unreadable: the tracer cannot classify it, as a sync could not store it
    return found


def find_by_number(client: HaloClient, number: str) -> NumberSearch:
    """The invoices numbered `number` in this tenant: by `third_party_id`, then by `search` (see the module)."""
    tried: list[str] = []
    honoured_empty = False
    for param, honours in ((THIRD_PARTY, _names), (SEARCH, _mentions)):
        rows = _rows(client, param, number)
        tried.append(param)
        if rows is None or not all(honours(row, number) for row in rows):
            continue  # refused, or ignored (rows that do not match it)
        found = _parsed(client, rows, number)
        if found or param == SEARCH:
            return NumberSearch(found, param, complete=len(rows) < PAGE, tried=tuple(tried))
        honoured_empty = True  # no third-party number matches; the search may still find an invoice number
    return NumberSearch([], THIRD_PARTY if honoured_empty else None, tried=tuple(tried))
