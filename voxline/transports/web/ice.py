"""ICE for aiortc: which servers, which local addresses, which remote candidates.

aiortc does not trickle: its answer carries every candidate it gathered, and the
widget waits for its own gathering to finish before it sends the offer, so one
request/response settles ICE. That is also what lets several server workers share a
port: no later request has to find the worker that holds the peer connection.

aiortc offers every non-loopback interface and cannot restrict its UDP ports. Behind
NAT or in Kubernetes give it a TURN server (``VOXLINE_ICE_SERVERS``, e.g. coturn).
``host_addresses`` limits the host candidates (process-wide: aioice has no
per-connection setting); when they are all loopback addresses (one machine: tests,
a kiosk), the browser's non-loopback candidates are dropped from its offer too.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

_installed: tuple[str, ...] | None = None


def ice_servers(servers: Sequence[dict[str, Any]]) -> list[Any]:
    """Browser-style server dicts as aiortc's ``RTCIceServer``; STUN/TURN only."""
    from aiortc import RTCIceServer

    return [RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
            for s in servers]


def restrict_host_addresses(addresses: Sequence[str] | None) -> None:
    """Offer only ``addresses`` as host candidates (None: aioice's default)."""
    global _installed
    import aioice.ice

    original = getattr(aioice.ice, "_voxline_original", None)
    if original is None:
        original = aioice.ice.get_host_addresses
        aioice.ice._voxline_original = original  # type: ignore[attr-defined]
    if not addresses:
        aioice.ice.get_host_addresses = original
        _installed = None
        return
    chosen = tuple(str(ipaddress.ip_address(a)) for a in addresses)

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (use_ipv4 and ":" not in a) or (use_ipv6 and ":" in a)]

    aioice.ice.get_host_addresses = host_addresses
    _installed = chosen


def loopback_only(addresses: Sequence[str] | None) -> bool:
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses or ())


def keep_loopback_candidates(sdp: str) -> str:
    """Drop ``a=candidate`` lines whose address is not a loopback address."""
    lines = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split()
            try:
                if len(fields) < 6 or not ipaddress.ip_address(fields[4]).is_loopback:
                    continue
            except ValueError:  # an mDNS name (xxx.local): not reachable on loopback
                continue
        lines.append(line)
    return "\r\n".join(lines) + "\r\n"
