"""Which endpoints a job may make the executor call: URL parsing and the one address rule.

A job's endpoint_url is user input. Without a rule, any API key could make the executor
call the operator's internal network or a cloud metadata service (SSRF). The rule is
checked twice, with the same code: at job creation on the URL as written
(``check_endpoint_url``), and at connect time on every address the host resolves to
(``services.executor.guard``), so DNS cannot answer differently between check and call.

The rule: only globally routable addresses, unless the address is inside a network the
operator allowed (``JOBLEDGER_ALLOWED_NETWORKS``). Literal addresses are normalised first,
in every form a resolver or socket would accept (inet_aton's octal, hex, decimal and short
IPv4 forms; IPv4-mapped, NAT64 and 6to4 IPv6), so a private address cannot hide behind an
unusual spelling. A non-canonical literal that passes the rule is still refused, with the
canonical form in the message: what is stored is then what is called.

Pure: no DNS, no I/O, no clock.
"""

import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import idna

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048
MAX_HOST_LENGTH = 253
DEFAULT_PORTS = {"http": 80, "https": 443}
ALLOW_HINT = ("only globally routable addresses may be called unless the operator allows "
              "the network (JOBLEDGER_ALLOWED_NETWORKS)")

# Unicode categories refused anywhere in a URL: controls, format characters (bidi
# overrides, zero-width joiners), surrogates, private use, and every kind of space.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zs", "Zl", "Zp"})
# A DNS label in ASCII: letters, digits, hyphens (not at either end). Underscores are
# allowed too: they are common in internal service names (docker compose) and DNS
# carries them; they cannot spell an address.
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _nets(*pairs: tuple[str, str]) -> tuple[tuple[Network, str], ...]:
    return tuple((ipaddress.ip_network(net), what) for net, what in pairs)


# Named special-purpose ranges, for a clear reason and so the rule does not depend on the
# Python version's is_global table (which changed between 3.11 and 3.13). Anything not
# named here is still judged by is_global and friends below.
_SPECIAL = _nets(
    ("0.0.0.0/8", "an unspecified ('this network') address"),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "in the shared address space 100.64.0.0/10 (carrier-grade NAT, "
                      "cloud metadata services)"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.0.0/16", "a link-local address (cloud metadata services live there)"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "an IETF protocol assignment"),
    ("192.0.2.0/24", "a documentation address"),
    ("192.88.99.0/24", "a deprecated 6to4 relay address"),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),
    ("::/128", "the unspecified address"),
    ("::1/128", "a loopback address"),
    ("64:ff9b:1::/48", "a local-use NAT64 address"),
    ("100::/64", "a discard-only address"),
    ("2001::/32", "a Teredo tunnel address"),
    ("2001::/23", "an IETF protocol assignment"),
    ("2001:db8::/32", "a documentation address"),
    ("3fff::/20", "a documentation address"),
    ("5f00::/16", "a segment-routing address"),
    ("fc00::/7", "a unique-local (private) address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
    ("::/8", "a reserved address"),
)


class UrlRefused(ValueError):
    """An endpoint URL that may not be called; ``reason`` says why, for the API's 422."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ParsedUrl:
    scheme: str  # "http" | "https"
    # ASCII and lower case: an IDNA host name (no trailing dot), or the canonical text of
    # the literal address (an IPv4-mapped address is written as its IPv4 address).
    host: str
    port: int  # as written, or the scheme's default
    # The literal address as written (normalised to an address object), or None for a name.
    address: Address | None
    # The host exactly as it appears in the URL (brackets included), for messages.
    written_host: str

    @property
    def canonical(self) -> bool:
        """True unless the host is a literal address written in a non-canonical form."""
        if self.address is None:
            return True
        written = self.written_host.lower()
        return written == self.host or written == f"[{self.host}]"

    @property
    def canonical_host(self) -> str:
        """How the host should be written in a URL."""
        return f"[{self.host}]" if ":" in self.host else self.host

    @property
    def is_localhost(self) -> bool:
        return self.address is None and is_localhost(self.host)


def is_localhost(name: str) -> bool:
    """``localhost`` and ``*.localhost`` name the loopback interface (RFC 6761), whatever
    DNS says, so they count as loopback without being resolved."""
    name = name.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


# --- the address rule ---------------------------------------------------------------------


def unwrap(ip: Address) -> Address:
    """The address a connection to ``ip`` really reaches: IPv4-mapped (::ffff:a.b.c.d) and
    NAT64 (64:ff9b::a.b.c.d) addresses reach their embedded IPv4 address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def _allowed_by_operator(ip: Address, allowed: Iterable[Network]) -> bool:
    target = unwrap(ip)
    # A mixed-version comparison (IPv4 address, IPv6 network) is simply False.
    return any(ip in net or target in net for net in allowed)


def address_refusal(ip: Address, allowed: Iterable[Network] = ()) -> str | None:
    """Why ``ip`` may not be called (``"10.0.0.1 is a private address"``), or None if it
    may: it is globally routable, or inside a network the operator allowed."""
    allowed = tuple(allowed)
    if _allowed_by_operator(ip, allowed):
        return None
    target = unwrap(ip)
    if target is not ip:
        inner = address_refusal(target, allowed)
        if inner is None:
            return None
        kind = "IPv4-mapped" if ip in _MAPPED else "NAT64"
        return f"{ip} is the {kind} form of {target}, and {inner}"
    if isinstance(ip, ipaddress.IPv6Address):
        # 6to4 (2002::/16) carries an IPv4 address that the relay then reaches.
        embedded = ip.sixtofour
        if embedded is not None:
            inner = address_refusal(embedded, allowed)
            if inner is not None:
                return f"{ip} is a 6to4 address embedding {embedded}, and {inner}"
    for net, what in _SPECIAL:
        if ip in net:
            return f"{ip} is {what}"
    if (not ip.is_global or ip.is_private or ip.is_reserved or ip.is_multicast
            or ip.is_loopback or ip.is_link_local or ip.is_unspecified
            or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)):
        return f"{ip} is not a globally routable address"
    return None


def address_allowed(ip: Address, allowed: Iterable[Network] = ()) -> bool:
    return address_refusal(ip, allowed) is None


LOOPBACKS = (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1"))


def localhost_refusal(name: str, allowed: Iterable[Network]) -> str | None:
    """A localhost name may be called if either loopback address may."""
    allowed = tuple(allowed)
    if any(address_allowed(ip, allowed) for ip in LOOPBACKS):
        return None
    return f"{name} is a loopback name"


def parse_networks(texts: Iterable[str]) -> list[Network]:
    """The operator's allowed networks (``10.1.0.0/16``, ``::1``), strictly parsed."""
    return [ipaddress.ip_network(t.strip(), strict=True) for t in texts if t.strip()]


# --- URLs ---------------------------------------------------------------------------------


def check_endpoint_url(url: str, allowed: Iterable[Network] = ()) -> ParsedUrl:
    """Raise UrlRefused unless ``url`` may be called as written; what the API checks at job
    creation and the executor before each call. Host names are not resolved here: their
    addresses are checked at connect time (services.executor.guard)."""
    parsed = parse_endpoint_url(url)
    if parsed.address is not None:
        reason = address_refusal(parsed.address, allowed)
        if reason is not None:
            # The rule first, so a private address in an odd spelling gets the real reason.
            shown = "" if parsed.written_host == str(parsed.address) else (
                f"{parsed.written_host}: ")
            raise UrlRefused(f"endpoint URL host {shown}{reason}; {ALLOW_HINT}")
        if not parsed.canonical:
            raise UrlRefused(f"endpoint URL host {parsed.written_host} is an address in an "
                             f"unusual form: write the address as {parsed.canonical_host}")
    elif parsed.is_localhost:
        reason = localhost_refusal(parsed.host, allowed)
        if reason is not None:
            raise UrlRefused(f"endpoint URL host {reason}; {ALLOW_HINT}")
    return parsed


def parse_endpoint_url(url: str) -> ParsedUrl:
    """Parse an endpoint URL strictly; raise UrlRefused with the reason if it is not one."""
    if not isinstance(url, str):
        raise UrlRefused("endpoint URL must be a string")
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"endpoint URL is longer than {MAX_URL_LENGTH} characters")
    for position, char in enumerate(url):
        if char.isspace() or unicodedata.category(char) in _REFUSED_CATEGORIES:
            raise UrlRefused(f"endpoint URL contains a space or control character "
                             f"(U+{ord(char):04X}) at position {position}")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise UrlRefused(f"endpoint URL is not a valid URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        shown = f"{parts.scheme!r}" if parts.scheme else "none"
        raise UrlRefused(f"endpoint URL scheme must be http or https (got {shown})")
    netloc = parts.netloc
    if not netloc:
        raise UrlRefused("endpoint URL has no host")
    if "@" in netloc:
        raise UrlRefused("endpoint URL must not carry a user name or password")
    written_host, port_text = _split_netloc(netloc)
    port = _parse_port(port_text, DEFAULT_PORTS[scheme])
    if written_host.startswith("["):
        address: Address = _parse_bracketed(written_host[1:-1])
    else:
        host, parsed_address = _parse_name(written_host)
        if parsed_address is None:
            return ParsedUrl(scheme, host, port, None, written_host)
        address = parsed_address
    return ParsedUrl(scheme, _canonical_text(address), port, address, written_host)


def _split_netloc(netloc: str) -> tuple[str, str | None]:
    """(host as written, port text or None)."""
    if netloc.startswith("["):
        close = netloc.find("]")
        if close < 0:
            raise UrlRefused("endpoint URL has an unclosed '[' in its host")
        host, rest = netloc[: close + 1], netloc[close + 1:]
        if rest and not rest.startswith(":"):
            raise UrlRefused(f"endpoint URL has unexpected text {rest!r} after its host")
        return host, (rest[1:] if rest else None)
    if netloc.count(":") > 1:
        raise UrlRefused("an IPv6 address in a URL must be written in brackets: [::1]")
    host, colon, port = netloc.partition(":")
    return host, (port if colon else None)


def _parse_port(text: str | None, default: int) -> int:
    if text is None:
        return default
    if not text:
        raise UrlRefused("endpoint URL has an empty port")
    if not (text.isascii() and text.isdigit()):
        raise UrlRefused(f"endpoint URL port {text[:20]!r} is not a number")
    port = int(text) if len(text) <= 6 else 1 << 20
    if not 1 <= port <= 65535:
        raise UrlRefused(f"endpoint URL port {text[:20]} is out of range (1 to 65535)")
    return port


def _parse_bracketed(text: str) -> ipaddress.IPv6Address:
    if "%" in text:
        raise UrlRefused("endpoint URL host has an IPv6 zone id (%...): not allowed")
    if text[:1].lower() == "v":
        raise UrlRefused("endpoint URL host is a future-format address ([v...]): not allowed")
    try:
        return ipaddress.IPv6Address(text)
    except ValueError as exc:
        raise UrlRefused(f"endpoint URL host [{text}] is not a valid IPv6 address") from exc


def _parse_name(written: str) -> tuple[str, Address | None]:
    """(ASCII host name, None), or (address text, address) for an IPv4 literal in any of
    the forms inet_aton accepts. A name that ends in a number must be such an address
    (as the WHATWG URL standard has it): ``1.2.3.999`` is refused, not looked up."""
    if not written:
        raise UrlRefused("endpoint URL has no host")
    try:
        # UTS 46 maps what a browser would (full-width letters and dots, upper case), so
        # full-width "127.0.0.1" becomes 127.0.0.1 here, as it would on the way to a resolver.
        ascii_host = written.lower() if written.isascii() else idna.encode(
            written, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise UrlRefused(f"endpoint URL host {written!r} is not a valid host name: "
                         f"{exc}") from exc
    name = ascii_host[:-1] if ascii_host.endswith(".") else ascii_host
    if _ends_in_number(name):
        return name, _parse_ipv4(name, written)
    _check_host_name(name, written)
    return name, None


def _ends_in_number(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    if last.isascii() and last.isdigit():
        return True
    return last.startswith("0x") and all(c in "0123456789abcdef" for c in last[2:])


def _parse_ipv4(name: str, written: str) -> ipaddress.IPv4Address:
    """inet_aton's forms: 1 to 4 parts, each decimal, octal (leading 0) or hex (0x); the
    last part fills the remaining bytes (127.1 is 127.0.0.1; 2130706433 is too)."""
    invalid = UrlRefused(f"endpoint URL host {written!r} is not a valid IPv4 address")
    parts = name.split(".")
    if not 1 <= len(parts) <= 4:
        raise invalid
    numbers = []
    for part in parts:
        if part.startswith("0x"):
            digits, alphabet, base = part[2:], "0123456789abcdef", 16
        elif len(part) > 1 and part.startswith("0"):
            digits, alphabet, base = part[1:], "01234567", 8
        else:
            digits, alphabet, base = part, "0123456789", 10
        # Checked by hand: int() would also take "+1", " 1" and "1_0".
        if not digits or len(digits) > 32 or any(c not in alphabet for c in digits):
            raise invalid
        numbers.append(int(digits, base))
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        raise invalid
    value = last
    for index, number in enumerate(head):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _check_host_name(name: str, written: str) -> None:
    if len(name) > MAX_HOST_LENGTH:
        raise UrlRefused(f"endpoint URL host is longer than {MAX_HOST_LENGTH} characters")
    for label in name.split("."):
        if not _LABEL.match(label):
            raise UrlRefused(f"endpoint URL host {written!r} is not a valid host name "
                             f"(label {label[:63]!r})")
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except idna.IDNAError as exc:
                raise UrlRefused(f"endpoint URL host {written!r} has an invalid "
                                 f"internationalised label {label!r}") from exc


def _canonical_text(address: Address) -> str:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    # ``compressed`` is RFC 5952's form (lower case, longest zero run as ::) on every
    # supported Python; str() of a mapped address differs between versions.
    return address.compressed
