"""IP address to country, offline: the `iptocc` package embeds the Regional Internet Registries' allocation tables
in its wheel, so a lookup makes no network call and needs no database file or licence key."""

import ipaddress
from collections.abc import Iterable

from iptocc import country_code

PRIVATE_NETWORK = "Private network"
UNKNOWN = "Unknown"


def countries_of(addresses: Iterable[str | None]) -> list[str]:
    """One label per address, in order: the ISO 3166-1 alpha-2 code of the country the address block is allocated
    to, PRIVATE_NETWORK for addresses that are not globally routable (RFC 1918, loopback, link-local, carrier-grade
    NAT, documentation ranges), UNKNOWN for a missing, malformed, reserved or unallocated address."""
    addresses = list(addresses)
    labels: list[str] = [UNKNOWN] * len(addresses)
    public: list[tuple[int, str]] = []
    for index, address in enumerate(addresses):
        try:
            parsed = ipaddress.ip_address(address or "")
        except ValueError:
            continue
        if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
            parsed = parsed.ipv4_mapped  # a dual-stack server logs IPv4 clients as ::ffff:a.b.c.d
        if parsed.is_global:
            public.append((index, str(parsed)))
        elif parsed.is_loopback or not (parsed.is_multicast or parsed.is_unspecified or parsed.is_reserved):
            labels[index] = PRIVATE_NETWORK
    if public:
        # One batch call: the dashboard maps every distinct client address of a day at once.
        codes = country_code([address for _, address in public])
        for (index, _), code in zip(public, codes, strict=True):
            labels[index] = code or UNKNOWN
    return labels


def country_of(address: str | None) -> str:
    return countries_of([address])[0]
