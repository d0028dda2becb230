"""Alerts: every change of an issue (opened, escalated, reopened, resolved: the recovery notice) becomes one notice per
configured, subscribed channel, kept in an outbox (alertdelivery) and sent from the scheduler's loop, so sending never
blocks or fails a sync.

`plan` turns issue events newer than the high-water mark (a `setting` row) into pending deliveries; the first plan
only sets the mark, so turning alerts on does not send the whole history. `send_due` claims due deliveries with one
conditional UPDATE (… FOR UPDATE SKIP LOCKED on PostgreSQL), so two processes never send one twice, sends each with
a short timeout, and retries a failure with backoff (1, 5, 15, 60 min) before giving up with the reason, which never
holds a secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from core.health.senders import Notice, Sender, SendFailed, redact, secrets_of, senders_for, trial_notice
from core.settings import Settings
from core.store.tables import (
    ALERT_DELIVERY_TABLE,
    ISSUE_EVENT_TABLE,
    ISSUE_TABLE,
    PARTNER_TABLE,
    SETTING_TABLE,
    AlertChannel,
    DeliveryState,
    IssueChange,
    IssueSeverity,
    IssueType,
)

HIGH_WATER_KEY = "alerts:planned_through_event"  # the newest issueevent id already turned into deliveries
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15), timedelta(minutes=60))
MAX_ATTEMPTS = len(BACKOFF) + 1  # the first try and one after each wait
CLAIM_HOLD = timedelta(minutes=10)  # a claimed delivery whose sender died is tried again after this
BATCH = 50  # deliveries one send_due takes at most
CHANNEL_WORDS = {AlertChannel.EMAIL: "e-mail", AlertChannel.WEBHOOK: "webhook"}
UNCONFIGURED = {AlertChannel.EMAIL: "E-mail alerts are no longer configured (HALO_ALERT_SMTP_HOST is unset): not sent.",
                AlertChannel.WEBHOOK: "Webhook alerts are no longer configured (HALO_ALERT_WEBHOOK_URL is unset): not "
                                      "sent."}

D = ALERT_DELIVERY_TABLE.c
E = ISSUE_EVENT_TABLE.c


def subscriptions(settings: Settings) -> dict[AlertChannel, tuple[IssueType, ...]]:
    """The configured channels and the issue types each is sent."""
    found: dict[AlertChannel, tuple[IssueType, ...]] = {}
    if settings.alert_smtp_host:
        found[AlertChannel.EMAIL] = settings.alert_email_types
    if settings.alert_webhook_url:
        found[AlertChannel.WEBHOOK] = settings.alert_webhook_types
    return found


def plan(engine: Engine, settings: Settings, now: datetime) -> int:
    """Queue one delivery per new issue event and configured channel subscribed to its type (none for an issue
    snoozed at the event, unless the event resolves it); the number queued. The mark moves on whether or not a
    channel is configured, so configuring one later sends only what happens from then on."""
    channels = subscriptions(settings)
    key = SETTING_TABLE.c.key
    try:
        with engine.begin() as conn:
            # a write first: a second planner waits here for this one (SQLite's lock, PostgreSQL's row lock)
            conn.execute(update(SETTING_TABLE).where(key == HIGH_WATER_KEY).values(value=SETTING_TABLE.c.value))
            mark = conn.scalar(select(SETTING_TABLE.c.value).where(key == HIGH_WATER_KEY))
            newest = int(conn.scalar(select(func.max(E.id))) or 0)
            if mark is None:  # alerts just turned on: from now on
                conn.execute(SETTING_TABLE.insert().values(key=HIGH_WATER_KEY, value=str(newest)))
                return 0
            if newest <= int(mark):
                return 0
            conn.execute(update(SETTING_TABLE).where(key == HIGH_WATER_KEY).values(value=str(newest)))
            events = conn.execute(
                select(E.id, E.type, E.change, E.at, ISSUE_TABLE.c.snoozed_until)
                .join(ISSUE_TABLE, ISSUE_TABLE.c.id == E.issue_id)
                .where(E.id > int(mark), E.id <= newest).order_by(E.id)).all()
            rows = [{"event_id": event.id, "channel": channel, "state": DeliveryState.PENDING, "attempts": 0,
                     "next_attempt_at": now}
                    for event in events if not _snoozed(event.change, event.at, event.snoozed_until)
                    for channel, types in channels.items() if event.type in types]
            if rows:
                conn.execute(ALERT_DELIVERY_TABLE.insert(), rows)
            return len(rows)
    except IntegrityError:  # another planner stored the first mark at the same moment: it planned this round
        return 0


def _snoozed(change: IssueChange, at: datetime, snoozed_until: datetime | None) -> bool:
    return change != IssueChange.RESOLVED and snoozed_until is not None and snoozed_until > at


@dataclass
class Outcome:
    """What one send_due did: counts, and the reasons of this round's failures (secret-free)."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    reasons: dict[str, str] = field(default_factory=dict)  # channel word -> its latest reason

    def line(self) -> str:
        """One line for the scheduler's stderr; "" when nothing was due."""
        if not (self.sent or self.retrying or self.failed):
            return ""
        parts = [f"{self.sent} sent"] + ([f"{self.retrying} to retry"] if self.retrying else []) + (
            [f"{self.failed} given up"] if self.failed else [])
        why = "; ".join(f"{channel}: {reason}" for channel, reason in sorted(self.reasons.items()))
        return f"Alerts: {', '.join(parts)}." + (f" {why}" if why else "")


@dataclass(frozen=True)
class _Claimed:
    id: int
    channel: AlertChannel
    attempts: int  # including this try; the claim holds while the row still has this count
    notice: Notice


def _claim(engine: Engine, now: datetime, limit: int) -> list[_Claimed]:
    with engine.begin() as conn:
        due = (select(D.id).where(D.state == DeliveryState.PENDING, D.next_attempt_at <= now)
               .order_by(D.next_attempt_at, D.id).limit(limit))
        if conn.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        picked = due.cte("picked")  # a CTE, not IN (subquery): see core.sync.jobs.claim
        claimed = conn.execute(
            update(ALERT_DELIVERY_TABLE)
            .where(D.id == picked.c.id, D.state == DeliveryState.PENDING, D.next_attempt_at <= now)
            .values(attempts=D.attempts + 1, next_attempt_at=now + CLAIM_HOLD)
            .returning(D.id, D.event_id, D.channel, D.attempts)).all()
        if not claimed:
            return []
        events = {row.id: row for row in conn.execute(
            select(E.id, E.partner_id, E.type, E.change, E.severity, E.at, E.detail, ISSUE_TABLE.c.first_seen,
                   PARTNER_TABLE.c.name.label("partner"))
            .join(ISSUE_TABLE, ISSUE_TABLE.c.id == E.issue_id)
            .outerjoin(PARTNER_TABLE, PARTNER_TABLE.c.id == E.partner_id)
            .where(E.id.in_([row.event_id for row in claimed])))}
    found = []
    for row in sorted(claimed, key=lambda r: r.id):
        event = events[row.event_id]
        notice = Notice(partner=event.partner, type=IssueType(event.type), change=IssueChange(event.change),
                        severity=IssueSeverity(event.severity), detail=event.detail, at=event.at,
                        first_seen=event.first_seen)
        found.append(_Claimed(row.id, AlertChannel(row.channel), row.attempts, notice))
    return found


def _held(item: _Claimed) -> ColumnElement[bool]:
    """The delivery as long as this round's claim still holds it."""
    return and_(D.id == item.id, D.state == DeliveryState.PENDING, D.attempts == item.attempts)


def _finish(engine: Engine, item: _Claimed, now: datetime, outcome: Outcome, reason: str | None,
            *, give_up: bool = False) -> None:
    """Record one try: sent (reason None), to retry after its backoff, or failed for good."""
    if reason is None:
        values: dict[str, object] = {"state": DeliveryState.SENT, "sent_at": now, "last_error": None}
        outcome.sent += 1
    elif give_up or item.attempts >= MAX_ATTEMPTS:
        values = {"state": DeliveryState.FAILED, "last_error": reason}
        outcome.failed += 1
    else:
        values = {"next_attempt_at": now + BACKOFF[item.attempts - 1], "last_error": reason}
        outcome.retrying += 1
    with engine.begin() as conn:
        conn.execute(update(ALERT_DELIVERY_TABLE).where(_held(item)).values(values))


def send_due(engine: Engine, settings: Settings, now: datetime, senders: Mapping[AlertChannel, Sender], *,
             limit: int = BATCH) -> Outcome:
    """Send the deliveries due at `now` (at most `limit`). After a channel fails once, the rest of its deliveries in
    this round wait for their retry instead of each waiting out the same timeout."""
    outcome = Outcome()
    secrets = secrets_of(settings)
    broken: dict[AlertChannel, str] = {}
    for item in _claim(engine, now, limit):
        sender = senders.get(item.channel)
        if sender is None:
            _finish(engine, item, now, outcome, UNCONFIGURED[item.channel], give_up=True)
            continue
        if item.channel in broken:
            _finish(engine, item, now, outcome, f"Not tried: {broken[item.channel]}")
            continue
        try:
            sender(item.notice)
        except SendFailed as exc:
            reason = exc.reason
        except Exception as exc:  # noqa: BLE001 - a sender's surprise is this delivery's failure, never the loop's
            reason = redact(f"Sending failed: {type(exc).__name__}: {exc}", secrets)
        else:
            _finish(engine, item, now, outcome, None)
            continue
        broken[item.channel] = reason
        outcome.reasons[CHANNEL_WORDS[item.channel]] = reason
        _finish(engine, item, now, outcome, reason)
    return outcome


def deliver(engine: Engine, settings: Settings, now: datetime) -> Outcome:
    """The scheduler's step: plan new events, then send what is due on the configured channels."""
    plan(engine, settings, now)
    return send_due(engine, settings, now, senders_for(settings))


def failure_line(exc: BaseException, settings: Settings) -> str:
    """One stderr line for an alerts step that failed as a whole (its database, say): scheduling goes on."""
    return redact(f"Alerts could not be sent this round ({type(exc).__name__}: {exc}); scheduling goes on and "
                  "alerts are tried again next round.", secrets_of(settings))


def send_test(settings: Settings, now: datetime) -> list[tuple[AlertChannel, str | None]]:
    """A test notice on each configured channel, now: (channel, None when it went, else why not)."""
    results: list[tuple[AlertChannel, str | None]] = []
    for channel, sender in senders_for(settings).items():
        try:
            sender(trial_notice(now))
        except SendFailed as exc:
            results.append((channel, exc.reason))
        else:
            results.append((channel, None))
    return results
