"""The Overview's alerts panel: where alerts go (never a secret), what each channel is sent, the latest deliveries;
customer success only."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.access import Principal
from core.console import alert_config
from core.errors import AccessDenied
from core.health import alerts
from core.health.senders import SendFailed
from core.store.tables import AlertChannel, IssueChange, IssueType, Role
from tests.support.clock import NOW
from tests.support.factories import add_partner
from tests.support.issue_rows import WEBHOOK_PATH, add_event, add_issue, email_settings, webhook_settings

CS = Principal(role=Role.CS, user="cs@example.com")
PASSWORD = "smtp-Pa55word-77"


def test_unconfigured_channels_say_how_to_configure_them(engine, settings):
    view = alert_config.alerts_view(engine, CS, settings=settings)
    assert not view.configured and view.deliveries.empty
    assert list(view.deliveries.columns) == alert_config.DELIVERY_COLUMNS
    assert [(c.name, c.configured, c.summary) for c in view.channels] == [
        ("E-mail", False, alert_config.HOW_TO[AlertChannel.EMAIL]),
        ("Webhook", False, alert_config.HOW_TO[AlertChannel.WEBHOOK])]


def test_configured_channels_show_recipients_server_and_the_webhook_host_only(engine, settings):
    configured = webhook_settings(
        email_settings(settings, 587, alert_smtp_starttls=True, alert_smtp_user="alerts",
                       alert_smtp_password=PASSWORD, alert_email_types=(IssueType.AUTH_FAILED, IssueType.WORKER_DOWN)),
        f"https://hooks.slack.com{WEBHOOK_PATH}")
    view = alert_config.alerts_view(engine, CS, settings=configured)
    assert [(c.name, c.configured, c.summary, c.types) for c in view.channels] == [
        ("E-mail", True, "To cs@example.com, ops@example.com from alerts@console.example, through 127.0.0.1:587 "
                         "(STARTTLS, signs in as alerts).", "Auth failed, Worker down"),
        ("Webhook", True, "Posts to the incoming webhook at hooks.slack.com (the rest of its address is a secret).",
         "every issue type")]
    shown = repr(view)
    assert PASSWORD not in shown and WEBHOOK_PATH not in shown


def test_the_latest_deliveries_newest_first_with_state_and_error(engine, settings):
    partner = add_partner(engine, settings, name="Acme MSP", now=NOW - timedelta(days=1))
    configured = webhook_settings(email_settings(settings, 2525), "https://hooks.example/services/x")
    alerts.plan(engine, configured, NOW)
    issue_id = add_issue(engine, partner, IssueType.RATE_LIMITED, first_seen=NOW)
    add_event(engine, issue_id, IssueChange.OPENED, at=NOW)
    fleet = add_issue(engine, None, IssueType.WORKER_DOWN, first_seen=NOW)
    add_event(engine, fleet, IssueChange.OPENED, at=NOW + timedelta(minutes=1))
    alerts.plan(engine, configured, NOW)

    def down(notice):
        raise SendFailed("The mail server 127.0.0.1:2525 did not take the e-mail: ConnectionRefusedError")

    alerts.send_due(engine, configured, NOW, {AlertChannel.EMAIL: down, AlertChannel.WEBHOOK: lambda notice: None})
    frame = alert_config.alerts_view(engine, CS, settings=configured).deliveries
    assert frame.drop(columns=["at"]).to_dict("records") == [
        {"partner": "all partners", "issue": "Worker down", "change": "opened", "channel": "Webhook", "state": "sent",
         "attempts": 1, "when": "sent 2026-11-02 12:00 UTC", "error": ""},
        {"partner": "all partners", "issue": "Worker down", "change": "opened", "channel": "E-mail",
         "state": "waiting", "attempts": 1, "when": "next try 2026-11-02 12:01 UTC",
         "error": "Not tried: The mail server 127.0.0.1:2525 did not take the e-mail: ConnectionRefusedError"},
        {"partner": "Acme MSP", "issue": "Rate limited", "change": "opened", "channel": "Webhook", "state": "sent",
         "attempts": 1, "when": "sent 2026-11-02 12:00 UTC", "error": ""},
        {"partner": "Acme MSP", "issue": "Rate limited", "change": "opened", "channel": "E-mail", "state": "waiting",
         "attempts": 1, "when": "next try 2026-11-02 12:01 UTC",
         "error": "The mail server 127.0.0.1:2525 did not take the e-mail: ConnectionRefusedError"}]
    assert len(alert_config.alerts_view(engine, CS, settings=configured, limit=2).deliveries) == 2


@pytest.mark.parametrize("principal", [Principal(role=Role.PARTNER, user="ap@acme.example", partner_id=1),
                                       Principal(role=Role.PM, user="pm@example.com")])
def test_partner_and_pm_users_cannot_read_the_alert_configuration(engine, settings, principal):
    with pytest.raises(AccessDenied):
        alert_config.alerts_view(engine, principal, settings=webhook_settings(settings, "https://hooks.example/x"))
