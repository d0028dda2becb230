import pytest

from core.app_domain import is_sandbox_domain, normalize_app_domain
from core.errors import InvalidDomain


def no_dns(host: str) -> list[str]:
    return []


def resolves_to(address: str):
    return lambda host: [address]


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
