"""`python -m halo_emulator --port 8765 --seed 7 --invoices 5000`: serve one tenant until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import threading
from collections.abc import Sequence
from typing import Any

from halo_emulator.config import EmulatorConfig
from halo_emulator.emulator import HaloEmulator
from halo_emulator.server import serve
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
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    emulator = HaloEmulator(_config(args))
    with serve(emulator, args.host, args.port) as server:
        print(f"HaloPSA emulator at {server.url}  (clock {emulator.now.isoformat()})")
        print(f"  App Domain:    {server.url}   (API {server.url}/api, token {server.url}/auth/token)")
        print(f"  Client ID:     {emulator.client_id}")
        print(f"  Client secret: {emulator.client_secret}")
        if emulator.config.tenant:
            print(f"  Tenant:        {emulator.config.tenant}")
        print(
            f"  {len(emulator.clients)} customers, {len(emulator.contracts)} agreements, "
            f"{len(emulator.invoices)} invoices"
        )
        print("Ctrl-C to stop.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
