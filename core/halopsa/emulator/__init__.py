"""A faithful local HaloPSA: deterministic books, an explicit clock, the real API's quirks and injectable faults.

    emu = HaloEmulator(invoices=5000, seed=7)
    client = httpx.Client(base_url="https://acme.sandbox", transport=emu.transport())
    with serve(emu) as server:   # or a real loopback socket: server.url
        ...
"""

from core.halopsa.emulator.config import DEFAULT_SORTABLE_FIELDS, DEFAULT_START, EmulatorConfig
from core.halopsa.emulator.emulator import HaloEmulator, LogEntry, Stats
from core.halopsa.emulator.evolution import Changes
from core.halopsa.emulator.faults import FAULT_KINDS, FaultRule
from core.halopsa.emulator.server import EmulatorServer, serve
from core.halopsa.emulator.state import InvalidRecord
from core.halopsa.emulator.wire import NO_DATE, OPEN_END

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
    "serve",
]
