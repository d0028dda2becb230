"""Sandbox tenants: App Domains under `.sandbox` are answered in-process by the HaloPSA emulator.

A sandbox tenant is a pure function of its name, its epoch and the time: its books are generated from a seed derived
from the name, then advanced hour by hour to "now" before every request. The epoch is stored once in the database,
so a restarted console (or another one on the same database) sees the very same HaloPSA history it synced before. A
few names carry a story for the demo (permissions removed after a while, an instance that starts failing, books that
drift from what the syncs can see); any other name gets a healthy tenant.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.halopsa.config import REQUIRED_SCOPES
from core.settings import Settings
from core.store import database
from halo_emulator import EmulatorConfig, FaultRule, HaloEmulator

EPOCH_KEY = "sandbox_epoch"
EPOCH_FILE = "sandbox-epoch.txt"  # where consoles before the setting table kept the epoch, beside the SQLite file
HISTORY = timedelta(days=35)
SANDBOX_ACTIVITY = 2.0  # busier than real books, so a demo shows changes every hour
FAILING = FaultRule(kind="status", status=503, times=10**9)


DRIFT_BACKDATE = timedelta(days=30)


@dataclass(frozen=True)
class Preset:
    invoices: int = 300
    scopes_removed: tuple[str, ...] = ()
    scopes_removed_after: timedelta | None = None
    failing_after: timedelta | None = None
    drift_after: timedelta | None = None  # when HaloPSA drifts from what the syncs can see (see _Tenant.drift)


PRESETS: dict[str, Preset] = {
    "northwind": Preset(invoices=4000),
    "contoso": Preset(invoices=1500, drift_after=timedelta(days=33)),
    "fabrikam": Preset(invoices=600),
    "tailspin": Preset(invoices=500, scopes_removed=("edit:invoices", "admin:webhooks"),
                       scopes_removed_after=timedelta(days=20)),
    "litware": Preset(invoices=400, failing_after=timedelta(days=28)),
}


def _preset(name: str) -> Preset:
    if name in PRESETS:
        return PRESETS[name]
    if name.startswith("limited"):
        return Preset(scopes_removed=("edit:invoices", "admin:webhooks"), scopes_removed_after=timedelta(0))
    if name.startswith("flaky"):
        return Preset(failing_after=timedelta(0))
    return Preset()


def _digest(host: str, purpose: str) -> str:
    return hashlib.sha256(f"sandbox:{purpose}:{host}".encode()).hexdigest()


def credentials(host: str) -> tuple[str, str]:
    """The sandbox tenant's Client ID and Secret: fake, fixed per name, and shown to trainees on purpose."""
    d = _digest(host, "client")
    client_id = f"{d[:8]}-{d[8:12]}-4{d[13:16]}-a{d[17:20]}-{d[20:32]}"
    return client_id, "sbx_" + _digest(host, "secret")[:32]


def _seed(host: str) -> int:
    return int(_digest(host, "seed")[:8], 16)


def lookup_ids(host: str) -> tuple[int, ...]:
    """The sandbox tenant's lookup ids, the one holding agreement subtype names first (what its HaloPSA
    administrator would tell a partner), then its other tables'."""
    return EmulatorConfig(seed=_seed(host)).lookup_ids


class _Tenant:
    def __init__(self, host: str, epoch: datetime) -> None:
        name = host.removesuffix(".sandbox").split(".")[-1]
        self.preset = _preset(name)
        self.epoch = epoch
        client_id, client_secret = credentials(host)
        self.emulator = HaloEmulator(EmulatorConfig(
            seed=_seed(host), invoices=self.preset.invoices, start=epoch,
            client_id=client_id, client_secret=client_secret, rate_limit=None, activity=SANDBOX_ACTIVITY,
        ))
        self.lock = threading.Lock()
        self.scopes_cut = False
        self.failing = False
        self.drifted = False

    def drift(self, at: datetime) -> None:
        """Three changes no incremental sync can see (for the demo's reconciliation), on invoices the books' own
        activity never touches again (it pays, edits, voids and deletes only payable ones): a voided invoice's total
        corrected and a draft added, both stamped a month back (as an import or a back-dated correction is), and a
        paid invoice deleted. Made at `at` on the books' own timeline, so every process replays the same."""
        books = self.emulator
        if at > books.now:
            books.advance(at)
        rows = sorted(books.invoices.items())
        voided = next(halo_id for halo_id, row in rows if row["voided"] and float(row["total"]) > 0)
        paid = next(halo_id for halo_id, row in rows if row["posted"] and not row["voided"]
                    and float(row["total"]) > 0 and float(row["amountdue"]) == 0)
        back = at - DRIFT_BACKDATE
        books.edit_invoice(voided, modified_at=back, total=float(books.invoices[voided]["total"]) + 125.0)
        books.delete_invoice(paid)
        books.add_invoice(modified_at=back, total=480.0, posted=False)
        self.drifted = True

    def catch_up(self, now: datetime) -> None:
        """Advance the books to the current hour and apply the preset's story up to now."""
        target = now.replace(minute=0, second=0, microsecond=0)
        with self.lock:
            p = self.preset
            if not self.drifted and p.drift_after is not None and target >= self.epoch + p.drift_after:
                self.drift(self.epoch + p.drift_after)
            if target > self.emulator.now:
                self.emulator.advance(target)
            if (not self.scopes_cut and p.scopes_removed_after is not None
                    and now >= self.epoch + p.scopes_removed_after):
                self.emulator.set_scopes(tuple(s for s in REQUIRED_SCOPES if s not in p.scopes_removed))
                self.scopes_cut = True
            if not self.failing and p.failing_after is not None and now >= self.epoch + p.failing_after:
                self.emulator.add_fault(FAILING)
                self.failing = True


class SandboxRegistry:
    """The process's sandbox tenants, created on first use."""

    def __init__(self) -> None:
        self._tenants: dict[str, _Tenant] = {}
        self._lock = threading.Lock()
        self.pinned_now: datetime | None = None

    def tenant(self, host: str, settings: Settings) -> _Tenant:
        with self._lock:
            if host not in self._tenants:
                self._tenants[host] = _Tenant(host, epoch_for(settings))
            return self._tenants[host]

    def now(self, settings: Settings) -> datetime:
        return self.pinned_now or settings.now()

    def clear(self) -> None:
        with self._lock:
            self._tenants.clear()
            self.pinned_now = None


REGISTRY = SandboxRegistry()


def epoch_for(settings: Settings) -> datetime:
    """When sandbox books start evolving: stored once in the database (its setting table), so every console and worker
    sharing it, and a restarted one, replay the same history. A demo made before keeps its epoch: the file the
    console used to write beside the SQLite database is read once, and its value stored."""

    def first() -> str:
        db_path = settings.sqlite_path
        legacy = Path(db_path).parent / EPOCH_FILE if db_path is not None else None
        if legacy is not None and legacy.exists():
            return datetime.fromisoformat(legacy.read_text().strip()).isoformat()
        return (settings.now() - HISTORY).replace(hour=0, minute=0, second=0, microsecond=0).isoformat()

    engine = database.engine_for(settings)
    try:
        return datetime.fromisoformat(database.stored_setting(engine, EPOCH_KEY, first))
    finally:
        engine.dispose()


def transport_for(app_domain: str, settings: Settings) -> Any:
    """An in-process transport that brings the tenant up to date, then lets its emulator answer."""
    host = urlsplit(app_domain).hostname or app_domain
    tenant = REGISTRY.tenant(host, settings)
    return tenant.emulator.transport(before=lambda: tenant.catch_up(REGISTRY.now(settings)))
