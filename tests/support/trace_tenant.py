"""A partner connected to an emulator tenant for the invoice tracer's tests: invoices made on purpose in its HaloPSA,
synced, then traced."""

from dataclasses import replace
from datetime import timedelta

from core.access import Principal
from core.actions import autopay_rules
from core.actions import connect as connections
from core.console import tracer
from core.store.tables import AutoPayTrigger, Role, RunKind, RunStatus
from core.sync import connector
from core.sync import engine as sync_engine
from halo_emulator import HaloEmulator
from tests.support.clock import NOW

CS = Principal(role=Role.CS, user="cs@example.com")
DOMAIN = "https://acme.halopsa.com"
HOUR = timedelta(hours=1)


class Tenant:
    """One partner connected to an emulator tenant, with a customer and an agreement of subtype 1 to raise invoices
    on; `sync` runs a sync of the partner at the emulator's time."""

    def __init__(self, engine, settings, *, since=None, **config) -> None:
        self.engine, self.settings = engine, settings
        self.emu = HaloEmulator(**{"seed": 7, "invoices": 40, "start": NOW, "rate_limit": None, "activity": 0.0,
                                   **config})
        self.customer = self.emu.add_client("Trace Test Ltd")
        self.agreement = self.emu.add_contract(self.customer["id"], subtype=1, start_date="2026-01-01")
        form = connections.ConnectionForm(partner_name="Acme MSP", app_domain=DOMAIN, client_id=self.emu.client_id,
                                          client_secret=self.emu.client_secret, invoice_number_field="third_party",
                                          invoices_created_since=since)
        self.partner_id, _ = connections.connect(engine, CS, form, now=self.emu.now, settings=settings,
                                                 transport=self.emu.transport())

    def invoice(self, number: str, **fields):
        """A posted invoice on the agreement, due in ten days, numbered `number` (its third-party number)."""
        due = (self.emu.now + timedelta(days=10)).date().isoformat()
        return self.emu.add_invoice(self.customer["id"], **{"contract_id": self.agreement["id"], "total": 250.0,
                                                            "thirdpartyinvoicenumber": number, "duedate": due,
                                                            **fields})

    def sync(self, kind=RunKind.BACKFILL):
        factory = connector.stored_client_factory(self.settings, transport=self.emu.transport())
        result = sync_engine.run_sync(self.engine, partner_id=self.partner_id, kind=kind, trigger="schedule",
                                      actor="test", now=self.emu.now, settings=self.settings, client_factory=factory)
        assert result.status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL), result.error
        return result

    def later(self, hours: int = 1) -> None:
        self.emu.advance(self.emu.now + hours * HOUR)

    def trace(self, identifier: str, principal: Principal = CS):
        return tracer.trace(self.engine, principal, self.partner_id, identifier, now=self.emu.now,
                            schedule_interval=HOUR)

    def rule(self, *, enabled: bool = True) -> None:
        autopay_rules.save_rule(self.engine, CS, self.partner_id, autopay_rules.RuleInput(
            subtype_id=1, enabled=enabled, trigger=AutoPayTrigger.ON_DUE_DATE), now=self.emu.now)


def sync_settings_of(settings):
    """Settings for syncing the emulator quickly: no real pacing, short backoff."""
    return replace(settings, page_size=100, max_attempts=2, backoff_cap_s=0.01, rate_limit_requests=10**6)
