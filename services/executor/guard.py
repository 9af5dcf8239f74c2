"""Refuse to call private addresses unless the operator allows their network.

A job's endpoint_url is user input: without this check any API key could make the
executor probe the operator's internal network (SSRF).
"""

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AddressRefused(Exception):
    pass


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                or ip.is_reserved or ip.is_unspecified)


async def check_url(url: str, allowed: list[Network]) -> None:
    """Raise AddressRefused unless every address the URL's host resolves to may be called."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AddressRefused(f"endpoint {url!r} is not an http(s) URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise AddressRefused(f"cannot resolve {parts.hostname!r}: {exc}") from exc
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if not is_public(ip) and not any(ip in net for net in allowed):
            raise AddressRefused(
                f"endpoint host {parts.hostname!r} resolves to {ip}, a private address; "
                "the operator has not allowed its network (JOBLEDGER_ALLOWED_NETWORKS)")
