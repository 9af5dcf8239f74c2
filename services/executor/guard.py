"""The connect-time half of the address rule (services.addresses), inside aiohttp.

Two seams, both always guarded:

- ``GuardedResolver`` resolves a host name through an inner resolver (the system's by
  default; a static table in tests) and refuses the whole name if ANY address it resolves
  to breaks the rule. aiohttp connects only to the addresses the resolver returned, so
  the addresses checked are the addresses connected to: DNS cannot answer one thing to
  the check and another to the connection.
- ``guarded_socket_factory`` is aiohttp's socket factory: it sees the exact address of
  every connection attempt, including literal addresses (which aiohttp never resolves),
  and refuses before a socket exists. Tests pass an inner ``create`` that records every
  attempt and refuses anything but loopback, so no test can reach another host.
"""

import ipaddress
import socket
from collections.abc import Callable, Sequence

from aiohappyeyeballs import AddrInfoType
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from services.addresses import LOOPBACKS, Network, address_refusal, is_localhost
from services.executor.timing import TimedConnector

SocketFactory = Callable[[AddrInfoType], socket.socket]


class AddressRefused(OSError):
    """A connection the address rule refused. An OSError so that aiohttp wraps it like a
    connection failure (ClientConnectorError.os_error) instead of mangling it."""


class GuardedResolver(AbstractResolver):
    def __init__(self, allowed: Sequence[Network], inner: AbstractResolver | None = None,
                 ) -> None:
        self._allowed = tuple(allowed)
        self._inner = inner if inner is not None else ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if is_localhost(host):
            # RFC 6761: localhost names are loopback, never sent to DNS.
            results = self._loopback(host, port, family)
        else:
            results = await self._inner.resolve(host, port, family)
        for result in results:
            reason = self._refusal(result["host"])
            if reason is not None:
                raise AddressRefused(f"endpoint host {host!r} resolves to a refused address: "
                                     f"{reason}")
        return results

    def _refusal(self, text: str) -> str | None:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            return f"{text!r} is not an IP address"
        return address_refusal(ip, self._allowed)

    def _loopback(self, host: str, port: int,
                  family: socket.AddressFamily) -> list[ResolveResult]:
        results: list[ResolveResult] = []
        for ip in LOOPBACKS:
            ip_family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
            if family in (socket.AF_UNSPEC, ip_family) and address_refusal(
                    ip, self._allowed) is None:
                results.append({"hostname": host, "host": str(ip), "port": port,
                                "family": ip_family, "proto": 0,
                                "flags": socket.AI_NUMERICHOST})
        if not results:
            raise AddressRefused(f"endpoint host {host!r} is a loopback name")
        return results

    async def close(self) -> None:
        await self._inner.close()


def plain_socket(addr_info: AddrInfoType) -> socket.socket:
    family, type_, proto, _, _ = addr_info
    return socket.socket(family=family, type=type_, proto=proto)


def guarded_socket_factory(allowed: Sequence[Network],
                           create: SocketFactory = plain_socket) -> SocketFactory:
    allowed = tuple(allowed)

    def factory(addr_info: AddrInfoType) -> socket.socket:
        host = str(addr_info[4][0])
        try:
            ip = ipaddress.ip_address(host)
        except ValueError as exc:
            raise AddressRefused(f"connection to {host!r} refused: not an IP address") from exc
        reason = address_refusal(ip, allowed)
        if reason is not None:
            raise AddressRefused(f"connection to {ip} refused: {reason}")
        return create(addr_info)

    return factory


def make_connector(allowed: Sequence[Network], limit: int, *,
                   resolver: AbstractResolver | None = None,
                   create_socket: SocketFactory = plain_socket) -> TimedConnector:
    """One pool for every call: connections are reused, at most ``limit`` open at once
    (the executor's in-flight bound, so no call waits for a connection slot); each new
    connection's opening is timed for the attempt's trace."""
    return TimedConnector(
        limit=limit,
        limit_per_host=0,
        resolver=GuardedResolver(allowed, resolver),
        socket_factory=guarded_socket_factory(allowed, create_socket),
        ttl_dns_cache=10,
    )
