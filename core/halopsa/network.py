"""Connections to HaloPSA only ever reach addresses that passed the App Domain's address rule (no DNS rebinding).

The App Domain is checked when a partner saves it, but a name can resolve differently a second later: an attacker's
DNS server can answer a public address to the check and 127.0.0.1 to the connection. So every new connection of the
pool resolves the name once, applies `app_domain.refuse_non_public` to every answer, and connects to a checked
address itself. httpcore keeps the URL's host name for the Host header, the TLS server name and the certificate check.
A connection kept alive stays on the address it was opened to; redirects are never followed (httpx's default).

With HALO_ALLOW_LOCAL_DOMAINS=1 (the emulator on loopback, tests) the rule is off, as it is for the form.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterable

import httpcore
import httpx

from core.halopsa.app_domain import Resolver, refuse_non_public, resolve_host

# httpx's own pool defaults (httpx.HTTPTransport without arguments).
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class PinnedBackend(httpcore.NetworkBackend):
    """A network backend that resolves each host once per connection and connects only to checked addresses."""

    def __init__(
        self,
        *,
        allow_local: bool = False,
        resolver: Resolver = resolve_host,
        inner: httpcore.NetworkBackend | None = None,
    ) -> None:
        self._allow_local = allow_local
        self._resolver = resolver
        self._inner = inner or httpcore.SyncBackend()

    def _addresses(self, host: str) -> list[str]:
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            return self._resolver(host)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        """A stream to the first checked address that answers. A refused address raises InvalidDomain, which the
        client never retries; a name that does not resolve, or no address that answers, is a ConnectError (retried)."""
        addresses = self._addresses(host)
        if not self._allow_local:
            refuse_non_public(host, addresses)
        failure: Exception = httpcore.ConnectError(f"{host} does not resolve to any address")
        for address in addresses:
            try:
                return self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        raise failure


class PinnedTransport(httpx.HTTPTransport):
    """httpx's HTTP transport on a pool whose every connection goes through `backend`.

    httpx 0.28 takes no network backend, so this builds the httpcore pool HTTPTransport would, with one; everything
    else (requests, responses, error mapping) is HTTPTransport's own."""

    def __init__(self, *, ssl_context: ssl.SSLContext, backend: httpcore.NetworkBackend) -> None:
        # HTTPTransport.__init__ would only build a pool that is replaced here: its methods use nothing but `_pool`.
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=_LIMITS.max_connections,
            max_keepalive_connections=_LIMITS.max_keepalive_connections,
            keepalive_expiry=_LIMITS.keepalive_expiry,
            network_backend=backend,
        )
