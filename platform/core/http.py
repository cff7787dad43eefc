"""Request facts that several apps need, computed one way."""

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

_USER_AGENT_MAX = 512


@lru_cache(maxsize=8)
def _trusted_networks(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    # The settings refuse a malformed entry at startup; this parses per value so a changed setting takes effect.
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def _is_trusted(address: str, networks: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, unless that is a trusted proxy, in which case the nearest
    X-Forwarded-For hop that is not itself a trusted proxy. Hops a client wrote itself are never believed."""
    remote = request.META.get("REMOTE_ADDR") or None
    networks = _trusted_networks(tuple(settings.TRUSTED_PROXIES))
    if remote is None or not networks or not _is_trusted(remote, networks):
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return remote  # a malformed chain: trust only what we saw ourselves
        if not _is_trusted(hop, networks):
            return hop
    return remote


def user_agent(request: HttpRequest) -> str:
    """The User-Agent header, bounded so a hostile client cannot bloat the rows that store it."""
    return request.META.get("HTTP_USER_AGENT", "")[:_USER_AGENT_MAX]
