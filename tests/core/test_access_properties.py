"""Access control as a property, over EVERY public view and action in core that takes a Principal: for random
principals and partners, a partner principal only ever gets its own partner's rows (or AccessDenied / NotFound), a
pm principal never gets invoice rows or secrets, and a refused call changes nothing.

Each partner's data carries unmistakable markers (its name, customer names, invoice and agreement numbers, client
id, App Domain, secret); the result of every call is rendered to text and searched for markers the principal may not
see. A new public function taking a Principal fails `test_every_view_and_action_is_covered` until it is added here.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import itertools
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from types import ModuleType
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlmodel import SQLModel

from core.access import Principal
from core.actions import autopay_rules, fetches, subtype_names, trace_lookup
from core.actions import connect as connections
from core.actions import issues as issue_actions
from core.actions import reconcile as reconcile_actions
from core.console import (
    adoption,
    agreements,
    alert_config,
    audit_log,
    exports,
    overview,
    partners,
    reconciliation,
    status,
    subtypes,
    support_bundle,
    syncs,
    tracer,
)
from core.console import connection as connection_screen
from core.console import invoices as invoices_screen
from core.errors import AccessDenied, ConsoleError, CooldownActive, NotFound
from core.halopsa import records
from core.halopsa.config import REQUIRED_SCOPES
from core.health import issues
from core.settings import Settings
from core.store import audit, tables, upserts
from core.store import database as db
from core.store.tables import IntegrationRole, NumberField, Role, RunKind, RunStatus
from core.sync import connector, streams
from halo_emulator import HaloEmulator
from tests.support import databases
from tests.support.clock import NOW, TEST_KEY
from tests.support.factories import add_partner, add_rule, add_run
from tests.support.subtype_names import name_subtypes

PREFIXES = {"Acme": ("Acme MSP", IntegrationRole.PRIMARY), "Globex": ("Globex Partners", IntegrationRole.SECONDARY),
            "Initech": ("Initech Systems", IntegrationRole.PRIMARY)}
SUBTYPE_IDS = [1, 2, 3]
MISSING_PARTNER = 9999
NEW_PARTNER = "Umbrella Holdings"
_NEW_NAMES = itertools.count(1)

ADOPTION_PERIOD = adoption.Period.ending(NOW.date(), 30)


def secret_of(prefix: str) -> str:
    return f"{prefix.lower()}-plain-secret-7f3a91"


@dataclass
class World:
    engine: Any
    settings: Settings
    ids: dict[str, int]  # prefix -> partner id
    emulators: dict[int, HaloEmulator]

    def markers(self, prefix: str) -> dict[str, list[str]]:
        """What only this partner's viewers may see, by kind."""
        return {
            "name": [PREFIXES[prefix][0]],
            "rows": [f"{prefix}-INV-", f"{prefix} Customer", f"{prefix}-AGR-", f"{prefix} audit detail",
                     f"{prefix} run error", f"{prefix} subtype"],
            "connection": [f"{prefix.lower()}-client-id", f"{prefix.lower()}.sandbox"],
            "secret": [secret_of(prefix)],
        }

    def factory(self) -> connector.ClientFactory:
        by_partner = {pid: connector.stored_client_factory(self.settings, transport=emu.transport())
                      for pid, emu in self.emulators.items()}
        return lambda connection, on_event: by_partner[connection.partner_id](connection, on_event)


def _fill(engine: Any, partner_id: int, prefix: str) -> None:
    """Customers, agreements, invoices whose every display field carries the partner's prefix."""
    customers = [records.Customer(halo_id=9000 + i, name=f"{prefix} Customer {i}", inactive=False,
                                  billing_email=f"ap{i}@{prefix.lower()}.example", currency="USD", last_modified=NOW)
                 for i in range(1, 4)]
    agreements = [records.Agreement(halo_id=9000 + i, ref=f"{prefix}-AGR-{i}", customer_halo_id=9000 + i, subtype_id=i,
                                    type_name="Recurring", start_date=date(2026, 1, 1), end_date=None, active=True,
                                    last_modified=NOW) for i in SUBTYPE_IDS]
    build = streams.invoice_row_factory(NumberField.THIRD_PARTY)
    invoices = [build(records.Invoice(
        halo_id=100 + i, invoice_number=str(100 + i), third_party_number=f"{prefix}-INV-{i:04d}",
        customer_halo_id=9001 + i % 3, customer_name=f"{prefix} Customer {i % 3 + 1}", agreement_halo_id=9001 + i % 3,
        agreement_ref=f"{prefix}-AGR-{i % 3 + 1}", invoice_date=NOW.date() - timedelta(days=i),
        due_date=NOW.date() - timedelta(days=i - 20), total_cents=10_000 + i, amount_paid_cents=0 if i % 4 else 500,
        amount_due_cents=10_000 + i - (0 if i % 4 else 500), currency="USD", posted=True, voided=False,
        last_modified=NOW)) for i in range(1, 13)]
    with engine.begin() as conn:
        upserts.upsert_rows(conn, tables.CUSTOMER_TABLE, streams.CUSTOMER_FIELDS,
                            [streams.customer_row(c) for c in customers], partner_id=partner_id, now=NOW)
        upserts.upsert_rows(conn, tables.AGREEMENT_TABLE, streams.AGREEMENT_FIELDS,
                            [streams.agreement_row(a) for a in agreements], partner_id=partner_id, now=NOW)
        upserts.upsert_rows(conn, tables.INVOICE_TABLE, streams.INVOICE_FIELDS, invoices, partner_id=partner_id,
                            now=NOW)
        audit.record(conn, actor="cs@example.com", action="connect", partner_id=partner_id, now=NOW,
                     detail=f"{prefix} audit detail")
    name_subtypes(engine, partner_id, {i: f"{prefix} subtype {i}" for i in SUBTYPE_IDS}, now=NOW)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    settings = Settings(database_url=databases.database_url(tmp_path_factory.mktemp("access"), lasting=True),
                        secret_key=TEST_KEY, allow_local_domains=True, backoff_cap_s=0.01, max_attempts=2,
                        rate_limit_requests=10**6, fixed_now=NOW)
    engine = db.engine_for(settings)
    ids, emulators = {}, {}
    for prefix, (name, role) in PREFIXES.items():
        partner_id = add_partner(engine, settings, name=name, now=NOW - timedelta(days=3),
                                 app_domain=f"https://{prefix.lower()}.sandbox",
                                 client_id=f"{prefix.lower()}-client-id",
                                 client_secret=secret_of(prefix), role=role, number_field=NumberField.THIRD_PARTY)
        ids[prefix] = partner_id
        emulators[partner_id] = HaloEmulator(seed=len(ids), invoices=20, start=NOW, rate_limit=None,
                                             client_id=f"{prefix.lower()}-client-id", client_secret=secret_of(prefix))
        _fill(engine, partner_id, prefix)
        for hours, outcome in ((30, RunStatus.SUCCEEDED), (5, RunStatus.PARTIAL), (2, RunStatus.FAILED)):
            add_run(engine, settings, partner_id, at=NOW - timedelta(hours=hours), status=outcome, record_errors=2,
                    error=f"{prefix} run error" if outcome == RunStatus.FAILED else None)
        add_rule(engine, partner_id, 2, at=NOW - timedelta(days=1))
    issues.evaluate(engine, now=NOW, settings=settings)  # each partner's issues, whose details carry its markers
    assert list(ids.values()) == [1, 2, 3]  # the ids the principal strategy draws from
    yield World(engine, settings, ids, emulators)
    engine.dispose()


# ---- how each view and action is called ---------------------------------------------------------------------------

Call = Callable[[World, Principal, Any, st.DataObject], Any]
"""(world, principal, target partner id or None for a new partner, draw) -> the result."""


def _prefix_of(world: World, partner_id: int | None) -> str | None:
    return next((p for p, pid in world.ids.items() if pid == partner_id), None)


def _form(world: World, partner_id: int | None, data: st.DataObject) -> connections.ConnectionForm:
    prefix = _prefix_of(world, partner_id)
    if prefix is None:  # a partner that does not exist yet
        return connections.ConnectionForm(partner_name=NEW_PARTNER, app_domain="umbrella.sandbox",
                                          client_id="umbrella-client-id", client_secret="umbrella-secret")
    name, role = PREFIXES[prefix]
    keep_secret = data.draw(st.booleans(), label="keep stored secret")
    return connections.ConnectionForm(
        partner_name=name, app_domain=f"{prefix.lower()}.sandbox", client_id=f"{prefix.lower()}-client-id",
        client_secret="" if keep_secret else secret_of(prefix), invoice_number_field=NumberField.THIRD_PARTY.value,
        integration_role=role.value)


def _clean(world: World, partner_id: int | None, data: st.DataObject) -> connections.CleanForm:
    """What validate_form would hand to save (a new partner gets a name not taken yet)."""
    form = _form(world, partner_id, data)
    return connections.CleanForm(
        partner_name=form.partner_name if _prefix_of(world, partner_id) else f"{NEW_PARTNER} {next(_NEW_NAMES)}",
        app_domain=f"https://{form.app_domain}", client_id=form.client_id,
        client_secret=form.client_secret or "typed-secret", invoices_created_since=None,
        invoice_number_field=NumberField(form.invoice_number_field),
        integration_role=IntegrationRole(form.integration_role),
        tenant=None, partner_id=partner_id if _prefix_of(world, partner_id) else None)


def _run_id(data: st.DataObject) -> int:
    """One of the seeded runs (three per partner), a later one, or none at all."""
    return data.draw(st.one_of(st.integers(1, 12), st.just(987654)), label="run id")


def _rule(data: st.DataObject) -> autopay_rules.RuleInput:
    return autopay_rules.RuleInput(data.draw(st.sampled_from([*SUBTYPE_IDS, 9]), label="subtype"),
                             trigger="days_after_due", days=data.draw(st.integers(0, 30), label="days"),
                             max_amount=data.draw(st.sampled_from([None, Decimal("50.00")]), label="max"))


def _filters(data: st.DataObject) -> invoices_screen.Filters:
    return invoices_screen.Filters(
        search=data.draw(st.sampled_from(["", "INV", "Customer", "%"]), label="search"),
        aging=data.draw(st.sampled_from([None, *invoices_screen.AGING_BUCKETS]), label="aging"))


def _invoice_typed(world: World, pid: Any, data: st.DataObject) -> str:
    """What a person types to trace one of the target partner's invoices: its number, its HaloPSA ID, or a number only
    its HaloPSA might have (looked up there)."""
    prefix = _prefix_of(world, pid) or "Umbrella"
    return data.draw(st.sampled_from([f"#{prefix}-INV-0003", "103", "424242"]), label="invoice")


def _name(world: World, pid: Any) -> str:
    prefix = _prefix_of(world, pid)
    return PREFIXES[prefix][0] if prefix else NEW_PARTNER


CALLS: dict[str, tuple[tuple[Role, ...], bool, Call]] = {
    # name: (roles allowed, scoped to one partner, call)
    "core.console.partners.partner_id_by_name": ((Role.CS, Role.PARTNER), True,
                                 lambda w, p, pid, d: partners.partner_id_by_name(w.engine, p, _name(w, pid))),
    "core.console.status.partner_status": ((Role.CS, Role.PARTNER), True,
                             lambda w, p, pid, d: status.partner_status(w.engine, p, pid, now=NOW)),
    "core.console.exports.invoice_export_rows": ((Role.CS, Role.PARTNER), True,
        lambda w, p, pid, d: list(exports.invoice_export_rows(
            w.engine, p, pid, unpaid_only=d.draw(st.booleans(), label="unpaid only")))),
    "core.console.partners.partner_choices": ((Role.CS, Role.PARTNER, Role.PM), False,
                              lambda w, p, pid, d: partners.partner_choices(w.engine, p)),
    "core.console.partners.freshness_line": ((Role.CS, Role.PARTNER), True,
        lambda w, p, pid, d: partners.freshness_line(w.engine, p, pid, now=NOW, schedule_interval=timedelta(hours=1))),
    "core.console.syncs.runs_page": ((Role.CS, Role.PARTNER), True,
        lambda w, p, pid, d: syncs.runs_page(w.engine, p, pid)),
    "core.console.syncs.run_detail": ((Role.CS, Role.PARTNER), True,
                           lambda w, p, pid, d: syncs.run_detail(w.engine, p, pid, _run_id(d))),
    "core.console.syncs.manual_fetch_states": ((Role.CS, Role.PARTNER), True,
                                    lambda w, p, pid, d: syncs.manual_fetch_states(w.engine, p, pid, now=NOW)),
    "core.console.syncs.live_syncs": ((Role.CS, Role.PARTNER), True,
                                      lambda w, p, pid, d: syncs.live_syncs(w.engine, p, pid, now=NOW)),
    "core.console.syncs.chart_data": ((Role.CS, Role.PARTNER), True,
        lambda w, p, pid, d: syncs.chart_data(w.engine, p, pid)),
    "core.console.syncs.press_refused": ((Role.CS, Role.PARTNER), True, lambda w, p, pid, d: syncs.press_refused(
        w.engine, p, pid, kind="fetch_new_data", error=CooldownActive("Fetch new data", NOW, NOW), now=NOW,
        schedule_interval=timedelta(hours=1))),
    "core.console.syncs.job_run": ((Role.CS, Role.PARTNER), True,
                                   lambda w, p, pid, d: syncs.job_run(w.engine, p, pid, _run_id(d))),
    "core.console.invoices.page": ((Role.CS, Role.PARTNER), True, lambda w, p, pid, d: invoices_screen.page(
        w.engine, p, pid, _filters(d), now=NOW)),
    "core.console.invoices.source_note": ((Role.CS, Role.PARTNER), True,
                                          lambda w, p, pid, d: invoices_screen.source_note(w.engine, p, pid)),
    "core.console.invoices.filter_options": ((Role.CS, Role.PARTNER), True,
                                     lambda w, p, pid, d: invoices_screen.filter_options(w.engine, p, pid)),
    "core.console.invoices.export_csv": ((Role.CS, Role.PARTNER), True, lambda w, p, pid, d: invoices_screen.export_csv(
        w.engine, p, pid, _filters(d), now=NOW)),
    "core.actions.autopay_rules.save_rule": ((Role.CS, Role.PARTNER), True,
                          lambda w, p, pid, d: autopay_rules.save_rule(w.engine, p, pid, _rule(d), now=NOW)),
    "core.actions.autopay_rules.delete_rule": ((Role.CS, Role.PARTNER), True,
                                               lambda w, p, pid, d: autopay_rules.delete_rule(
        w.engine, p, pid, d.draw(st.integers(1, 5), label="rule id"), now=NOW)),
    "core.actions.autopay_rules.assign_subtype": ((Role.CS, Role.PARTNER), True,
                                                  lambda w, p, pid, d: autopay_rules.assign_subtype(
        w.engine, p, pid, d.draw(st.integers(1, 5), label="rule id"),
        d.draw(st.sampled_from([*SUBTYPE_IDS, 9]), label="subtype"), now=NOW)),
    "core.actions.subtype_names.set_lookup": ((Role.CS, Role.PARTNER), True,
                                              lambda w, p, pid, d: subtype_names.set_lookup(
        w.engine, p, pid, d.draw(st.sampled_from([None, 58, *(e.subtype_lookup_id for e in w.emulators.values())]),
                                 label="lookup id"), now=NOW, settings=w.settings, client_factory=w.factory())),
    "core.actions.subtype_names.set_name": ((Role.CS, Role.PARTNER), True,
                                            lambda w, p, pid, d: subtype_names.set_name(
        w.engine, p, pid, d.draw(st.sampled_from([*SUBTYPE_IDS, 9]), label="subtype"),
        d.draw(st.sampled_from(["", "Renamed"]), label="name"), now=NOW)),
    "core.console.subtypes.subtype_names": ((Role.CS, Role.PARTNER), True,
                                            lambda w, p, pid, d: subtypes.subtype_names(w.engine, p, pid)),
    "core.console.agreements.list_rules": ((Role.CS, Role.PARTNER), True,
        lambda w, p, pid, d: agreements.list_rules(w.engine, p, pid)),
    "core.console.agreements.subtype_summary": ((Role.CS, Role.PARTNER), True,
                                lambda w, p, pid, d: agreements.subtype_summary(w.engine, p, pid, now=NOW)),
    "core.console.agreements.preview": ((Role.CS, Role.PARTNER), True,
                        lambda w, p, pid, d: agreements.preview(w.engine, p, pid, _rule(d), now=NOW)),
    "core.console.overview.overview": ((Role.CS,), False,
                       lambda w, p, pid, d: overview.overview(w.engine, p, now=NOW, settings=w.settings)),
    "core.console.support_bundle.build": ((Role.CS,), True,
                                          lambda w, p, pid, d: support_bundle.build(w.engine, p, pid, now=NOW)),
    "core.console.overview.issues": ((Role.CS,), False, lambda w, p, pid, d: overview.issues(w.engine, p, now=NOW)),
    "core.console.overview.recently_resolved": ((Role.CS,), False,
                                                lambda w, p, pid, d: overview.recently_resolved(w.engine, p, now=NOW)),
    "core.actions.issues.snooze": ((Role.CS,), False, lambda w, p, pid, d: issue_actions.snooze(
        w.engine, p, d.draw(st.integers(1, 9), label="issue id"), NOW + timedelta(days=1),
        f"{_name(w, pid)} asked to wait", now=NOW)),
    "core.actions.issues.unsnooze": ((Role.CS,), False, lambda w, p, pid, d: issue_actions.unsnooze(
        w.engine, p, d.draw(st.integers(1, 9), label="issue id"), now=NOW)),
    "core.console.adoption.funnel": ((Role.CS, Role.PM), False,
                                     lambda w, p, pid, d: adoption.funnel(w.engine, p, ADOPTION_PERIOD)),
    "core.console.adoption.records_per_day": ((Role.CS, Role.PM), False,
                                 lambda w, p, pid, d: adoption.records_per_day(w.engine, p, ADOPTION_PERIOD)),
    "core.console.adoption.success_rate_per_day": ((Role.CS, Role.PM), False,
                                      lambda w, p, pid, d: adoption.success_rate_per_day(w.engine, p, ADOPTION_PERIOD)),
    "core.console.adoption.manual_fetches_per_day": ((Role.CS, Role.PM), False,
                                    lambda w, p, pid, d: adoption.manual_fetches_per_day(w.engine, p, ADOPTION_PERIOD)),
    "core.console.adoption.cooldown_pressure": ((Role.CS, Role.PM), False,
                                   lambda w, p, pid, d: adoption.cooldown_pressure(w.engine, p, ADOPTION_PERIOD)),
    "core.console.adoption.autopay_coverage": ((Role.CS, Role.PM), False,
                                  lambda w, p, pid, d: adoption.autopay_coverage(w.engine, p)),
    "core.console.adoption.partner_breakdown": ((Role.CS, Role.PM), False,
                                   lambda w, p, pid, d: adoption.partner_breakdown(w.engine, p, ADOPTION_PERIOD)),
    "core.console.adoption.week_over_week": ((Role.CS, Role.PM), False,
                                lambda w, p, pid, d: adoption.week_over_week(w.engine, p, ADOPTION_PERIOD)),
    "core.console.adoption.export_csv": ((Role.CS, Role.PM), False,
                            lambda w, p, pid, d: adoption.export_csv(w.engine, p, ADOPTION_PERIOD, now=NOW)),
    "core.console.adoption.report": ((Role.CS, Role.PM), False,
        lambda w, p, pid, d: adoption.report(w.engine, p, ADOPTION_PERIOD)),
    "core.console.audit_log.filter_options": ((Role.CS,), False,
        lambda w, p, pid, d: audit_log.filter_options(w.engine, p)),
    "core.console.audit_log.events": ((Role.CS,), False, lambda w, p, pid, d: audit_log.events(
        w.engine, p, partner_id=d.draw(st.sampled_from([None, pid]), label="audit partner"))),
    "core.console.audit_log.export_csv": ((Role.CS,), False, lambda w, p, pid, d: audit_log.export_csv(
        w.engine, p, audit_log.Filters(partner_id=d.draw(st.sampled_from([None, pid]), label="audit partner")),
        now=NOW)),
    "core.console.audit_log.download_refusal": ((Role.CS,), False,
        lambda w, p, pid, d: audit_log.download_refusal(w.engine, p, rows=d.draw(st.integers(0, 5), label="rows"),
                                                        now=NOW)),
    "core.console.connection.require_new_partner_name": ((Role.CS,), False, lambda w, p, pid, d:
                                                         connection_screen.require_new_partner_name(
                                                             w.engine, p, _name(w, pid))),
    "core.console.connection.stored_connection": ((Role.CS, Role.PARTNER), True,
                                          lambda w, p, pid, d: connection_screen.stored_connection(w.engine, p, pid)),
    "core.actions.fetches.request_manual_fetch": ((Role.CS, Role.PARTNER), True,
        lambda w, p, pid, d: fetches.request_manual_fetch(
            w.engine, p, partner_id=pid, kind=d.draw(st.sampled_from([RunKind.FETCH_NEW_DATA, RunKind.FETCH_UNPAID]),
                                                     label="kind"), now=NOW, settings=w.settings)),
    "core.actions.fetches.request_tenant_check": ((Role.CS, Role.PARTNER), True,
        lambda w, p, pid, d: fetches.request_tenant_check(w.engine, p, partner_id=pid, now=NOW)),
    "core.actions.reconcile.request_reconcile": ((Role.CS,), True, lambda w, p, pid, d: reconcile_actions
                                                 .request_reconcile(w.engine, p, partner_id=pid, now=NOW,
                                                                    settings=w.settings)),
    "core.actions.reconcile.request_resync": ((Role.CS,), True, lambda w, p, pid, d: reconcile_actions
                                              .request_resync(w.engine, p, partner_id=pid, now=NOW,
                                                              settings=w.settings)),
    "core.actions.reconcile.reconcile_now": ((Role.CS,), True, lambda w, p, pid, d: reconcile_actions.reconcile_now(
        w.engine, p, partner_id=pid, now=NOW, settings=w.settings, client_factory=w.factory())),
    "core.console.reconciliation.latest": ((Role.CS,), True,
                                           lambda w, p, pid, d: reconciliation.latest(w.engine, p, pid)),
    "core.console.reconciliation.offer": ((Role.CS,), True,
                                          lambda w, p, pid, d: reconciliation.offer(w.engine, p, pid, w.settings)),
    "core.console.reconciliation.report": ((Role.CS,), True,
                                           lambda w, p, pid, d: reconciliation.report(w.engine, p, pid)),
    "core.console.reconciliation.fleet": ((Role.CS,), False, lambda w, p, pid, d: reconciliation.fleet(w.engine, p)),
    "core.console.connection.tenant_check": ((Role.CS, Role.PARTNER), True,
                                             lambda w, p, pid, d: connection_screen.tenant_check(w.engine, p, pid)),
    "core.actions.fetches.cancel_sync": ((Role.CS,), True, lambda w, p, pid, d: fetches.cancel_sync(
        w.engine, p, partner_id=pid, job_id=d.draw(st.integers(1, 3), label="job"), now=NOW)),
    "core.actions.fetches.start_manual_fetch": ((Role.CS, Role.PARTNER), True,
        lambda w, p, pid, d: fetches.start_manual_fetch(
            w.engine, p, partner_id=pid, kind=d.draw(st.sampled_from([RunKind.FETCH_NEW_DATA, RunKind.FETCH_UNPAID]),
                                                     label="kind"),
            now=NOW + timedelta(hours=d.draw(st.integers(0, 30), label="hours later")), settings=w.settings,
            client_factory=w.factory())),
    "core.actions.connect.validate_form": ((Role.CS, Role.PARTNER), True,
        lambda w, p, pid, d: connections.validate_form(
            w.engine, p, _form(w, pid, d), settings=w.settings, today=NOW.date())),
    "core.actions.connect.save": ((Role.CS, Role.PARTNER), True, lambda w, p, pid, d: connections.save(
        w.engine, p, _clean(w, pid, d), connections.Verification(f"https://{_form(w, pid, d).app_domain}",
                                                                  REQUIRED_SCOPES, ()), now=NOW, settings=w.settings)),
    "core.actions.connect.connect": ((Role.CS, Role.PARTNER), True, lambda w, p, pid, d: connections.connect(
        w.engine, p, _form(w, pid, d), now=NOW, settings=w.settings,
        transport=(w.emulators.get(pid) or HaloEmulator(seed=9, invoices=10, client_id="umbrella-client-id",
                                                        client_secret="umbrella-secret")).transport())),
    "core.actions.connect.connect_and_backfill": ((Role.CS, Role.PARTNER), True,
                                                  lambda w, p, pid, d: _connect_and_backfill(w, p, pid, d)),
    "core.actions.connect.check_connection": ((Role.CS, Role.PARTNER), True, lambda w, p, pid, d:
        connections.check_connection(w.engine, p, _form(w, pid, d), now=NOW, settings=w.settings, transport=(
            w.emulators.get(pid) or HaloEmulator(seed=9, invoices=10, client_id="umbrella-client-id",
                                                 client_secret="umbrella-secret")).transport())),
    "core.actions.connect.shared_tenant": ((Role.CS, Role.PARTNER), True, lambda w, p, pid, d:
        connections.shared_tenant(w.engine, p, app_domain=f"https://{_form(w, pid, d).app_domain}",
                                  client_id=_form(w, pid, d).client_id, partner_id=pid)),
    "core.console.connection.renumber_preview": ((Role.CS, Role.PARTNER), True, lambda w, p, pid, d:
        connection_screen.renumber_preview(w.engine, p, pid, d.draw(
            st.sampled_from([NumberField.HALO_ID.value, NumberField.THIRD_PARTY.value]), label="field"))),
    "core.console.tracer.trace": ((Role.CS, Role.PARTNER), True, lambda w, p, pid, d: tracer.trace(
        w.engine, p, pid, _invoice_typed(w, pid, d), now=NOW, schedule_interval=timedelta(hours=1))),
    "core.actions.trace_lookup.look_up": ((Role.CS, Role.PARTNER), True, lambda w, p, pid, d: trace_lookup.look_up(
        w.engine, p, pid, _invoice_typed(w, pid, d), now=NOW, settings=w.settings, client_factory=w.factory())),
    "core.console.alert_config.alerts_view": ((Role.CS,), False,
                                              lambda w, p, pid, d: alert_config.alerts_view(w.engine, p,
                                                                                            settings=w.settings)),
}
def _connect_and_backfill(w: World, principal: Principal, pid: int, d: Any) -> Any:
    """Connect through the partner's own tenant (a made-up one for a partner without one), then backfill from it."""
    transport = (w.emulators.get(pid) or HaloEmulator(seed=9, invoices=10, client_id="umbrella-client-id",
                                                      client_secret="umbrella-secret")).transport()
    return connections.connect_and_backfill(
        w.engine, principal, _form(w, pid, d), now=NOW, settings=w.settings, transport=transport,
        client_factory=connector.stored_client_factory(w.settings, transport=transport))


# Functions that return what the caller typed (the connection form it is checking), secret included.
RETURNS_TYPED_SECRET = {"core.actions.connect.validate_form"}


def _read_model_and_action_modules() -> list[ModuleType]:
    """Every module of core.console and core.actions (the layers that take a Principal), found by walking them."""
    import core.actions
    import core.console

    return [importlib.import_module(info.name) for package in (core.console, core.actions)
            for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")]


def _public_principal_functions() -> set[str]:
    found = set()
    for module in _read_model_and_action_modules():
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if function.__module__ != module.__name__ or name.startswith("_"):
                continue
            if any(p.annotation in ("Principal", Principal) for p in inspect.signature(function).parameters.values()):
                found.add(f"{module.__name__}.{name}")
    return found


def test_every_view_and_action_is_covered():
    assert _public_principal_functions() == set(CALLS)


# ---- the property -------------------------------------------------------------------------------------------------

def render(value: Any) -> str:
    """Everything a result holds, as text: frames, dataclasses, mappings, sequences, iterators."""
    if isinstance(value, pd.DataFrame):
        return value.to_csv() + " ".join(map(str, value.columns))
    if isinstance(value, pd.Series):
        return value.to_csv()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return " ".join(render(getattr(value, f.name)) for f in dataclasses.fields(value)) + " " + repr(value)
    if isinstance(value, dict):
        return " ".join(f"{render(k)} {render(v)}" for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return " ".join(render(v) for v in value)
    return str(value)


def snapshot(engine: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table: a refused call must leave this unchanged."""
    with engine.connect() as conn:
        return {table.name: [tuple(row) for row in conn.execute(select(table))]
                for table in SQLModel.metadata.sorted_tables}


def may_see(world: World, principal: Principal, prefix: str) -> set[str]:
    """Which kinds of a partner's markers this principal may see."""
    if principal.role == Role.CS:
        return {"name", "rows", "connection", "secret"}
    if principal.role == Role.PARTNER and principal.partner_id == world.ids[prefix]:
        return {"name", "rows", "connection", "secret"}
    return {"name"} if principal.role == Role.PM else set()


principals = st.one_of(
    st.builds(Principal, role=st.just(Role.CS), user=st.sampled_from(["cs@example.com", "ops@example.com"])),
    st.builds(Principal, role=st.just(Role.PM), user=st.just("pm@example.com")),
    st.builds(Principal, role=st.just(Role.PARTNER), user=st.sampled_from(["ap@partner.example", "x@y.example"]),
              partner_id=st.sampled_from([1, 2, 3, MISSING_PARTNER])),
)


@hypothesis_settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(CALLS)), principal=principals,
       target=st.sampled_from([1, 2, 3, MISSING_PARTNER, None]), data=st.data())
def test_no_principal_ever_gets_another_partners_rows_or_a_secret(world, name, principal, target, data):
    roles, scoped, call = CALLS[name]
    if target is None and name not in ("connections.validate_form", "connections.save", "connections.connect"):
        target = MISSING_PARTNER  # only the connection form has a "new partner"
    may_act = principal.role in roles and (
        not scoped or principal.role == Role.CS
        or (principal.role == Role.PARTNER and target is not None and principal.partner_id == target))
    # an export audited against a partner that does not exist cannot come from the console (no partner is ever
    # deleted); it fails on the audit row's foreign key
    assume(not (name == "invoices_screen.export_csv" and target == MISSING_PARTNER and may_act))
    before = snapshot(world.engine)
    try:
        result = call(world, principal, target, data)
    except (AccessDenied, NotFound) as refused:
        outcome, text = "refused", refused.message
    except ConsoleError as error:
        assert may_act, f"{name} for {principal} on {target}: {error.message} (expected AccessDenied/NotFound)"
        outcome, text = "error", error.message
    else:
        outcome, text = "result", render(result)
    if not may_act:
        assert outcome == "refused", f"{name} let {principal} act on {target}"
        assert snapshot(world.engine) == before, f"{name} refused {principal} but changed the database"
    for prefix in PREFIXES:
        visible = may_see(world, principal, prefix)
        for kind, markers in world.markers(prefix).items():
            if kind in visible and not (kind == "secret" and name not in RETURNS_TYPED_SECRET):
                continue
            if outcome == "refused" and kind == "name":
                continue  # "No partner named “X”" repeats the name the caller typed
            for marker in markers:
                assert marker not in text, f"{name} showed {principal} {kind} of {prefix}: {marker!r}"
