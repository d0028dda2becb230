"""The two senders against local receivers: the e-mail's subject and body, the webhook's Slack text and its escaping,
STARTTLS refused by a plain server, and secrets kept out of every reason."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.health import senders
from core.health.senders import EmailSender, Notice, SendFailed, WebhookSender
from core.store.tables import AlertChannel, IssueChange, IssueSeverity, IssueType
from tests.support.clock import NOW
from tests.support.issue_rows import (
    WEBHOOK_PATH,
    email_settings,
    smtp_server,
    webhook_receiver,
    webhook_settings,
)

NOTICE = Notice(partner="Acme MSP", type=IssueType.PERMISSIONS_MISSING, change=IssueChange.ESCALATED,
                severity=IssueSeverity.CRITICAL, detail="The API application lacks  read:invoices.\nAsk the partner.",
                at=NOW, first_seen=NOW - timedelta(days=2))


def test_the_e_mail_says_what_changed_what_we_found_and_since_when(settings):
    with smtp_server() as inbox:
        EmailSender(email_settings(settings, inbox.port))(NOTICE)
    [message] = inbox.messages
    assert message["Subject"] == "[HaloPSA Sync] CRITICAL Permissions missing escalated: Acme MSP"
    assert (message["From"], message["To"]) == ("alerts@console.example", "cs@example.com, ops@example.com")
    assert message.get_payload(decode=True).decode().splitlines() == [
        "CRITICAL Permissions missing escalated: Acme MSP", "",
        "What we found: The API application lacks read:invoices. Ask the partner.",
        "First seen: 2026-10-31 12:00 UTC", "Changed at: 2026-11-02 12:00 UTC", "",
        "Open the console's Overview page to see the issue and what fixes it."]


def test_a_partner_name_with_a_line_break_cannot_add_a_header(settings):
    sneaky = Notice(partner="Evil\r\nBcc: victim@example.com", type=IssueType.AUTH_FAILED, change=IssueChange.OPENED,
                    severity=IssueSeverity.HIGH, detail="", at=NOW, first_seen=None)
    with smtp_server() as inbox:
        EmailSender(email_settings(settings, inbox.port))(sneaky)
    [message] = inbox.messages
    assert message["Subject"] == "[HaloPSA Sync] HIGH Auth failed opened: Evil Bcc: victim@example.com"
    assert message["Bcc"] is None
    assert "First seen: unknown" in message.get_payload(decode=True).decode()


def test_a_fleet_issue_names_all_partners():
    fleet = Notice(partner=None, type=IssueType.WORKER_DOWN, change=IssueChange.OPENED,
                   severity=IssueSeverity.CRITICAL, detail="No worker has beaten for 10 min.", at=NOW, first_seen=NOW)
    assert fleet.headline == "CRITICAL Worker down opened: all partners"


def test_starttls_refused_by_a_plain_server_says_which_setting_to_look_at(settings):
    with smtp_server() as inbox:
        sender = EmailSender(email_settings(settings, inbox.port, alert_smtp_starttls=True))
        with pytest.raises(SendFailed) as refused:
            sender(NOTICE)
    assert refused.value.reason.startswith(f"The mail server 127.0.0.1:{inbox.port} did not take the e-mail: ")
    assert "STARTTLS" in refused.value.reason and "HALO_ALERT_SMTP_STARTTLS=off" in refused.value.reason
    assert inbox.messages == []


def test_the_webhook_posts_slack_text_with_outside_text_escaped(settings):
    odd = Notice(partner="R&D <Labs>", type=IssueType.RECORD_ERRORS, change=IssueChange.REOPENED,
                 severity=IssueSeverity.MEDIUM, detail="HaloPSA said: <b>bad</b> & worse", at=NOW, first_seen=NOW)
    with webhook_receiver() as receiver:
        WebhookSender(webhook_settings(settings, receiver.url))(odd)
    assert receiver.paths == [WEBHOOK_PATH]
    assert receiver.texts == ["*MEDIUM* Record errors reopened: *R&amp;D &lt;Labs&gt;*\nWhat we found: HaloPSA said: "
                              "&lt;b&gt;bad&lt;/b&gt; &amp; worse\nFirst seen: 2026-11-02 12:00 UTC\nChanged at: "
                              "2026-11-02 12:00 UTC"]


@pytest.mark.parametrize(("raw", "escaped"), [("a & b", "a &amp; b"), ("<@U123>", "&lt;@U123&gt;"),
                                              ("&amp;", "&amp;amp;"), ("two\nlines", "two lines")])
def test_slack_escape(raw, escaped):
    assert senders.slack_escape(raw) == escaped


def test_the_webhook_reason_names_its_host_and_the_answer_never_its_address(settings):
    with webhook_receiver(status=404) as receiver, pytest.raises(SendFailed) as refused:
        WebhookSender(webhook_settings(settings, receiver.url))(NOTICE)
    assert refused.value.reason == "The webhook at 127.0.0.1 answered HTTP 404: internal_error"


def test_only_configured_channels_get_a_sender(settings):
    assert senders.senders_for(settings) == {}
    assert set(senders.senders_for(email_settings(settings, 25))) == {AlertChannel.EMAIL}
    assert set(senders.senders_for(webhook_settings(settings, "https://hooks.example/x"))) == {AlertChannel.WEBHOOK}


def test_secrets_are_redacted_from_any_text(settings):
    configured = webhook_settings(email_settings(settings, 25, alert_smtp_user="u", alert_smtp_password="pw-123"),
                                  f"https://hooks.example{WEBHOOK_PATH}?token=abc")
    text = f"pw-123 at https://hooks.example{WEBHOOK_PATH}?token=abc and {WEBHOOK_PATH}?token=abc"
    assert senders.redact(text, senders.secrets_of(configured)) == "[secret] at [secret] and [secret]"
    assert senders.webhook_host(configured.alert_webhook_url) == "hooks.example"
