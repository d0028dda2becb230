"""DNS rebinding: the App Domain's addresses are checked when each connection opens, and only checked ones are used."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import pytest
from hypothesis import given, settings

from core.errors import AuthError, HaloUnavailable, InvalidDomain
from core.halopsa.app_domain import normalize_app_domain
from core.halopsa.client import HaloClient
from core.halopsa.config import HaloConfig
from core.halopsa.network import PinnedBackend, PinnedTransport
from tests.core.halopsa.test_app_domain import EMBEDDED_FORMS, private_addresses, public_addresses

PUBLIC = "93.184.215.14"
REBINDING_HOST = "rebind.example.com"


class LoopbackListener:
    """A TCP listener on 127.0.0.1 that counts the connections it accepts and keeps their first bytes."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.first_bytes: list[bytes] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed by the test
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.first_bytes.append(conn.recv(16))
                except OSError:
                    self.first_bytes.append(b"")

    def accepted(self, expected: int, *, within_s: float = 5.0) -> int:
        """How many connections were accepted, once `expected` were or `within_s` passed (accepting is threaded)."""
        deadline = time.monotonic() + within_s
        while len(self.first_bytes) < expected and time.monotonic() < deadline:
            time.sleep(0.01)
        return len(self.first_bytes)

    def close(self) -> None:
        """Stop accepting; on Linux `shutdown` wakes the blocked accept() at once (`close` alone does not)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(timeout=5)


@pytest.fixture
def listener() -> Iterator[LoopbackListener]:
    served = LoopbackListener()
    yield served
    served.close()


def test_a_domain_rebound_to_loopback_after_validation_gets_no_connection(
    listener: LoopbackListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported attack: the system resolver answers a public address first, 127.0.0.1 from then on."""
    real_getaddrinfo = socket.getaddrinfo
    asked: list[str] = []

    def rebinding(host: str, *args: Any, **kwargs: Any) -> Any:
        if host != REBINDING_HOST:
            return real_getaddrinfo(host, *args, **kwargs)
        asked.append(host)
        return real_getaddrinfo(PUBLIC if len(asked) == 1 else "127.0.0.1", *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    domain = normalize_app_domain(f"{REBINDING_HOST}:{listener.port}")  # validated: the first answer is public
    assert domain == f"https://{REBINDING_HOST}:{listener.port}"
    client = HaloClient(base_url=domain, client_id="id", client_secret="secret",
                        config=HaloConfig(max_attempts=3), sleep=lambda s: None)
    with client, pytest.raises(InvalidDomain, match="private or local address \\(127.0.0.1\\)") as refused:
        client.verify()
    assert listener.first_bytes == []  # no TCP connection (and so no TLS ClientHello) ever reached loopback
    assert client.stats.requests == 1 and client.stats.retries == 0  # refused once, never retried as transient
    assert refused.value.field == "app_domain"


# ---- the backend, driven with an injected resolver and a backend that records where it connects ----------------

TOKEN = b'{"access_token": "t0k3n", "token_type": "Bearer", "expires_in": 3600, "scope": "all"}'


def reply(status: int = 200, body: bytes = TOKEN, *, close: bool = False, location: str | None = None) -> bytes:
    head = [f"HTTP/1.1 {status} X", "Content-Type: application/json", f"Content-Length: {len(body)}"]
    head += ["Connection: close"] if close else []
    head += [f"Location: {location}"] if location else []
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class FakeStream(httpcore.NetworkStream):
    """One connection to a fake server: keeps what was sent and the TLS server name, answers the canned replies."""

    def __init__(self, replies: list[bytes]) -> None:
        self.replies = replies
        self.sent = bytearray()
        self.server_hostname: str | None = None

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.replies.pop(0) if self.replies else b""

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.sent += buffer

    def close(self) -> None:
        pass

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        self.server_hostname = server_hostname
        return self

    def get_extra_info(self, info: str) -> Any:
        return None


class RecordingBackend(httpcore.NetworkBackend):
    """Records every (address, port) it is asked to connect to; `unreachable` addresses fail like a dead route."""

    def __init__(self, replies: list[bytes], unreachable: tuple[str, ...] = ()) -> None:
        self.replies = replies
        self.unreachable = unreachable
        self.connects: list[tuple[str, int]] = []
        self.streams: list[FakeStream] = []

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        self.connects.append((host, port))
        if host in self.unreachable:
            raise httpcore.ConnectError(f"no route to {host}")
        self.streams.append(FakeStream(self.replies))
        return self.streams[-1]


class Answers:
    """A resolver giving one answer per call, the last one from then on; counts the calls."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self, host: str) -> list[str]:
        self.calls += 1
        return self.answers[min(self.calls, len(self.answers)) - 1]


def pinned_client(resolver: Answers, inner: RecordingBackend, *, base_url: str = "https://acme.halopsa.com",
                  **config: Any) -> HaloClient:
    backend = PinnedBackend(resolver=resolver, inner=inner)
    return HaloClient(base_url=base_url, client_id="id", client_secret="secret", config=HaloConfig(**config),
                      transport=PinnedTransport(ssl_context=ssl.create_default_context(), backend=backend),
                      sleep=lambda s: None, token_url=f"{base_url}/auth/token")  # no AuthInfo: one request a verify


def test_connects_to_the_checked_address_and_keeps_the_name_for_host_header_and_tls() -> None:
    inner = RecordingBackend([reply()])
    with pinned_client(Answers([PUBLIC]), inner) as client:
        assert client.verify().ok
    assert inner.connects == [(PUBLIC, 443)]
    stream = inner.streams[0]
    assert stream.server_hostname == "acme.halopsa.com"  # SNI and the certificate check use the name
    assert b"\r\nhost: acme.halopsa.com\r\n" in bytes(stream.sent).lower()


def test_an_answer_that_changes_to_loopback_after_validation_is_refused_before_connecting() -> None:
    resolver = Answers([PUBLIC], ["127.0.0.1"])
    domain = normalize_app_domain("acme.halopsa.com", resolver=resolver)
    inner = RecordingBackend([reply()])
    with pinned_client(resolver, inner, base_url=domain, max_attempts=4) as client, \
            pytest.raises(InvalidDomain, match="private or local address \\(127.0.0.1\\)"):
        client.verify()
    assert inner.connects == []
    assert resolver.calls == 2 and client.stats.requests == 1  # not retried as a transient fault


def test_each_new_connection_of_the_pool_is_checked_again() -> None:
    resolver = Answers([PUBLIC], [PUBLIC], ["10.0.0.7"])
    inner = RecordingBackend([reply(close=True), reply(close=True), reply(close=True)])
    with pinned_client(resolver, inner) as client:
        client.verify()
        client.verify()  # the server closed the first connection: a second one is opened, and checked
        with pytest.raises(InvalidDomain, match="10.0.0.7"):
            client.verify()
    assert inner.connects == [(PUBLIC, 443), (PUBLIC, 443)]
    assert resolver.calls == 3


def test_a_kept_alive_connection_stays_on_its_checked_address() -> None:
    resolver = Answers([PUBLIC], ["127.0.0.1"])
    inner = RecordingBackend([reply(), reply()])
    with pinned_client(resolver, inner) as client:
        client.verify()
        client.verify()
    assert inner.connects == [(PUBLIC, 443)] and resolver.calls == 1


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "169.254.169.254", "10.0.0.1", *EMBEDDED_FORMS])
def test_every_non_public_form_is_refused_when_connecting(address: str) -> None:
    inner = RecordingBackend([reply()])
    backend = PinnedBackend(resolver=Answers([PUBLIC, address]), inner=inner)
    with pytest.raises(InvalidDomain, match="private or local"):
        backend.connect_tcp("acme.halopsa.com", 443)
    with pytest.raises(InvalidDomain, match="private or local"):  # an address as the host: no resolver involved
        PinnedBackend(resolver=Answers([]), inner=inner).connect_tcp(address, 443)
    assert inner.connects == []


def test_nat64_of_a_public_address_is_accepted() -> None:
    """On an IPv6-only network with DNS64 every IPv4 host resolves to 64:ff9b::a.b.c.d: the embedded address counts."""
    nat64 = "64:ff9b::808:808"  # 8.8.8.8
    assert normalize_app_domain("acme.halopsa.com", resolver=Answers([nat64])) == "https://acme.halopsa.com"
    inner = RecordingBackend([reply()])
    PinnedBackend(resolver=Answers([nat64]), inner=inner).connect_tcp("acme.halopsa.com", 443)
    assert inner.connects == [(nat64, 443)]


def test_the_next_checked_address_is_tried_when_one_is_unreachable() -> None:
    second = "2606:4700::1111"
    inner = RecordingBackend([reply()], unreachable=(PUBLIC,))
    with pinned_client(Answers([PUBLIC, second]), inner) as client:
        assert client.verify().ok
    assert inner.connects == [(PUBLIC, 443), (second, 443)]


def test_a_name_that_does_not_resolve_is_a_transient_connection_failure() -> None:
    inner = RecordingBackend([reply()])
    with pinned_client(Answers([]), inner, max_attempts=2) as client, \
            pytest.raises(HaloUnavailable, match="the connection failed"):
        client.verify()
    assert inner.connects == [] and client.stats.retries == 1


def test_a_redirect_is_not_followed() -> None:
    inner = RecordingBackend([reply(302, b"", location="https://elsewhere.example.com/auth/token"), reply()])
    with pinned_client(Answers([PUBLIC]), inner) as client, pytest.raises(AuthError, match="redirect") as refused:
        client.verify()
    assert refused.value.field == "app_domain"
    assert inner.connects == [(PUBLIC, 443)] and client.stats.requests == 1
    assert bytes(inner.streams[0].sent).count(b"POST ") == 1  # one request sent, the redirect's target never asked


@settings(max_examples=200, deadline=None)
@given(private=private_addresses(), public=public_addresses())
def test_the_connection_applies_the_forms_rule(private: str, public: str) -> None:
    inner = RecordingBackend([])
    PinnedBackend(resolver=Answers([public]), inner=inner).connect_tcp("acme.halopsa.com", 443)
    with pytest.raises(InvalidDomain, match="private or local"):  # one non-public answer among public ones refuses all
        PinnedBackend(resolver=Answers([public, private]), inner=inner).connect_tcp("acme.halopsa.com", 443)
    assert inner.connects == [(public, 443)]


def test_local_domains_allowed_connects_to_loopback(listener: LoopbackListener) -> None:
    """HALO_ALLOW_LOCAL_DOMAINS=1 (the emulator and tests on 127.0.0.1): the check is off, the pinning stays."""
    PinnedBackend(allow_local=True).connect_tcp("localhost", listener.port).close()
    with pytest.raises(InvalidDomain):
        PinnedBackend().connect_tcp("localhost", listener.port)
    assert listener.accepted(1) == 1
