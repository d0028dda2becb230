"""Bad input, fuzzed: every form and command-line input either works or is refused with a clear message (a
ConsoleError; for the CLI an exit code 0/2/3/4, never a traceback), and a refusal saves nothing.

Covered: the connection form (core.actions.connect, validate → verify → save), auto-pay rules as the Agreements page
builds them (core.actions.autopay_rules), the invoice table's filters and paging (core.console.invoices), and
`python -m core` with random arguments and configuration. No test here reaches the network: name resolution is
answered locally.
"""

from __future__ import annotations

import socket
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlmodel import SQLModel

from core import cli
from core.access import Principal
from core.actions import autopay_rules
from core.actions import connect as connections
from core.console import agreements
from core.console import invoices as invoices_screen
from core.errors import BadInput, ConsoleError
from core.store.tables import AuditAction, Connection, Partner, Role
from halo_emulator import HaloEmulator, serve
from tests.support.clock import NOW, TEST_KEY
from tests.support.factories import add_agreements, add_invoices, add_partner

CS = Principal(role=Role.CS, user="cs@example.com")


def fuzz(examples: int) -> hypothesis_settings:
    return hypothesis_settings(max_examples=examples, deadline=None,
                               suppress_health_check=[HealthCheck.function_scoped_fixture])


_REAL_GETADDRINFO = socket.getaddrinfo


@pytest.fixture(autouse=True)
def no_dns(monkeypatch):
    """Names resolve to nothing (loopback excepted, for the emulator): no fuzzed host is ever looked up for real."""

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host in ("127.0.0.1", "localhost", "::1"):
            return _REAL_GETADDRINFO(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, "not resolved in tests")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def snapshot(engine: Any) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {t.name: [tuple(r) for r in conn.execute(select(t))] for t in SQLModel.metadata.sorted_tables}


def saved_state(engine: Any) -> dict[str, list[tuple[Any, ...]]]:
    """What a form saves: everything but the audit events of credentials checks, which even a refused edit leaves
    (issue 13: every verification attempt is audited)."""
    state = snapshot(engine)
    state["auditevent"] = [row for row in state["auditevent"] if AuditAction.VERIFY_CONNECTION not in row]
    return state


def maybe(valid: st.SearchStrategy[Any], *, text_size: int = 40) -> st.SearchStrategy[Any]:
    """A valid value or anything a person could type instead."""
    return st.one_of(valid, st.text(max_size=text_size))


# ---- the connection form ------------------------------------------------------------------------------------------

EMULATOR = HaloEmulator(seed=4, invoices=10, start=NOW, rate_limit=None)


FORM_FUZZ: dict[str, st.SearchStrategy[Any]] = {
    "partner_name": maybe(st.sampled_from(["", "   ", "x" * 121, "Acme\tMSP"])),
    "app_domain": maybe(st.sampled_from(["", "http://acme.halopsa.com", "https://10.0.0.1", "https://[::1]",
                                         "https://acme.halopsa.com/api", "ftp://acme", "https://u:p@acme.halopsa.com",
                                         "https://acme.halopsa.com:99999", "https://169.254.169.254"])),
    "client_id": maybe(st.sampled_from(["", " ", "has space", "c" * 201, "wrong-client-id"])),
    "client_secret": st.one_of(st.none(), maybe(st.sampled_from(["", "wrong-secret", "s" * 501]))),
    "invoices_created_since": st.one_of(st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 1, 1)),
                                        maybe(st.sampled_from(["2099-01-01", "31/01/2025", "2025-02-30"]))),
    "invoice_number_field": maybe(st.sampled_from(["invoicenumber", "HALO_ID", ""])),
    "integration_role": maybe(st.sampled_from(["tertiary", "Primary", ""])),
    "tenant": maybe(st.sampled_from(["bad tenant!", "t" * 101, "ünïcode"])),
}


@st.composite
def connection_forms(draw: st.DrawFn) -> connections.ConnectionForm:
    """A valid form with up to three fields replaced by anything a person could type."""
    valid = {
        "partner_name": draw(st.sampled_from(["Acme MSP", "  Acme   MSP ", "Globex"])),
        "app_domain": draw(st.sampled_from(["acme", "acme.halopsa.com", "https://halo.example.com/",
                                            "trainee.sandbox"])),
        "client_id": EMULATOR.client_id, "client_secret": EMULATOR.client_secret,
        "invoices_created_since": draw(st.sampled_from([None, "2025-01-31", date(2024, 6, 1), "20250131"])),
        "invoice_number_field": draw(st.sampled_from(["halo_id", "third_party"])),
        "integration_role": draw(st.sampled_from(["primary", "secondary"])), "tenant": None,
    }
    for name in draw(st.sets(st.sampled_from(sorted(FORM_FUZZ)), max_size=3)):
        valid[name] = draw(FORM_FUZZ[name])
    return connections.ConnectionForm(**valid)


@fuzz(250)
@given(form=connection_forms())
def test_the_connection_form_saves_a_verified_connection_or_refuses_and_saves_nothing(engine, settings, form):
    before = saved_state(engine)
    unpaced = replace(settings, rate_limit_requests=10**6)  # 250 connects (each probing) to the same few hosts
    try:
        partner_id, verification = connections.connect(engine, CS, form, now=NOW, settings=unpaced,
                                                       transport=EMULATOR.transport())
    except ConsoleError as refused:
        event(f"refused: {type(refused).__name__}")
        assert refused.message.strip()
        assert EMULATOR.client_secret not in refused.message
        if isinstance(refused, BadInput) and refused.field:
            assert refused.field in connections.ConnectionForm.__dataclass_fields__
        assert saved_state(engine) == before, "a refused form changed the database"
        assert EMULATOR.client_secret not in str(snapshot(engine)["auditevent"])
        return
    event("saved")
    assert verification.ok
    with engine.connect() as conn:
        saved = conn.execute(select(Connection.__table__).where(Connection.__table__.c.partner_id == partner_id)).one()
        name = conn.scalar(select(Partner.__table__.c.name).where(Partner.__table__.c.id == partner_id))
    assert name == " ".join(form.partner_name.split())
    assert saved.client_id == form.client_id.strip() and saved.app_domain.startswith(("https://", "http://"))
    assert EMULATOR.client_secret not in saved.client_secret_encrypted


# ---- auto-pay rules ------------------------------------------------------------------------------------------------

@pytest.fixture
def partner_with_agreements(engine, settings):
    partner_id = add_partner(engine, settings, now=NOW)
    add_agreements(engine, partner_id, ["Managed Services", "Backup"], now=NOW)
    add_invoices(engine, partner_id, [(1, 12_000, 0), (2, 5_000, 1_000), (None, 700, 0)], now=NOW)
    return partner_id


@st.composite
def typed_rules(draw: st.DrawFn) -> dict[str, Any]:
    """What the Agreements page's widgets hold: a valid rule with some fields replaced by anything typed."""
    trigger = draw(st.sampled_from(autopay_rules.TRIGGERS))
    values = {"subtype": draw(st.sampled_from([1, 2])), "enabled": draw(st.booleans()),
              "trigger": trigger,
              "days": 0 if trigger == "on_due_date" else draw(st.integers(0, autopay_rules.MAX_DAYS)),
              "max_text": draw(st.sampled_from(["", "2500", "2,500.00", "999999999.99", "0.5"]))}
    fuzz = {"subtype": st.one_of(st.integers(-(2**64), 2**64), st.sampled_from([True, "1", " Backup", 2.0])),
            "trigger": st.text(max_size=20),
            "days": st.integers(-(10**6), 10**6),
            "max_text": maybe(st.sampled_from(["0", "-5", "0.001", "1e3", "NaN", "Infinity", "1e999999999", "1_000",
                                               "1000000000", "12..5"]))}
    for name in draw(st.sets(st.sampled_from(sorted(fuzz)), max_size=2)):
        values[name] = draw(fuzz[name])
    return values


@fuzz(250)
@given(typed=typed_rules())
def test_an_auto_pay_rule_as_typed_is_saved_or_refused_with_nothing_saved(engine, partner_with_agreements, typed):
    subtype, enabled, trigger, days = typed["subtype"], typed["enabled"], typed["trigger"], typed["days"]
    before = snapshot(engine)
    try:
        rule = autopay_rules.RuleInput(subtype, enabled, trigger, days, autopay_rules.parse_amount(typed["max_text"]))
        preview = agreements.preview(engine, CS, partner_with_agreements, rule, now=NOW)
        autopay_rules.save_rule(engine, CS, partner_with_agreements, rule, now=NOW)
    except BadInput as refused:
        event(f"refused: {refused.field}")
        assert refused.message.strip() and refused.field in ("subtype_id", "trigger", "days", "max_amount")
        assert snapshot(engine) == before
        return
    event("saved")
    assert preview.covered_count + preview.excluded_count == 1  # the subtype's one invoice, one way or the other
    saved = {r.subtype_id: r for r in agreements.list_rules(engine, CS, partner_with_agreements)}[subtype]
    assert (saved.trigger, saved.days, saved.max_amount, saved.enabled) == (trigger, days, rule.max_amount, enabled)


@hypothesis_settings(max_examples=300, deadline=None)
@given(max_amount=st.one_of(st.none(), st.decimals(allow_nan=True, allow_infinity=True)),
       days=st.one_of(st.integers(), st.floats(allow_nan=True), st.booleans(), st.text(max_size=3)),
       trigger=st.sampled_from(autopay_rules.TRIGGERS))
def test_any_rule_value_is_valid_or_a_bad_input_never_a_crash(max_amount, days, trigger):
    try:
        autopay_rules.validate(autopay_rules.RuleInput(2, True, trigger, days, max_amount))
    except BadInput as refused:
        assert refused.message.strip()
        return
    assert isinstance(days, int) and 0 <= days <= autopay_rules.MAX_DAYS
    assert max_amount is None or Decimal(0) < max_amount < autopay_rules.MAX_AMOUNT


# ---- invoice table filters --------------------------------------------------------------------------------------

@fuzz(200)
@given(filters=st.builds(
    invoices_screen.Filters,
    search=st.text(max_size=30),
    customer_halo_id=st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
    subtype=st.one_of(st.none(), st.sampled_from([1, 2]), st.integers(-(2**64), 2**64)),
    aging=st.one_of(st.none(), maybe(st.sampled_from(invoices_screen.AGING_BUCKETS))),
    eligibility=st.one_of(st.none(), maybe(st.sampled_from(agreements.ELIGIBILITY_CHOICES))),
    sort=maybe(st.sampled_from(list(invoices_screen.SORTS))),
    descending=st.booleans()),
    page=st.integers(-(2**31), 2**31), page_size=st.integers(-5, 500))
def test_any_invoice_filter_pages_the_matching_rows_or_is_refused(engine, partner_with_agreements, filters, page,
                                                                  page_size):
    try:
        result = invoices_screen.page(engine, CS, partner_with_agreements, filters, now=NOW, page=page,
                                    page_size=page_size)
    except BadInput as refused:
        assert refused.message.strip() and refused.field in ("aging", "eligibility", "sort", "page_size", "subtype_id")
        return
    assert 1 <= result.page <= result.pages and len(result.rows) <= page_size
    assert invoices_screen.export_csv(engine, CS, partner_with_agreements, filters, now=NOW).rows == result.total_rows


# ---- the command line -------------------------------------------------------------------------------------------

WORDS = ["connect", "sync", "status", "invoices", "scheduler", "demo", "keygen", "new-data", "unpaid", "scheduled",
         "--partner", "--domain", "--client-id", "--tenant", "--since", "--invoice-number-field", "--secondary",
         "--json", "--unpaid", "--format", "--once", "--tick", "--help", "-h", "json", "csv", "halo_id", "third_party",
         "Acme MSP", "2025-01-31", "2099-01-01", "http://acme.halopsa.com", "acme", "0", "-1", "", "--", "=", "-",
         "alerts", "--test"]


@pytest.fixture(scope="module")
def cli_tenant():
    emu = HaloEmulator(seed=8, invoices=30, start=NOW - timedelta(days=2), rate_limit=None)
    with serve(emu) as server:
        yield emu, server.url


@pytest.fixture
def cli_env(cli_tenant, settings, monkeypatch):
    emu, _ = cli_tenant
    for key, value in {"DATABASE_URL": settings.database_url, "HALO_CONSOLE_SECRET_KEY": TEST_KEY,
                       "HALO_ALLOW_LOCAL_DOMAINS": "1", "HALO_CONSOLE_NOW": NOW.isoformat(), "HALO_DEMO": "0",
                       "HALO_CLIENT_SECRET": emu.client_secret, "HALO_MAX_ATTEMPTS": "1",
                       "HALO_BACKOFF_CAP_S": "0.01", "HALO_HTTP_TIMEOUT_S": "10"}.items():
        monkeypatch.setenv(key, value)
    return settings


@pytest.fixture
def connected_cli(cli_env, cli_tenant, capsys):
    """The CLI's database with Acme MSP connected and backfilled, so fuzzed syncs can succeed or be refused."""
    emu, url = cli_tenant
    assert run_cli(["connect", "--partner", "Acme MSP", "--domain", url, "--client-id", emu.client_id], capsys)[0] == 0
    return cli_env


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = cli.main(argv)
    except SystemExit as stop:  # argparse: --help (0) or a usage error (2)
        code = stop.code if isinstance(stop.code, int) else 2
    out, err = capsys.readouterr()
    return code, out, err


@st.composite
def argvs(draw: st.DrawFn, url: str, client_id: str) -> list[str]:
    """A real command with some words replaced, dropped or added, or just random words."""
    partner = st.sampled_from(["Acme MSP", "Nobody Inc", ""])
    templates = [
        ["connect", "--partner", draw(partner), "--domain", url, "--client-id",
         draw(st.sampled_from([client_id, "revoked-client-id"]))],
        ["sync", draw(st.sampled_from(["new-data", "unpaid", "scheduled"])), "--partner", draw(partner)],
        ["status", "--partner", draw(partner), "--json"],
        ["invoices", "--partner", draw(partner), "--format", draw(st.sampled_from(["json", "csv"])), "--unpaid"],
        ["scheduler", "--once", "--tick", "0"],
        ["keygen"],
        ["alerts", "--test"],
    ]
    words = st.one_of(st.sampled_from([*WORDS, url, client_id]), st.text(max_size=15))
    argv = draw(st.one_of(st.sampled_from(templates), st.lists(words, max_size=8)))
    for _ in range(draw(st.integers(0, 2))):
        position = draw(st.integers(0, len(argv)))
        action = draw(st.sampled_from(["replace", "drop", "insert"]))
        if action == "insert" or position == len(argv):
            argv.insert(position, draw(words))
        elif action == "replace":
            argv[position] = draw(words)
        else:
            del argv[position]
    if "scheduler" in argv and "--once" not in argv:
        argv.append("--once")  # the scheduler without --once runs until stopped
    return argv


@fuzz(200)
@given(data=st.data())
def test_any_command_line_exits_0_2_3_or_4_with_a_message_and_never_a_traceback(connected_cli, cli_tenant, capsys,
                                                                               engine, data):
    emu, url = cli_tenant
    argv = data.draw(argvs(url, emu.client_id), label="argv")
    before = snapshot(engine)
    code, out, err = run_cli(argv, capsys)
    event(f"exit {code}")
    assert code in (0, 2, 3, 4), (argv, code, err)
    assert "Traceback" not in out + err
    assert emu.client_secret not in out + err
    if code != 0:
        assert err.strip(), "a refusal must say why"
    if code == 2:
        assert snapshot(engine) == before, f"{argv} was refused as bad input but changed the database"


@fuzz(100)
@given(name=st.sampled_from(["HALO_PAGE_SIZE", "HALO_RATE_LIMIT", "HALO_RATE_WINDOW_S", "HALO_CONSOLE_NOW",
                             "HALO_COOLDOWN_NEW_DATA_S", "HALO_LEASE_S", "HALO_MAX_ATTEMPTS", "HALO_ALERT_SMTP_PORT",
                             "HALO_ALERT_SMTP_STARTTLS", "HALO_ALERT_EMAIL_TO", "HALO_ALERT_WEBHOOK_URL",
                             "HALO_ALERT_EMAIL_TYPES"]),
       value=st.text(min_size=1, max_size=12).filter(lambda v: "\x00" not in v))
def test_bad_configuration_is_exit_2_with_the_variable_named_never_a_traceback(cli_env, capsys, monkeypatch, name,
                                                                               value):
    monkeypatch.setenv(name, value)
    code, out, err = run_cli(["status", "--partner", "Acme MSP"], capsys)
    assert code == 2 and "Traceback" not in out + err
    assert "Configuration error" in err or "No partner named" in err


def test_fuzzing_reaches_success_too(cli_env, cli_tenant, capsys):
    """The fuzz above is not only refusals: the same setup connects, syncs and exports."""
    emu, url = cli_tenant
    assert run_cli(["connect", "--partner", "Acme MSP", "--domain", url, "--client-id", emu.client_id], capsys)[0] == 0
    assert run_cli(["sync", "new-data", "--partner", "Acme MSP"], capsys)[0] == 0
    assert run_cli(["sync", "new-data", "--partner", "Acme MSP"], capsys)[0] == 3
    code, out, _ = run_cli(["invoices", "--partner", "Acme MSP", "--format", "csv"], capsys)
    assert code == 0 and len(out.splitlines()) == len(emu.invoices) + 1


@hypothesis_settings(max_examples=50, deadline=None)
@given(key=st.text(max_size=50))
def test_any_encryption_key_setting_is_usable_or_a_clear_error(key):
    from core.errors import SecretKeyError
    from core.store.secrets import SecretBox

    try:
        box = SecretBox(key)
    except SecretKeyError as refused:
        assert "HALO_CONSOLE_SECRET_KEY" in refused.message
        return
    assert box.decrypt(box.encrypt("value")) == "value"
