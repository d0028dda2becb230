"""Read model of the alerts for customer success (the Overview's "Alerts" panel and `python -m core alerts`): where
alerts go (recipients, the mail server, the webhook's host only: its address is a secret, and so is the SMTP password)
and which issue types each channel is sent, and the latest deliveries with their state and error."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine

from core.access import Principal, require_role
from core.health.senders import FLEET, type_label, webhook_host
from core.settings import Settings
from core.store.tables import (
    ALERT_DELIVERY_TABLE,
    ISSUE_EVENT_TABLE,
    PARTNER_TABLE,
    AlertChannel,
    DeliveryState,
    IssueType,
    Role,
)

DELIVERY_COLUMNS = ["at", "partner", "issue", "change", "channel", "state", "attempts", "when", "error"]
CHANNEL_NAMES = {AlertChannel.EMAIL: "E-mail", AlertChannel.WEBHOOK: "Webhook"}
HOW_TO = {AlertChannel.EMAIL: "Not configured: set HALO_ALERT_SMTP_HOST, HALO_ALERT_EMAIL_FROM and "
                              "HALO_ALERT_EMAIL_TO (see the README's configuration table).",
          AlertChannel.WEBHOOK: "Not configured: set HALO_ALERT_WEBHOOK_URL to a Slack-compatible incoming webhook."}
STATE_WORDS = {DeliveryState.PENDING: "waiting", DeliveryState.SENT: "sent", DeliveryState.FAILED: "given up"}


@dataclass(frozen=True)
class ChannelView:
    name: str  # "E-mail", "Webhook"
    configured: bool
    summary: str  # where it goes, or how to configure it
    types: str  # "every issue type" or the subscribed types in words


@dataclass(frozen=True)
class AlertsView:
    channels: list[ChannelView]
    deliveries: pd.DataFrame  # DELIVERY_COLUMNS, newest first

    @property
    def configured(self) -> bool:
        return any(channel.configured for channel in self.channels)

    def delivery_lines(self) -> list[str]:
        """The deliveries as plain lines (the command line): "2026-11-02 12:00 Acme MSP: Auth failed opened by
        e-mail, sent (sent 2026-11-02 12:01 UTC)"."""
        return [f"{row['at']:%Y-%m-%d %H:%M} {row['partner']}: {row['issue']} {row['change']} by "
                f"{str(row['channel']).lower()}, {row['state']} ({row['when']})"
                + (f": {row['error']}" if row["error"] else "") for row in self.deliveries.to_dict("records")]


def _types(chosen: tuple[IssueType, ...]) -> str:
    if set(chosen) == set(IssueType):
        return "every issue type"
    return ", ".join(type_label(kind) for kind in chosen)


def _channels(settings: Settings) -> list[ChannelView]:
    email = ChannelView(CHANNEL_NAMES[AlertChannel.EMAIL], False, HOW_TO[AlertChannel.EMAIL],
                        _types(settings.alert_email_types))
    if settings.alert_smtp_host:
        security = "STARTTLS" if settings.alert_smtp_starttls and settings.alert_smtp_port != 465 else (
            "TLS" if settings.alert_smtp_port == 465 else "no encryption")
        sign_in = f", signs in as {settings.alert_smtp_user}" if settings.alert_smtp_user else ""
        email = ChannelView(email.name, True, f"To {', '.join(settings.alert_email_to)} from "
                            f"{settings.alert_email_from}, through {settings.alert_smtp_host}:"
                            f"{settings.alert_smtp_port} ({security}{sign_in}).", email.types)
    webhook = ChannelView(CHANNEL_NAMES[AlertChannel.WEBHOOK], False, HOW_TO[AlertChannel.WEBHOOK],
                          _types(settings.alert_webhook_types))
    if settings.alert_webhook_url:
        webhook = ChannelView(webhook.name, True, f"Posts to the incoming webhook at "
                              f"{webhook_host(settings.alert_webhook_url)} (the rest of its address is a secret).",
                              webhook.types)
    return [email, webhook]


def alerts_view(engine: Engine, principal: Principal, *, settings: Settings, limit: int = 20) -> AlertsView:
    """The alert configuration and the latest `limit` deliveries (customer success only)."""
    require_role(principal, Role.CS)
    d, e = ALERT_DELIVERY_TABLE.c, ISSUE_EVENT_TABLE.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(e.at, PARTNER_TABLE.c.name.label("partner"), e.type, e.change, d.channel, d.state, d.attempts,
                   d.sent_at, d.next_attempt_at, d.last_error)
            .join(ISSUE_EVENT_TABLE, e.id == d.event_id)
            .outerjoin(PARTNER_TABLE, PARTNER_TABLE.c.id == e.partner_id)
            .order_by(d.id.desc()).limit(limit)).all()
    frame = pd.DataFrame([{
        "at": row.at, "partner": row.partner or FLEET, "issue": type_label(IssueType(row.type)),
        "change": str(row.change), "channel": CHANNEL_NAMES[AlertChannel(row.channel)],
        "state": STATE_WORDS[DeliveryState(row.state)], "attempts": row.attempts,
        "when": _when(DeliveryState(row.state), row.sent_at, row.next_attempt_at), "error": row.last_error or ""}
        for row in rows], columns=DELIVERY_COLUMNS)
    return AlertsView(_channels(settings), frame)


def _when(state: DeliveryState, sent_at: object, next_attempt_at: object) -> str:
    if state == DeliveryState.SENT:
        return f"sent {sent_at:%Y-%m-%d %H:%M} UTC"
    if state == DeliveryState.PENDING:
        return f"next try {next_attempt_at:%Y-%m-%d %H:%M} UTC"
    return "not retried"
