"""The Overview's "Alerts" expander (ui/alerts.py): the channels as configured, secrets never drawn, and the latest
deliveries."""

from __future__ import annotations

from core.health import alerts
from core.settings import load_settings
from core.store.tables import AlertChannel, IssueChange, IssueType
from tests.support.clock import NOW
from tests.support.issue_rows import WEBHOOK_PATH, add_event, add_issue

PAGE = "pages/overview.py"


def _panel(at):
    [panel] = [expander for expander in at.expander if expander.label == "Alerts"]
    return panel


def test_the_alerts_panel_says_how_to_configure_an_unconfigured_console(app_as):
    at = app_as("cs").switch_page(PAGE).run()
    assert not at.exception
    panel = _panel(at)
    texts = [element.value for element in panel.markdown]
    assert texts[0].startswith("**E-mail**: Not configured\\: set HALO\\_ALERT\\_SMTP\\_HOST")
    assert texts[1].startswith("**Webhook**: Not configured\\: set HALO\\_ALERT\\_WEBHOOK\\_URL")
    assert [caption.value for caption in panel.caption] == ["Nothing is sent until a channel is configured."]


def test_the_alerts_panel_shows_the_webhook_host_only_and_the_latest_deliveries(app_as, console, engine,
                                                                                 monkeypatch):
    monkeypatch.setenv("HALO_ALERT_WEBHOOK_URL", f"https://hooks.slack.com{WEBHOOK_PATH}")
    monkeypatch.setenv("HALO_ALERT_WEBHOOK_TYPES", "auth_failed")
    configured = load_settings()
    alerts.plan(engine, configured, NOW)
    issue_id = add_issue(engine, console["acme"].partner_id, IssueType.AUTH_FAILED, first_seen=NOW)
    add_event(engine, issue_id, IssueChange.OPENED, at=NOW)
    alerts.plan(engine, configured, NOW)
    alerts.send_due(engine, configured, NOW, {AlertChannel.WEBHOOK: lambda notice: None})

    at = app_as("cs").switch_page(PAGE).run()
    assert not at.exception
    panel = _panel(at)
    texts = [element.value for element in at.markdown]
    [webhook] = [text for text in texts if text.startswith("**Webhook**")]
    assert webhook == ("**Webhook**: Posts to the incoming webhook at hooks\\.slack\\.com \\(the rest of its address "
                       "is a secret\\)\\. Sent for Auth failed.")
    assert not any("XXXXsecretXXXX" in text for text in texts)
    [frame] = [frame.value for frame in panel.dataframe]
    assert frame[["partner", "issue", "change", "channel", "state"]].to_dict("records") == [
        {"partner": "Acme MSP", "issue": "Auth failed", "change": "opened", "channel": "Webhook", "state": "sent"}]
