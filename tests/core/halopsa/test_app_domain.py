import ipaddress
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.errors import InvalidDomain
from core.halopsa.app_domain import is_sandbox_domain, normalize_app_domain


def no_dns(host: str) -> list[str]:
    return []


def resolves_to(address: str):
    return lambda host: [address]


# Forms of a non-public address that `ipaddress.is_global` alone lets through (Python 3.11).
EMBEDDED_FORMS = ["64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b::a00:1", "64:ff9b:1::808:808", "2002:7f00:1::1",
                  "2002:808:808::1", "::7f00:1", "::808:808", "::ffff:0:7f00:1", "192.0.0.9", "192.0.0.10",
                  "192.0.0.200", "192.88.99.1"]


@pytest.mark.parametrize(
    "raw",
    ["acme", "acme.halopsa.com", "https://acme.halopsa.com/", "  ACME.HaloPSA.com  ", "https://acme.halopsa.com",
     "acme.halopsa.com.", "https://acme.halopsa.com:443/"],
)
def test_normalises_every_spelling_of_a_hosted_domain(raw):
    assert normalize_app_domain(raw, resolver=no_dns) == "https://acme.halopsa.com"


def test_keeps_custom_host_and_port():
    assert normalize_app_domain("https://halo.example.com:8443", resolver=no_dns) == "https://halo.example.com:8443"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("", "required"),
        ("   ", "required"),
        ("http://acme.halopsa.com", "https"),
        ("ftp://acme.halopsa.com", "https"),
        ("https://acme.halopsa.com/api", "path"),
        ("https://acme.halopsa.com/?x=1", "path"),
        ("https://user:pw@acme.halopsa.com", "user name"),
        ("https://acme.halopsa.com:99999", "port"),
        ("acme halopsa.com", "spaces"),
        ("https://-bad-.example.com", "valid host"),
        ("https://exa_mple.com", "valid host"),
        ("00--0.aa", "valid host"),  # "--" in the 3rd and 4th place is reserved (IDNA 2008)
    ],
)
def test_refuses_bad_domains_with_a_reason(raw, words):
    with pytest.raises(InvalidDomain) as info:
        normalize_app_domain(raw, resolver=no_dns)
    assert words in info.value.message
    assert info.value.field == "app_domain"


@pytest.mark.parametrize(
    "raw",
    ["https://127.0.0.1", "https://10.0.0.5", "https://192.168.1.1", "https://172.16.0.1", "https://169.254.169.254",
     "https://[::1]", "https://[fe80::1]", "https://[::ffff:127.0.0.1]", "https://0.0.0.0", "https://2130706433",
     "https://0177.0.0.1", "https://[fd00::1]", "https://100.64.0.1"],
)
def test_refuses_private_loopback_link_local_and_metadata_addresses(raw):
    with pytest.raises(InvalidDomain, match="private or local"):
        normalize_app_domain(raw, resolver=no_dns)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::1", "fc00::7"])
def test_refuses_names_that_resolve_to_private_addresses(address):
    with pytest.raises(InvalidDomain, match="private or local"):
        normalize_app_domain("evil.example.com", resolver=resolves_to(address))


@pytest.mark.parametrize("address", EMBEDDED_FORMS)
def test_every_non_public_form_is_refused_as_an_app_domain(address: str) -> None:
    literal = f"[{address}]" if ":" in address else address
    with pytest.raises(InvalidDomain, match="private or local"):
        normalize_app_domain(f"https://{literal}", resolver=no_dns)
    with pytest.raises(InvalidDomain, match="private or local"):
        normalize_app_domain("acme.halopsa.com", resolver=resolves_to(address))


def test_localhost_is_refused_by_default_through_real_resolution():
    with pytest.raises(InvalidDomain):
        normalize_app_domain("https://localhost")


def test_allow_local_admits_loopback_http_with_port_only():
    assert normalize_app_domain("http://127.0.0.1:8765", allow_local=True) == "http://127.0.0.1:8765"
    assert normalize_app_domain("http://localhost:8765/", allow_local=True) == "http://localhost:8765"
    with pytest.raises(InvalidDomain, match="https"):
        normalize_app_domain("http://acme.halopsa.com", allow_local=True, resolver=no_dns)
    assert normalize_app_domain("https://10.0.0.5", allow_local=True) == "https://10.0.0.5"


def test_sandbox_domains_are_recognised_and_can_be_switched_off():
    assert normalize_app_domain("northwind.sandbox") == "https://northwind.sandbox"
    assert is_sandbox_domain("https://northwind.sandbox")
    assert not is_sandbox_domain("https://acme.halopsa.com")
    with pytest.raises(InvalidDomain, match="switched off"):
        normalize_app_domain("northwind.sandbox", sandbox_enabled=False)


@pytest.mark.parametrize("raw", ["https://app.localhost", "metadata.google.internal", "printer.local"])
def test_refuses_local_only_names(raw):
    with pytest.raises(InvalidDomain, match="local name"):
        normalize_app_domain(raw, resolver=no_dns)


# ---- properties --------------------------------------------------------------------------------------------------

LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
TLD = st.from_regex(r"[a-z]{2,6}", fullmatch=True)  # a real TLD is letters, so a name never reads as an IP address
HOST_NAME = st.tuples(st.lists(LABEL, min_size=1, max_size=3), TLD).map(lambda p: ".".join([*p[0], p[1]])).filter(
    lambda host: not host.endswith((".sandbox", ".local", ".localhost", ".internal", ".localdomain", ".arpa")))
# IDNA 2008 reserves labels with "--" in the 3rd and 4th place (xn-- and future prefixes): such names are refused
VALID_HOST_NAME = HOST_NAME.filter(lambda host: all(label[2:4] != "--" for label in host.split(".")))
PRIVATE_NETWORKS = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10",
                    "0.0.0.0/8", "224.0.0.0/4", "::1/128", "fe80::/10", "fc00::/7", "::ffff:127.0.0.0/104",
                    "::ffff:10.0.0.0/104", "fd00:ec2::254/128", "ff00::/8", "2001:db8::/32"]
METADATA = ["169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.170.2"]
# Global by `ipaddress`, refused all the same: protocol assignments and the 6to4 relays that reach IPv4 through them.
RELAY_NETWORKS = [ipaddress.ip_network(n) for n in ("192.0.0.0/24", "192.88.99.0/24", "2002::/16")]


@st.composite
def private_addresses(draw) -> str:
    network = ipaddress.ip_network(draw(st.sampled_from(PRIVATE_NETWORKS)))
    offset = draw(st.integers(0, network.num_addresses - 1))
    return draw(st.sampled_from([str(network.network_address + offset), *METADATA]))


@st.composite
def public_addresses(draw) -> str:
    address = ipaddress.ip_address(draw(st.one_of(st.integers(1 << 24, (1 << 32) - 1),
                                                  st.integers(0x2000 << 112, (0x3000 << 112) - 1).map(
                                                      lambda n: ipaddress.IPv6Address(n)))))
    if not address.is_global or address.is_multicast or any(address in net for net in RELAY_NETWORKS):
        return "8.8.8.8"
    return str(address)


def _unicode_digits(text: str, zero: int) -> str:
    return "".join(chr(zero + int(ch)) if ch.isdigit() else ch for ch in text)


def literal_spellings(address: str) -> list[str]:
    """How an address can be typed as an App Domain host: dotted, integer and octal IPv4, fullwidth or mathematical
    digits with ideographic dots (IDNA maps them to ASCII), bracketed IPv6."""
    ip = ipaddress.ip_address(address)
    if ip.version == 6:
        return [f"[{ip}]", f"[{ip.exploded}]"]
    dotted = str(ip)
    return [dotted, str(int(ip)), ".".join(f"0{int(part):o}" for part in dotted.split(".")),
            _unicode_digits(dotted, 0xFF10).replace(".", "\uff0e"),
            _unicode_digits(dotted, 0x1D7CE).replace(".", "\u3002")]


URL_PIECES = st.tuples(
    st.sampled_from(["", "https://", "http://", "HTTPS://", "ftp://", "//", "https:/", "javascript:"]),
    st.sampled_from(["", "user@", "u:p@", "@", ":@"]),
    st.one_of(HOST_NAME, st.text(max_size=12), private_addresses().map(lambda a: literal_spellings(a)[0]),
              st.from_regex(r"xn--[a-z0-9-]{1,8}(\.[a-z]{2,4})?", fullmatch=True)),
    st.sampled_from(["", ":443", ":8443", ":0", ":99999", ":-1", ":abc", ":", ":4 3"]),
    st.sampled_from(["", "/", "/api", "?q=1", "#x", "/auth/token", "\\", "%2F"]),
).map("".join)


def accepted_shape(url: str) -> None:
    """A canonical https URL the HaloPSA client can send a request to."""
    parts = urlsplit(url)
    assert parts.scheme == "https" and parts.hostname and not parts.username and not parts.password
    assert parts.path == "" and not parts.query and not parts.fragment
    assert url == url.strip() and url.lower() == url
    request = httpx.Request("POST", f"{url}/auth/token")  # what the client builds first; raises if httpx cannot
    assert request.url.host and request.url.scheme == "https"


@settings(max_examples=600, deadline=None)
@given(raw=st.one_of(st.text(max_size=60), URL_PIECES))
@example("xn--zz.com")  # found by fuzzing: accepted, then httpx could not build a request to it
@example("\U0001342f")  # IDNA 2003 encodes it, IDNA 2008 (httpx) refuses it
@example("00--0.aa")  # a reserved "??--" label: not a valid host name
def test_any_input_is_a_canonical_https_url_or_a_clear_refusal(raw):
    try:
        url = normalize_app_domain(raw, resolver=no_dns)
    except InvalidDomain as refused:
        assert refused.field == "app_domain"
        assert refused.message.strip() and refused.message.rstrip().endswith((".", ")")), refused.message
        return
    accepted_shape(url)
    assert normalize_app_domain(url, resolver=no_dns) == url  # canonical: normalising again changes nothing


@settings(max_examples=300, deadline=None)
@given(host=VALID_HOST_NAME, address=private_addresses(), public=st.lists(public_addresses(), max_size=2))
def test_a_name_resolving_to_any_non_public_address_is_refused_unless_local_domains_are_allowed(host, address, public):
    resolver = lambda name: [*public, address]  # noqa: E731 - one private answer among public ones is enough
    with pytest.raises(InvalidDomain, match="private or local"):
        normalize_app_domain(host, resolver=resolver)
    assert normalize_app_domain(host, resolver=resolver, allow_local=True).startswith("https://")


@settings(max_examples=300, deadline=None)
@given(address=private_addresses(), spelling=st.integers(0, 4), port=st.sampled_from(["", ":443", ":8443"]))
def test_a_non_public_address_typed_in_any_spelling_is_refused(address, spelling, port):
    spellings = literal_spellings(address)
    raw = f"https://{spellings[spelling % len(spellings)]}{port}"
    with pytest.raises(InvalidDomain, match="private or local"):
        normalize_app_domain(raw, resolver=no_dns)
    assert normalize_app_domain(raw, resolver=no_dns, allow_local=True).startswith("https://")


@settings(max_examples=200, deadline=None)
@given(host=VALID_HOST_NAME, addresses=st.lists(public_addresses(), min_size=1, max_size=3))
def test_a_name_resolving_only_to_public_addresses_is_accepted(host, addresses):
    url = normalize_app_domain(host, resolver=lambda name: addresses)
    accepted_shape(url)
    expected = host if "." in host else f"{host}.halopsa.com"
    assert url == f"https://{expected}"


def test_the_allow_local_switch_comes_only_from_halo_allow_local_domains():
    from core.settings import settings_from_mapping

    assert settings_from_mapping({}).allow_local_domains is False
    assert settings_from_mapping({"HALO_ALLOW_LOCAL_DOMAINS": "0"}).allow_local_domains is False
    assert settings_from_mapping({"HALO_ALLOW_LOCAL_DOMAINS": "1"}).allow_local_domains is True
