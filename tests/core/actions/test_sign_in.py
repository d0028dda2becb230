from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import select

from core.actions import sign_in as s
from core.errors import BadInput
from core.store.tables import AUDIT_TABLE, SESSION_TABLE, AuditAction, Role
from core.store.users import add_user
from tests.support.clock import NOW

EMAIL, PASSWORD = "cs@example.com", "right-password"


@pytest.fixture
def keys(engine, settings):
    return s.SessionKeys.load(engine, settings)


@pytest.fixture
def account(engine):
    add_user(engine, email=EMAIL, name="CS", role=Role.CS, password=PASSWORD)


def _try(engine, keys, password, *, at=NOW, email=EMAIL, client="198.51.100.7"):
    try:
        return s.sign_in(engine, email=email, password=password, client=client, now=at, keys=keys)
    except (s.SignInFailed, s.SignInLocked) as refused:
        return refused


def _audit(engine):
    with engine.connect() as conn:
        return [(r.action, r.actor) for r in conn.execute(select(AUDIT_TABLE).order_by(AUDIT_TABLE.c.id))]


def test_twenty_five_wrong_passwords_pause_the_account_and_the_right_one_waits_until_the_pause_lifts(
        engine, keys, account):
    """The reported attack: 25 wrong passwords in 34 s, then the right one, worked. Now 6 are checked, the rest are
    refused unchecked, and the right password is refused too until the pause lifts."""
    outcomes = [_try(engine, keys, f"guess-{i}", at=NOW + timedelta(seconds=i * 34 / 25)) for i in range(25)]
    assert [type(o) for o in outcomes[:6]] == [s.SignInFailed] * 6
    assert all(isinstance(o, s.SignInLocked) for o in outcomes[6:])
    right_too_soon = _try(engine, keys, PASSWORD, at=NOW + timedelta(seconds=35))
    assert isinstance(right_too_soon, s.SignInLocked)
    assert "Sign-in is paused until" in str(right_too_soon) and "UTC (in " in str(right_too_soon)
    after = _try(engine, keys, PASSWORD, at=right_too_soon.until)
    assert isinstance(after, s.SignedIn) and after.principal.user == EMAIL
    actions = [a for a, _ in _audit(engine)]
    assert actions.count(AuditAction.SIGN_IN_FAILED) == 6
    assert actions.count(AuditAction.SIGN_IN_LOCKED) == 20
    assert actions[-1] == AuditAction.SIGN_IN


def test_each_failure_past_the_allowance_doubles_the_pause_up_to_fifteen_minutes(engine, keys, account):
    assert all(isinstance(_try(engine, keys, "wrong"), s.SignInFailed) for _ in range(5))  # the allowance
    at, pauses = NOW, []
    for _ in range(7):
        assert isinstance(_try(engine, keys, "wrong", at=at), s.SignInFailed)  # made when the last pause lifted
        locked = _try(engine, keys, "wrong", at=at)
        assert isinstance(locked, s.SignInLocked)
        pauses.append(locked.until - at)
        at = locked.until
    assert pauses == [timedelta(seconds=30 * 2**i) for i in range(5)] + [timedelta(minutes=15)] * 2


def test_a_right_password_resets_the_account_but_guesses_from_one_address_at_many_accounts_are_paused(
        engine, keys, account):
    for _ in range(4):
        _try(engine, keys, "wrong")
    assert isinstance(_try(engine, keys, PASSWORD), s.SignedIn)
    assert all(isinstance(_try(engine, keys, "wrong"), s.SignInFailed) for _ in range(5))  # the allowance again
    sprayed = [_try(engine, keys, "wrong", email=f"user{i}@example.com", client="203.0.113.9") for i in range(25)]
    assert sum(isinstance(o, s.SignInFailed) for o in sprayed) == 21
    assert isinstance(sprayed[-1], s.SignInLocked)
    other_client = _try(engine, keys, "wrong", email="user0@example.com", client="203.0.113.10")
    assert isinstance(other_client, s.SignInFailed)  # the pause is per address, not for everyone


def test_simultaneous_wrong_passwords_cannot_slip_past_the_allowance(engine, keys, account):
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda i: _try(engine, keys, f"guess-{i}"), range(24)))
    assert sum(isinstance(o, s.SignInFailed) for o in outcomes) == 6
    assert sum(isinstance(o, s.SignInLocked) for o in outcomes) == 18


def test_an_unknown_account_is_throttled_and_audited_like_a_known_one(engine, keys, account):
    outcomes = [_try(engine, keys, "x", email="nobody@example.com") for _ in range(7)]
    assert [type(o) for o in outcomes] == [s.SignInFailed] * 6 + [s.SignInLocked]
    assert str(outcomes[0]) == str(_try(engine, keys, "wrong"))  # the same words: no account enumeration
    assert ("sign_in_failed", "nobody@example.com") in _audit(engine)


def test_sign_in_gives_a_signed_cookie_whose_token_is_stored_only_as_a_hash(engine, keys, account):
    signed = _try(engine, keys, PASSWORD)
    token, _, signature = signed.cookie.partition(".")
    assert len(token) >= 43 and signature
    with engine.connect() as conn:
        stored = conn.scalars(select(SESSION_TABLE.c.token_hash)).all()
    assert stored and token not in stored and all(token not in h for h in stored)
    assert s.resume_session(engine, signed.cookie, now=NOW, keys=keys).principal == signed.principal
    forged = f"{token}.{'A' * len(signature)}"
    assert s.resume_session(engine, forged, now=NOW, keys=keys).principal is None


def test_sign_in_rotates_the_session_the_browser_held(engine, keys, account):
    first = _try(engine, keys, PASSWORD)
    second = s.sign_in(engine, email=EMAIL, password=PASSWORD, client="x", now=NOW, keys=keys, replacing=first.cookie)
    assert second.cookie != first.cookie
    assert s.resume_session(engine, first.cookie, now=NOW, keys=keys).ended == s.SessionEnd.SIGNED_OUT
    assert s.resume_session(engine, second.cookie, now=NOW, keys=keys).principal is not None


def test_sign_out_ends_the_session_everywhere_and_is_audited(engine, keys, account):
    signed = _try(engine, keys, PASSWORD)
    s.sign_out(engine, signed.cookie, now=NOW, keys=keys)
    again = s.resume_session(engine, signed.cookie, now=NOW + timedelta(seconds=1), keys=keys)
    assert again.principal is None and again.ended == s.SessionEnd.SIGNED_OUT
    assert (AuditAction.SIGN_OUT, EMAIL) in _audit(engine)


def test_sessions_end_after_the_idle_timeout_and_the_lifetime(engine, keys, account):
    idle, lifetime = keys.policy.idle, keys.policy.lifetime
    idle_one = _try(engine, keys, PASSWORD).cookie
    at = NOW + idle - timedelta(seconds=1)
    assert s.resume_session(engine, idle_one, now=at, keys=keys).principal is not None  # use keeps it alive
    assert s.resume_session(engine, idle_one, now=at + idle - timedelta(seconds=1), keys=keys).principal is not None
    assert s.resume_session(engine, idle_one, now=at + 2 * idle, keys=keys).ended == s.SessionEnd.IDLE
    busy = _try(engine, keys, PASSWORD).cookie
    at = NOW
    while at < NOW + lifetime - idle:
        at += idle / 2
        assert s.resume_session(engine, busy, now=at, keys=keys).principal is not None
    ended = s.resume_session(engine, busy, now=NOW + lifetime, keys=keys)
    assert ended.ended == s.SessionEnd.EXPIRED
    assert "Sign in again" in keys.policy.end_message(ended.ended)


@pytest.mark.parametrize(("email", "password", "field"), [
    ("", "x", "email"), ("a" * 300 + "@example.com", "x", "email"), (EMAIL, "p" * 5000, "password")])
def test_over_long_or_empty_credentials_are_refused_before_anything_is_counted(engine, keys, account, email,
                                                                              password, field):
    with pytest.raises(BadInput) as refused:
        s.sign_in(engine, email=email, password=password, client="x", now=NOW, keys=keys)
    assert refused.value.field == field
    assert _audit(engine) == []


def test_reading_a_session_without_touching_it_lets_it_go_idle(engine, keys, account):
    """A page's timer reads the session every second: that must not keep an unattended tab signed in."""
    cookie = _try(engine, keys, PASSWORD).cookie
    idle = keys.policy.idle
    for second in range(0, int(idle.total_seconds()), 60):
        untouched = s.resume_session(engine, cookie, now=NOW + timedelta(seconds=second), keys=keys, touch=False)
        assert untouched.principal is not None
    assert s.resume_session(engine, cookie, now=NOW + idle, keys=keys, touch=False).ended == s.SessionEnd.IDLE
