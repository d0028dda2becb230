"""`python -m halo_emulator --port 8765 --seed 7 --invoices 5000`: serve one tenant until Ctrl-C.

`--tenants 1000` serves tenant-1 ... tenant-1000 behind the one address instead (a token request picks its tenant with
`?tenant=`), each with these books; `--latency-ms 300` holds every answer that long (a sleep, so answers overlap).
Every quirk is realistic by default (reference section 11) and each has a flag to change it. Drips, oversized pages
and other faults are injected while it runs: POST /_emulator/faults {"kind": "drip", "path": "/api/invoice"}.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any

from halo_emulator.config import TIMESTAMP_FORMS, EmulatorConfig
from halo_emulator.emulator import HaloEmulator
from halo_emulator.server import serve
from halo_emulator.tenants import Tenants
from halo_emulator.wire import parse_moment

_KNOBS = frozenset(field.name for field in fields(EmulatorConfig))
_KEPT = argparse.SUPPRESS
"""A flag left out sets nothing: the config's own default stands (and is the one shown in --help)."""
_DEFAULTS = EmulatorConfig()


def _rate_limit(text: str) -> tuple[int, float] | None:
    """`300/300` (requests per window seconds) or `off`."""
    if text.strip().lower() in {"off", "none", "0"}:
        return None
    requests, _, window = text.partition("/")
    return int(requests), float(window or 300)


def _choice(mapping: dict[str, Any]) -> Callable[[str], Any]:
    """An argparse `type` that takes one of the mapping's words and gives its value."""

    def convert(text: str) -> Any:
        try:
            return mapping[text.strip().lower()]
        except KeyError:
            raise argparse.ArgumentTypeError(f"choose one of {', '.join(mapping)}, not {text!r}") from None

    return convert


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a share between 0 and 1, not {text!r}")
    return value


def _config(args: argparse.Namespace) -> EmulatorConfig:
    """The config of the flags given: each flag's destination is an EmulatorConfig field."""
    options: dict[str, Any] = {name: value for name, value in vars(args).items() if name in _KNOBS}
    if "start" in options:
        options["start"] = parse_moment(options["start"])
    if "granted_scopes" in options:
        options["granted_scopes"] = tuple(options["granted_scopes"].split())
    if "latency_s" in options:
        options["latency_s"] /= 1000
    return EmulatorConfig(**options)


def _tenant_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=_KEPT, help=f"fixes the books (default {_DEFAULTS.seed})")
    parser.add_argument("--invoices", type=int, default=_KEPT,
                        help=f"invoice rows, credit notes included (default {_DEFAULTS.invoices})")
    parser.add_argument("--customers", type=int, default=_KEPT, help="default: a tenth of the invoices")
    parser.add_argument("--agreements", type=int, default=_KEPT, help="default: a twentieth of the invoices")
    parser.add_argument("--client-id", default=_KEPT, help="default: a GUID derived from the seed")
    parser.add_argument("--client-secret", default=_KEPT, help="default: derived from the seed")
    parser.add_argument("--tenant", default=_KEPT)
    parser.add_argument("--require-tenant", action="store_const", const=True, default=_KEPT,
                        help="refuse token requests without ?tenant=")
    parser.add_argument("--scopes", dest="granted_scopes", metavar="SCOPES", default=_KEPT,
                        help='granted permissions, space separated, e.g. "read:customers read:invoices"')
    parser.add_argument("--rate-limit", type=_rate_limit, metavar="N/SECONDS", default=_KEPT,
                        help="requests/window-seconds, e.g. 300/300 (the default), or off")
    parser.add_argument("--token-ttl", dest="token_ttl_s", metavar="SECONDS", type=float, default=_KEPT,
                        help=f"token lifetime in seconds (default {_DEFAULTS.token_ttl_s:g})")
    parser.add_argument("--start", default=_KEPT, help="the emulator clock's start, ISO 8601 (UTC if no zone)")
    parser.add_argument("--activity", type=float, default=_KEPT,
                        help="multiplies hourly new invoices, payments and edits (default 1)")
    parser.add_argument("--latency-ms", dest="latency_s", metavar="MS", type=float, default=_KEPT,
                        help="hold every answer this long (default 0)")
    parser.add_argument("--tenants", type=int, metavar="N",
                        help="serve tenant-1 ... tenant-N, picked by ?tenant= on the token request, each with these "
                             "books")


def _quirk_flags(parser: argparse.ArgumentParser) -> None:
    """HaloPSA as real tenants answer (reference section 11); every default is the realistic one."""
    quirks = parser.add_argument_group("quirks", "how this tenant pages, sorts, refuses and writes its rows")
    switch = argparse.BooleanOptionalAction
    quirks.add_argument("--page-cap", dest="page_size_cap", metavar="ROWS", type=int, default=_KEPT,
                        help=f"largest page_size honoured (default {_DEFAULTS.page_size_cap}, as real tenants)")
    quirks.add_argument("--record-count", dest="record_count_is_page_length", metavar="{listing,page}",
                        type=_choice({"listing": False, "page": True}), default=_KEPT,
                        help="what record_count reports: the whole listing's length (default) or the page's, as "
                             "one live tenant does")
    quirks.add_argument("--served-page-size", dest="served_page_size", metavar="ROWS", type=int, default=_KEPT,
                        help="page by this many rows whatever page_size asks (pages longer than asked)")
    quirks.add_argument("--ignore-paging", dest="ignore_paging", action="store_const", const=True, default=_KEPT,
                        help="send every matching row on every page, whatever page_size and page_no ask")
    quirks.add_argument("--unsortable-order", dest="unsortable_order_status", metavar="{ignore,400,500}",
                        type=_choice({"ignore": None, "400": 400, "500": 500}), default=_KEPT,
                        help="an order on a field the tenant cannot sort by: ignored (default, rows in id order) "
                             "or refused with HTTP 400 or 500")
    quirks.add_argument("--datesearch", dest="datesearch", action=switch, default=_KEPT,
                        help="datesearch=<field>&start_date=... filters listings, as newer builds (default: "
                             "ignored, as older ones)")
    quirks.add_argument("--expired-token-status", dest="expired_token_status", metavar="{401,400}",
                        type=_choice({"401": 401, "400": 400}), default=_KEPT,
                        help="how an expired or revoked token is refused: 401 (default) or a bare 400 "
                             "invalid_token, as some tenants (n8n issue 16857)")
    quirks.add_argument("--retry-after", dest="retry_after_header", action=switch, default=_KEPT,
                        help="a 429 carries Retry-After (default: a bare-text 429 without it, as evidenced)")
    quirks.add_argument("--timestamps", dest="timestamp_form", choices=TIMESTAMP_FORMS, default=_KEPT,
                        help="rows write timestamps zone-less, as ...Z, or a mix drawn per record (default mixed)")
    quirks.add_argument("--currency-code-name", dest="currency_code_name", action=switch, default=_KEPT,
                        help="invoice rows carry currency_code_name, the ISO code (default); without it only the "
                             "symbol and an id into /api/Currency")
    quirks.add_argument("--credit-share", dest="credit_note_share", metavar="SHARE", type=_share, default=_KEPT,
                        help=f"share of the invoice rows that are credit notes, at most 0.5 (default "
                             f"{_DEFAULTS.credit_note_share:g}; 0: none)")
    quirks.add_argument("--draft-share", dest="draft_share", metavar="SHARE", type=_share, default=_KEPT,
                        help=f"share of the last three days' invoices still drafts, not posted (default "
                             f"{_DEFAULTS.draft_share:g})")
    quirks.add_argument("--deletions", dest="invoice_deletions", action=switch, default=_KEPT,
                        help="the clock deletes the odd unpaid invoice (gone from listings, 404 by id; default on)")
    quirks.add_argument("--expired-active", dest="expired_stays_active", metavar="{drawn,always,never}",
                        type=_choice({"drawn": None, "always": True, "never": False}), default=_KEPT,
                        help="whether an expired agreement still says active: true: drawn per agreement (default, "
                             "about half), always, or never")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m halo_emulator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _tenant_flags(parser)
    _quirk_flags(parser)
    args = parser.parse_args(argv)
    if args.tenants is not None and (args.tenants < 1 or "tenant" in vars(args)):
        parser.error("--tenants needs a count of at least 1 and names the tenants itself (no --tenant)")
    try:
        args.config = _config(args)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    config: EmulatorConfig = args.config
    served = Tenants.numbered(config, args.tenants) if args.tenants else HaloEmulator(config)
    with serve(served, args.host, args.port) as server:
        print(f"HaloPSA emulator at {server.url}  (clock {config.start.isoformat()})")
        print(f"  App Domain:    {server.url}   (API {server.url}/api, token {server.url}/auth/token)")
        print(f"  Client ID:     {config.resolved_client_id}")
        print(f"  Client secret: {config.resolved_client_secret}")
        if isinstance(served, Tenants):
            print(f"  Tenants:       {served.names[0]} ... {served.names[-1]} ({len(served.names)}, each with the "
                  "books below)")
        elif config.tenant:
            print(f"  Tenant:        {config.tenant}")
        if not isinstance(served, Tenants):  # each tenant of a fleet has its own
            print(f"  Subtype names: lookup {config.lookup_ids[0]}")
        print(f"  {config.customer_count} customers, {config.agreement_count} agreements, {config.invoices} invoices"
              + (f"; every answer after {config.latency_s * 1000:g} ms" if config.latency_s else ""))
        print("Ctrl-C to stop.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
