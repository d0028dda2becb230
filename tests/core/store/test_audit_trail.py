"""Every connect, edit, manual fetch, mapping change, subtype naming and export is in the audit log with its actor and
time, whether it was done from the console (core) or the command line; only customer success can read the log."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core import cli
from core.access import Principal
from core.actions import autopay_rules, fetches, subtype_names
from core.actions import connect as connections
from core.console import agreements, audit_log
from core.console import invoices as invoices_screen
from core.errors import AccessDenied
from core.store.tables import Role, RunKind
from core.sync import connector
from core.sync import engine as sync_engine
from halo_emulator import HaloEmulator, serve
from tests.support.clock import NOW

CS = Principal(role=Role.CS, user="cs@example.com")


def test_each_audited_action_is_logged_with_actor_and_time(engine, settings, monkeypatch, capsys):
    emu = HaloEmulator(seed=19, invoices=60, start=NOW, rate_limit=None)
    with serve(emu) as server:
        form = connections.ConnectionForm(partner_name="Acme MSP", app_domain=server.url, client_id=emu.client_id,
                                          client_secret=emu.client_secret)
        partner_id, _ = connections.connect(engine, CS, form, now=NOW, settings=settings)
        owner = Principal(role=Role.PARTNER, user="ap@acme.example", partner_id=partner_id)
        at = NOW + timedelta(minutes=5)
        connections.connect(engine, owner, connections.ConnectionForm(
            partner_name="Acme MSP", app_domain=server.url, client_id=emu.client_id, client_secret="",
            invoice_number_field="third_party"), now=at, settings=settings)
        factory = connector.stored_client_factory(settings)
        sync_engine.run_sync(engine, partner_id=partner_id, kind=RunKind.BACKFILL, trigger="connect", actor=CS.user,
                             now=at, settings=settings, client_factory=factory)  # a run, not an audited action
        fetches.start_manual_fetch(engine, owner, partner_id=partner_id, kind=RunKind.FETCH_UNPAID,
                                   now=at + timedelta(minutes=1), settings=settings, client_factory=factory)
        subtype = int(agreements.subtype_summary(engine, CS, partner_id, now=at)["subtype_id"].iloc[0])
        rule_id = autopay_rules.save_rule(engine, CS, partner_id, autopay_rules.RuleInput(subtype),
                                          now=at + timedelta(minutes=2))
        autopay_rules.delete_rule(engine, owner, partner_id, rule_id, now=at + timedelta(minutes=3))
        invoices_screen.export_csv(engine, owner, partner_id, invoices_screen.Filters(), now=at + timedelta(minutes=4))
        subtype_names.set_lookup(engine, owner, partner_id, emu.subtype_lookup_id, now=at + timedelta(minutes=4),
                                 settings=settings, client_factory=factory)
        subtype_names.set_name(engine, CS, partner_id, subtype, "Managed plans", now=at + timedelta(minutes=4))
        for key, value in {"DATABASE_URL": settings.database_url, "HALO_CONSOLE_SECRET_KEY": settings.secret_key,
                           "HALO_CONSOLE_NOW": (at + timedelta(minutes=5)).isoformat(), "USER": "ops"}.items():
            monkeypatch.setenv(key, value)
        assert cli.main(["invoices", "--partner", "Acme MSP", "--format", "csv"]) == 0

    events, total = audit_log.events(engine, CS)
    logged = list(events.iloc[::-1].itertuples(index=False))  # oldest first
    assert total == 11
    assert [(e.action, e.actor, e.at.to_pydatetime(), e.partner) for e in logged] == [
        ("Verify connection", CS.user, NOW, "—"),  # a new partner: named in the detail
        ("Connect", CS.user, NOW, "Acme MSP"),
        ("Verify connection", owner.user, at, "Acme MSP"),
        ("Edit connection", owner.user, at, "Acme MSP"),
        ("Manual fetch", owner.user, at + timedelta(minutes=1), "Acme MSP"),
        ("Mapping change", CS.user, at + timedelta(minutes=2), "Acme MSP"),
        ("Mapping change", owner.user, at + timedelta(minutes=3), "Acme MSP"),
        ("Export", owner.user, at + timedelta(minutes=4), "Acme MSP"),
        ("Subtype names", owner.user, at + timedelta(minutes=4), "Acme MSP"),
        ("Subtype names", CS.user, at + timedelta(minutes=4), "Acme MSP"),
        ("Export", "cli:ops", at + timedelta(minutes=5), "Acme MSP"),
    ]
    details = [e.detail for e in logged]
    assert details[0] == details[2] and details[0].startswith(f"Acme MSP at {server.url}: all permissions granted; ")
    assert "Invoice Number Field" in details[3] and "Fetch unpaid invoices: requested" in details[4]
    assert "created" in details[5] and "deleted" in details[6] and "rows" in details[7]
    assert details[8] == f"Subtype lookup set to {emu.subtype_lookup_id} (was none)"
    assert details[9].startswith(f"Subtype {subtype} named “Managed plans” here; was shown as “")
    assert "command line" in details[10]
    assert emu.client_secret not in " ".join(details)


@pytest.mark.parametrize("role", [Role.PM, Role.PARTNER])
def test_only_customer_success_reads_the_audit_log(engine, role):
    with pytest.raises(AccessDenied):
        audit_log.events(engine, Principal(role=role, user="someone", partner_id=1 if role == Role.PARTNER else None))
