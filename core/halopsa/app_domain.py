"""App Domain rules: normalise what a partner types to `https://host[:port]` and refuse what must not be called.

`acme`, `acme.halopsa.com` and `https://acme.halopsa.com/` all become `https://acme.halopsa.com`. Refused: http,
paths, queries, user info, and hosts that are (or resolve to) private, loopback, link-local, metadata or otherwise
non-public addresses (SSRF), unless HALO_ALLOW_LOCAL_DOMAINS=1, which also admits `http://127.0.0.1:PORT` and
`http://localhost:PORT` for the sandbox and tests. Names under `.sandbox` are the built-in emulator tenants.

`refuse_non_public` is the one address rule: the form applies it here, and `core.halopsa.network` applies it again to
the addresses each new connection is about to use (a name can resolve differently a second later: DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

import idna  # httpx's own IDNA library (a dependency of httpx)

from core.errors import InvalidDomain

SANDBOX_SUFFIX = ".sandbox"
HOSTED_SUFFIX = ".halopsa.com"
_LOCAL_HTTP_HOSTS = {"127.0.0.1", "localhost", "[::1]"}
_LOCAL_NAME_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa")
_EXAMPLE = "Enter the address you open HaloPSA at, e.g. acme.halopsa.com or https://acme.halopsa.com."

Resolver = Callable[[str], list[str]]

# Global by `ipaddress`, refused all the same: they reach IPv4 hosts we cannot see (6to4, IPv4-compatible and
# IPv4-translated IPv6, local-use NAT64) or are protocol assignments, never a web server (192.0.0.0/24, 6to4 relays).
_RELAYS = tuple(
    ipaddress.ip_network(network)
    for network in ("192.0.0.0/24", "192.88.99.0/24", "::/96", "::ffff:0:0:0/96", "64:ff9b:1::/48", "2002::/16")
)
# The well-known NAT64 prefix carries the IPv4 address in its last 32 bits; DNS64 networks answer every IPv4-only host
# this way, so that embedded address is what gets judged.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def resolve_host(host: str) -> list[str]:
    """Addresses a host name resolves to, in the system's order of preference; [] when it does not resolve."""
    try:
        return list(dict.fromkeys(str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)))
    except (OSError, UnicodeError):
        return []


def _is_public(address: str) -> bool:
    """True when HaloPSA may live there: a global unicast address, judged by the IPv4 address it embeds if any."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    elif isinstance(ip, ipaddress.IPv6Address) and ip in _NAT64:
        ip = ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return ip.is_global and not ip.is_multicast and not any(ip in network for network in _RELAYS)


def refuse_non_public(host: str, addresses: Iterable[str]) -> None:
    """Raise InvalidDomain when any address of `host` is not public (SSRF): one private answer is enough."""
    blocked = next((address for address in addresses if not _is_public(address)), None)
    if blocked is not None:
        raise InvalidDomain(
            f"App Domain {host} points to a private or local address ({blocked}), so the console will not connect "
            "to it. Enter the public address of your HaloPSA instance; if that is what you entered, its DNS records "
            "need correcting."
        )


def _literal_ip(host: str) -> str | None:
    candidate = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        pass
    try:  # integer, octal and short dotted forms (e.g. 2130706433, 0177.1) that resolvers accept
        return socket.inet_ntoa(socket.inet_aton(candidate)) if candidate.replace(".", "").isalnum() else None
    except OSError:
        return None


def _check_label_syntax(host: str) -> None:
    labels = host.split(".")
    if len(host) > 253 or any(not label or len(label) > 63 for label in labels):
        raise InvalidDomain(f"“{host}” is not a valid host name. {_EXAMPLE}")
    for label in labels:
        if label.startswith("-") or label.endswith("-") or not all(c.isalnum() or c == "-" for c in label):
            raise InvalidDomain(f"“{host}” is not a valid host name. {_EXAMPLE}")


def is_sandbox_domain(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host.endswith(SANDBOX_SUFFIX)


def normalize_app_domain(
    raw: str,
    *,
    allow_local: bool = False,
    sandbox_enabled: bool = True,
    resolver: Resolver = resolve_host,
) -> str:
    """Return the canonical `https://host[:port]` for an App Domain, or raise InvalidDomain saying why."""
    text = (raw or "").strip()
    if not text:
        raise InvalidDomain(f"App Domain is required. {_EXAMPLE}")
    if any(ch.isspace() for ch in text) or any(ord(ch) < 32 for ch in text):
        raise InvalidDomain(f"App Domain cannot contain spaces. {_EXAMPLE}")
    if "://" not in text:
        if text.startswith("//"):
            raise InvalidDomain(f"App Domain “{text}” is not a web address. {_EXAMPLE}")
        text = "https://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise InvalidDomain(f"App Domain “{raw.strip()}” has an invalid port. {_EXAMPLE}") from None
    scheme = parts.scheme.lower()
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidDomain(
            "App Domain must not contain a user name or password. Enter only the host, e.g. acme.halopsa.com."
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidDomain(
            "App Domain must be the HaloPSA address only, without a path such as /api or /auth: e.g. https://acme.halopsa.com."
        )
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise InvalidDomain(f"App Domain has no host name. {_EXAMPLE}")
    netloc_host = f"[{host}]" if ":" in host else host
    if scheme == "http":
        if allow_local and netloc_host in _LOCAL_HTTP_HOSTS:
            return f"http://{netloc_host}" + (f":{port}" if port else "")
        raise InvalidDomain("App Domain must use https://. HaloPSA credentials are never sent over plain http.")
    if scheme != "https":
        raise InvalidDomain(f"App Domain must be an https:// address, not {scheme}://. {_EXAMPLE}")
    if not host.isascii():  # IDNA first: fullwidth or other Unicode digits can spell an IP address (𝟏𝟐𝟕.0.0.1)
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidDomain(f"“{host}” is not a valid host name. {_EXAMPLE}") from None
    literal = _literal_ip(host)
    if literal is None:
        _check_label_syntax(host)
        try:  # the HTTP client reads xn-- labels with IDNA 2008: a name it cannot read is refused here, not mid-request
            idna.decode(host)
        except UnicodeError:
            raise InvalidDomain(f"“{host}” is not a valid host name. {_EXAMPLE}") from None
        if host == "localhost" or host.endswith(_LOCAL_NAME_SUFFIXES):
            if not allow_local:
                raise InvalidDomain(
                    f"App Domain {host} is a local name. Enter the public address of your HaloPSA instance."
                )
            return f"https://{host}" + (f":{port}" if port and port != 443 else "")
        if "." not in host:
            host = host + HOSTED_SUFFIX
        if host.endswith(SANDBOX_SUFFIX):
            if not sandbox_enabled:
                raise InvalidDomain(
                    "Sandbox domains (*.sandbox) are switched off on this console. Enter a real HaloPSA address."
                )
            return f"https://{host}"
        addresses = resolver(host)
    else:
        addresses = [literal]
        netloc_host = f"[{literal}]" if ":" in literal else literal
        host = netloc_host
    if not allow_local:
        refuse_non_public(host, addresses)
    return f"https://{host}" + (f":{port}" if port and port != 443 else "")
