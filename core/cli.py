"""`python -m core`: the command line for operators and cron.

Exit codes: 0 success; 2 bad input (nothing saved); 3 refused by a cooldown or a running sync; 4 HaloPSA or sync
failure, or an export whose reader closed the output early. Messages go to stderr, data to stdout. The client secret
is read from HALO_CLIENT_SECRET or a hidden prompt, never from an argument.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import Engine

from core.access import Principal
from core.actions import connect as connections
from core.actions import fetches as actions
from core.actions import reconcile as reconcile_actions
from core.actions import trace_lookup
from core.console import alert_config, exports, partners, reconciliation, status, support_bundle, tracer
from core.errors import BadInput, ConsoleError, SyncAlreadyQueued
from core.health import alerts, issues
from core.settings import Settings, load_settings
from core.store import audit, run_days
from core.store import database as db
from core.store.secrets import SecretBox
from core.store.tables import (
    AuditAction,
    IntegrationRole,
    NumberField,
    Role,
    RunKind,
    RunStatus,
    RunTrigger,
)
from core.sync import jobs, runs, scheduler, worker
from core.sync.connector import stored_client_factory
from core.sync.runs import RunResult
from core.sync.worker import Worker, WorkerConfig

T = TypeVar("T")
log = logging.getLogger("core.cli")
EXIT_OK, EXIT_BAD_INPUT, EXIT_REFUSED, EXIT_FAILED = 0, 2, 3, 4
SYNC_KINDS = {"new-data": RunKind.FETCH_NEW_DATA, "unpaid": RunKind.FETCH_UNPAID, "scheduled": RunKind.SCHEDULED}


def _operator() -> Principal:
    return Principal(role=Role.CS, user=f"cli:{os.environ.get('USER') or getpass.getuser()}")


def _say(message: str | None) -> None:
    if message is not None:
        print(message, file=sys.stderr, flush=True)


def _read_secret() -> str:
    secret = os.environ.get("HALO_CLIENT_SECRET")
    if secret:
        return secret
    if not sys.stdin.isatty():
        raise BadInput("No client secret given: set HALO_CLIENT_SECRET, or run the command in a terminal to be "
                       "prompted for it.", field="client_secret")
    return getpass.getpass("HaloPSA Client Secret: ")


def _report_run(result: RunResult) -> int:
    t = result.tally
    _say(f"Run {result.run_id} ({result.kind}) {result.status}: {t.created} created, {t.updated} updated, "
         f"{t.unchanged} unchanged, {t.rejected} rejected; {t.requests} requests, {t.pages} pages.")
    if result.error:
        _say(result.error)
    return EXIT_OK if result.status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL) else EXIT_FAILED


def cmd_connect(args: argparse.Namespace, engine: Engine, settings: Settings) -> int:
    form = connections.ConnectionForm(
        partner_name=args.partner, app_domain=args.domain, client_id=args.client_id, client_secret=_read_secret(),
        invoices_created_since=args.since, invoice_number_field=args.invoice_number_field,
        integration_role=IntegrationRole.SECONDARY if args.secondary else IntegrationRole.PRIMARY, tenant=args.tenant,
    )
    principal = _operator()
    connected = connections.connect_and_backfill(
        engine, principal, form, now=settings.now(), settings=settings,
        client_factory=stored_client_factory(settings, engine=engine), progress=_progress_printer())
    verification = connected.verification
    _say(f"Connected {args.partner} to {verification.app_domain}: all {len(verification.checklist())} permissions "
         "granted.")
    if connected.backfill is None:
        _say("Secondary integration: credentials verified; no invoices are pulled and manual fetches are not offered.")
        return EXIT_OK
    return _report_run(connected.backfill)


def _progress_printer() -> Callable[[str], None]:
    last = [0.0]

    def show(message: str) -> None:
        if time.monotonic() - last[0] >= 1.0:
            last[0] = time.monotonic()
            _say(f"  {message}")

    return show


def cmd_sync(args: argparse.Namespace, engine: Engine, settings: Settings) -> int:
    principal = _operator()
    partner_id = partners.partner_id_by_name(engine, principal, args.partner)
    kind = SYNC_KINDS[args.kind]
    factory = stored_client_factory(settings, engine=engine)
    actions.require_readable_secret(engine, settings, partner_id)
    if kind == RunKind.SCHEDULED:
        try:
            with engine.begin() as conn:
                job_id = jobs.enqueue(conn, partner_id=partner_id, partner_name=args.partner, kind=kind,
                                      trigger=RunTrigger.SCHEDULE, requested_by=principal.user, now=settings.now())
        except SyncAlreadyQueued:  # queued and not taken by a worker yet: run that one here
            with engine.connect() as conn:
                waiting = jobs.waiting_job(conn, partner_id, kind)
            if waiting is None:
                raise
            job_id = waiting
        result = worker.run_job_now(engine, settings, factory, job_id, lease=timedelta(seconds=settings.lease_s),
                                    progress=_progress_printer())
    else:
        result = actions.start_manual_fetch(engine, principal, partner_id=partner_id, kind=kind, now=settings.now(),
                                            settings=settings, client_factory=factory, progress=_progress_printer())
    return _report_run(result)


def _print_reconciliation(found: dict[str, Any]) -> None:
    """The latest reconciliation in lines: cost, counts, unpaid per currency on each side, the differing ids."""
    cost = found["requests"]
    print(f"Reconciliation {found['reconciliation']} (run {found['run']}) at {found['started_at']}: "
          f"{cost['used']:,} HaloPSA requests (estimated {cost['estimated']:,}).")
    print(f"Invoices: {found['halopsa']['invoices']:,} in HaloPSA, {found['stored']['invoices']:,} stored here.")
    for side, label in (("halopsa", "HaloPSA"), ("stored", "Stored")):
        unpaid = found[side]["unpaid"]
        amounts = "; ".join(f"{entry['count']:,} unpaid, {entry['amount_due']} {code}"
                            for code, entry in unpaid.items()) or "none unpaid"
        print(f"{label} unpaid per currency: {amounts}")
    apart = found["not_drift"]
    print(f"Not drift: {apart['dated_before_invoices_created_since']:,} dated before Invoices Created Since, "
          f"{apart['pending']:,} changed since the last sync, {apart['unreadable']:,} unreadable.")
    print(f"Differing invoices: {found['drift']:,}")
    for kind, ids in found["differences"].items():
        if ids:
            print(f"  {kind}: {', '.join(map(str, ids))}")


def cmd_reconcile(args: argparse.Namespace, engine: Engine, settings: Settings) -> int:
    principal = _operator()
    partner_id = partners.partner_id_by_name(engine, principal, args.partner)
    result = reconcile_actions.reconcile_now(
        engine, principal, partner_id=partner_id, now=settings.now(), settings=settings,
        client_factory=stored_client_factory(settings, engine=engine), progress=_progress_printer())
    code = _report_run(result)
    found = reconciliation.report(engine, principal, partner_id)
    if found is None or found["run"] != result.run_id:
        return EXIT_FAILED if code == EXIT_OK else code
    if args.json:
        print(json.dumps({"partner": args.partner, "status": result.status.value, **found}, indent=2))
    else:
        _print_reconciliation(found)
    return code


def cmd_status(args: argparse.Namespace, engine: Engine, settings: Settings) -> int:
    principal = _operator()
    partner_id = partners.partner_id_by_name(engine, principal, args.partner)
    report = status.partner_status(engine, principal, partner_id, now=settings.now())
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    counts = report["counts"]
    print(f"{report['partner']} ({report['integration_role']}, {report['status']}): {counts['invoices']} invoices "
          f"({counts['unpaid_invoices']} unpaid), {counts['customers']} customers, {counts['agreements']} agreements")
    for name, state in report["cooldowns"].items():
        print(f"  {name}: " + (f"available at {state['available_at']}" if state["available_at"] else "available now"))
    for run in report["runs"][:10]:
        print(f"  run {run['id']} {run['kind']} {run['status']} {run['started_at']}: +{run['created']} "
              f"~{run['updated']} !{run['rejected']}")
    return EXIT_OK


def cmd_invoices(args: argparse.Namespace, engine: Engine, settings: Settings) -> int:
    """Stream a partner's invoices to stdout as they are read (CSV a chunk of rows at a time, JSON a row at a time),
    with no row limit, then audit the export."""
    principal = _operator()
    partner_id = partners.partner_id_by_name(engine, principal, args.partner)
    writer = exports.write_json if args.format == "json" else exports.write_csv
    count: int | None = None
    with closing(exports.invoice_export_rows(engine, principal, partner_id, unpaid_only=args.unpaid)) as rows:
        try:
            count = writer(rows, sys.stdout)
            sys.stdout.flush()
        except BrokenPipeError:  # the reader went away (`| head`): point stdout at nothing, or Python says it again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    outcome = "stopped early, the output was closed" if count is None else f"{count} rows"
    with engine.begin() as conn:  # an export is audited wherever it is made, finished or not
        audit.record(conn, actor=principal.user, action=AuditAction.EXPORT, partner_id=partner_id, now=settings.now(),
                     detail=f"Invoices {args.format.upper()} from the command line: {outcome}"
                            + (" (unpaid only)" if args.unpaid else ""))
    if count is None:
        _say("The output was closed before the export finished, so it stopped. To keep every row, write it to a "
             "file: python -m core invoices ... > invoices.csv")
        return EXIT_FAILED
    return EXIT_OK


def cmd_bundle(args: argparse.Namespace, engine: Engine, settings: Settings) -> int:
    """Write a partner's support bundle (a zip of JSON and CSV, no secret) to a file, never over an existing one."""
    principal = _operator()
    partner_id = partners.partner_id_by_name(engine, principal, args.partner)
    if args.output is not None and args.output.exists():
        _say(f"{args.output} already exists: nothing was written. Pass another --output, or move that file away.")
        return EXIT_BAD_INPUT
    bundle = support_bundle.build(engine, principal, partner_id, now=settings.now())
    target = args.output or Path(bundle.file_name)
    try:
        with target.open("xb") as out:
            out.write(bundle.data)
    except OSError as exc:
        _say(f"Could not write {target} ({exc.strerror or exc}): nothing was written. Pass an --output in a folder "
             "you can write to, under a name not taken yet.")
        return EXIT_FAILED
    print(f"Wrote {target} ({len(bundle.data):,} bytes): {', '.join(bundle.files)}.")
    return EXIT_OK


def cmd_trace(args: argparse.Namespace, engine: Engine, settings: Settings) -> int:
    """Where an invoice stands and why, from local data; with --live, asking the partner's HaloPSA once when local
    data cannot tell (audited)."""
    principal = _operator()
    partner_id = partners.partner_id_by_name(engine, principal, args.partner)
    if args.live:
        result = trace_lookup.look_up(engine, principal, partner_id, args.invoice, now=settings.now(),
                                      settings=settings)
    else:
        result = tracer.trace(engine, principal, partner_id, args.invoice, now=settings.now(),
                              schedule_interval=timedelta(seconds=settings.schedule_interval_s))
    if result.can_look_up:
        _say(f"To ask HaloPSA, run: python -m core trace --partner \"{args.partner}\" \"{result.identifier}\" --live")
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return EXIT_OK
    if len(result.traces) > 1:
        print(result.headline)
    for trace in result.traces:
        print(f"{trace.answer.value}: {trace.summary}")
        for fact in trace.facts:
            print(f"  {fact}")
        print(f"  Next: {trace.next_step}")
    for note in result.notes:
        print(note)
    return EXIT_OK


def cmd_scheduler(args: argparse.Namespace, engine: Engine, settings: Settings) -> int:
    """Queue due partners (workers run them); with --run, run the queue dry here too (one process, no worker)."""
    factory = stored_client_factory(settings, engine=engine)
    while True:
        now = scheduler.clock(engine, settings)
        recovered = runs.recover_interrupted(engine, now=now, settings=settings)
        if recovered:
            _say(f"Marked {recovered} interrupted run(s).")
        queued = scheduler.enqueue_due(engine, now=now, settings=settings)
        if queued:
            _say(f"Queued {len(queued)} scheduled sync(s).")
        reconciliations = scheduler.enqueue_reconciliations(engine, now=now, settings=settings)
        if reconciliations:
            _say(f"Queued {len(reconciliations)} daily reconciliation(s).")
        worst = EXIT_OK
        if args.run:
            results = worker.drain(engine, settings, factory, lease=timedelta(seconds=settings.lease_s))
            worst = max((_report_run(result) for result in results), default=EXIT_OK)
        _roll_up_run_days(engine, now)
        _evaluate_issues(engine, settings)  # then the alerts: what changed this tick is sent this tick
        try:  # alerts never stop scheduling nor fail a sync: a failure is one line on stderr
            _say(alerts.deliver(engine, settings, now).line() or None)
        except Exception as exc:  # noqa: BLE001
            _say(alerts.failure_line(exc, settings))
        if args.once:
            return worst
        time.sleep(args.tick)


def cmd_alerts(args: argparse.Namespace, engine: Engine, settings: Settings) -> int:
    """Say where alerts go and the latest deliveries; with --test, send a test notice on each configured channel."""
    view = alert_config.alerts_view(engine, _operator(), settings=settings, limit=5)
    for channel in view.channels:
        print(f"{channel.name}: {channel.summary}" + (f" Sent for {channel.types}." if channel.configured else ""))
    for line in view.delivery_lines():
        print(f"  {line}")
    if not args.test:
        return EXIT_OK
    if not view.configured:
        _say("No alert channel is configured, so no test notice was sent: set HALO_ALERT_SMTP_HOST, "
             "HALO_ALERT_EMAIL_FROM and HALO_ALERT_EMAIL_TO for e-mail, or HALO_ALERT_WEBHOOK_URL for a webhook.")
        return EXIT_BAD_INPUT
    worst = EXIT_OK
    for sent_on, failure in alerts.send_test(settings, settings.now()):
        name = alert_config.CHANNEL_NAMES[sent_on]
        _say(f"{name}: test notice sent." if failure is None else f"{name}: test notice NOT sent. {failure}")
        worst = worst if failure is None else EXIT_FAILED
    return worst


def _roll_up_run_days(engine: Engine, now: datetime) -> None:
    """The Adoption page's run totals, once per tick (the page reads the runs past the mark itself, so a failure here
    only slows it down)."""
    _beside_scheduling("roll up the Adoption page's run totals", lambda: run_days.advance(engine, now))


def _evaluate_issues(engine: Engine, settings: Settings) -> None:
    """The fleet's issues, once per tick."""
    changes = _beside_scheduling("update the Overview's issues", lambda: issues.evaluate(
        engine, now=scheduler.clock(engine, settings), settings=settings), hint=" If it keeps failing, check the "
        "database and the scheduler's log.")
    if changes:
        _say("Issues: " + ", ".join(f"{c.change.value} {c.type.value}"
                                    + (f" (partner {c.partner_id})" if c.partner_id else "") for c in changes) + ".")


def _beside_scheduling(what: str, step: Callable[[], T], *, hint: str = "") -> T | None:
    """Run a tick's step in its own try: a failure is said (then `hint`) and scheduling goes on (None)."""
    try:
        return step()
    except Exception as exc:  # noqa: BLE001 - whatever fails here must never stop the scheduling of syncs
        log.debug("could not %s", what, exc_info=True)
        _say(f"Could not {what} ({type(exc).__name__}: {exc}); syncs are still scheduled, and the next tick tries "
             f"again.{hint}")
        return None


def cmd_worker(args: argparse.Namespace, engine: Engine, settings: Settings) -> int:
    """Run queued syncs until stopped (SIGTERM or Ctrl-C let running syncs reach a page end and requeue them)."""
    config = WorkerConfig.from_settings(settings)
    if args.threads:
        config = replace(config, threads=args.threads)
    service = Worker(engine, settings, stored_client_factory(settings, engine=engine), config)
    signal.signal(signal.SIGTERM, lambda *_: service.request_stop())
    _say(f"Worker {service.owner}: {config.threads} threads ({config.long_threads} for long syncs), lease "
         f"{config.lease.total_seconds():.0f} s.")
    try:
        if args.once:
            service.run_until_idle()
        else:
            service.run()
    except KeyboardInterrupt:
        service.stop()
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, engine: Engine, settings: Settings) -> int:
    from core.demo import seed as demo
    if not demo.should_seed(engine, settings):
        _say("The database already has partners (or HALO_DEMO=0): no demo seeded.")
        return EXIT_OK
    _say(f"Seeding the demo: {len(demo.DEMO_PARTNERS)} partners on sandbox tenants, {demo.REPLAY_DAYS} days of "
         "hourly history (about half a minute)…")
    demo.seed(engine, settings=settings, now=settings.now(), progress=_progress_printer())
    _say(f"Demo ready. Sign in as {demo.CS.user}, {demo.PARTNER_EMAIL} or {demo.PM_EMAIL} "
         f"with the password {demo.DEMO_PASSWORD}.")
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace, engine: Engine | None, settings: Settings) -> int:
    """Bring the database to the newest schema (every command does on start; this does only that) and say how."""
    migration = db.migrate_database(settings)
    before = migration.before or (f"none (pre-migration schema, stamped {db.BASELINE})" if migration.adopted
                                  else "none (new database)")
    print(f"Schema revision before: {before}\nSchema revision after: {migration.after}")
    _say(migration.describe())
    return EXIT_OK


def cmd_keygen(args: argparse.Namespace, engine: Engine | None, settings: Settings) -> int:
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    SecretBox(key)
    print(key)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="HaloPSA Sync Console command line.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("connect", help="verify and save a partner's HaloPSA connection, then backfill (primary)")
    p.add_argument("--partner", required=True)
    p.add_argument("--domain", required=True, help="App Domain, e.g. acme.halopsa.com")
    p.add_argument("--client-id", required=True)
    p.add_argument("--tenant")
    p.add_argument("--since", help="Invoices Created Since, YYYY-MM-DD")
    p.add_argument("--invoice-number-field", choices=[f.value for f in NumberField], default=NumberField.HALO_ID.value)
    p.add_argument("--secondary", action="store_true", help="HaloPSA is the secondary integration")
    p.set_defaults(func=cmd_connect)

    p = sub.add_parser("sync", help="run one sync for a partner")
    p.add_argument("kind", choices=list(SYNC_KINDS))
    p.add_argument("--partner", required=True)
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("status", help="a partner's connection, counts, runs and cooldowns")
    p.add_argument("--partner", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("reconcile", help="compare a partner's invoices in HaloPSA with the stored ones, now")
    p.add_argument("--partner", required=True)
    p.add_argument("--json", action="store_true", help="the result as JSON on stdout")
    p.set_defaults(func=cmd_reconcile)

    p = sub.add_parser("invoices", help="export a partner's synced invoices")
    p.add_argument("--partner", required=True)
    p.add_argument("--unpaid", action="store_true")
    p.add_argument("--format", choices=["json", "csv"], default="json")
    p.set_defaults(func=cmd_invoices)

    p = sub.add_parser("bundle", help="write a partner's support bundle (zip of JSON and CSV, no secret) to a file")
    p.add_argument("--partner", required=True)
    p.add_argument("--output", type=Path, help="the zip to write (default: support-bundle-<partner>-<time>.zip here)")
    p.set_defaults(func=cmd_bundle)

    p = sub.add_parser("trace", help="why an invoice is (not) here: where it stands and what to do")
    p.add_argument("--partner", required=True)
    p.add_argument("invoice", help="display number, HaloPSA ID or third-party number")
    p.add_argument("--live", action="store_true", help="ask HaloPSA once when local data cannot tell (audited)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_trace)

    p = sub.add_parser("scheduler", help="queue due scheduled syncs for every connected partner")
    p.add_argument("--once", action="store_true")
    p.add_argument("--tick", type=float, default=60.0, help="seconds between checks (default 60)")
    p.add_argument("--run", action="store_true", help="also run the queued syncs here (no worker needed)")
    p.set_defaults(func=cmd_scheduler)

    p = sub.add_parser("worker", help="run queued syncs (any number of workers, on any machines)")
    p.add_argument("--once", action="store_true", help="run what is queued now, then exit")
    p.add_argument("--threads", type=int, help="sync threads (default HALO_WORKER_THREADS, 4)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("alerts", help="where alerts go and the latest deliveries; --test sends a test notice")
    p.add_argument("--test", action="store_true", help="send a test notice on each configured channel")
    p.set_defaults(func=cmd_alerts)

    p = sub.add_parser("demo", help="seed the demo partners and history into an empty embedded database")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("keygen", help="print a new encryption key for HALO_CONSOLE_SECRET_KEY")
    p.set_defaults(func=cmd_keygen)
    sub.add_parser("migrate", help="upgrade the database to the newest schema").set_defaults(func=cmd_migrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ValueError as exc:
        _say(f"Configuration error: {exc}. Check the HALO_* and DATABASE_URL environment variables.")
        return EXIT_BAD_INPUT
    try:
        engine = None if args.command in ("keygen", "migrate") else db.engine_for(settings)
        if engine is not None:
            worker.recover_expired(engine)
            runs.recover_interrupted(engine, now=settings.now(), settings=settings)
        return int(args.func(args, engine, settings))
    except ConsoleError as exc:
        _say(exc.message)
        return exc.exit_code
    except KeyboardInterrupt:
        _say("Stopped.")
        return 130


def run() -> Any:
    sys.exit(main())
