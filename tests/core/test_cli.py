"""`python -m core` end to end: a real subprocess against the emulator on a real loopback socket."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import zipfile
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from core.cli import main as cli_main
from core.console import exports
from core.health import issues
from core.settings import PROJECT_ROOT, Settings
from core.store import database as db
from core.store import run_days, tables
from core.store.tables import AUDIT_TABLE, NumberField
from core.sync import scheduler
from halo_emulator import FaultRule, HaloEmulator, serve
from tests.support import databases
from tests.support.clock import NOW, TEST_KEY
from tests.support.factories import add_partner
from tests.support.halo_state import cents, expected_invoices
from tests.support.invoice_book import add_book, invoice

ROOT = PROJECT_ROOT
SECRET = "cli-test-secret-value"


@pytest.fixture(scope="module")
def tenant():
    emu = HaloEmulator(seed=21, invoices=20_000, start=NOW, client_secret=SECRET, activity=3)
    with serve(emu) as server:
        yield emu, server.url


def cli_env(tmp_path: Path, *, now=None, secret: str | None = SECRET) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HALO_")}
    env.update(DATABASE_URL=databases.database_url(tmp_path, "cli"), HALO_CONSOLE_SECRET_KEY=TEST_KEY,
               HALO_ALLOW_LOCAL_DOMAINS="1", HALO_CONSOLE_NOW=(now or NOW).isoformat(), PYTHONPATH=str(ROOT))
    if secret is not None:
        env["HALO_CLIENT_SECRET"] = secret
    return env


def cli(tmp_path: Path, *args: str, now=None, secret: str | None = SECRET) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT,
                          env=cli_env(tmp_path, now=now, secret=secret), capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


def invoices_json(tmp_path, *extra, now=None) -> dict[int, dict]:
    result = cli(tmp_path, "invoices", "--partner", "Acme", "--format", "json", *extra, now=now)
    assert result.returncode == 0, result.stderr
    return {row["halo_id"]: row for row in json.loads(result.stdout)}


def as_expected(row: dict) -> dict:
    return {"halo_id": row["halo_id"], "number": row["number"], "total": cents(row["total"]),
            "amount_due": cents(row["amount_due"]), "amount_paid": cents(row["amount_paid"]), "status": row["status"],
            "due_date": row["due_date"], "agreement_ref": row["agreement_ref"],
            "agreement_subtype_id": row["agreement_subtype_id"]}


def test_connect_status_invoices_then_incremental_syncs_and_cooldowns(tenant, tmp_path):
    emu, url = tenant
    connect = cli(tmp_path, "connect", "--partner", "Acme", "--domain", url, "--client-id", emu.client_id,
                  "--invoice-number-field", "third_party")
    assert connect.returncode == 0, connect.stderr
    assert SECRET not in connect.stdout + connect.stderr

    status = json.loads(cli(tmp_path, "status", "--partner", "Acme", "--json").stdout)
    expected = expected_invoices(emu, "third_party")
    unpaid = sum(1 for row in expected.values() if row["status"] in ("unpaid", "partially_paid"))
    assert status["partner"] == "Acme" and status["integration_role"] == "primary"
    assert status["invoice_number_field"] == "third_party"
    assert status["counts"] == {"customers": len(emu.clients), "invoices": 20_000, "unpaid_invoices": unpaid,
                                "agreements": len(emu.contracts)}
    assert status["runs"][0]["kind"] == "backfill" and status["runs"][0]["status"] == "succeeded"
    assert status["cooldowns"] == {k: {"available_at": None, "remaining_s": 0, "last_started_at": None,
                                       "last_actor": None} for k in ("fetch_new_data", "fetch_unpaid")}

    exported = invoices_json(tmp_path)
    assert {i: as_expected(row) for i, row in exported.items()} == expected
    assert all(row["total"].count(".") == 1 and len(row["total"].split(".")[1]) == 2 for row in exported.values())
    assert sum(cents(r["amount_due"]) for r in exported.values()) == sum(r["amount_due"] for r in expected.values())

    # the clock moves: new, edited and paid invoices; Fetch new data takes exactly the last hour's changes
    before = exported
    changes = emu.advance(emu.now + timedelta(hours=3))
    later = emu.now
    recent = changes.since(later - timedelta(hours=1))
    assert recent.invoices_created and recent.invoices_paid
    fetch = cli(tmp_path, "sync", "new-data", "--partner", "Acme", now=later)
    assert fetch.returncode == 0, fetch.stderr
    after = invoices_json(tmp_path, now=later)
    expected = expected_invoices(emu, "third_party")
    changed = {i for i in after if after[i] != before.get(i)}
    assert changed == {i for i in recent.invoice_ids() if i not in before or expected[i] != as_expected(before[i])}
    for halo_id in recent.invoice_ids():
        assert as_expected(after[halo_id]) == expected[halo_id]

    # inside the cooldown: exit 3 with the remaining time and the exact UTC time
    again = cli(tmp_path, "sync", "new-data", "--partner", "Acme", now=later + timedelta(minutes=15))
    assert again.returncode == 3
    assert "45 min" in again.stderr and (later + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S UTC") in again.stderr

    # Fetch unpaid invoices brings every unpaid invoice up to date
    assert cli(tmp_path, "sync", "unpaid", "--partner", "Acme", now=later).returncode == 0
    unpaid_rows = invoices_json(tmp_path, "--unpaid", now=later)
    expected_unpaid = {i: r for i, r in expected.items() if r["status"] in ("unpaid", "partially_paid")}
    assert {i: as_expected(r) for i, r in unpaid_rows.items()} == expected_unpaid

    status = json.loads(cli(tmp_path, "status", "--partner", "Acme", "--json", now=later).stdout)
    assert [r["kind"] for r in status["runs"][:3]] == ["fetch_unpaid", "fetch_new_data", "backfill"]
    assert status["cooldowns"]["fetch_unpaid"]["available_at"] == (later + timedelta(hours=12)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")

    table = list(csv.DictReader(io.StringIO(
        cli(tmp_path, "invoices", "--partner", "Acme", "--unpaid", "--format", "csv", now=later).stdout)))
    assert len(table) == len(expected_unpaid)


def test_a_secondary_connection_refuses_manual_fetches(tenant, tmp_path):
    emu, url = tenant
    result = cli(tmp_path, "connect", "--partner", "Acme", "--domain", url, "--client-id", emu.client_id, "--secondary")
    assert result.returncode == 0, result.stderr
    refused = cli(tmp_path, "sync", "unpaid", "--partner", "Acme")
    assert refused.returncode == 2
    assert "primary integration" in refused.stderr
    assert json.loads(cli(tmp_path, "status", "--partner", "Acme", "--json").stdout)["counts"]["invoices"] == 0


@pytest.mark.parametrize(
    ("args", "secret", "code", "words"),
    [
        (["--domain", "http://acme.halopsa.com"], SECRET, 2, "https"),
        (["--domain", "URL"], "wrong-secret", 4, "rejected the client ID or secret"),
        (["--domain", "URL"], None, 2, "HALO_CLIENT_SECRET"),
        (["--domain", "URL", "--since", "2025-13-01"], SECRET, 2, "Invoices Created Since"),
    ],
)
def test_bad_input_exits_with_a_clear_message_and_saves_nothing(tenant, tmp_path, args, secret, code, words):
    emu, url = tenant
    args = [a.replace("URL", url) for a in args]
    result = cli(tmp_path, "connect", "--partner", "Acme", "--client-id", emu.client_id, *args, secret=secret)
    assert result.returncode == code, result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    missing = cli(tmp_path, "status", "--partner", "Acme", "--json")
    assert missing.returncode == 2 and "No partner named" in missing.stderr


def test_missing_permissions_are_named_and_nothing_is_saved(tmp_path):
    emu = HaloEmulator(seed=3, invoices=50, start=NOW, client_secret=SECRET,
                       granted_scopes=("read:customers", "read:invoices", "read:contracts", "edit:customers"))
    with serve(emu) as server:
        result = cli(tmp_path, "connect", "--partner", "Acme", "--domain", server.url, "--client-id", emu.client_id)
    assert result.returncode == 4
    assert "admin:webhooks, edit:contracts, edit:invoices" in result.stderr
    assert cli(tmp_path, "status", "--partner", "Acme", "--json").returncode == 2


# ---- exports (issue 13, findings 5 and 9) -------------------------------------------------------------------------

def _book_database(tmp_path: Path, books: list) -> Engine:
    """The CLI's database holding partner "Acme" with `books` (invoice_book invoices, numbered by their third-party
    number), written directly: no emulator needed."""
    settings = Settings(database_url=databases.database_url(tmp_path, "cli"), secret_key=TEST_KEY, fixed_now=NOW)
    databases.prepare(settings)
    engine = db.engine_for(settings)
    partner_id = add_partner(engine, settings, name="Acme", now=NOW, number_field=NumberField.THIRD_PARTY)
    add_book(engine, partner_id, books)
    return engine


def _export_events(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(select(AUDIT_TABLE.c.detail).where(AUDIT_TABLE.c.action == "export")))


def test_the_csv_export_neutralises_formula_text_and_keeps_negative_amounts(tmp_path):
    # (no carriage return here: the helper reads stdout as text, which turns it into a line feed; the table of
    # payloads in tests/core/console/test_exports.py has it)
    payloads = [" =1+1", "\n=2+3", "＝HYPERLINK(\"http://evil.example\")", ";=1+1", "\t=1+1", "-2+3"]
    books = [invoice(i, due=date(2026, 10, 1), total=1_000, number=text) for i, text in enumerate(payloads, 1)]
    engine = _book_database(tmp_path, [*books, invoice(99, due=date(2026, 10, 1), total=-250, number="CN-1")])

    result = cli(tmp_path, "invoices", "--partner", "Acme", "--format", "csv")

    assert result.returncode == 0, result.stderr
    rows = {int(row["halo_id"]): row for row in csv.DictReader(io.StringIO(result.stdout, newline=""))}
    assert {i: rows[i]["number"] for i in range(1, len(payloads) + 1)} == {
        i: "'" + text for i, text in enumerate(payloads, 1)}
    assert rows[99]["total"] == "-2.50" and rows[99]["amount_due"] == "-2.50"
    assert rows[1]["customer"] == "Alpha Co"
    assert _export_events(engine) == [f"Invoices CSV from the command line: {len(payloads) + 1} rows"]


def test_the_export_streams_to_stdout_in_bounded_chunks(tmp_path, monkeypatch, capsys):
    total = 2 * exports.CHUNK_ROWS + 5
    engine = _book_database(tmp_path, [invoice(i, due=date(2026, 10, 1), total=1_000) for i in range(1, total + 1)])
    for key, value in cli_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    writes: list[str] = []

    class Recorder(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

    monkeypatch.setattr(sys, "stdout", Recorder())
    assert cli_main(["invoices", "--partner", "Acme", "--format", "csv"]) == 0

    assert len(list(csv.reader(io.StringIO("".join(writes), newline="")))) == total + 1
    assert len(writes) == 3  # one write per chunk of rows, never the whole export at once
    assert max(map(len, writes)) < 200 * (exports.CHUNK_ROWS + 1)
    assert len(_export_events(engine)) == 1


def test_a_reader_that_stops_early_gets_a_message_not_a_traceback_and_the_export_is_audited(tmp_path):
    engine = _book_database(tmp_path, [invoice(i, due=date(2026, 10, 1), total=1_000) for i in range(1, 5_001)])
    export = subprocess.Popen([sys.executable, "-m", "core", "invoices", "--partner", "Acme", "--format", "csv"],
                              cwd=ROOT, env=cli_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert export.stdout is not None and export.stderr is not None
    export.stdout.readline()  # the header, then the reader goes away (as `| head -1` does)
    export.stdout.close()
    stderr = export.stderr.read().decode()
    assert export.wait(timeout=60) == 4
    assert "Traceback" not in stderr and "output was closed" in stderr
    [event] = _export_events(engine)
    assert "stopped" in event


def test_each_scheduler_tick_updates_the_overviews_issues(tmp_path, monkeypatch, capsys):
    engine = _book_database(tmp_path, [invoice(1, due=date(2026, 10, 1), total=1_000)])
    for key, value in cli_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    with engine.begin() as conn:  # as a failed sync leaves it
        conn.execute(tables.CONNECTION_TABLE.update().values(missing_scopes="read:invoices"))
    monkeypatch.setattr(scheduler, "enqueue_due", lambda *a, **k: [])  # nothing to queue: no HaloPSA needed
    assert cli_main(["scheduler", "--once", "--tick", "0"]) == 0
    assert "Issues: opened permissions_missing (partner 1)" in capsys.readouterr().err
    with engine.connect() as conn:
        assert "permissions_missing" in {row.type for row in conn.execute(select(tables.ISSUE_TABLE))}


@pytest.mark.parametrize(("module", "step", "said"), [
    (issues, "evaluate", "Could not update the Overview's issues"),
    (run_days, "advance", "Could not roll up the Adoption page's run totals")])
def test_a_failing_tick_step_is_said_and_scheduling_goes_on(tmp_path, monkeypatch, capsys, module, step, said):
    _book_database(tmp_path, [])
    for key, value in cli_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    queued = []
    monkeypatch.setattr(scheduler, "enqueue_due", lambda *a, **k: queued.append(1) or [])

    def broken(*args, **kwargs):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(module, step, broken)
    assert cli_main(["scheduler", "--once", "--tick", "0"]) == 0
    assert queued == [1]
    assert f"{said} (RuntimeError: database is locked); syncs are still scheduled" in capsys.readouterr().err


def test_a_scheduler_tick_rolls_up_the_runs_finished_an_hour_before_it(tmp_path, monkeypatch):
    engine = _book_database(tmp_path, [])
    for key, value in cli_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    assert cli_main(["scheduler", "--once", "--tick", "0"]) == 0
    with engine.connect() as conn:
        mark = conn.scalar(select(tables.SETTING_TABLE.c.value).where(tables.SETTING_TABLE.c.key == run_days.MARK))
    assert mark == (NOW - run_days.MARGIN).isoformat()


def test_bundle_writes_a_partners_support_zip_and_never_over_an_existing_file(tmp_path, monkeypatch, capsys):
    _book_database(tmp_path, [invoice(1, due=date(2026, 10, 1), total=1_000)])
    for key, value in cli_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    target = tmp_path / "acme.zip"
    assert cli_main(["bundle", "--partner", "Acme", "--output", str(target)]) == 0
    with zipfile.ZipFile(target) as archive:
        assert "connection.json" in archive.namelist() and "runs.csv" in archive.namelist()
    assert f"Wrote {target}" in capsys.readouterr().out
    written = target.read_bytes()
    assert cli_main(["bundle", "--partner", "Acme", "--output", str(target)]) == 2
    assert "already exists: nothing was written" in capsys.readouterr().err
    assert target.read_bytes() == written
    assert cli_main(["bundle", "--partner", "Nobody", "--output", str(tmp_path / "nobody.zip")]) == 2
    assert not (tmp_path / "nobody.zip").exists()


def test_trace_answers_from_local_data_and_asks_halopsa_only_with_live(tmp_path, monkeypatch, capsys):
    emu = HaloEmulator(seed=3, invoices=10, start=NOW, client_secret=SECRET, rate_limit=None)
    settings = Settings(database_url=databases.database_url(tmp_path, "cli"), secret_key=TEST_KEY, fixed_now=NOW)
    databases.prepare(settings)
    engine = db.engine_for(settings)
    for key, value in {**cli_env(tmp_path), "HALO_MAX_ATTEMPTS": "1"}.items():
        monkeypatch.setenv(key, value)
    with serve(emu) as server:
        partner_id = add_partner(engine, settings, name="Acme", now=NOW, app_domain=server.url,
                                 client_id=emu.client_id, client_secret=SECRET, number_field=NumberField.THIRD_PARTY)
        add_book(engine, partner_id, [invoice(105, due=date(2026, 10, 1), total=20_000, voided=True)])

        assert cli_main(["trace", "--partner", "Acme", " #INV-105"]) == 0
        said = capsys.readouterr()
        assert said.out.startswith("voided: Invoice INV-105 (HaloPSA ID 105) was voided in HaloPSA") and "  Next: " \
            in said.out and said.err == ""

        assert cli_main(["trace", "--partner", "Acme", "NOPE-9", "--json"]) == 0
        said = capsys.readouterr()
        unknown = json.loads(said.out)
        assert unknown["invoices"][0]["answer"] == "unknown_here" and unknown["can_look_up"] and not unknown["live"]
        assert 'python -m core trace --partner "Acme" "NOPE-9" --live' in said.err

        halo_id = max(emu.invoices)
        assert cli_main(["trace", "--partner", "Acme", str(halo_id), "--live", "--json"]) == 0
        live = json.loads(capsys.readouterr().out)
        assert live["live"] and live["requests"] >= 1 and live["invoices"][0]["halo_id"] == halo_id

        emu.add_fault(FaultRule(kind="status", status=503, times=10**6))
        assert cli_main(["trace", "--partner", "Acme", "12345", "--live"]) == 4
        assert "Try the lookup again in a few minutes" in capsys.readouterr().err
    assert cli_main(["trace", "--partner", "Nobody", "1"]) == 2
    with engine.connect() as conn:
        looked_up = list(conn.scalars(select(AUDIT_TABLE.c.detail).where(AUDIT_TABLE.c.action == "trace_lookup")))
    assert len(looked_up) == 2 and "not answered" in looked_up[-1]


def test_reconcile_prints_counts_unpaid_per_currency_the_differing_ids_and_the_cost(tmp_path):
    emu = HaloEmulator(seed=4, invoices=300, start=NOW, client_secret=SECRET, rate_limit=None)
    with serve(emu) as server:
        connected = cli(tmp_path, "connect", "--partner", "Acme", "--domain", server.url, "--client-id",
                        emu.client_id)
        assert connected.returncode == 0, connected.stderr
        deleted = next(iter(emu.invoices))
        emu.delete_invoice(deleted)
        found = cli(tmp_path, "reconcile", "--partner", "Acme", "--json")
        assert found.returncode == 0, found.stderr
        result = json.loads(found.stdout)
        assert result["status"] == "succeeded" and result["drift"] == 1
        assert result["differences"]["extra_here"] == [deleted]
        assert result["halopsa"]["invoices"] == len(emu.invoices) and result["stored"]["invoices"] == 300
        assert 0 < result["requests"]["used"] <= result["requests"]["estimated"] + 1
        assert all(set(entry) == {"count", "amount_due"} for entry in result["halopsa"]["unpaid"].values())
        text = cli(tmp_path, "reconcile", "--partner", "Acme")
    assert text.returncode == 0, text.stderr
    assert "Differing invoices: 1" in text.stdout and f"extra_here: {deleted}" in text.stdout
    assert "HaloPSA unpaid per currency:" in text.stdout and "requests (estimated" in text.stdout
    assert SECRET not in found.stdout + found.stderr + text.stdout + text.stderr
    unknown = cli(tmp_path, "reconcile", "--partner", "Nobody")
    assert unknown.returncode == 2 and "Nobody" in unknown.stderr
