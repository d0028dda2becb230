"""A partner's support bundle: what customer success attaches to a ticket about its syncs, as one zip of JSON and CSV
files. It holds the connection's settings (never its secret), the last probe of the partner's HaloPSA, the granted
and missing permissions, the last RUNS runs with their requests, retries, 429 answers, durations and errors, the
latest record errors, the cooldowns, the recent jobs and the open issues.

No secret, password hash, customer e-mail or address goes in: the secret and the users' table are never read, record
errors keep the names of the fields their record had but not the values, and e-mail addresses in text that came from
HaloPSA (errors, findings) are replaced by E_MAIL_REMOVED. Making one is audited as an export.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from core.access import Principal, require_role
from core.console import exports
from core.errors import NotFound
from core.store import audit
from core.store.tables import (
    CONNECTION_TABLE,
    COOLDOWN_TABLE,
    ERROR_TABLE,
    ISSUE_TABLE,
    JOB_TABLE,
    LISTING_TABLE,
    PARTNER_TABLE,
    PROBE_TABLE,
    RUN_TABLE,
    SUBTYPE_LOOKUP_TABLE,
    AuditAction,
    Role,
)

RUNS = 50
RECORD_ERRORS = 500
JOBS = 50
E_MAIL = re.compile(r"[^\s@<>()\"',;:]+@[^\s@<>()\"',;:]+\.[A-Za-z]{2,}")
E_MAIL_REMOVED = "[e-mail removed]"
FIELD_NAME = re.compile(r"""['"]([A-Za-z_][A-Za-z0-9_]{0,63})['"]: """)  # a key in a record's repr
CONNECTION_FIELDS = ("app_domain", "tenant", "client_id", "invoices_created_since", "invoice_number_field",
                     "numbered_by", "integration_role", "connected_at", "last_verified_at", "last_error")
RUN_FIELDS = ("id", "kind", "trigger", "triggered_by", "status", "started_at", "finished_at", "requests", "retries",
              "rate_limited", "pages", "customers_seen", "agreements_seen", "invoices_seen", "created", "updated",
              "unchanged", "rejected", "window_start", "window_end", "worker", "job_id", "error_kind", "error")
README = """Support bundle of {partner} (partner {partner_id}), made {made} UTC by {by}.

connection.json     the connection's settings (no secret), granted and missing permissions, the last probe of its
                    HaloPSA, the listing methods learnt, the subtype lookup
runs.csv            the last {runs} runs: requests (retries and refused ones included), retries, 429 answers,
                    duration in seconds, counts and errors
record_errors.csv   the latest {errors} records HaloPSA sent that a run rejected: why, and the fields the record had
                    (not their values)
cooldowns.csv       the manual fetches' cooldowns
jobs.csv            the last {jobs} jobs asked for: state, attempts and why each ended
issues.csv          the partner's open issues on the Overview

It holds no secret, no password hash and no customer e-mail or address.
"""


@dataclass(frozen=True)
class Bundle:
    file_name: str
    data: bytes
    files: tuple[str, ...]


def scrubbed(value: Any) -> Any:
    """Text with its e-mail addresses replaced; any other value as it is."""
    return E_MAIL.sub(E_MAIL_REMOVED, value) if isinstance(value, str) else value


def _plain(value: Any) -> Any:
    """A value JSON and CSV can hold: datetimes and dates as ISO text, enums as their words."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value.value if hasattr(value, "value") else value


def _rows(conn: Connection, query: Any, scrub: Iterable[str] = ()) -> list[dict[str, Any]]:
    scrubbing = set(scrub)
    return [{name: scrubbed(_plain(value)) if name in scrubbing else _plain(value)
             for name, value in row._mapping.items()} for row in conn.execute(query)]


def _csv(rows: list[dict[str, Any]], fields: Iterable[str]) -> bytes:
    """Formula-safe CSV with a header even without rows."""
    names = list(fields)
    data, _ = exports.csv_file(rows or [dict.fromkeys(names, None)])
    return data if rows else data.split(b"\n", 1)[0] + b"\n"


def _connection(conn: Connection, partner_id: int) -> dict[str, Any]:
    con, probe, listing, lookup = CONNECTION_TABLE.c, PROBE_TABLE.c, LISTING_TABLE.c, SUBTYPE_LOOKUP_TABLE.c
    stored = conn.execute(select(*(con[name] for name in CONNECTION_FIELDS), con.granted_scopes, con.missing_scopes)
                          .where(con.partner_id == partner_id)).first()
    settings = None if stored is None else {name: _plain(stored._mapping[name]) for name in CONNECTION_FIELDS}
    if settings is not None:
        settings["last_error"] = scrubbed(settings["last_error"])
    probed = conn.execute(select(probe.ran_at, probe.requests, probe.result, probe.stale_reason)
                          .where(probe.partner_id == partner_id)).first()
    return {
        "connection": settings,
        "granted_permissions": [] if stored is None else (stored.granted_scopes or "").split(),
        "missing_permissions": [] if stored is None else (stored.missing_scopes or "").split(),
        "last_probe": None if probed is None else {
            "ran_at": _plain(probed.ran_at), "requests": probed.requests, "stale_reason": probed.stale_reason,
            "result": json.loads(probed.result)},
        "listing_methods": _rows(conn, select(listing.listing, listing.method, listing.reason, listing.decided_at)
                                 .where(listing.partner_id == partner_id).order_by(listing.listing)),
        "subtype_lookup": next(iter(_rows(conn, select(lookup.lookup_id, lookup.state, lookup.finding,
                                                       lookup.checked_at).where(lookup.partner_id == partner_id))),
                               None),
    }


def _runs(conn: Connection, partner_id: int) -> list[dict[str, Any]]:
    run = RUN_TABLE.c
    rows = _rows(conn, select(*(run[name] for name in RUN_FIELDS)).where(run.partner_id == partner_id)
                 .order_by(run.started_at.desc(), run.id.desc()).limit(RUNS), scrub=("error",))
    for row in rows:
        started, finished = row["started_at"], row["finished_at"]
        row["duration_s"] = (None if finished is None else
                             round((datetime.fromisoformat(finished) - datetime.fromisoformat(started))
                                   .total_seconds(), 1))
    return rows


def _record_errors(conn: Connection, partner_id: int) -> list[dict[str, Any]]:
    err, run = ERROR_TABLE.c, RUN_TABLE.c
    found = conn.execute(select(err.run_id, run.started_at.label("run_started_at"), err.entity, err.halo_id,
                                err.reason, err.excerpt)
                         .select_from(ERROR_TABLE.join(RUN_TABLE, run.id == err.run_id))
                         .where(err.partner_id == partner_id).order_by(err.id.desc()).limit(RECORD_ERRORS))
    return [{"run_id": row.run_id, "run_started_at": _plain(row.run_started_at), "entity": row.entity,
             "halo_id": row.halo_id, "reason": scrubbed(row.reason), "record_fields": _field_names(row.excerpt)}
            for row in found]


def _field_names(excerpt: str) -> str:
    """The names of the fields a rejected record had, read from its stored excerpt (the start of its repr): its
    values, which may name a customer, stay out."""
    return " ".join(dict.fromkeys(FIELD_NAME.findall(excerpt)))


def build(engine: Engine, principal: Principal, partner_id: int, *, now: datetime) -> Bundle:
    """The partner's bundle (customer success only), with its "export" audit event."""
    require_role(principal, Role.CS)
    cool, job, issue = COOLDOWN_TABLE.c, JOB_TABLE.c, ISSUE_TABLE.c
    with engine.begin() as conn:
        name = conn.scalar(select(PARTNER_TABLE.c.name).where(PARTNER_TABLE.c.id == partner_id))
        if name is None:
            raise NotFound("That partner does not exist (any more). Pick a partner from the list.")
        files = {
            "connection.json": json.dumps({"partner": {"id": partner_id, "name": name},
                                           **_connection(conn, partner_id)}, indent=2).encode(),
            "runs.csv": _csv(_runs(conn, partner_id), (*RUN_FIELDS, "duration_s")),
            "record_errors.csv": _csv(_record_errors(conn, partner_id),
                                      ("run_id", "run_started_at", "entity", "halo_id", "reason", "record_fields")),
            "cooldowns.csv": _csv(_rows(conn, select(
                cool.kind, cool.available_at, cool.last_started_at, cool.last_actor, cool.refused_count)
                .where(cool.partner_id == partner_id).order_by(cool.kind)),
                ("kind", "available_at", "last_started_at", "last_actor", "refused_count")),
            "jobs.csv": _csv(_rows(conn, select(
                job.id, job.kind, job.trigger, job.requested_by, job.state, job.created_at, job.started_at,
                job.finished_at, job.attempts, job.run_id, job.outcome)
                .where(job.partner_id == partner_id).order_by(job.id.desc()).limit(JOBS), scrub=("outcome",)),
                ("id", "kind", "trigger", "requested_by", "state", "created_at", "started_at", "finished_at",
                 "attempts", "run_id", "outcome")),
            "issues.csv": _csv(_rows(conn, select(
                issue.type, issue.severity, issue.owner, issue.detail, issue.first_seen, issue.last_seen,
                issue.reopened, issue.snoozed_until, issue.snooze_reason)
                .where(issue.partner_id == partner_id, issue.resolved_at.is_(None)).order_by(issue.first_seen),
                scrub=("detail",)),
                ("type", "severity", "owner", "detail", "first_seen", "last_seen", "reopened", "snoozed_until",
                 "snooze_reason")),
        }
        files["README.txt"] = README.format(partner=name, partner_id=partner_id, made=f"{now:%Y-%m-%d %H:%M}",
                                            by=principal.user, runs=RUNS, errors=RECORD_ERRORS, jobs=JOBS).encode()
        audit.record(conn, actor=principal.user, action=AuditAction.EXPORT, partner_id=partner_id, now=now,
                     detail=f"Support bundle: {len(files)} files")
    return Bundle(file_name=file_name(name, now), data=_zipped(files, now), files=tuple(sorted(files)))


def file_name(partner: str, now: datetime) -> str:
    """The bundle's file name: the partner's name in lower case and dashes, and when it was made."""
    slug = re.sub(r"[^a-z0-9]+", "-", partner.lower()).strip("-") or "partner"
    return f"support-bundle-{slug}-{now:%Y%m%d-%H%M}.zip"


def _zipped(files: dict[str, bytes], now: datetime) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            archive.writestr(zipfile.ZipInfo(name, date_time=now.timetuple()[:6]), files[name],
                             compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()

