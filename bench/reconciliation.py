"""What a reconciliation costs (issue 15): a partner of `invoices` invoices backfilled into a throwaway SQLite database,
its HaloPSA then drifted three ways (an invoice edited outside every sync window, one deleted, one added before the
last window), reconciled once through the sync engine, and the drift resynced. Its requests are counted against one
whole invoice listing read by a fresh client of the same tenant (token included on both sides), on an in-process
emulator capped at 100 rows a page as hosted tenants are (no sockets: the figures are counts; the times are CPU in
this process)."""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import select

from core.access import Principal
from core.actions import connect as connections
from core.halopsa.client import HaloClient
from core.halopsa.config import HaloConfig
from core.settings import Settings
from core.store import database as db
from core.store.tables import RECONCILIATION_TABLE, Role, RunKind, RunTrigger
from core.sync import connector
from core.sync import engine as sync_engine
from halo_emulator import EmulatorConfig, HaloEmulator

PAGE_CAP = 100
CS = Principal(role=Role.CS, user="bench@example.com")


def _full_listing_requests(emulator: HaloEmulator) -> int:
    with HaloClient(base_url="https://bench.halopsa.com", client_id=emulator.client_id,
                    client_secret=emulator.client_secret, transport=emulator.transport(),
                    config=HaloConfig(rate_limit_requests=10**9)) as client:
        for _ in client.iter_invoices():
            pass
        return client.stats.requests


def measure(invoices: int) -> dict[str, Any]:
    emulator = HaloEmulator(EmulatorConfig(seed=7, invoices=invoices, page_size_cap=PAGE_CAP, rate_limit=None,
                                           record_count_is_page_length=True))
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as work:
        settings = replace(Settings(database_url=f"sqlite:///{Path(work) / 'console.db'}",
                                    secret_key=Fernet.generate_key().decode(), allow_local_domains=True),
                           rate_limit_requests=10**9, page_size=PAGE_CAP)
        engine = db.engine_for(settings)
        try:
            return _measure(engine, settings, emulator)
        finally:
            engine.dispose()


def _run(engine: Any, settings: Settings, emulator: HaloEmulator, partner_id: int, kind: RunKind,
         trigger: RunTrigger) -> Any:
    factory = connector.stored_client_factory(settings, transport=emulator.transport())
    return sync_engine.run_sync(engine, partner_id=partner_id, kind=kind, trigger=trigger, actor=CS.user,
                                now=emulator.now, settings=settings, client_factory=factory)


def _measure(engine: Any, settings: Settings, emulator: HaloEmulator) -> dict[str, Any]:
    form = connections.ConnectionForm(partner_name="Bench MSP", app_domain="https://bench.halopsa.com",
                                      client_id=emulator.client_id, client_secret=emulator.client_secret)
    partner_id, _ = connections.connect(engine, CS, form, now=emulator.now, settings=settings,
                                        transport=emulator.transport())
    _run(engine, settings, emulator, partner_id, RunKind.BACKFILL, RunTrigger.CONNECT)
    emulator.advance(emulator.now + timedelta(hours=1))
    _run(engine, settings, emulator, partner_id, RunKind.SCHEDULED, RunTrigger.SCHEDULE)
    back = emulator.now - timedelta(days=2)  # stamped before every window the syncs read
    first, second = list(emulator.invoices)[:2]
    emulator.edit_invoice(first, modified_at=back, total=float(emulator.invoices[first]["total"]) + 5.0)
    emulator.delete_invoice(second)
    emulator.add_invoice(modified_at=back)
    started = time.process_time()
    reconciled = _run(engine, settings, emulator, partner_id, RunKind.RECONCILE, RunTrigger.REQUEST)
    reconcile_cpu = time.process_time() - started
    with engine.connect() as conn:
        row = conn.execute(select(RECONCILIATION_TABLE).order_by(RECONCILIATION_TABLE.c.id.desc()).limit(1)).one()
    resynced = _run(engine, settings, emulator, partner_id, RunKind.RESYNC, RunTrigger.REQUEST)
    again = _run(engine, settings, emulator, partner_id, RunKind.RECONCILE, RunTrigger.REQUEST)
    with engine.connect() as conn:
        after = conn.scalar(select(RECONCILIATION_TABLE.c.drift).order_by(RECONCILIATION_TABLE.c.id.desc()).limit(1))
    full = _full_listing_requests(emulator)
    return {"invoices": len(emulator.invoices), "status": reconciled.status.value,
            "requests": reconciled.tally.requests, "estimated": row.requests_estimated,
            "full_listing_requests": full, "ratio": reconciled.tally.requests / full, "drift": row.drift,
            "resync_requests": resynced.tally.requests, "drift_after_resync": after,
            "second_requests": again.tally.requests, "cpu_s": reconcile_cpu}
