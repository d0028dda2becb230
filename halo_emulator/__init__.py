"""A faithful local HaloPSA: deterministic books, an explicit clock, the real API's quirks and injectable faults.

    emu = HaloEmulator(invoices=5000, seed=7)
    client = httpx.Client(base_url="https://acme.sandbox", transport=emu.transport())
    with serve(emu) as server:   # or a real loopback socket: server.url
        ...
    fleet = Tenants.numbered(EmulatorConfig(invoices=20, latency_s=0.3), 1000)   # many tenants, one address
"""

from halo_emulator.config import DEFAULT_SORTABLE_FIELDS, DEFAULT_START, EmulatorConfig
from halo_emulator.emulator import HaloEmulator, LogEntry, Stats
from halo_emulator.evolution import Changes
from halo_emulator.faults import FAULT_KINDS, FaultRule
from halo_emulator.server import EmulatorServer, serve
from halo_emulator.state import InvalidRecord
from halo_emulator.tenants import Tenants
from halo_emulator.wire import NO_DATE, OPEN_END

__all__ = [
    "DEFAULT_SORTABLE_FIELDS",
    "DEFAULT_START",
    "FAULT_KINDS",
    "NO_DATE",
    "OPEN_END",
    "Changes",
    "EmulatorConfig",
    "EmulatorServer",
    "FaultRule",
    "HaloEmulator",
    "InvalidRecord",
    "LogEntry",
    "Stats",
    "Tenants",
    "serve",
]
