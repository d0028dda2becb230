"""Many tenants behind one address, as hosted HaloPSA's shared sign-in serves them: a token request names its tenant
(`POST /auth/token?tenant=NAME`) and every later request belongs to the tenant that issued its bearer token.

Each tenant is a whole HaloEmulator (its own books, tokens, rate limit, latency and faults) made from one config with
the tenant's name, built on its first token request, so a fleet of a thousand tenants costs only what is asked of it.

    fleet = Tenants.numbered(EmulatorConfig(invoices=20, latency_s=0.3), 1000)   # tenant-1 ... tenant-1000
    with serve(fleet) as server: ...
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import httpx

from halo_emulator.config import EmulatorConfig
from halo_emulator.emulator import HaloEmulator
from halo_emulator.routes import invalid_token, unknown_tenant

TOKEN_PATH = "/auth/token"


class Tenants:
    """The tenants named `names` (matched case-insensitively), each a HaloEmulator of `config` with its name."""

    def __init__(self, config: EmulatorConfig, names: Iterable[str]) -> None:
        self.config = config
        self.names = tuple(names)
        if not self.names:
            raise ValueError("serve at least one tenant")
        self._known = {name.lower(): name for name in self.names}
        self._built: dict[str, HaloEmulator] = {}
        self._by_token: dict[str, HaloEmulator] = {}
        self._lock = threading.Lock()

    @classmethod
    def numbered(cls, config: EmulatorConfig, count: int, *, prefix: str = "tenant-") -> Tenants:
        """`count` tenants named `tenant-1` ... `tenant-<count>`."""
        return cls(config, (f"{prefix}{number}" for number in range(1, count + 1)))

    def tenant(self, name: str) -> HaloEmulator:
        """The named tenant, built on first use; KeyError for a name this address does not serve."""
        key = name.lower()
        with self._lock:  # building under the lock: two first requests of one tenant never build it twice
            emulator = self._built.get(key)
            if emulator is None:
                emulator = self._built[key] = HaloEmulator(replace(self.config, tenant=self._known[key]))
            return emulator

    def respond(self, request: httpx.Request) -> httpx.Response:
        """Answer as the request's tenant; raises what HaloEmulator.respond raises for connection-level faults."""
        if request.url.path.lower().rstrip("/") == TOKEN_PATH:
            name = request.url.params.get("tenant")
            try:
                emulator = self.tenant(name or "")
            except KeyError:
                return unknown_tenant(self.config, name).to_response()
            response = emulator.respond(request)
            if response.status_code == 200:
                token = json.loads(response.content)["access_token"]
                with self._lock:
                    self._by_token[token] = emulator
            return response
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        with self._lock:
            owner = self._by_token.get(token.strip()) if scheme.lower() == "bearer" else None
        if owner is None:
            return invalid_token().to_response()
        return owner.respond(request)

    def summary(self) -> dict[str, Any]:
        """Counts over every tenant built so far (the control route `/_emulator/state`)."""
        with self._lock:
            built = list(self._built.values())
        each = [emulator.summary() for emulator in built]
        return {
            "now": self.config.start.isoformat(),
            "tenants": len(self.names),
            "built": len(built),
            **{key: sum(s[key] for s in each) for key in ("invoices", "requests", "rate_limited")},
        }
