"""One measurement per process: `python -m bench.worker TASK JSON-ARGS` prints one JSON line of results.

Run by `bench.harness.run_child`; each task starts in a fresh interpreter, so its peak RSS is its own.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import httpx

from bench import harness
from bench.harness import CLIENT_ID, SECRET

if TYPE_CHECKING:  # at run time core is imported inside the tasks that use it, as the other core imports here
    from core.halopsa.client import HaloClient

# The console's invoice columns, each filled straight from a wire field (no conversion, no validation at all).
RAW_COLUMNS = {
    "halo_id": "id", "invoice_number": "invoicenumber", "third_party_number": "thirdpartyinvoicenumber",
    "display_number": "invoicenumber", "customer_halo_id": "client_id", "customer_name": "client_name",
    "agreement_halo_id": "contract_id", "agreement_ref": "contract_ref", "invoice_date": "invoice_date",
    "due_date": "duedate", "total_cents": "total", "amount_paid_cents": "amountpaid", "amount_due_cents": "amountdue",
    "currency": "currency_code_name", "posted": "posted", "voided": "voided", "status": "paymentstatus",
    "halo_last_modified": "last_modified",
}


def _raw_table(db: sqlite3.Connection, table: str) -> None:
    """`console`: the console's own invoice table (its DDL and indexes, from core.store.tables); `bare`: a table with a
    rowid key and nothing else."""
    if table == "bare":
        db.execute(f"CREATE TABLE invoice (id INTEGER PRIMARY KEY, partner_id, {', '.join(RAW_COLUMNS)}, "
                   "number_is_fallback, first_seen_run_id, last_changed_run_id, synced_at)")
        return
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    from core.store.tables import INVOICE_TABLE

    dialect = sqlite.dialect()
    db.execute(str(CreateTable(INVOICE_TABLE).compile(dialect=dialect)))
    for index in INVOICE_TABLE.indexes:
        db.execute(str(CreateIndex(index).compile(dialect=dialect)))


def raw_pipeline(args: dict[str, Any]) -> dict[str, Any]:
    """The floor: the invoice pages the backfill reads, through a bare httpx loop, `json.loads` and
    `sqlite3.executemany` into one table (`args["table"]`: the console's invoice table, or a bare one), in one
    transaction."""
    db = sqlite3.connect(args["db"])
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    _raw_table(db, args.get("table", "console"))
    db.commit()
    columns = ["partner_id", *RAW_COLUMNS, "number_is_fallback", "first_seen_run_id", "last_changed_run_id",
               "synced_at"]
    insert = f"INSERT INTO invoice ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    pick = itemgetter(*RAW_COLUMNS.values())
    synced = args["now"]
    rss_start = harness.rss_now_kib()
    started = time.perf_counter()
    cpu = time.process_time()
    count = requests = 0
    with httpx.Client(base_url=args["url"], timeout=120) as http:
        headers = {"Authorization": f"Bearer {harness.token(http)}"}
        requests += 1
        page = 1
        while True:
            response = http.get("/api/Invoice", headers=headers,
                                params={"pageinate": "true", "page_size": harness.PAGE_ROWS, "page_no": page})
            requests += 1
            rows = json.loads(response.content)["invoices"]
            db.executemany(insert, [(1, *pick(row), False, 1, 1, synced) for row in rows])
            count += len(rows)
            if len(rows) < harness.PAGE_ROWS:
                break
            page += 1
    db.commit()
    elapsed = time.perf_counter() - started
    return {"invoices": count, "requests": requests, "elapsed_s": elapsed, "cpu_s": time.process_time() - cpu,
            "rss_start_kib": rss_start, "peak_kib": harness.peak_rss_kib()}


def _settings(args: dict[str, Any]) -> Any:
    from core.settings import Settings

    return Settings(
        database_url=f"sqlite:///{args['db']}", secret_key=args["key"], allow_local_domains=True,
        sandbox_enabled=False, demo_enabled=False, rate_limit_requests=int(args.get("limit", 10**6)),
        rate_limit_window_s=float(args.get("window_s", 300.0)), fixed_now=datetime.fromisoformat(args["now"]),
    )


@dataclass
class _Captured:
    """A client the factory made, and how long it waited for HaloPSA's answers."""

    client: HaloClient
    http_s: float = 0.0


def _capturing_factory(settings: Any, captured: list[_Captured]) -> Callable[..., Any]:
    """The production factory, keeping each client (for its request counts) and timing how long the console waited
    for HaloPSA's answers (`_Captured.http_s`: sending, the emulator's work, receiving the body)."""
    from core.sync import connector
    stored = connector.stored_client_factory(settings)

    def factory(connection: Any, on_event: Any) -> Any:
        client = stored(connection, on_event)
        timing = _Captured(client)
        send = client._http.send

        def timed_send(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return send(*args, **kwargs)
            finally:
                timing.http_s += time.perf_counter() - started

        # instrumentation: this one client's httpx.Client.send, replaced on the instance to time each exchange
        client._http.send = timed_send  # type: ignore[method-assign]
        captured.append(timing)
        return client

    return factory


def console_backfill(args: dict[str, Any]) -> dict[str, Any]:
    """Connect a partner to the served tenant (verify + save, not measured), then the console's backfill:
    `core.sync.engine.run_sync(kind=backfill)`, exactly as `python -m core connect` runs it."""
    from core.access import Principal
    from core.actions import connect as connections
    from core.store import database
    from core.store.tables import Role, RunKind, RunTrigger
    from core.sync import engine as sync_engine

    settings = _settings(args)
    engine = database.engine_for(settings)
    cs = Principal(role=Role.CS, user="bench@example.com")
    form = connections.ConnectionForm(partner_name=args.get("partner", "Big MSP"), app_domain=args["url"],
                                      client_id=CLIENT_ID, client_secret=SECRET,
                                      invoice_number_field="third_party")
    partner_id, _ = connections.connect(engine, cs, form, now=settings.now(), settings=settings)
    captured: list[_Captured] = []
    phases: dict[str, float] = {}

    def progress(message: str) -> None:
        if message.startswith("Reading "):
            phases.setdefault(message.removeprefix("Reading "), time.perf_counter())

    rss_start = harness.rss_now_kib()
    started = time.perf_counter()
    cpu = time.process_time()
    result = sync_engine.run_sync(engine, partner_id=partner_id, kind=RunKind.BACKFILL, trigger=RunTrigger.CONNECT,
                           actor=cs.user, now=settings.now(), settings=settings,
                           client_factory=_capturing_factory(settings, captured), progress=progress)
    finished = time.perf_counter()
    stats = captured[0].client.stats
    engine.dispose()
    return {
        "status": result.status, "error": result.error, "partner_id": partner_id,
        "invoices": result.tally.invoices_seen, "customers": result.tally.customers_seen,
        "agreements": result.tally.agreements_seen, "requests": stats.requests, "pages": stats.pages,
        "token_requests": stats.token_requests, "rate_limited": stats.rate_limited_responses,
        "waited_s": stats.waited_s, "elapsed_s": finished - started, "cpu_s": time.process_time() - cpu,
        "http_s": captured[0].http_s,
        "invoice_phase_s": finished - phases.get("invoices", started),
        "rss_start_kib": rss_start, "peak_kib": harness.peak_rss_kib(),
    }


def console_fetch(args: dict[str, Any]) -> dict[str, Any]:
    """One manual fetch (Fetch new data or Fetch unpaid invoices) for a stored partner, as the Syncs page starts it."""
    from core.access import Principal
    from core.actions import fetches
    from core.store import database
    from core.store.tables import Role

    settings = _settings(args)
    engine = database.engine_for(settings)
    cs = Principal(role=Role.CS, user="bench@example.com")
    captured: list[_Captured] = []
    started = time.perf_counter()
    cpu = time.process_time()
    result = fetches.start_manual_fetch(engine, cs, partner_id=args["partner_id"], kind=args["kind"],
                                        now=settings.now(), settings=settings,
                                        client_factory=_capturing_factory(settings, captured))
    elapsed = time.perf_counter() - started
    stats = captured[0].client.stats
    engine.dispose()
    return {"status": result.status, "error": result.error, "requests": stats.requests, "pages": stats.pages,
            "invoices_seen": result.tally.invoices_seen, "updated": result.tally.updated,
            "created": result.tally.created, "elapsed_s": elapsed, "cpu_s": time.process_time() - cpu}


def incremental(args: dict[str, Any]) -> dict[str, Any]:
    """Rounds of: the emulator's clock moves 2 hours (its books do not change by themselves), exactly `changes`
    invoices change through the API, then Fetch new data (`fetches.start_manual_fetch`, as the Syncs page starts
    it) with the console's clock on the emulator's. Then one Fetch unpaid invoices."""
    from datetime import timedelta

    from core.access import Principal
    from core.actions import fetches
    from core.store import database
    from core.store.tables import Role, RunKind

    url = args["url"]
    cs = Principal(role=Role.CS, user="bench@example.com")
    rounds = []
    for number in range(int(args["rounds"])):
        now = harness.state(url)["now"] + timedelta(hours=2)
        harness.advance(url, now)
        changed = harness.change_invoices(url, int(args["changes"]), tag=f"R{number}")
        # what a real HaloPSA's indexes give for free: the emulator sorts on first use of an order
        harness.warm_first_page(url, "Invoice", order="last_modified", orderdesc="true")
        harness.warm_first_page(url, "Client", order="alastupdate", orderdesc="true", includeinactive="true")
        settings = _settings({**args, "now": now.isoformat()})
        engine = database.engine_for(settings)
        captured: list[_Captured] = []
        started = time.perf_counter()
        cpu = time.process_time()
        result = fetches.start_manual_fetch(engine, cs, partner_id=args["partner_id"], kind=RunKind.FETCH_NEW_DATA,
                                            now=now, settings=settings,
                                            client_factory=_capturing_factory(settings, captured))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        engine.dispose()
        rounds.append({"status": result.status, "error": result.error, "changed": len(changed),
                       "invoices_seen": result.tally.invoices_seen, "updated": result.tally.updated,
                       "requests": captured[0].client.stats.requests, "elapsed_s": elapsed, "cpu_s": cpu,
                       "http_s": captured[0].http_s, "console_s": elapsed - captured[0].http_s,
                       "now": now.isoformat()})
    now = harness.state(url)["now"]
    unpaid_count = harness.record_count(url, "Invoice", paymentstatuses="0,1")
    settings = _settings({**args, "now": now.isoformat()})
    engine = database.engine_for(settings)
    captured = []
    started = time.perf_counter()
    result = fetches.start_manual_fetch(engine, cs, partner_id=args["partner_id"], kind=RunKind.FETCH_UNPAID,
                                        now=now, settings=settings,
                                        client_factory=_capturing_factory(settings, captured))
    unpaid = {"status": result.status, "error": result.error, "server_unpaid": unpaid_count,
              "invoices_seen": result.tally.invoices_seen, "requests": captured[0].client.stats.requests,
              "elapsed_s": time.perf_counter() - started, "now": now.isoformat()}
    engine.dispose()
    return {"rounds": rounds, "unpaid": unpaid}


def ui(args: dict[str, Any]) -> dict[str, Any]:
    from bench import console_scale

    return console_scale.measure(args)


def fleet_scheduled(args: dict[str, Any]) -> dict[str, Any]:
    from bench import fleet

    return fleet.scheduled(args)


def fleet_backfill_mix(args: dict[str, Any]) -> dict[str, Any]:
    from bench import fleet

    return fleet.backfill_mix(args)


TASKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "raw_pipeline": raw_pipeline,
    "console_backfill": console_backfill,
    "console_fetch": console_fetch,
    "incremental": incremental,
    "ui": ui,
    "fleet_scheduled": fleet_scheduled,
    "fleet_backfill_mix": fleet_backfill_mix,
}


def main() -> None:
    task, raw_args = sys.argv[1], sys.argv[2]
    args = json.loads(raw_args)
    profile_to = args.pop("profile", None)
    if profile_to:  # `python -m bench --profile DIR`: a pyinstrument profile of the whole task
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.002)
        with profiler:
            result = TASKS[task](args)
        with open(profile_to, "w") as out:
            out.write(profiler.output_text(unicode=False, color=False, show_all=False))
    else:
        result = TASKS[task](args)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
