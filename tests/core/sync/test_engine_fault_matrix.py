"""The fault matrix: every fault HaloPSA or the network can throw at a sync, over a real loopback socket, for the
backfill, Fetch new data and Fetch unpaid invoices. Each run must end with the right status and a reason a person
can act on, and once the fault clears a rerun must leave the database equal to HaloPSA (no duplicates).

The figure "N scenarios, N converged" is printed in the pytest summary (tests/conftest.py) and quoted in the README.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from core.access import Principal
from core.actions import connect as connections
from core.actions import fetches as actions
from core.errors import CooldownActive
from core.halopsa.config import REQUIRED_SCOPES
from core.store.tables import JOB_TABLE, JobState, Partner, PartnerStatus, Role, RunKind, RunStatus, SyncRecordError
from core.sync import connector, jobs, worker
from core.sync import engine as sync_engine
from core.sync.runs import RunResult
from core.sync.window import NEW_DATA_SPAN
from halo_emulator import DEFAULT_SORTABLE_FIELDS, FaultRule, HaloEmulator, LogEntry, serve
from tests.support.clock import NOW
from tests.support.halo_state import differences, expected_invoices, stored_invoices

CS = Principal(role=Role.CS, user="cs@example.com")
NEW_SECRET = "rotated-secret-after-connect"
WITHOUT_READ_INVOICES = tuple(s for s in REQUIRED_SCOPES if s not in ("read:invoices", "edit:invoices"))
# page sizes that give every listing several pages: 300 invoices, ~20 changed in the last hour, ~60 unpaid
PAGE_SIZES = {RunKind.BACKFILL: 40, RunKind.FETCH_NEW_DATA: 5, RunKind.FETCH_UNPAID: 15}
KINDS = list(PAGE_SIZES)
UNPAID = ("unpaid", "partially_paid")


class RecordingEmulator(HaloEmulator):
    """The emulator, remembering which invoice ids each listing page served (to prove duplicates across pages)."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.served: dict[tuple[Any, ...], dict[int, list[int]]] = defaultdict(dict)

    def respond(self, request: httpx.Request) -> httpx.Response:
        response = super().respond(request)
        params = dict(request.url.params)
        if request.url.path.lower() == "/api/invoice" and "page_no" in params and response.status_code == 200:
            try:
                ids = [row["id"] for row in json.loads(response.content)["invoices"]]
            except (ValueError, KeyError, TypeError, httpx.ResponseNotRead):
                return response  # a truncated, malformed or streamed (oversize) page
            listing = tuple(sorted((k, v) for k, v in params.items() if k != "page_no"))
            self.served[listing][int(params["page_no"])] = ids
        return response

    def duplicates_served(self) -> int:
        """Invoice ids served on more than one page of the same listing."""
        total = 0
        for pages in self.served.values():
            counts = Counter(i for ids in pages.values() for i in ids)
            total += sum(n - 1 for n in counts.values() if n > 1)
        return total


# ---- what a scenario does to HaloPSA ------------------------------------------------------------------------------

def _halo_post(emu: HaloEmulator, path: str, body: list[dict[str, Any]]) -> None:
    """Change HaloPSA the way another API user would: a token, then a POST (used for payment refunds)."""
    token = emu.handle(httpx.Request("POST", "http://halo/auth/token", data={
        "grant_type": "client_credentials", "client_id": emu.client_id, "client_secret": emu.client_secret,
        "scope": "all"})).json()["access_token"]
    answer = emu.handle(httpx.Request("POST", f"http://halo{path}", json=body,
                                      headers={"Authorization": f"Bearer {token}"}))
    assert answer.status_code in (200, 201), answer.text


def _refund_a_paid_invoice(emu: HaloEmulator) -> int:
    """Reduce the payment of the lowest-id paid invoice: it becomes partially paid (back in the unpaid listing, near
    its start) and is modified now (top of a newest-first listing)."""
    paid = {row["id"] for row in emu.invoices.values() if row["paymentstatus"] == 2 and not row["voided"]}
    payment = min((p for p in emu.payments.values() if p["invoice_id"] in paid), key=lambda p: p["invoice_id"])
    _halo_post(emu, "/api/InvoicePayment", [{"id": payment["id"], "amount": 0.01}])
    return payment["invoice_id"]


def churn(emu: HaloEmulator, _request: httpx.Request) -> None:
    """Records change while the client pages: a new invoice, a payment, an edit and a void."""
    unpaid = sorted(i for i, row in emu.invoices.items() if row["paymentstatus"] in (0, 1) and not row["voided"])
    emu.add_invoice(total=321.09)
    emu.pay_invoice(unpaid[0])
    emu.edit_invoice(unpaid[-1], duedate="2027-01-31T00:00:00")
    emu.void_invoice(unpaid[len(unpaid) // 2])


def shift_pages(emu: HaloEmulator, _request: httpx.Request) -> None:
    """Rows move up while the client pages (new invoices on top of newest-first listings, a refunded invoice back
    near the start of the unpaid listing), so the next page repeats rows already read."""
    emu.add_invoice(total=150.00)
    emu.add_invoice(total=275.50)
    _refund_a_paid_invoice(emu)


@dataclass(frozen=True)
class Scenario:
    name: str
    rules: Callable[[], list[FaultRule]] = list
    before: Callable[[HaloEmulator], None] | None = None
    """A change to HaloPSA after connect, before the run."""
    status: str = RunStatus.SUCCEEDED
    words: str | None = None
    """Part of the run's error (None: no error)."""
    transient: bool = False
    """A manual fetch that failed this way gives its cooldown back."""
    since: date | None = None
    """Invoices Created Since for the connection (sorts the backfill listing newest first)."""
    repair: str | None = None
    """What "the fault clears" means beyond removing the faults: "reconnect" (new secret) or "scopes"."""
    duplicates: bool = False
    timeout_s: float = 10.0
    """The client's read timeout: short only where the fault is a timeout, so a busy machine never adds one."""
    rejected: str | None = None
    """Part of the rejected record's reason (a partial run)."""
    quirks: dict[str, Any] = field(default_factory=dict)
    """How this tenant differs from the documentation (emulator knobs, reference 11): they stay for the rerun."""
    met: Callable[[RecordingEmulator, list[LogEntry], str], bool] | None = None
    """Whether the run really met the quirk (the emulator, the requests it logged during the run, the run kind)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Console settings of this scenario (a short request deadline)."""
    requeued: bool = False
    """A manual fetch's job goes back to the queue to continue after the wait; the rerun is that job."""


def on_invoices(kind: str, *, times: int | None, after: int = 1, **fields: Any) -> Callable[[], list[FaultRule]]:
    return lambda: [FaultRule(kind=kind, path="/api/invoice", times=times, after=after, **fields)]


def mutate(callback: Callable[[HaloEmulator, httpx.Request], None], *, after: int = 1) -> Callable[[], list[FaultRule]]:
    return lambda: [FaultRule(kind="mutate", path="/api/invoice", times=1, after=after, on_request=callback)]


def _revoke_secret(emu: HaloEmulator, _request: Any = None) -> None:
    emu.rotate_secret(NEW_SECRET)


def _drop_permission(emu: HaloEmulator, _request: Any = None) -> None:
    emu.set_scopes(WITHOUT_READ_INVOICES)
    emu.expire_tokens()


UNAVAILABLE = "did not answer"
FAR_FUTURE = "Fri, 31 Dec 2100 23:59:59 GMT"
DRIP_DEADLINE = {"request_deadline_s": 1.0}
UNSORTABLE = {"sortable_fields": DEFAULT_SORTABLE_FIELDS - {"last_modified", "alastupdate"}}


def _listed_beyond_page_one(log: list[LogEntry]) -> bool:
    return any(e.path.lower() == "/api/invoice" and int(e.query.get("page_no", "1")) > 1 for e in log)


def _invoice_queries(log: list[LogEntry]) -> list[dict[str, str]]:
    return [e.query for e in log if e.path.lower() == "/api/invoice"]


def _read_by_datesearch(log: list[LogEntry]) -> bool:
    """The run listed changed invoices by the date filter alone: the probe at connect found sorting refused."""
    asked = _invoice_queries(log)
    return bool(asked) and all("datesearch" in q and "order" not in q for q in asked)


def _read_by_scan(log: list[LogEntry]) -> bool:
    """The run scanned the invoices without asking for an order: the probe found sorting and the filter ignored."""
    asked = _invoice_queries(log)
    return bool(asked) and not any("order" in q or "datesearch" in q for q in asked)
SCENARIOS = [
    Scenario("429 burst with Retry-After", on_invoices("rate_limit", times=2, retry_after=0.01)),
    Scenario("429 burst without Retry-After", on_invoices("rate_limit", times=2)),
    Scenario("429 persistent", on_invoices("rate_limit", times=None, retry_after=0), status=RunStatus.RATE_LIMITED,
             words="kept rate limiting", transient=True),
    Scenario("500 burst", on_invoices("status", times=2, status=500)),
    Scenario("502 burst", on_invoices("status", times=2, status=502)),
    Scenario("503 burst", on_invoices("status", times=2, status=503)),
    Scenario("503 persistent", on_invoices("status", times=None, status=503), status=RunStatus.FAILED,
             words="(HTTP 503)", transient=True),
    Scenario("timeout once", on_invoices("timeout", times=1, delay_s=2.0), timeout_s=0.3),
    Scenario("timeout persistent", on_invoices("timeout", times=None, delay_s=2.0), status=RunStatus.FAILED,
             words=f"{UNAVAILABLE} within 0.3 s", transient=True, timeout_s=0.3),
    Scenario("dropped connection burst", on_invoices("drop", times=2)),
    Scenario("dropped connection persistent", on_invoices("drop", times=None), status=RunStatus.FAILED,
             words="connection failed", transient=True),
    Scenario("truncated page once", on_invoices("truncated", times=1)),
    Scenario("truncated page persistent", on_invoices("truncated", times=None), status=RunStatus.FAILED,
             words="not valid JSON", transient=True),
    Scenario("malformed JSON page once", on_invoices("malformed_json", times=1)),
    Scenario("malformed JSON page persistent", on_invoices("malformed_json", times=None), status=RunStatus.FAILED,
             words="not valid JSON", transient=True),
    Scenario("malformed record in a good page", on_invoices("malformed_record", times=1), status=RunStatus.PARTIAL),
    # issue 12: poison records are rejected with their reason, the rest of their page is stored, the run is partial
    Scenario("poison record: total 1e20", on_invoices("malformed_record", times=1, field="total", value=1e20),
             status=RunStatus.PARTIAL, rejected="too large"),
    Scenario("poison record: id 2^63", on_invoices("malformed_record", times=1, field="id", value=2**63),
             status=RunStatus.PARTIAL, rejected="64 bits"),
    Scenario("poison record: NaN amount due", on_invoices("malformed_record", times=1, field="amountdue",
                                                          value="NaN"), status=RunStatus.PARTIAL,
             rejected="not a finite number"),
    Scenario("poison record: string id", on_invoices("malformed_record", times=1, field="id", value="INV-1042"),
             status=RunStatus.PARTIAL, rejected="whole number"),
    Scenario("token expiry mid-sync", on_invoices("token_expiry", times=1)),
    # issue 12: an expired token answered with 400, a rate limit asking for a day, an answer sent a byte a second
    Scenario("token expiry answered with HTTP 400", on_invoices("token_expiry", times=1),
             quirks={"expired_token_status": 400}),
    Scenario("429 asking for a day", on_invoices("rate_limit", times=1, retry_after=86400),
             status=RunStatus.RATE_LIMITED, words="5 min", transient=True, requeued=True),
    Scenario("429 until a far-future date", on_invoices("rate_limit", times=1, retry_after=FAR_FUTURE),
             status=RunStatus.RATE_LIMITED, words="5 min", transient=True, requeued=True),
    Scenario("answer dripped once", on_invoices("drip", times=1, bytes_per_s=1), settings=DRIP_DEADLINE),
    Scenario("answer dripped persistently", on_invoices("drip", times=None, bytes_per_s=1), status=RunStatus.FAILED,
             words="too slowly: it was not complete within 1 s", transient=True, settings=DRIP_DEADLINE),
    Scenario("secret revoked after connect", before=_revoke_secret, status=RunStatus.FAILED,
             words="rejected the client ID or secret", repair="reconnect"),
    Scenario("secret revoked mid-sync", mutate(_revoke_secret), status=RunStatus.FAILED,
             words="rejected the client ID or secret", repair="reconnect"),
    Scenario("permission removed after connect", before=_drop_permission, status=RunStatus.FAILED,
             words="lacks: read:invoices", repair="scopes"),
    Scenario("permission removed mid-sync", mutate(_drop_permission), status=RunStatus.FAILED,
             words="lacks: read:invoices", repair="scopes"),
    Scenario("records edited and added while paging", mutate(churn)),
    Scenario("duplicates across pages", mutate(shift_pages, after=0), since=date(2000, 1, 1), duplicates=True),
    # issue 12: tenants that page, count and sort unlike the documentation, and a runaway page
    Scenario("record_count is the page length", quirks={"record_count_is_page_length": True},
             met=lambda _emu, log, _kind: _listed_beyond_page_one(log)),
    Scenario("record_count is the page length of pages capped below the size asked",
             quirks={"record_count_is_page_length": True, "page_size_cap": 4},
             met=lambda _emu, log, _kind: _listed_beyond_page_one(log)),
    Scenario("order on an unsortable field answered 500", quirks={**UNSORTABLE, "unsortable_order_status": 500,
                                                                  "datesearch": True},
             met=lambda _emu, log, kind: kind != RunKind.FETCH_NEW_DATA or _read_by_datesearch(log)),
    Scenario("order on an unsortable field ignored", quirks=UNSORTABLE,
             met=lambda _emu, log, kind: kind != RunKind.FETCH_NEW_DATA or _read_by_scan(log)),
    Scenario("a page longer than asked", quirks={"ignore_paging": True},
             met=lambda emu, _log, _kind: bool(emu.served) and all(list(p) == [1] for p in emu.served.values())),
    Scenario("a 300 MB page", on_invoices("oversize", times=1, size_bytes=300 * 2**20), status=RunStatus.FAILED,
             words="larger than 32 MB", transient=True),
]


# ---- driving the console ---------------------------------------------------------------------------------------

@dataclass
class Tenant:
    engine: Any
    settings: Any
    emu: RecordingEmulator
    partner_id: int

    def run(self, kind: str) -> RunResult:
        """The run as a person or the scheduler starts it: manual fetches through the action, with cooldowns."""
        factory = connector.stored_client_factory(self.settings)
        if kind == RunKind.BACKFILL:
            return sync_engine.run_sync(self.engine, partner_id=self.partner_id, kind=kind, trigger="connect",
                                        actor="t", now=self.emu.now, settings=self.settings, client_factory=factory)
        return actions.start_manual_fetch(self.engine, CS, partner_id=self.partner_id, kind=kind, now=self.emu.now,
                                          settings=self.settings, client_factory=factory)

    def resume(self, job_id: int) -> RunResult:
        """Run the job a rate limit handed back, as a worker does once its wait is over."""
        factory = connector.stored_client_factory(self.settings)
        return worker.run_job_now(self.engine, self.settings, factory, job_id,
                                  lease=timedelta(seconds=self.settings.lease_s), now=self.emu.now)

    def rerun(self, kind: str) -> tuple[RunResult, bool]:
        """Run again; a manual fetch refused by its cooldown is pressed again once the cooldown ends. Returns the
        result and whether it had to wait."""
        try:
            return self.run(kind), False
        except CooldownActive as refused:
            self.emu.advance(refused.available_at)
            return self.run(kind), True


def _connect(engine, settings, emu, url: str, *, since: date | None, secret: str | None = None) -> int:
    form = connections.ConnectionForm(partner_name="Acme MSP", app_domain=url, client_id=emu.client_id,
                                      client_secret=secret or emu.client_secret, invoice_number_field="third_party",
                                      invoices_created_since=since)
    partner_id, _ = connections.connect(engine, CS, form, now=emu.now, settings=settings)
    return partner_id


def _changes_in_the_last_hour(emu: HaloEmulator) -> None:
    """Enough recent edits, payments and new invoices that the last hour spans several pages."""
    emu.advance(emu.now + timedelta(minutes=50))
    open_ids = sorted(i for i, row in emu.invoices.items() if row["paymentstatus"] in (0, 1) and not row["voided"])
    for halo_id in open_ids[:14]:
        emu.edit_invoice(halo_id, reference=f"edited {halo_id}")
    for halo_id in open_ids[14:17]:
        emu.pay_invoice(halo_id)
    for total in (99.5, 250.0, 1234.56):
        emu.add_invoice(total=total)
    emu.advance(emu.now + timedelta(minutes=5))


def _modified(row: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(row["last_modified"]).replace(tzinfo=NOW.tzinfo)


def _converged(tenant: Tenant, kind: str, window_start: datetime | None) -> list[str]:
    """How the database differs from HaloPSA over what a run of `kind` covers (empty: equal)."""
    expected = expected_invoices(tenant.emu, "third_party")
    stored = stored_invoices(tenant.engine, tenant.partner_id)  # asserts there are no duplicate rows
    if kind == RunKind.BACKFILL:
        return differences(expected, stored)
    if kind == RunKind.FETCH_NEW_DATA:
        assert window_start is not None
        covered = {i for i, row in tenant.emu.invoices.items() if _modified(row) >= window_start}
        return differences({i: expected[i] for i in covered}, {i: stored[i] for i in covered if i in stored})
    unpaid = {i for i, row in expected.items() if row["status"] in UNPAID}
    stored_unpaid = {i for i, row in stored.items() if row["status"] in UNPAID}
    problems = [f"invoice {i} unpaid here, not in HaloPSA" for i in sorted(stored_unpaid - unpaid)]
    return problems + differences({i: expected[i] for i in unpaid}, {i: stored[i] for i in unpaid if i in stored})


def _rejected_alone(tenant: Tenant, result: RunResult, rule: FaultRule, reason: str | None, kind: str) -> None:
    """The rejected record is on the run with its reason; everything else the backfill was served is stored."""
    with tenant.engine.connect() as conn:
        [rejected] = conn.execute(select(SyncRecordError).where(SyncRecordError.run_id == result.run_id)).all()
    assert reason is None or reason in rejected.reason, rejected.reason
    if kind == RunKind.BACKFILL:
        served = {i for pages in tenant.emu.served.values() for ids in pages.values() for i in ids
                  if type(i) is int and i in tenant.emu.invoices}
        assert served - set(rule.corrupted_ids) <= set(stored_invoices(tenant.engine, tenant.partner_id))


def _handed_back(engine, settings) -> int:
    """The job a long rate limit handed back: queued again, to start within the rate window, never later."""
    with engine.connect() as conn:
        queue_now = jobs.lease_now(conn)
        [job] = conn.execute(select(JOB_TABLE).where(JOB_TABLE.c.state == JobState.QUEUED)).all()
    assert queue_now < job.not_before <= queue_now + timedelta(seconds=settings.rate_limit_window_s)
    return int(job.id)


@pytest.fixture
def fault_settings(settings):
    return replace(settings, max_attempts=3, backoff_cap_s=0.01, rate_limit_requests=10**6,
                   cooldown_new_data_s=120, cooldown_unpaid_s=120)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name.replace(" ", "-"))
def test_every_fault_ends_the_run_readably_and_a_rerun_converges(engine, fault_settings, scenario, kind,
                                                                record_property):
    record_property("reliability", ("fault matrix", "scenarios"))
    settings = replace(fault_settings, page_size=PAGE_SIZES[kind], http_timeout_s=scenario.timeout_s,
                       **scenario.settings)
    emu = RecordingEmulator(seed=11, invoices=300, start=NOW, rate_limit=None, activity=25, **scenario.quirks)
    with serve(emu) as server:
        since = scenario.since if kind == RunKind.BACKFILL else None
        tenant = Tenant(engine, settings, emu, _connect(engine, settings, emu, server.url, since=since))
        if kind != RunKind.BACKFILL:
            tenant.settings = replace(settings, page_size=1000)  # the initial backfill, quickly
            assert tenant.run(RunKind.BACKFILL).status == RunStatus.SUCCEEDED
            tenant.settings = settings
            if kind == RunKind.FETCH_NEW_DATA:
                _changes_in_the_last_hour(emu)
        if scenario.before:
            scenario.before(emu)
        rules = [emu.add_fault(rule) for rule in scenario.rules()]
        emu.served.clear()
        logged = len(emu.stats.log)

        result = tenant.run(kind)

        assert all(rule.fired for rule in rules), "the fault never happened"
        assert scenario.met is None or scenario.met(emu, emu.stats.log[logged:], kind), "the quirk never showed"
        assert result.status == scenario.status, result.error
        if scenario.words is None:
            assert result.error is None
        else:
            assert scenario.words in result.error and "Traceback" not in result.error
            assert emu.client_secret not in result.error and NEW_SECRET not in result.error
        if scenario.status == RunStatus.PARTIAL:
            assert result.tally.rejected == 1
            _rejected_alone(tenant, result, rules[0], scenario.rejected, kind)
        if kind != RunKind.BACKFILL:  # a handed-back job serves the press later: its cooldown stays taken
            refunded = scenario.transient and not scenario.requeued
            assert result.cooldown_refunded == refunded
            assert ("run this fetch again now" in (result.error or "")) == refunded
            assert ("continues by itself" in (result.error or "")) == scenario.requeued
        if scenario.duplicates:
            assert emu.duplicates_served() > 0, "the listing never repeated a row"

        handed_back = _handed_back(engine, settings) if scenario.requeued and kind != RunKind.BACKFILL else None

        emu.clear_faults()
        if scenario.repair == "scopes":
            emu.set_scopes(REQUIRED_SCOPES)
        elif scenario.repair == "reconnect":
            _connect(engine, settings, emu, server.url, since=since, secret=NEW_SECRET)
        rerun, waited = (tenant.resume(handed_back), False) if handed_back else tenant.rerun(kind)

    assert rerun.status == RunStatus.SUCCEEDED, rerun.error
    if kind != RunKind.BACKFILL:  # an immediate rerun is refused only when the cooldown was rightly kept
        assert waited == (not scenario.transient)
    window_start = emu.now - NEW_DATA_SPAN if kind == RunKind.FETCH_NEW_DATA else None
    assert _converged(tenant, kind, window_start) == []
    with engine.connect() as conn:
        assert conn.scalar(select(Partner.__table__.c.status)) == PartnerStatus.CONNECTED
    record_property("reliability", ("fault matrix", "converged"))
