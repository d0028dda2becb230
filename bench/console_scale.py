"""Console at scale (run in a child process by `python -m bench`): every page's script run through Streamlit's
AppTest (the Overview with the fleet's issues evaluated and the Adoption page's run totals rolled up once, as the
scheduler keeps them), and the cost of one cooldown-timer tick.

The database is the one the backfill benchmark filled (a partner with 100,000 invoices from the emulator), grown to a
fleet of 5,000 partners here (--fleet): smaller partners written in bulk through the real upserts, with a week
of run records each.
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

APP = Path(__file__).resolve().parents[1] / "app.py"
PAGES = ("overview", "connection", "syncs", "invoices", "agreements", "adoption", "audit")
CS_EMAIL = "cs-bench@example.com"
SUBTYPES = ("Managed Services", "Backup", "Break-fix", "Security")


FLEET_CHUNK = 250  # partners written per transaction


def build_fleet(engine: Any, settings: Any, *, partners: int, now: datetime) -> int:
    """Add partners (each with customers, agreements, 40 invoices through the real upserts, named subtypes, and a week
    of finished scheduled runs, one in ten failing) until the fleet has `partners`; written in bulk, a chunk of
    partners per transaction, so a fleet of 5,000 takes a minute or two, not an hour of one-by-one runs."""
    from sqlalchemy import func, select

    from core.store.secrets import secret_box
    from core.store.tables import PARTNER_TABLE

    with engine.connect() as conn:
        have: int = conn.scalar(select(func.count()).select_from(PARTNER_TABLE))
        first_id: int = (conn.scalar(select(func.max(PARTNER_TABLE.c.id))) or 0) + 1
    secret = secret_box(settings).encrypt("fleet-secret")
    for start in range(have, partners, FLEET_CHUNK):
        numbers = range(start, min(start + FLEET_CHUNK, partners))
        with engine.begin() as conn:
            _write_fleet_chunk(conn, {first_id + n - have: n for n in numbers}, secret=secret, now=now)
    return max(0, partners - have)


def _write_fleet_chunk(conn: Any, numbered: dict[int, int], *, secret: str, now: datetime) -> None:
    """Partners `numbered` (id -> fleet number) with everything build_fleet gives each."""
    from core.halopsa import records
    from core.store import tables, upserts
    from core.store.tables import (
        NumberField,
        PartnerStatus,
        RunKind,
        RunStatus,
        RunTrigger,
        SubtypeLookupState,
    )
    from core.sync import cooldowns, streams
    from tests.support.subtype_names import LOOKUP_ID

    build = streams.invoice_row_factory(NumberField.HALO_ID)
    since = now - timedelta(days=60)
    conn.execute(tables.PARTNER_TABLE.insert(), [
        {"id": pid, "name": f"Fleet Partner {n:04d}", "status": PartnerStatus.CONNECTED, "created_at": since}
        for pid, n in numbered.items()])
    conn.execute(tables.CONNECTION_TABLE.insert(), [
        {"partner_id": pid, "app_domain": f"https://fleet{n}.halopsa.com", "client_id": f"client-{n}",
         "client_secret_encrypted": secret, "invoice_number_field": NumberField.HALO_ID.value,
         "integration_role": "secondary" if n % 10 == 0 else "primary", "connected_at": since}
        for pid, n in numbered.items()])
    conn.execute(tables.SUBTYPE_LOOKUP_TABLE.insert(), [
        {"partner_id": pid, "lookup_id": LOOKUP_ID, "state": SubtypeLookupState.VERIFIED, "set_by": "bench",
         "set_at": since, "checked_at": since, "finding": "Names every subtype id (bench data)."} for pid in numbered])
    conn.execute(tables.SUBTYPE_NAME_TABLE.insert(), [
        {"partner_id": pid, "subtype_id": i + 1, "lookup_name": subtype, "lookup_verified": True}
        for pid in numbered for i, subtype in enumerate(SUBTYPES)])
    runs = []
    for pid, n in numbered.items():
        name = f"Fleet Partner {n:04d}"
        cooldowns.ensure_rows(conn, pid)
        customers = [records.Customer(i, f"{name} Customer {i}", False, f"ap{i}@fleet{n}.example", "USD", now)
                     for i in range(1, 9)]
        agreements = [records.Agreement(i, f"F{n}-AGR-{i}", i, i % 4 + 1, "Recurring", date(2026, 1, 1), None,
                                        True, now) for i in range(1, 9)]
        invoices = [build(records.Invoice(
            1000 + i, str(1000 + i), None, i % 8 + 1, f"{name} Customer {i % 8 + 1}", i % 8 + 1,
            f"F{n}-AGR-{i % 8 + 1}",
            now.date() - timedelta(days=i * 3), now.date() - timedelta(days=i * 3 - 30), 10_000 + i,
            0 if i % 3 else 10_000 + i, 10_000 + i if i % 3 else 0, "USD", True, False, now))
            for i in range(1, 41)]
        upserts.upsert_rows(conn, tables.CUSTOMER_TABLE, streams.CUSTOMER_FIELDS,
                            [streams.customer_row(c) for c in customers], partner_id=pid, now=now)
        upserts.upsert_rows(conn, tables.AGREEMENT_TABLE, streams.AGREEMENT_FIELDS,
                            [streams.agreement_row(a) for a in agreements], partner_id=pid, now=now)
        upserts.upsert_rows(conn, tables.INVOICE_TABLE, streams.INVOICE_FIELDS, invoices, partner_id=pid, now=now)
        if n % 10 == 0:
            continue  # a secondary integration: no scheduled syncs
        for hours_ago in range(24 * 7, 0, -6):  # a week of scheduled runs, one in ten failing
            at = now - timedelta(hours=hours_ago)
            failed = (hours_ago // 6 + n) % 10 == 0
            runs.append({
                "partner_id": pid, "kind": RunKind.SCHEDULED, "trigger": RunTrigger.SCHEDULE,
                "triggered_by": "scheduler", "status": RunStatus.FAILED if failed else RunStatus.SUCCEEDED,
                "started_at": at, "finished_at": at + timedelta(minutes=1), "heartbeat_at": at + timedelta(minutes=1),
                "window_start": None if failed else at - timedelta(hours=6), "window_end": None if failed else at,
                "requests": 3, "pages": 2, "created": 2, "updated": 1,
                "error": "HaloPSA did not answer (HTTP 503)." if failed else None})
    conn.execute(tables.RUN_TABLE.insert(), runs)


def _evaluate_issues(engine: Any, settings: Any, now: datetime) -> dict[str, Any]:
    """The fleet's issues, as the scheduler keeps them (the Overview lists them): the first evaluation opens them, the
    second is a tick's steady state (each issue seen again)."""
    from sqlalchemy import func, select

    from core.health import issues
    from core.store.tables import ISSUE_TABLE

    started = time.perf_counter()
    opened = len(issues.evaluate(engine, now=now, settings=settings))
    first = time.perf_counter() - started
    started = time.perf_counter()
    issues.evaluate(engine, now=now, settings=settings)
    steady = time.perf_counter() - started
    with engine.connect() as conn:
        open_issues = conn.scalar(select(func.count()).select_from(ISSUE_TABLE)
                                  .where(ISSUE_TABLE.c.resolved_at.is_(None)))
    return {"changes": opened, "open": open_issues, "first_s": first, "steady_s": steady}


def _roll_up_run_days(engine: Any, now: datetime) -> dict[str, Any]:
    """The Adoption page's run totals, as the scheduler keeps them: the first tick rolls up every finished run."""
    from core.store import run_days

    started = time.perf_counter()
    runs = run_days.advance(engine, now)
    return {"runs": runs, "first_s": time.perf_counter() - started}


def _principal(engine: Any) -> Any:
    from core.store.tables import Role
    from core.store.users import add_user, principal_for_email

    principal = principal_for_email(engine, CS_EMAIL)
    if principal is None:
        add_user(engine, email=CS_EMAIL, name="Bench CS", role=Role.CS, password="bench-password")
        principal = principal_for_email(engine, CS_EMAIL)
    return principal


def _session_cookie(engine: Any, settings: Any) -> str:
    from core.actions.sign_in import SessionKeys, sign_in

    return sign_in(engine, email=CS_EMAIL, password="bench-password", client="bench", now=settings.now(),
                   keys=SessionKeys.load(engine, settings)).cookie


def _page_runs(cookie: str, partner_id: int, page: str, reruns: int) -> dict[str, Any]:
    """Open `page` as cs with the big partner picked; time the script run that opens it and `reruns` reruns."""
    from streamlit.testing.v1 import AppTest

    from ui.auth import COOKIE_KEY

    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state[COOKIE_KEY] = cookie
    at.session_state["partner_id"] = partner_id
    at.run()
    at.switch_page(f"pages/{page}.py")
    started = time.perf_counter()
    at.run()
    first = time.perf_counter() - started
    if at.exception:
        raise RuntimeError(f"{page}: {at.exception[0].message}")
    if not at.title or at.error:  # a page that stopped early (no access, no partner) would time nothing
        raise RuntimeError(f"{page} did not render: titles {[t.value for t in at.title]}, "
                           f"errors {[e.value for e in at.error]}")
    times = []
    for _ in range(reruns):
        started = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - started)
    result: dict[str, Any] = {"first_s": first, "rerun_s": statistics.median(times), "max_rerun_s": max(times),
                              "title": at.title[0].value, "elements": len(list(at.main))}
    if page == "invoices":
        result["rows_sent"] = [len(frame.value) for frame in at.dataframe]
        result["page_size"] = at.session_state["invoices.page_size"]
        result["unpaid"] = at.metric[0].value
        at.selectbox(key="invoices.page_size").set_value(200).run()  # the largest page a person can ask for
        result["rows_sent_largest"] = len(at.dataframe[0].value)
        result["page_size_largest"] = at.session_state["invoices.page_size"]
    return result


def _tick_cost(engine: Any, principal: Any, partner_id: int, now: datetime, ticks: int) -> dict[str, Any]:
    """Server CPU of one cooldown-timer tick.

    The Syncs page's `fetch_buttons` fragment reruns alone every second: it reads both cooldowns
    (`syncs_screen.manual_fetch_states`) and draws two buttons and four captions. Measured as
    (1) `time.process_time()` around the core read alone, tick after tick with the clock moving on;
    (2) the fragment's body (the same read and the same elements) run by AppTest as a script of its own, timed
        inside the script with `time.thread_time()` (the script thread's CPU: the read plus Streamlit building
        and queueing the elements' deltas): the tick's cost, the target;
    (3) for context, AppTest's whole run of that script minus its run of an empty script (process CPU): adds the
        script runner's per-run work and AppTest's own parsing of the deltas, so an upper bound.
    """
    from streamlit.testing.v1 import AppTest

    from core.console import syncs as syncs_screen
    states = syncs_screen.manual_fetch_states(engine, principal, partner_id, now=now)
    ticking = sum(state.locked for state in states)
    cpu = []
    for tick in range(ticks):
        started = time.process_time()
        syncs_screen.manual_fetch_states(engine, principal, partner_id, now=now + timedelta(seconds=tick))
        cpu.append(time.process_time() - started)
    read_s = statistics.median(cpu)

    def fragment_script() -> None:  # the body of pages/syncs.py's fetch_buttons, for AppTest.from_function
        import time as clock

        import streamlit as st

        from core.console import syncs as syncs_screen
        from ui import resources

        engine = resources.get_engine()
        began = clock.thread_time()
        found = syncs_screen.manual_fetch_states(engine, st.session_state["bench.principal"],
                                         st.session_state["bench.partner"], now=resources.now())
        for column, state in zip(st.columns(len(found)), found, strict=True):
            with column:
                st.button(state.label, key=f"syncs.{state.kind}", type="primary", disabled=state.locked)
                st.caption(state.availability)
                st.caption(state.last_run)
        st.session_state.setdefault("bench.body_cpu", []).append(clock.thread_time() - began)

    def empty_script() -> None:
        pass

    def script_cpu(script: Any) -> tuple[float, list[float]]:
        at = AppTest.from_function(script, default_timeout=60)
        at.session_state["bench.principal"] = principal
        at.session_state["bench.partner"] = partner_id
        at.run()
        samples = []
        for _ in range(ticks // 4):
            started = time.process_time()
            at.run()
            samples.append(time.process_time() - started)
        return statistics.median(samples), list(at.session_state["bench.body_cpu"]) if script is fragment_script else []

    fragment_s, body = script_cpu(fragment_script)
    empty_s, _ = script_cpu(empty_script)
    body_s = statistics.median(body[1:])
    return {"ticking": ticking, "read_cpu_s": read_s, "tick_cpu_s": body_s, "render_cpu_s": max(0.0, body_s - read_s),
            "upper_bound_s": max(0.0, fragment_s - empty_s), "apptest_fragment_s": fragment_s,
            "apptest_empty_s": empty_s}


def trace_times(engine: Any, principal: Any, partner_id: int, now: datetime, repeats: int) -> dict[str, Any]:
    """The invoice tracer's answer from local data (core.console.tracer.trace, the whole read model) for the big
    partner, median wall time per kind of identifier: its shown number, its HaloPSA ID, its number typed in lower
    case (matched in any case), and a number no invoice has (every number compared in any case before saying so)."""
    from sqlalchemy import func, select

    from core.console import tracer
    from core.store.tables import INVOICE_TABLE

    inv = INVOICE_TABLE.c
    with engine.connect() as conn:
        middle = conn.scalar(select(func.count()).where(inv.partner_id == partner_id)) // 2
        row = conn.execute(select(inv.halo_id, inv.display_number).where(inv.partner_id == partner_id)
                           .order_by(inv.id).offset(middle).limit(1)).one()
    kinds = {"number": row.display_number, "halo_id": str(row.halo_id), "lower_case": row.display_number.lower(),
             "unknown": "NO-SUCH-INVOICE-1"}
    times: dict[str, float] = {}
    answers: dict[str, str] = {}
    for kind, typed in kinds.items():
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            found = tracer.trace(engine, principal, partner_id, typed, now=now, schedule_interval=timedelta(hours=1))
            samples.append(time.perf_counter() - started)
        times[kind] = statistics.median(samples)
        answers[kind] = found.traces[0].answer.value
    slowest = max(times, key=lambda kind: times[kind])
    return {"times_s": times, "answers": answers, "slowest": slowest, "slowest_s": times[slowest]}


def measure(args: dict[str, Any]) -> dict[str, Any]:
    """`args`: db, key, now (ISO), partner_id (the big partner), partners (fleet size), reruns, ticks."""
    from core.settings import load_settings
    from core.store import database as db

    now = datetime.fromisoformat(args["now"])
    os.environ.update({"DATABASE_URL": f"sqlite:///{args['db']}", "HALO_CONSOLE_SECRET_KEY": args["key"],
                       "HALO_DEMO": "0", "HALO_SANDBOX": "0", "HALO_CONSOLE_NOW": now.isoformat()})
    settings = load_settings()
    engine = db.engine_for(settings)
    started = time.perf_counter()
    added = build_fleet(engine, settings, partners=int(args["partners"]), now=now)
    build_s = time.perf_counter() - started
    evaluated = _evaluate_issues(engine, settings, now)
    rolled = _roll_up_run_days(engine, now)
    principal = _principal(engine)
    cookie = _session_cookie(engine, settings)
    pages = {page: _page_runs(cookie, args["partner_id"], page, int(args["reruns"])) for page in PAGES}
    tick = _tick_cost(engine, principal, args["partner_id"], now, int(args["ticks"]))
    traced = trace_times(engine, principal, args["partner_id"], now, 9)
    engine.dispose()
    return {"fleet_added": added, "fleet_build_s": build_s, "issues": evaluated, "run_days": rolled,
            "pages": pages, "tick": tick, "trace": traced}
