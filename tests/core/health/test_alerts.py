"""Alerts from issue events: planned once per change and subscribed channel after the high-water mark, sent to a
local SMTP server and a local webhook receiver, retried with backoff and given up with a secret-free reason, claimed
so two senders never send one twice, and run from the scheduler without ever stopping it."""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core import cli
from core.health import alerts
from core.health.senders import Notice, SendFailed, senders_for
from core.settings import settings_from_mapping
from core.store.tables import (
    ALERT_DELIVERY_TABLE,
    ISSUE_EVENT_TABLE,
    RUN_TABLE,
    SETTING_TABLE,
    AlertChannel,
    DeliveryState,
    IssueChange,
    IssueSeverity,
    IssueType,
    RunStatus,
)
from halo_emulator import HaloEmulator, serve
from tests.support.clock import NOW
from tests.support.factories import add_partner
from tests.support.issue_rows import (
    WEBHOOK_PATH,
    add_event,
    add_issue,
    email_settings,
    free_port,
    smtp_server,
    webhook_receiver,
    webhook_settings,
)

D = ALERT_DELIVERY_TABLE.c
PASSWORD = "smtp-Pa55word-4c1e9"


def deliveries(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(select(ALERT_DELIVERY_TABLE).order_by(D.id))]


def mark(engine) -> str | None:
    with engine.connect() as conn:
        return conn.scalar(select(SETTING_TABLE.c.value).where(SETTING_TABLE.c.key == alerts.HIGH_WATER_KEY))


@pytest.fixture
def acme(engine, settings) -> int:
    return add_partner(engine, settings, name="Acme MSP", now=NOW - timedelta(days=3))


def opened(engine, partner_id, issue_type=IssueType.AUTH_FAILED, *, at=NOW, **issue) -> int:
    issue_id = add_issue(engine, partner_id, issue_type, first_seen=at - timedelta(hours=2), **issue)
    return add_event(engine, issue_id, IssueChange.OPENED, at=at)


def both(settings, inbox_port: int, url: str, **extra):
    return webhook_settings(email_settings(settings, inbox_port), url, **extra)


# ---- plan ----------------------------------------------------------------------------------------------------------

def test_the_first_plan_marks_the_newest_event_and_sends_nothing_then_each_change_once_per_channel(
        engine, settings, acme):
    configured = both(settings, 2525, "https://hooks.example/services/x")
    history = [opened(engine, acme, kind) for kind in (IssueType.AUTH_FAILED, IssueType.RECORD_ERRORS)]
    assert alerts.plan(engine, configured, NOW) == 0
    assert deliveries(engine) == [] and mark(engine) == str(history[-1])

    issue_id = add_issue(engine, acme, IssueType.FAILING_RUNS, first_seen=NOW)
    new = [add_event(engine, issue_id, change, at=NOW + timedelta(minutes=i))
           for i, change in enumerate((IssueChange.OPENED, IssueChange.ESCALATED, IssueChange.RESOLVED))]
    assert alerts.plan(engine, configured, NOW + timedelta(minutes=5)) == 6
    assert alerts.plan(engine, configured, NOW + timedelta(minutes=6)) == 0  # planned once
    rows = deliveries(engine)
    assert [(row["event_id"], row["channel"]) for row in rows] == [
        (event, channel) for event in new for channel in (AlertChannel.EMAIL, AlertChannel.WEBHOOK)]
    assert {(row["state"], row["attempts"], row["next_attempt_at"]) for row in rows} == {
        (DeliveryState.PENDING, 0, NOW + timedelta(minutes=5))}
    assert mark(engine) == str(new[-1])


def test_nothing_is_planned_or_sent_when_no_channel_is_configured_and_turning_one_on_sends_only_what_follows(
        engine, settings, acme):
    opened(engine, acme)
    assert alerts.plan(engine, settings, NOW) == 0
    second = opened(engine, acme, IssueType.RATE_LIMITED)
    assert alerts.plan(engine, settings, NOW) == 0
    assert alerts.send_due(engine, settings, NOW, senders_for(settings)).line() == ""
    assert deliveries(engine) == [] and senders_for(settings) == {}
    assert mark(engine) == str(second)  # the mark moved on while nothing was configured

    configured = webhook_settings(settings, "https://hooks.example/services/x")
    third = opened(engine, acme, IssueType.STALE_CLOCK)
    assert alerts.plan(engine, configured, NOW) == 1
    assert [row["event_id"] for row in deliveries(engine)] == [third]


def test_two_planners_at_once_plan_each_event_once(engine, settings, acme):
    configured = webhook_settings(email_settings(settings, 2525), "https://hooks.example/services/x")
    alerts.plan(engine, configured, NOW)
    events = [opened(engine, acme, kind) for kind in IssueType if kind != IssueType.WORKER_DOWN]
    start, planned = threading.Barrier(2), []

    def race() -> None:
        start.wait(30)
        planned.append(alerts.plan(engine, configured, NOW))

    threads = [threading.Thread(target=race) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(planned) == [0, 2 * len(events)]
    assert len(deliveries(engine)) == 2 * len(events)


def test_each_channel_gets_only_the_issue_types_it_subscribes_to(engine, settings, acme):
    configured = both(settings, 2525, "https://hooks.example/services/x",
                      alert_email_types=(IssueType.AUTH_FAILED, IssueType.WORKER_DOWN),
                      alert_webhook_types=(IssueType.RECORD_ERRORS,))
    alerts.plan(engine, configured, NOW)
    auth = opened(engine, acme, IssueType.AUTH_FAILED)
    records = opened(engine, acme, IssueType.RECORD_ERRORS)
    opened(engine, acme, IssueType.SUBTYPE_UNMAPPED)  # nobody subscribes
    fleet = opened(engine, None, IssueType.WORKER_DOWN)
    assert alerts.plan(engine, configured, NOW) == 3
    assert [(row["event_id"], row["channel"]) for row in deliveries(engine)] == [
        (auth, AlertChannel.EMAIL), (records, AlertChannel.WEBHOOK), (fleet, AlertChannel.EMAIL)]


def test_a_snoozed_issue_sends_nothing_until_it_resolves(engine, settings, acme):
    configured = webhook_settings(settings, "https://hooks.example/services/x")
    alerts.plan(engine, configured, NOW)
    snoozed = add_issue(engine, acme, IssueType.RECORD_ERRORS, first_seen=NOW - timedelta(days=1),
                        snoozed_until=NOW + timedelta(days=2))
    add_event(engine, snoozed, IssueChange.ESCALATED, at=NOW)
    resolved = add_event(engine, snoozed, IssueChange.RESOLVED, at=NOW + timedelta(hours=1))
    after = add_event(engine, snoozed, IssueChange.REOPENED, at=NOW + timedelta(days=3))  # the snooze has ended
    assert alerts.plan(engine, configured, NOW + timedelta(days=3)) == 2
    assert [row["event_id"] for row in deliveries(engine)] == [resolved, after]


# ---- send_due against the local receivers ---------------------------------------------------------------------------

def test_an_opened_issue_is_e_mailed_and_posted_and_marked_sent(engine, settings, acme):
    with smtp_server() as inbox, webhook_receiver() as receiver:
        configured = both(settings, inbox.port, receiver.url)
        alerts.plan(engine, configured, NOW)
        opened(engine, acme, IssueType.AUTH_FAILED, at=NOW)
        alerts.plan(engine, configured, NOW)
        outcome = alerts.send_due(engine, configured, NOW, senders_for(configured))
    assert (outcome.sent, outcome.retrying, outcome.failed) == (2, 0, 0)
    assert outcome.line() == "Alerts: 2 sent."
    [message] = inbox.messages
    assert message["Subject"] == "[HaloPSA Sync] HIGH Auth failed opened: Acme MSP"
    assert inbox.envelopes == [("alerts@console.example", ["cs@example.com", "ops@example.com"])]
    body = message.get_payload(decode=True).decode()
    assert "What we found: HaloPSA refused the client secret." in body
    assert "First seen: 2026-11-02 10:00 UTC" in body
    assert receiver.texts == ["*HIGH* Auth failed opened: *Acme MSP*\nWhat we found: HaloPSA refused the client "
                              "secret.\nFirst seen: 2026-11-02 10:00 UTC\nChanged at: 2026-11-02 12:00 UTC"]
    assert {(row["state"], row["attempts"], row["sent_at"], row["last_error"]) for row in deliveries(engine)} == {
        (DeliveryState.SENT, 1, NOW, None)}
    assert alerts.send_due(engine, configured, NOW + timedelta(hours=1), senders_for(configured)).sent == 0


def test_a_resolved_issue_sends_the_recovery_notice(engine, settings, acme):
    with webhook_receiver() as receiver:
        configured = webhook_settings(settings, receiver.url)
        alerts.plan(engine, configured, NOW)
        issue_id = add_issue(engine, acme, IssueType.NO_RECENT_SUCCESS, first_seen=NOW - timedelta(days=1))
        add_event(engine, issue_id, IssueChange.RESOLVED, at=NOW, severity=IssueSeverity.MEDIUM,
                  detail="No successful sync for 26 h.")
        alerts.plan(engine, configured, NOW)
        alerts.send_due(engine, configured, NOW, senders_for(configured))
    assert receiver.texts == ["*MEDIUM* No recent success resolved: *Acme MSP*\nWhat was wrong: No successful sync "
                              "for 26 h.\nFirst seen: 2026-11-01 12:00 UTC\nRecovered at: 2026-11-02 12:00 UTC"]


def test_outside_text_is_escaped_in_the_webhook_text(engine, settings):
    partner = add_partner(engine, settings, name="Tom & Jerry <Ops>", now=NOW)
    with webhook_receiver() as receiver:
        configured = webhook_settings(settings, receiver.url)
        alerts.plan(engine, configured, NOW)
        issue_id = add_issue(engine, partner, IssueType.RECORD_ERRORS, first_seen=NOW)
        add_event(engine, issue_id, IssueChange.OPENED, at=NOW,
                  detail="HaloPSA said <!channel> & <https://evil.example|click> >here")
        alerts.plan(engine, configured, NOW)
        alerts.send_due(engine, configured, NOW, senders_for(configured))
    [text] = receiver.texts
    assert "*Tom &amp; Jerry &lt;Ops&gt;*" in text
    assert ("What we found: HaloPSA said &lt;!channel&gt; &amp; &lt;https://evil.example|click&gt; &gt;here"
            in text)
    assert "<" not in text and ">" not in text


def _due_at(engine) -> list:
    return [row["next_attempt_at"] for row in deliveries(engine)]


def test_a_refusing_mail_server_is_retried_with_backoff_then_given_up_with_the_reason(engine, settings, acme):
    port = free_port()  # nothing listens: connection refused
    configured = email_settings(settings, port, alert_smtp_user="alerts", alert_smtp_password=PASSWORD)
    alerts.plan(engine, configured, NOW)
    opened(engine, acme)
    alerts.plan(engine, configured, NOW)
    moment, lines = NOW, []
    for wait in alerts.BACKOFF:
        outcome = alerts.send_due(engine, configured, moment, senders_for(configured))
        assert (outcome.sent, outcome.retrying, outcome.failed) == (0, 1, 0)
        lines.append(outcome.line())
        assert _due_at(engine) == [moment + wait]
        assert alerts.send_due(engine, configured, moment + wait - timedelta(seconds=1),
                               senders_for(configured)).line() == ""  # not due before its backoff ends
        moment += wait
    outcome = alerts.send_due(engine, configured, moment, senders_for(configured))
    assert (outcome.sent, outcome.retrying, outcome.failed) == (0, 0, 1)
    [row] = deliveries(engine)
    assert (row["state"], row["attempts"]) == (DeliveryState.FAILED, alerts.MAX_ATTEMPTS)
    assert row["last_error"].startswith(f"The mail server 127.0.0.1:{port} did not take the e-mail: ")
    assert "refused" in row["last_error"].lower()
    assert lines[0].startswith("Alerts: 0 sent, 1 to retry. e-mail: The mail server 127.0.0.1:")
    assert alerts.send_due(engine, configured, moment + timedelta(days=1), senders_for(configured)).line() == ""


def test_a_wrong_smtp_password_is_reported_without_the_password(engine, settings, acme, caplog):
    caplog.set_level(logging.DEBUG)
    with smtp_server(password="the-right-one") as inbox:
        configured = email_settings(settings, inbox.port, alert_smtp_user="alerts", alert_smtp_password=PASSWORD)
        alerts.plan(engine, configured, NOW)
        opened(engine, acme)
        alerts.plan(engine, configured, NOW)
        outcome = alerts.send_due(engine, configured, NOW, senders_for(configured))
    assert inbox.messages == [] and outcome.retrying == 1
    [row] = deliveries(engine)
    assert "refused the user name and password (check HALO_ALERT_SMTP_USER and HALO_ALERT_SMTP_PASSWORD)" in (
        row["last_error"])
    assert PASSWORD not in row["last_error"] + outcome.line() + caplog.text + repr(configured)


def test_the_right_smtp_password_signs_in_and_sends(engine, settings, acme):
    with smtp_server(password=PASSWORD) as inbox:
        configured = email_settings(settings, inbox.port, alert_smtp_user="alerts", alert_smtp_password=PASSWORD)
        alerts.plan(engine, configured, NOW)
        opened(engine, acme)
        alerts.plan(engine, configured, NOW)
        assert alerts.send_due(engine, configured, NOW, senders_for(configured)).sent == 1
    assert len(inbox.messages) == 1


def test_a_failing_webhook_is_retried_then_given_up_and_its_address_is_never_stored_or_logged(
        engine, settings, acme, caplog):
    caplog.set_level(logging.DEBUG)
    with webhook_receiver(status=500) as receiver:
        configured = webhook_settings(settings, receiver.url)
        alerts.plan(engine, configured, NOW)
        opened(engine, acme)
        alerts.plan(engine, configured, NOW)
        moment, lines = NOW, []
        for wait in (*alerts.BACKOFF, timedelta(0)):
            lines.append(alerts.send_due(engine, configured, moment, senders_for(configured)).line())
            moment += wait
    assert len(receiver.posts) == alerts.MAX_ATTEMPTS
    [row] = deliveries(engine)
    assert (row["state"], row["attempts"]) == (DeliveryState.FAILED, alerts.MAX_ATTEMPTS)
    assert row["last_error"] == "The webhook at 127.0.0.1 answered HTTP 500: internal_error"
    assert lines[-1] == ("Alerts: 0 sent, 1 given up. webhook: The webhook at 127.0.0.1 answered HTTP 500: "
                         "internal_error")
    assert "HTTP Request: POST" in caplog.text  # httpx did log its request: without the address
    assert WEBHOOK_PATH not in caplog.text + "".join(lines)


def test_an_unreachable_webhook_names_only_its_host(engine, settings, acme):
    url = f"http://127.0.0.1:{free_port()}{WEBHOOK_PATH}"
    configured = webhook_settings(settings, url)
    alerts.plan(engine, configured, NOW)
    opened(engine, acme)
    alerts.plan(engine, configured, NOW)
    outcome = alerts.send_due(engine, configured, NOW, senders_for(configured))
    [row] = deliveries(engine)
    assert row["last_error"].startswith("The webhook at 127.0.0.1 could not be reached: ConnectError")
    assert WEBHOOK_PATH not in row["last_error"] + outcome.line()


def test_after_one_failure_the_channels_other_deliveries_wait_for_their_retry(engine, settings, acme):
    calls: list[Notice] = []

    def down(notice: Notice) -> None:
        calls.append(notice)
        raise SendFailed("The mail server mail.example:587 did not take the e-mail: no answer within 10 s")

    configured = email_settings(settings, 2525)
    alerts.plan(engine, configured, NOW)
    for kind in (IssueType.AUTH_FAILED, IssueType.RATE_LIMITED, IssueType.RECORD_ERRORS):
        opened(engine, acme, kind)
    alerts.plan(engine, configured, NOW)
    outcome = alerts.send_due(engine, configured, NOW, {AlertChannel.EMAIL: down})
    assert len(calls) == 1 and outcome.retrying == 3
    assert [row["last_error"] for row in deliveries(engine)][1:] == [
        "Not tried: The mail server mail.example:587 did not take the e-mail: no answer within 10 s"] * 2


def test_a_sender_surprise_is_that_deliverys_failure_without_secrets(engine, settings, acme):
    def broken(notice: Notice) -> None:
        raise RuntimeError(f"boom at https://hooks.example{WEBHOOK_PATH}")

    configured = webhook_settings(settings, f"https://hooks.example{WEBHOOK_PATH}")
    alerts.plan(engine, configured, NOW)
    opened(engine, acme)
    alerts.plan(engine, configured, NOW)
    alerts.send_due(engine, configured, NOW, {AlertChannel.WEBHOOK: broken})
    assert [row["last_error"] for row in deliveries(engine)] == ["Sending failed: RuntimeError: boom at [secret]"]


def test_a_channel_no_longer_configured_gives_its_pending_deliveries_up(engine, settings, acme):
    configured = email_settings(settings, 2525)
    alerts.plan(engine, configured, NOW)
    opened(engine, acme)
    alerts.plan(engine, configured, NOW)
    outcome = alerts.send_due(engine, settings, NOW, senders_for(settings))
    assert outcome.failed == 1
    [row] = deliveries(engine)
    assert (row["state"], row["last_error"]) == (DeliveryState.FAILED, alerts.UNCONFIGURED[AlertChannel.EMAIL])


# ---- two senders at once ------------------------------------------------------------------------------------------

def test_a_delivery_claimed_by_one_sender_is_not_sent_by_another(engine, settings, acme):
    configured = webhook_settings(settings, "https://hooks.example/services/x")
    alerts.plan(engine, configured, NOW)
    opened(engine, acme)
    alerts.plan(engine, configured, NOW)
    inside, release, sent = threading.Event(), threading.Event(), []

    def slow(notice: Notice) -> None:
        inside.set()
        assert release.wait(30)
        sent.append(("first", notice))

    first = threading.Thread(target=alerts.send_due, args=(engine, configured, NOW, {AlertChannel.WEBHOOK: slow}))
    first.start()
    assert inside.wait(30)
    second = alerts.send_due(engine, configured, NOW, {AlertChannel.WEBHOOK: lambda n: sent.append(("second", n))})
    release.set()
    first.join(30)
    assert second.line() == "" and [who for who, _ in sent] == ["first"]
    assert [row["state"] for row in deliveries(engine)] == [DeliveryState.SENT]


def test_two_senders_racing_over_many_deliveries_send_each_once(engine, settings, acme):
    with webhook_receiver() as receiver:
        configured = webhook_settings(settings, receiver.url)
        alerts.plan(engine, configured, NOW)
        events = [opened(engine, acme, kind) for kind in IssueType if kind != IssueType.WORKER_DOWN]
        alerts.plan(engine, configured, NOW)
        start = threading.Barrier(2)
        outcomes: list[alerts.Outcome] = []

        def race() -> None:
            start.wait(30)
            outcomes.append(alerts.send_due(engine, configured, NOW, senders_for(configured), limit=3))
            outcomes.append(alerts.send_due(engine, configured, NOW, senders_for(configured), limit=3))
            outcomes.append(alerts.send_due(engine, configured, NOW, senders_for(configured), limit=3))

        threads = [threading.Thread(target=race) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert sum(outcome.sent for outcome in outcomes) == len(events) == len(receiver.posts)
    assert len(set(receiver.texts)) == len(events)


# ---- from the scheduler ------------------------------------------------------------------------------------------

@pytest.fixture
def scheduler_env(settings, monkeypatch, engine):
    for key, value in {"DATABASE_URL": settings.database_url, "HALO_CONSOLE_SECRET_KEY": settings.secret_key,
                       "HALO_CONSOLE_NOW": NOW.isoformat(), "HALO_DEMO": "0"}.items():
        monkeypatch.setenv(key, value)
    return monkeypatch


def test_a_refusing_mail_server_is_one_stderr_line_and_the_scheduled_sync_still_runs(engine, settings, scheduler_env,
                                                                                     capsys):
    emulator = HaloEmulator(seed=5, invoices=30, start=NOW - timedelta(days=2), rate_limit=None, client_secret="abc")
    port = free_port()
    for key, value in {"HALO_ALERT_SMTP_HOST": "127.0.0.1", "HALO_ALERT_SMTP_PORT": str(port),
                       "HALO_ALERT_SMTP_STARTTLS": "off", "HALO_ALERT_EMAIL_FROM": "alerts@console.example",
                       "HALO_ALERT_EMAIL_TO": "cs@example.com", "HALO_ALERT_SMTP_USER": "alerts",
                       "HALO_ALERT_SMTP_PASSWORD": PASSWORD, "HALO_ALLOW_LOCAL_DOMAINS": "1"}.items():
        scheduler_env.setenv(key, value)
    with serve(emulator) as server:
        partner = add_partner(engine, settings, name="Acme MSP", now=NOW - timedelta(days=3), app_domain=server.url,
                              client_id=emulator.client_id, client_secret="abc")
        alerts.plan(engine, email_settings(settings, port), NOW)  # alerts were on before this issue opened
        opened(engine, partner)
        assert cli.main(["scheduler", "--once", "--run"]) == cli.EXIT_OK
    err = capsys.readouterr().err
    with engine.connect() as conn:  # the issue opened here, and those the tick's evaluation opened before sending
        events = conn.scalar(select(func.count()).select_from(ISSUE_EVENT_TABLE))
    [line] = [line for line in err.splitlines() if line.startswith("Alerts")]
    assert events > 1 and line.startswith(
        f"Alerts: 0 sent, {events} to retry. e-mail: The mail server 127.0.0.1:{port} did not take")
    assert "Queued 1 scheduled sync(s)." in err and PASSWORD not in err
    with engine.connect() as conn:
        assert conn.execute(select(RUN_TABLE.c.status)).scalars().all() == [RunStatus.SUCCEEDED]  # its first sync


def test_an_alerts_step_that_fails_whole_is_one_line_and_scheduling_goes_on(engine, acme, scheduler_env, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    scheduler_env.setattr(alerts, "deliver", broken)
    assert cli.main(["scheduler", "--once"]) == cli.EXIT_OK
    err = capsys.readouterr().err
    assert ("Alerts could not be sent this round (RuntimeError: database went away); scheduling goes on and alerts "
            "are tried again next round.") in err.splitlines()
    assert "Queued 1 scheduled sync(s)." in err


def test_the_settings_repr_hides_the_password_and_the_webhook_address(settings):
    configured = webhook_settings(email_settings(settings, 25, alert_smtp_user="u", alert_smtp_password=PASSWORD),
                                  f"https://hooks.example{WEBHOOK_PATH}")
    assert PASSWORD not in repr(configured) and WEBHOOK_PATH not in repr(configured)
    assert replace(configured).alert_smtp_password == PASSWORD


# ---- settings ------------------------------------------------------------------------------------------------------

EMAIL = {"HALO_ALERT_SMTP_HOST": "smtp.example.com", "HALO_ALERT_EMAIL_FROM": "alerts@example.com",
         "HALO_ALERT_EMAIL_TO": "cs@example.com, ops@example.com"}


def test_alert_settings_are_read_with_their_defaults():
    plain = settings_from_mapping({})
    assert (plain.alert_smtp_host, plain.alert_webhook_url, alerts.subscriptions(plain)) == (None, None, {})
    configured = settings_from_mapping({**EMAIL, "HALO_ALERT_WEBHOOK_URL": "https://hooks.example/services/T/B/x",
                                        "HALO_ALERT_WEBHOOK_TYPES": "auth_failed, WORKER_DOWN"})
    assert (configured.alert_smtp_port, configured.alert_smtp_starttls) == (587, True)
    assert configured.alert_email_to == ("cs@example.com", "ops@example.com")
    assert alerts.subscriptions(configured) == {
        AlertChannel.EMAIL: tuple(IssueType), AlertChannel.WEBHOOK: (IssueType.AUTH_FAILED, IssueType.WORKER_DOWN)}
    tuned = settings_from_mapping({**EMAIL, "HALO_ALERT_SMTP_PORT": "2525", "HALO_ALERT_SMTP_STARTTLS": "off",
                                   "HALO_ALERT_SMTP_USER": "alerts", "HALO_ALERT_SMTP_PASSWORD": PASSWORD})
    assert (tuned.alert_smtp_port, tuned.alert_smtp_starttls, tuned.alert_smtp_password) == (2525, False, PASSWORD)


@pytest.mark.parametrize(("env", "words"), [
    ({**EMAIL, "HALO_ALERT_SMTP_PORT": "70000"}, "HALO_ALERT_SMTP_PORT must be a port number from 1 to 65535"),
    ({**EMAIL, "HALO_ALERT_SMTP_PORT": "smtp"}, "HALO_ALERT_SMTP_PORT must be a port number"),
    ({**EMAIL, "HALO_ALERT_SMTP_STARTTLS": "maybe"}, "HALO_ALERT_SMTP_STARTTLS must be on or off"),
    ({**EMAIL, "HALO_ALERT_EMAIL_TO": "cs@example.com; ops"}, "HALO_ALERT_EMAIL_TO must be e-mail addresses"),
    ({**EMAIL, "HALO_ALERT_EMAIL_FROM": "a@example.com,b@example.com"}, "HALO_ALERT_EMAIL_FROM must be one"),
    ({"HALO_ALERT_SMTP_HOST": "smtp.example.com", "HALO_ALERT_EMAIL_TO": "cs@example.com"},
     "HALO_ALERT_EMAIL_FROM must be set too: e-mail alerts need one sender address"),
    ({"HALO_ALERT_EMAIL_TO": "cs@example.com"}, "HALO_ALERT_SMTP_HOST is not set but HALO_ALERT_EMAIL_TO is: set the "
                                                "mail server's host name too, or unset HALO_ALERT_EMAIL_TO"),
    ({**EMAIL, "HALO_ALERT_SMTP_USER": "alerts"}, "HALO_ALERT_SMTP_USER and HALO_ALERT_SMTP_PASSWORD go together"),
    ({**EMAIL, "HALO_ALERT_EMAIL_TYPES": "auth_failed,outage"}, "HALO_ALERT_EMAIL_TYPES lists unknown issue types "
                                                                "'outage': use a comma list of auth_failed, "),
    ({"HALO_ALERT_WEBHOOK_TYPES": "nope"}, "HALO_ALERT_WEBHOOK_TYPES lists unknown issue types 'nope'"),
    ({"HALO_ALERT_WEBHOOK_URL": "hooks.example/services/T/B/secretpart"},
     "HALO_ALERT_WEBHOOK_URL must be the whole incoming-webhook address, starting with https://"),
    ({"HALO_ALERT_WEBHOOK_URL": "https://[secretpart/x"},
     "HALO_ALERT_WEBHOOK_URL must be the whole incoming-webhook address, starting with https://"),
])
def test_a_bad_alert_setting_is_a_startup_error_naming_the_variable_and_the_fix(env, words):
    with pytest.raises(ValueError, match="^" + re.escape(words)) as refused:
        settings_from_mapping(env)
    assert "secretpart" not in str(refused.value)  # the webhook address is never echoed


def test_the_command_line_refuses_a_bad_alert_setting_with_the_configuration_error(monkeypatch, capsys):
    monkeypatch.setenv("HALO_ALERT_SMTP_PORT", "0")
    assert cli.main(["status", "--partner", "Acme MSP"]) == cli.EXIT_BAD_INPUT
    assert capsys.readouterr().err.startswith("Configuration error: HALO_ALERT_SMTP_PORT must be a port number")


# ---- python -m core alerts [--test] --------------------------------------------------------------------------------

def test_alerts_test_sends_a_test_notice_on_each_configured_channel(engine, scheduler_env, capsys):
    with smtp_server() as inbox, webhook_receiver() as receiver:
        for key, value in {"HALO_ALERT_SMTP_HOST": "127.0.0.1", "HALO_ALERT_SMTP_PORT": str(inbox.port),
                           "HALO_ALERT_SMTP_STARTTLS": "off", "HALO_ALERT_EMAIL_FROM": "alerts@console.example",
                           "HALO_ALERT_EMAIL_TO": "cs@example.com", "HALO_ALERT_WEBHOOK_URL": receiver.url,
                           "HALO_ALERT_WEBHOOK_TYPES": "auth_failed"}.items():
            scheduler_env.setenv(key, value)
        assert cli.main(["alerts", "--test"]) == cli.EXIT_OK
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"E-mail: To cs@example.com from alerts@console.example, through 127.0.0.1:{inbox.port} (no encryption). "
        "Sent for every issue type.",
        "Webhook: Posts to the incoming webhook at 127.0.0.1 (the rest of its address is a secret). Sent for Auth "
        "failed."]
    assert err.splitlines() == ["E-mail: test notice sent.", "Webhook: test notice sent."]
    assert [m["Subject"] for m in inbox.messages] == ["[HaloPSA Sync] Test notice"]
    assert receiver.texts == ["*HaloPSA Sync: test notice.* Alerts reach this channel; nothing is wrong."]
    assert WEBHOOK_PATH not in out + err


def test_alerts_test_says_what_failed_and_exits_4(engine, scheduler_env, capsys):
    scheduler_env.setenv("HALO_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{free_port()}{WEBHOOK_PATH}")
    assert cli.main(["alerts", "--test"]) == cli.EXIT_FAILED
    out, err = capsys.readouterr()
    assert err.startswith("Webhook: test notice NOT sent. The webhook at 127.0.0.1 could not be reached: ")
    assert WEBHOOK_PATH not in out + err


def test_alerts_test_without_a_channel_says_how_to_configure_one(engine, scheduler_env, capsys):
    assert cli.main(["alerts", "--test"]) == cli.EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "E-mail: Not configured: set HALO_ALERT_SMTP_HOST, HALO_ALERT_EMAIL_FROM and HALO_ALERT_EMAIL_TO (see the "
        "README's configuration table).",
        "Webhook: Not configured: set HALO_ALERT_WEBHOOK_URL to a Slack-compatible incoming webhook."]
    assert err.startswith("No alert channel is configured, so no test notice was sent: set HALO_ALERT_SMTP_HOST")


def test_alerts_lists_the_latest_deliveries(engine, settings, acme, scheduler_env, capsys):
    configured = webhook_settings(settings, "https://hooks.example/services/x")
    alerts.plan(engine, configured, NOW)
    opened(engine, acme)
    alerts.plan(engine, configured, NOW)
    alerts.send_due(engine, configured, NOW, {AlertChannel.WEBHOOK: lambda notice: None})
    assert cli.main(["alerts"]) == cli.EXIT_OK
    assert capsys.readouterr().out.splitlines()[2:] == [
        "  2026-11-02 12:00 Acme MSP: Auth failed opened by webhook, sent (sent 2026-11-02 12:00 UTC)"]
