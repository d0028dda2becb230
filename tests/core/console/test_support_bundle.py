"""The support bundle: what it holds, and what it never holds (secrets, customer e-mails), on the demo's data."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from core.access import Principal
from core.console import support_bundle
from core.demo import sandbox, seed
from core.errors import AccessDenied, NotFound
from core.store.tables import (
    AUDIT_TABLE,
    CONNECTION_TABLE,
    CUSTOMER_TABLE,
    PARTNER_TABLE,
    USER_TABLE,
    AuditAction,
    Role,
)
from tests.support.clock import NOW
from tests.support.factories import add_partner

CS = Principal(role=Role.CS, user="cs@demo.local")
FILES = ("README.txt", "connection.json", "cooldowns.csv", "issues.csv", "jobs.csv", "record_errors.csv", "runs.csv")


@pytest.fixture
def demo(engine, settings) -> Iterator[tuple[object, dict[str, int], dict[str, str]]]:
    """The demo after two days of replay: its engine, the partners' ids and their hosts by name."""
    sandbox.REGISTRY.clear()
    seed.seed(engine, settings=settings, now=NOW, days=2)
    with engine.connect() as conn:
        ids = dict(conn.execute(select(PARTNER_TABLE.c.name, PARTNER_TABLE.c.id)).all())
        hosts = dict(conn.execute(select(PARTNER_TABLE.c.name, CONNECTION_TABLE.c.app_domain)
                                  .join(CONNECTION_TABLE, CONNECTION_TABLE.c.partner_id == PARTNER_TABLE.c.id)).all())
    yield engine, ids, hosts
    sandbox.REGISTRY.clear()


def _files(bundle: support_bundle.Bundle) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(bundle.data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def test_the_bundle_holds_the_connection_probe_runs_errors_cooldowns_jobs_and_issues(demo):
    engine, ids, _ = demo
    bundle = support_bundle.build(engine, CS, ids["Northwind IT"], now=NOW)
    files = _files(bundle)
    assert tuple(sorted(files)) == bundle.files == FILES
    assert bundle.file_name == f"support-bundle-northwind-it-{NOW:%Y%m%d-%H%M}.zip"
    settings = json.loads(files["connection.json"])
    assert settings["partner"] == {"id": ids["Northwind IT"], "name": "Northwind IT"}
    assert set(settings["connection"]) == set(support_bundle.CONNECTION_FIELDS)
    assert settings["granted_permissions"] and settings["last_probe"]["requests"] > 0
    runs = _csv(files["runs.csv"])
    assert 0 < len(runs) <= support_bundle.RUNS
    assert runs[0]["started_at"] >= runs[-1]["started_at"]  # newest first
    assert {"requests", "retries", "rate_limited", "duration_s", "error"} <= set(runs[0])
    assert all(float(run["duration_s"]) >= 0 for run in runs if run["finished_at"])
    errors = _csv(files["record_errors.csv"])
    assert errors and all(error["reason"] for error in errors)
    assert any(error["record_fields"] for error in errors)
    assert {row["type"] for row in _csv(files["issues.csv"])} >= {"record_errors"}
    assert _csv(files["jobs.csv"]) and b"Northwind IT" in files["README.txt"]
    with engine.connect() as conn:
        audited = conn.execute(select(AUDIT_TABLE.c.actor, AUDIT_TABLE.c.detail).where(
            AUDIT_TABLE.c.action == AuditAction.EXPORT, AUDIT_TABLE.c.partner_id == ids["Northwind IT"])).all()
    assert ("cs@demo.local", "Support bundle: 7 files") in audited


@pytest.mark.parametrize("name", ["Northwind IT", "Litware Systems"])
def test_no_bundle_holds_a_secret_a_password_hash_or_a_customer_e_mail(demo, name):
    engine, ids, hosts = demo
    data = b"".join(_files(support_bundle.build(engine, CS, ids[name], now=NOW)).values()).decode()
    _, secret = sandbox.credentials(hosts[name])
    with engine.connect() as conn:
        stored = conn.scalar(select(CONNECTION_TABLE.c.client_secret_encrypted)
                             .where(CONNECTION_TABLE.c.partner_id == ids[name]))
        hashes = list(conn.scalars(select(USER_TABLE.c.password_hash)))
        users = set(conn.scalars(select(USER_TABLE.c.email)))
        customers = {email for email in conn.scalars(select(CUSTOMER_TABLE.c.billing_email)) if email}
    assert secret not in data and stored not in data
    assert not [hashed for hashed in hashes if hashed in data]
    assert customers and not [email for email in customers if email in data]
    assert set(support_bundle.E_MAIL.findall(data)) <= users  # the only addresses: console users who acted


def test_the_e_mails_in_text_from_halopsa_are_removed():
    assert support_bundle.scrubbed("HaloPSA: billing@acme-widgets.example is not unique") == (
        "HaloPSA: [e-mail removed] is not unique")
    assert support_bundle.scrubbed(42) == 42


@pytest.mark.parametrize("role", [Role.PARTNER, Role.PM])
def test_only_customer_success_makes_a_bundle(engine, settings, role):
    partner_id = add_partner(engine, settings, name="Acme", now=NOW)
    with pytest.raises(AccessDenied):
        support_bundle.build(engine, Principal(role=role, user="x@example.com", partner_id=partner_id), partner_id,
                             now=NOW)


def test_a_partner_that_does_not_exist_says_so(engine):
    with pytest.raises(NotFound, match="Pick a partner"):
        support_bundle.build(engine, CS, 999_999, now=NOW)
