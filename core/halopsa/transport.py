"""One HaloPSA request as the client sends it: a slot from the rate budget, then tenacity retries.

429, 500/502/503/504, timeouts, dropped connections and unreadable JSON are retried with capped exponential backoff
and jitter, never shorter than a Retry-After; any other answer goes back to the caller as it is. Each wait is
reported as a `ClientEvent` so the sync engine can show a run as rate limited rather than stuck.

Every wait is bounded: a Retry-After counts for at most the rate window (HaloPSA's limit is a rolling window, so no
honest wait is longer), and one longer than `longest_wait_s` is not slept through at all: a 429 ends the exchange at
once as RateLimited (announced as a `resume_later` event, so the sync hands its job back to the queue until then),
a 5xx as HaloUnavailable. Each attempt ends within `request_deadline_s`, however slowly the answer trickles in.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx
import orjson
import tenacity

from core.errors import HaloError, HaloUnavailable, ProtocolError, RateLimited, format_duration
from core.halopsa import deadline
from core.halopsa.config import HaloConfig
from core.halopsa.ratelimit import Budget
from core.halopsa.sizecap import read_capped

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_BASE_S = 1.0
STATUS_PAGE = "https://status.halopsa.com"
# What a sync does after HaloPSA failed it (an error's `next_step`: a caller that is not a sync says its own)
SYNC_RETRIES = f"The sync will retry on its next run; check {STATUS_PAGE} or try again later."


@dataclass(frozen=True)
class ClientEvent:
    """One wait: `rate_budget` (pacing under the tenant's limit), `retry` (backing off after a failure), or
    `resume_later` (a rate limit longer than the client waits: the exchange ends, to be resumed after `seconds`)."""

    kind: Literal["rate_budget", "retry", "resume_later"]
    seconds: float
    reason: str
    status_code: int | None = None


@dataclass
class ClientStats:
    requests: int = 0  # HTTP requests sent, token requests and retries included
    pages: int = 0  # list pages received
    retries: int = 0
    rate_limited_responses: int = 0  # 429s seen
    waited_s: float = 0.0  # slept for the budget and for backoff
    token_requests: int = 0


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date (then relative to `now`); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"


def _duration(seconds: float) -> str:
    return format_duration(timedelta(seconds=seconds)) if seconds >= 1 else _seconds(seconds)


def _shown(header: str) -> str:
    """A Retry-After value as it may be shown: printable, and short."""
    text = "".join(c for c in header if c.isprintable()).strip()
    return text if len(text) <= 40 else text[:39] + "…"


class _Retryable(Exception):
    """A failed attempt worth repeating; `error` is what the caller gets once the attempts run out."""

    def __init__(
        self,
        error: HaloError,
        *,
        reason: str,
        status_code: int | None = None,
        retry_after: float | None = None,
        asked: tuple[float, str] | None = None,
    ) -> None:
        super().__init__(reason)
        self.error = error
        self.reason = reason
        self.status_code = status_code
        self.retry_after = retry_after  # the wait the server asked for, capped at the rate window
        self.asked = asked  # what it asked for: seconds uncapped, and the header as sent


class _StopWhen(tenacity.stop.stop_base):
    """Stop retrying when the failed attempt says so (a server asking for a longer wait than the client sleeps)."""

    def __init__(self, predicate: Callable[[_Retryable], bool]) -> None:
        self._predicate = predicate

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        failure = retry_state.outcome.exception() if retry_state.outcome else None
        return isinstance(failure, _Retryable) and self._predicate(failure)


class _BackoffOrRetryAfter(tenacity.wait.wait_base):
    """Capped exponential backoff with jitter, but never shorter than the server's Retry-After."""

    def __init__(self, *, cap_s: float) -> None:
        self._backoff = tenacity.wait_exponential_jitter(initial=BACKOFF_BASE_S, max=cap_s, jitter=BACKOFF_BASE_S)

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        backoff = self._backoff(retry_state)
        failure = retry_state.outcome.exception() if retry_state.outcome else None
        hint = failure.retry_after if isinstance(failure, _Retryable) else None
        return max(hint, backoff) if hint else backoff


def decode(body: bytes) -> Any:
    """A JSON answer: orjson (3x json.loads on a 1,000-row page); a page it refuses is tried once more by the standard
    library, which also reads JavaScript's `NaN` and `Infinity` (a serializer on the tenant's side may write them), so
    such a value costs its record (rejected as not finite), never the whole page."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


class Sender:
    """Sends requests for one client: budget, retries, stats and wait events. Thread-safe like httpx.Client."""

    def __init__(
        self,
        *,
        http: httpx.Client,
        budget: Budget,
        config: HaloConfig,
        sleep: Callable[[float], None],
        on_event: Callable[[ClientEvent], None] | None,
        stats: ClientStats,
    ) -> None:
        self._http = http
        self._budget = budget
        self._attempts = config.max_attempts
        self._backoff_cap_s = config.backoff_cap_s
        self._timeout_s = config.http_timeout_s
        self._deadline_s = config.request_deadline_s
        self._window_s = config.rate_limit_window_s
        self._longest_wait_s = config.longest_wait_s
        self._max_bytes = config.max_page_bytes
        self._sleep = sleep
        self._on_event = on_event
        self._stats = stats

    def exchange(
        self, build: Callable[[], httpx.Request], *, what: str, attempts: int | None = None
    ) -> tuple[httpx.Response, Any]:
        """The first answer that is not transient, JSON-decoded when 2xx (else None), or the typed error. `attempts`
        (default: the config's) bounds the tries; 1 for a request whose failure the caller gets past anyway."""
        retrying = tenacity.Retrying(
            stop=tenacity.stop_any(tenacity.stop_after_attempt(attempts or self._attempts), _StopWhen(self._too_long)),
            wait=_BackoffOrRetryAfter(cap_s=self._backoff_cap_s),
            retry=tenacity.retry_if_exception_type(_Retryable),
            before_sleep=self._announce_retry,
            sleep=self._wait,
            reraise=True,
        )
        try:
            return retrying(self._attempt, build, what)
        except _Retryable as failure:
            if failure.asked is not None and self._too_long(failure):
                raise self._will_not_wait(failure, what) from None
            raise failure.error from None

    def _too_long(self, failure: _Retryable) -> bool:
        return failure.retry_after is not None and failure.retry_after > self._longest_wait_s

    def _will_not_wait(self, failure: _Retryable, what: str) -> HaloError:
        """The error for a Retry-After longer than the longest wait; a rate limit is announced as `resume_later`."""
        assert failure.asked is not None and failure.retry_after is not None
        asked_s, header = failure.asked
        wait = failure.retry_after
        if failure.status_code != 429:
            asked = format_duration(timedelta(seconds=asked_s)) if asked_s <= 86_400 else "more than a day"
            return HaloUnavailable(
                f"HaloPSA answered {what} with HTTP {failure.status_code} and asked to wait {asked} (Retry-After: "
                f"{header}); it may be down for maintenance.", next_step=SYNC_RETRIES)
        window = format_duration(timedelta(seconds=self._window_s))
        asked = f"longer than its {window} rate window" if asked_s > self._window_s else _duration(asked_s)
        error = RateLimited(
            wait, f"HaloPSA is rate limiting this tenant and asked to wait {asked} (Retry-After: {header}).",
            next_step=("Rather than wait inside the sync, it stopped here and kept everything read so far; it can "
                       f"continue in {_duration(wait)}."))
        self._emit(ClientEvent(kind="resume_later", seconds=wait, reason=error.message, status_code=429))
        return error

    def _attempt(self, build: Callable[[], httpx.Request], what: str) -> tuple[httpx.Response, Any]:
        self._pace()
        request = build()  # built per attempt: a renewed token or a counter in `build` applies to each send
        self._stats.requests += 1
        try:
            with deadline.within(self._deadline_s) as passed:  # every network operation ends by the deadline
                response = self._http.send(request, stream=True)
                body = read_capped(response, limit=self._max_bytes, what=what)  # PageTooLarge: never retried
        except httpx.TimeoutException:
            if passed():
                error: HaloError = self._too_slow(what)
                raise _Retryable(error, reason=f"HaloPSA sent its answer to {what} too slowly") from None
            error = self._unavailable(f"within {self._timeout_s:g} s")
            raise _Retryable(error, reason=f"HaloPSA did not answer {what} in time") from None
        except httpx.TransportError:
            error = self._unavailable("(the connection failed)")
            raise _Retryable(error, reason=f"the connection to HaloPSA failed during {what}") from None
        status = response.status_code
        if status in RETRY_STATUSES:
            raise self._refusal(status, response.headers.get("Retry-After"))
        if not response.is_success:
            return response, None
        try:
            return response, decode(body)
        except ValueError:
            error = ProtocolError(
                f"HaloPSA sent a page that is not valid JSON ({what}) {self._attempts} times in a row.",
                next_step="The sync will retry on its next run.")
            raise _Retryable(error, reason=f"HaloPSA sent a page that is not valid JSON ({what})") from None

    def _refusal(self, status: int, header: str | None) -> _Retryable:
        """A retryable answer; its Retry-After counts for at most the rate window."""
        asked_s = retry_after_seconds(header)
        hint = None if asked_s is None else min(asked_s, self._window_s)
        asked = None if asked_s is None or header is None else (asked_s, _shown(header))
        if status != 429:
            error: HaloError = self._unavailable(f"(HTTP {status})")
            return _Retryable(error, reason=f"HaloPSA answered HTTP {status}", status_code=status, retry_after=hint,
                              asked=asked)
        self._stats.rate_limited_responses += 1
        limited = RateLimited(hint, f"HaloPSA kept rate limiting this tenant after {self._attempts} attempts.",
                              next_step="The sync will try again on its next run.")
        return _Retryable(limited, reason="HaloPSA is rate limiting this tenant", status_code=429,
                          retry_after=hint, asked=asked)

    def _too_slow(self, what: str) -> HaloUnavailable:
        return HaloUnavailable(
            f"HaloPSA sent its answer to {what} too slowly: it was not complete within {self._deadline_s:g} s, "
            f"{self._attempts} attempts in a row. It may be overloaded.", next_step=SYNC_RETRIES)

    def _unavailable(self, detail: str) -> HaloUnavailable:
        return HaloUnavailable(f"HaloPSA did not answer {detail} after {self._attempts} attempts; it may be down.",
                               next_step=SYNC_RETRIES)

    def _pace(self) -> None:
        delay = self._budget.reserve()
        if delay <= 0:
            return
        reason = (
            f"Pacing requests to stay within HaloPSA's limit of {self._budget.limit} requests per "
            f"{self._budget.window_s:g} s; waiting {_seconds(delay)}"
        )
        self._emit(ClientEvent(kind="rate_budget", seconds=delay, reason=reason))
        self._wait(delay)

    def _announce_retry(self, retry_state: tenacity.RetryCallState) -> None:
        failure = retry_state.outcome.exception() if retry_state.outcome else None
        if not isinstance(failure, _Retryable) or retry_state.next_action is None:
            return
        seconds = retry_state.next_action.sleep
        self._stats.retries += 1
        reason = f"{failure.reason}; retrying in {_seconds(seconds)}"
        self._emit(ClientEvent(kind="retry", seconds=seconds, reason=reason, status_code=failure.status_code))

    def _wait(self, seconds: float) -> None:
        self._stats.waited_s += seconds
        self._sleep(seconds)

    def _emit(self, event: ClientEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)
