"""The client secret never leaves its encrypted column: after connecting, syncing (good runs, failed runs, record
errors), editing and exporting through the real command line against the emulator on a loopback socket, the
plaintext is in none of the SQLite file, its WAL (on PostgreSQL: any stored row), the logs (DEBUG, every logger), the
command output or the exports.
A wrong or missing encryption key is a clear error (CLI exit 2 with the message), never garbage, and never costs a
partner its cooldown."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from core import cli
from core.access import Principal
from core.actions import fetches
from core.console import exports, partners
from core.console import invoices as invoices_screen
from core.errors import SecretKeyError
from core.store.tables import COOLDOWN_TABLE, JOB_TABLE, RUN_TABLE, Partner, PartnerStatus, Role, RunKind, RunStatus
from core.sync import connector
from core.sync import engine as sync_engine
from halo_emulator import FaultRule, HaloEmulator, serve
from tests.support import databases
from tests.support.clock import NOW
from tests.support.factories import add_partner

SECRET = "Sup3rS3cret-6c1f0d2e-91ab"
ROTATED = "R0tated-9f8e7d6c-5b4a"
CS = Principal(role=Role.CS, user="cs@example.com")


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out + err


@pytest.fixture
def tenant():
    emu = HaloEmulator(seed=13, invoices=150, start=NOW, client_secret=SECRET, rate_limit=None, activity=10)
    with serve(emu) as server:
        yield emu, server.url


@pytest.fixture
def cli_env(settings, monkeypatch):
    for key, value in {"DATABASE_URL": settings.database_url, "HALO_CONSOLE_SECRET_KEY": settings.secret_key,
                       "HALO_ALLOW_LOCAL_DOMAINS": "1", "HALO_CONSOLE_NOW": NOW.isoformat(), "HALO_DEMO": "0",
                       "HALO_CLIENT_SECRET": SECRET, "HALO_PAGE_SIZE": "40", "HALO_MAX_ATTEMPTS": "2",
                       "HALO_BACKOFF_CAP_S": "0.01"}.items():
        monkeypatch.setenv(key, value)
    return settings


def test_the_plaintext_secret_is_nowhere_after_connect_syncs_failures_edits_and_exports(
        tenant, cli_env, capsys, caplog, monkeypatch, engine):
    emu, url = tenant
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    seen: list[str] = []

    def step(*argv: str, code: int = 0) -> str:
        exit_code, output = run_cli(capsys, *argv)
        assert exit_code == code, output
        seen.append(output)
        return output

    step("connect", "--partner", "Acme MSP", "--domain", url, "--client-id", emu.client_id,
         "--invoice-number-field", "third_party")
    later = NOW + timedelta(hours=2)
    emu.advance(later)
    monkeypatch.setenv("HALO_CONSOLE_NOW", later.isoformat())
    emu.add_fault(FaultRule(kind="malformed_record", path="/api/invoice", times=1))  # a record error is stored
    step("sync", "new-data", "--partner", "Acme MSP")
    step("sync", "unpaid", "--partner", "Acme MSP")
    emu.rotate_secret(ROTATED)  # revoked in HaloPSA: the next run fails with the credentials refused
    step("sync", "scheduled", "--partner", "Acme MSP", code=4)
    monkeypatch.setenv("HALO_CLIENT_SECRET", ROTATED)  # the edit: the partner's new secret
    step("connect", "--partner", "Acme MSP", "--domain", url, "--client-id", emu.client_id,
         "--invoice-number-field", "third_party")
    step("status", "--partner", "Acme MSP", "--json")
    exported = [step("invoices", "--partner", "Acme MSP", "--format", fmt) for fmt in ("json", "csv")]
    partner_id = partners.partner_id_by_name(engine, CS, "Acme MSP")
    exported.append(invoices_screen.export_csv(engine, CS, partner_id, invoices_screen.Filters(), now=later).text)
    exported.append(json.dumps(list(exports.invoice_export_rows(engine, CS, partner_id)), default=str))

    assert len(json.loads(exported[0][: exported[0].rindex("]") + 1])) == len(emu.invoices)
    with engine.connect() as conn:
        statuses = list(conn.scalars(select(RUN_TABLE.c.status).order_by(RUN_TABLE.c.id)))
        assert conn.exec_driver_sql("select count(*) from syncrecorderror").scalar() >= 1
    assert RunStatus.FAILED in statuses and RunStatus.PARTIAL in statuses
    assert "HTTP Request: POST" in caplog.text  # the token requests were logged, and searched
    for secret in (SECRET, ROTATED):
        for where, stored in databases.stored_contents(cli_env.database_url):
            assert secret.encode() not in stored, f"{secret} in {where}"
        assert secret not in caplog.text
        for text in seen + exported:
            assert secret not in text


def test_a_wrong_or_missing_key_is_exit_2_with_the_message_and_records_nothing(tenant, cli_env, capsys, monkeypatch,
                                                                              engine):
    emu, url = tenant
    assert run_cli(capsys, "connect", "--partner", "Acme MSP", "--domain", url, "--client-id", emu.client_id)[0] == 0
    with engine.connect() as conn:
        runs_before = conn.scalar(select(func.count()).select_from(RUN_TABLE))
        cooldowns_before = conn.execute(select(COOLDOWN_TABLE)).all()

    monkeypatch.setenv("HALO_CONSOLE_SECRET_KEY", Fernet.generate_key().decode())  # another database's key
    code, output = run_cli(capsys, "sync", "new-data", "--partner", "Acme MSP")
    assert code == 2 and "Stored client secrets cannot be decrypted with the configured key" in output

    monkeypatch.setenv("HALO_CONSOLE_SECRET_KEY", "not-a-key")
    code, output = run_cli(capsys, "sync", "scheduled", "--partner", "Acme MSP")
    assert code == 2 and "not a valid key" in output and "HALO_CONSOLE_SECRET_KEY" in output

    # missing: the embedded default (SQLite) makes a new key file, not ours; a shared database refuses to start
    monkeypatch.delenv("HALO_CONSOLE_SECRET_KEY")
    code, output = run_cli(capsys, "sync", "unpaid", "--partner", "Acme MSP")
    assert code == 2
    assert ("HALO_CONSOLE_SECRET_KEY is not set" if databases.on_postgres() else "cannot be decrypted") in output

    assert "Traceback" not in run_cli(capsys, "status", "--partner", "Acme MSP")[1]
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(RUN_TABLE)) == runs_before
        assert conn.execute(select(COOLDOWN_TABLE)).all() == cooldowns_before


def test_a_fetch_that_cannot_decrypt_the_secret_is_refused_before_anything_is_queued_or_used(tenant, settings,
                                                                                               engine):
    emu, url = tenant
    partner_id = add_partner(engine, settings, now=NOW, app_domain=url, client_id=emu.client_id, client_secret=SECRET)
    wrong = replace(settings, secret_key=Fernet.generate_key().decode())
    with pytest.raises(SecretKeyError, match="cannot be decrypted"):
        fetches.start_manual_fetch(engine, CS, partner_id=partner_id, kind=RunKind.FETCH_NEW_DATA, now=NOW,
                                   settings=wrong, client_factory=connector.stored_client_factory(wrong))
    with engine.connect() as conn:
        assert conn.scalar(select(Partner.__table__.c.status)) == PartnerStatus.CONNECTED
        assert conn.execute(select(RUN_TABLE)).all() == [] and conn.execute(select(JOB_TABLE)).all() == []
    again = sync_engine.run_sync(engine, partner_id=partner_id, kind=RunKind.FETCH_NEW_DATA, trigger="manual",
                                 actor="cs", now=NOW, settings=settings,
                                 client_factory=connector.stored_client_factory(settings))
    assert again.status == RunStatus.SUCCEEDED  # the right key: the fetch is available at once
