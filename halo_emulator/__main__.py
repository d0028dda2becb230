"""`python -m halo_emulator --port 8765 --seed 7 --invoices 5000`: serve one tenant until Ctrl-C.

`--tenants 1000` serves tenant-1 ... tenant-1000 behind the one address instead (a token request picks its tenant with
`?tenant=`), each with these books; `--latency-ms 300` holds every answer that long (a sleep, so answers overlap).
"""

from __future__ import annotations

import argparse
import contextlib
import threading
from collections.abc import Sequence
from typing import Any

from halo_emulator.config import EmulatorConfig
from halo_emulator.emulator import HaloEmulator
from halo_emulator.server import serve
from halo_emulator.tenants import Tenants
from halo_emulator.wire import parse_moment


def _rate_limit(text: str) -> tuple[int, float] | None:
    """`300/300` (requests per window seconds) or `off`."""
    if text.strip().lower() in {"off", "none", "0"}:
        return None
    requests, _, window = text.partition("/")
    return int(requests), float(window or 300)


def _config(args: argparse.Namespace) -> EmulatorConfig:
    options: dict[str, Any] = {"seed": args.seed, "invoices": args.invoices, "require_tenant": args.require_tenant}
    optional = {
        "customers": args.customers,
        "agreements": args.agreements,
        "client_id": args.client_id,
        "client_secret": args.client_secret,
        "tenant": args.tenant,
        "page_size_cap": args.page_cap,
        "token_ttl_s": args.token_ttl,
        "activity": args.activity,
    }
    options.update({name: value for name, value in optional.items() if value is not None})
    if args.scopes is not None:
        options["granted_scopes"] = tuple(args.scopes.split())
    if args.rate_limit is not None:
        options["rate_limit"] = _rate_limit(args.rate_limit)
    if args.start:
        options["start"] = parse_moment(args.start)
    if args.latency_ms:
        options["latency_s"] = args.latency_ms / 1000
    return EmulatorConfig(**options)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m halo_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--invoices", type=int, default=1000)
    parser.add_argument("--customers", type=int)
    parser.add_argument("--agreements", type=int)
    parser.add_argument("--client-id")
    parser.add_argument("--client-secret")
    parser.add_argument("--tenant")
    parser.add_argument("--require-tenant", action="store_true", help="refuse token requests without ?tenant=")
    parser.add_argument("--scopes", help='granted permissions, space separated, e.g. "read:customers read:invoices"')
    parser.add_argument("--rate-limit", help="requests/window-seconds, e.g. 300/300, or off")
    parser.add_argument("--page-cap", type=int, help="largest page_size honoured")
    parser.add_argument("--token-ttl", type=float, help="token lifetime in seconds")
    parser.add_argument("--start", help="the emulator clock's start, ISO 8601 (UTC if no zone)")
    parser.add_argument("--activity", type=float, help="multiplies hourly new invoices, payments and edits (default 1)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="hold every answer this long (default 0)")
    parser.add_argument("--tenants", type=int, help="serve tenant-1 ... tenant-N, picked by ?tenant= on the token "
                        "request, each with these books")
    args = parser.parse_args(argv)
    if args.tenants is not None and (args.tenants < 1 or args.tenant):
        parser.error("--tenants needs a count of at least 1 and names the tenants itself (no --tenant)")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    config = _config(args)
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
