"""The address rule and endpoint URL parsing, as pure functions over a corpus of forms.

Nothing here resolves a name or opens a socket: the connect-time half of the rule is
tested through its seams in test_executor_call.py.
"""

import ipaddress
import socket

import pytest
import yarl
from hypothesis import given
from hypothesis import strategies as st

from services.addresses import (
    UrlRefused,
    address_allowed,
    address_refusal,
    check_endpoint_url,
    parse_endpoint_url,
    parse_networks,
    unwrap,
)

LOOPBACK = parse_networks(["127.0.0.0/8"])
NONE: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []

REFUSED_ADDRESSES = [
    # (address, words the reason must contain)
    ("169.254.169.254", "link-local"),
    ("169.254.0.1", "link-local"),
    ("100.64.0.1", "shared address space"),
    ("100.127.255.254", "shared address space"),
    ("10.0.0.1", "private"),
    ("10.255.255.255", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.0.1", "private"),
    ("192.168.255.255", "private"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("255.255.255.255", "reserved"),
    ("240.0.0.1", "reserved"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("192.0.0.9", "IETF"),
    ("192.0.2.1", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("192.88.99.1", "6to4 relay"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fc00::1", "unique-local"),
    ("fd12:3456:789a::1", "unique-local"),
    ("fe80::1", "link-local"),
    ("febf:ffff::1", "link-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("::ffff:10.0.0.1", "IPv4-mapped form of 10.0.0.1, and 10.0.0.1 is a private"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.169.254", "link-local"),
    ("::ffff:100.64.0.1", "shared address space"),
    ("64:ff9b::a00:1", "NAT64 form of 10.0.0.1"),
    ("64:ff9b::a9fe:a9fe", "link-local"),
    ("64:ff9b::7f00:1", "loopback"),
    ("64:ff9b:1::a00:1", "local-use NAT64"),
    ("2002:a00:1::1", "6to4 address embedding 10.0.0.1"),
    ("2002:a9fe:a9fe::", "link-local"),
    ("2001::1", "Teredo"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("2001:db8::1", "documentation"),
    ("100::1", "discard-only"),
    ("::127.0.0.1", "reserved"),  # IPv4-compatible (deprecated)
    ("::ffff:0:a00:1", "reserved"),  # IPv4-translated
]

ALLOWED_ADDRESSES = [
    "8.8.8.8", "1.1.1.1", "93.184.216.34", "11.0.0.1", "100.63.255.255", "100.128.0.0",
    "172.15.255.255", "172.32.0.0", "192.167.255.255", "169.253.255.255",
    "2001:4860:4860::8888", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808",
    "2002:808:808::1",
]


@pytest.mark.parametrize(("text", "words"), REFUSED_ADDRESSES)
def test_refused_addresses(text: str, words: str) -> None:
    reason = address_refusal(ipaddress.ip_address(text), NONE)
    assert reason is not None and words in reason, reason
    assert not address_allowed(ipaddress.ip_address(text), NONE)


@pytest.mark.parametrize("text", ALLOWED_ADDRESSES)
def test_globally_routable_addresses_are_allowed(text: str) -> None:
    assert address_refusal(ipaddress.ip_address(text), NONE) is None


@pytest.mark.parametrize(("text", "networks", "allowed"), [
    ("127.0.0.1", ["127.0.0.0/8"], True),
    ("::ffff:127.0.0.1", ["127.0.0.0/8"], True),  # reaches 127.0.0.1
    ("64:ff9b::7f00:1", ["127.0.0.0/8"], True),
    ("::1", ["127.0.0.0/8"], False),
    ("::1", ["::1/128"], True),
    ("10.1.2.3", ["10.1.0.0/16"], True),
    ("10.2.0.1", ["10.1.0.0/16"], False),
    ("169.254.169.254", ["127.0.0.0/8", "10.0.0.0/8"], False),
    ("100.64.0.1", ["127.0.0.0/8"], False),
    ("100.64.0.1", ["100.64.0.0/10"], True),
    ("fd00::5", ["fd00::/8"], True),
])
def test_operator_allowed_networks(text: str, networks: list[str], allowed: bool) -> None:
    assert address_allowed(ipaddress.ip_address(text), parse_networks(networks)) is allowed


def test_unwrap_reaches_the_embedded_ipv4_address() -> None:
    assert unwrap(ipaddress.ip_address("::ffff:7f00:1")) == ipaddress.ip_address("127.0.0.1")
    assert unwrap(ipaddress.ip_address("64:ff9b::a00:1")) == ipaddress.ip_address("10.0.0.1")
    assert unwrap(ipaddress.ip_address("2001:4860::1")) == ipaddress.ip_address("2001:4860::1")


# Every spelling of 127.0.0.1 a resolver or socket would accept.
LOOPBACK_FORMS = [
    "0177.0.0.1", "0x7f.0.0.1", "0x7f.1", "0x7F000001", "0X7F.0.0.1", "2130706433",
    "017700000001", "127.1", "127.0.1", "0177.1", "127.000.000.001", "127.0.0.1.",
    "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[0:0:0:0:0:ffff:127.0.0.1]",
    "[::FFFF:7F00:1]", "\uff11\uff12\uff17\u3002\uff10\u3002\uff10\u3002\uff11",
]
METADATA_FORMS = ["169.254.169.254", "0xa9fea9fe", "2852039166", "0251.0376.0251.0376",
                  "169.254.43518", "[::ffff:a9fe:a9fe]", "[::ffff:169.254.169.254]",
                  "[64:ff9b::a9fe:a9fe]", "[2002:a9fe:a9fe::1]"]


@pytest.mark.parametrize("host", LOOPBACK_FORMS)
def test_loopback_in_every_form_is_refused_as_loopback(host: str) -> None:
    with pytest.raises(UrlRefused, match="loopback"):
        check_endpoint_url(f"http://{host}:9000/hook", NONE)


@pytest.mark.parametrize("host", LOOPBACK_FORMS)
def test_allowed_loopback_in_an_unusual_form_names_the_canonical_form(host: str) -> None:
    with pytest.raises(UrlRefused, match=r"write the address as 127\.0\.0\.1"):
        check_endpoint_url(f"http://{host}:9000/hook", LOOPBACK)


@pytest.mark.parametrize("host", METADATA_FORMS)
def test_metadata_address_in_every_form_is_refused(host: str) -> None:
    with pytest.raises(UrlRefused, match="link-local"):
        check_endpoint_url(f"http://{host}/latest/meta-data/", LOOPBACK)


@pytest.mark.parametrize("host", ["100.64.0.1", "1681915905", "0x64400001", "100.64.1",
                                  "[::ffff:100.64.0.1]", "[64:ff9b::6440:1]"])
def test_shared_address_space_in_every_form_is_refused(host: str) -> None:
    with pytest.raises(UrlRefused, match="shared address space"):
        check_endpoint_url(f"http://{host}/", LOOPBACK)


@pytest.mark.parametrize("host", ["10.0.0.1", "012.0.0.1", "0xa.0.0.1", "167772161", "10.1",
                                  "[::ffff:10.0.0.1]", "[::ffff:a00:1]", "[64:ff9b::a00:1]",
                                  "172.16.0.1", "192.168.1.1", "0.0.0.0", "0", "[::]",
                                  "[::1]", "[fc00::1]", "[fe80::1]", "[fec0::1]", "[ff02::1]"])
def test_private_and_special_literals_are_refused(host: str) -> None:
    with pytest.raises(UrlRefused, match="JOBLEDGER_ALLOWED_NETWORKS"):
        check_endpoint_url(f"http://{host}/", LOOPBACK)


@pytest.mark.parametrize(("url", "words"), [
    ("http://127.0.0.1:99999/", "out of range"),
    ("http://127.0.0.1:65536/", "out of range"),
    ("http://127.0.0.1:0/", "out of range"),
    ("http://127.0.0.1:99999999999999999999/", "out of range"),
    ("http://127.0.0.1:-1/", "not a number"),
    ("http://127.0.0.1:+80/", "not a number"),
    ("http://127.0.0.1:8a/", "not a number"),
    ("http://127.0.0.1:/", "empty port"),
    ("ftp://example.com/", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("javascript:alert(1)", "scheme"),
    ("gopher://example.com/", "scheme"),
    ("example.com/hook", "scheme"),
    ("//example.com/hook", "scheme"),
    ("http:///hook", "no host"),
    ("http:example.com", "no host"),
    ("http://:80/", "no host"),
    ("http://user:pass@example.com/", "user name or password"),
    ("http://user@example.com/", "user name or password"),
    ("http://example.com\\@127.0.0.1/", "user name or password"),
    ("http://exa mple.com/", "space or control"),
    ("http://example.com/\n", "space or control"),
    ("http://example.com/\t", "space or control"),
    (" http://example.com/", "space or control"),
    ("http://example.com/\x00", "space or control"),
    ("http://example.com/\u202e", "space or control"),
    ("http://exa\u200bmple.com/", "space or control"),
    ("http://example.com/" + "a" * 2040, "longer than 2048"),
    ("http://[fe80::1%25eth0]/", "zone id"),
    ("http://[fe80::1%eth0]/", "zone id"),
    ("http://::1/", "brackets"),
    ("http://[::g]/", "not a valid"),
    ("http://[v1.abc]/", "future-format"),
    ("http://[::1/", "not a valid URL"),
    ("http://[::1]x/", "unexpected text"),
    ("http://1.2.3.256/", "not a valid IPv4"),
    ("http://1.2.3.4.5/", "not a valid IPv4"),
    ("http://0x100000000/", "not a valid IPv4"),
    ("http://4294967296/", "not a valid IPv4"),
    ("http://08.0.0.1/", "not a valid IPv4"),
    ("http://0x.0.0.1/", "not a valid IPv4"),
    ("http://example.123/", "not a valid IPv4"),
    ("http://-bad.example/", "not a valid host name"),
    ("http://bad-.example/", "not a valid host name"),
    ("http://a..b/", "not a valid host name"),
    ("http://" + "a" * 64 + ".example/", "not a valid host name"),
    ("http://" + "a." * 130 + "example/", "longer than 253"),
    ("http://xn--zz.example/", "internationalised"),
    ("http://ex%61mple.com/", "not a valid host name"),
    ("http://exam\\ple.com/", "not a valid host name"),
    ("http://ex*ample.com/", "not a valid host name"),
    ("http://localhost/", "loopback name"),
    ("http://api.localhost:8080/", "loopback name"),
    ("http://LOCALHOST./", "loopback name"),
])
def test_refused_urls(url: str, words: str) -> None:
    with pytest.raises(UrlRefused) as refused:
        check_endpoint_url(url, NONE)
    assert words in refused.value.reason


@pytest.mark.parametrize(("url", "host", "port"), [
    ("https://example.com/hook?x=1#frag", "example.com", 443),
    ("http://EXAMPLE.com:8080/", "example.com", 8080),
    ("HTTP://example.com/", "example.com", 80),
    ("http://example.com./", "example.com", 80),
    ("http://b\u00fccher.example/", "xn--bcher-kva.example", 80),
    ("http://xn--bcher-kva.example/", "xn--bcher-kva.example", 80),
    ("http://my_service:9000/", "my_service", 9000),
    ("http://1.2.3.example/", "1.2.3.example", 80),
    ("http://8.8.8.8/", "8.8.8.8", 80),
    ("https://[2001:4860:4860::8888]:8443/x", "2001:4860:4860::8888", 8443),
    ("http://example.com:65535/", "example.com", 65535),
])
def test_accepted_urls(url: str, host: str, port: int) -> None:
    parsed = check_endpoint_url(url, NONE)
    assert (parsed.host, parsed.port) == (host, port)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9000/hook", "http://localhost:9000/",
                                 "http://api.localhost/", "http://[::ffff:8.8.8.8]/x"])
def test_loopback_allowed_by_the_operator(url: str) -> None:
    if "::ffff" in url:
        with pytest.raises(UrlRefused, match=r"write the address as 8\.8\.8\.8"):
            check_endpoint_url(url, LOOPBACK)
    else:
        check_endpoint_url(url, LOOPBACK)


@pytest.mark.parametrize("url", [
    "https://example.com/hook?x=1#frag", "http://EXAMPLE.com:8080/", "http://b\u00fccher.example/",
    "http://8.8.8.8/", "https://[2001:4860:4860::8888]:8443/x", "http://my_service:9000/",
])
def test_the_http_client_sees_the_host_that_was_checked(url: str) -> None:
    # The executor hands the URL to aiohttp, which parses it with yarl: the host it will
    # resolve or connect to must be the host judged here.
    parsed = parse_endpoint_url(url)
    target = yarl.URL(url)
    assert target.raw_host == parsed.host
    assert target.port == parsed.port


def _ipv4_forms(value: int) -> st.SearchStrategy[str]:
    octets = list(value.to_bytes(4, "big"))

    def spell(number: int, style: str) -> str:
        return {"dec": str(number), "hex": hex(number), "oct": "0" + oct(number)[2:]}[style]

    styles = st.sampled_from(["dec", "hex", "oct"])

    @st.composite
    def form(draw: st.DrawFn) -> str:
        parts = draw(st.integers(1, 4))
        head = octets[: parts - 1]
        tail = int.from_bytes(bytes(octets[parts - 1:]), "big")
        return ".".join(spell(n, draw(styles)) for n in [*head, tail])

    return form()


@given(st.integers(0, 2**32 - 1).flatmap(
    lambda v: st.tuples(st.just(v), _ipv4_forms(v))))
def test_every_inet_aton_form_is_read_as_inet_aton_reads_it(case: tuple[int, str]) -> None:
    value, text = case
    assert socket.inet_aton(text) == value.to_bytes(4, "big")  # the form is a real one
    parsed = parse_endpoint_url(f"http://{text}/")
    assert parsed.address == ipaddress.IPv4Address(value)


@given(st.text(max_size=60))
def test_any_host_text_is_parsed_or_refused_never_crashes(host: str) -> None:
    try:
        check_endpoint_url(f"http://{host}/", LOOPBACK)
    except UrlRefused:
        pass


@given(st.text(alphabet="0123456789abcdefxX.", min_size=1, max_size=24))
def test_what_inet_aton_accepts_is_never_taken_for_a_host_name(host: str) -> None:
    try:
        packed = socket.inet_aton(host)
    except OSError:
        return
    try:
        parsed = parse_endpoint_url(f"http://{host}/")
    except UrlRefused:
        return  # refused outright is fine too
    assert parsed.address == ipaddress.IPv4Address(packed)
