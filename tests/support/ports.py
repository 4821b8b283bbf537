"""Ports for the servers a test starts, taken below the kernel's ephemeral range.

A port the kernel hands out for ``bind(0)`` comes from the ephemeral range (32768–60999 by default), the same
range every client connection of the suite takes its local port from: between the moment a test finds such a
port free and the moment its server binds it, a client socket may take it, and the server fails with "address
already in use". Ports below that range are never given to client sockets; each is handed out once per run
and checked free when handed out.
"""

from __future__ import annotations

import itertools
import os
import socket

#: How many ports below the ephemeral range the suite takes from.
_SPAN = 12000


def _candidates() -> itertools.cycle[int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as limits:
            low = int(limits.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    first = max(1024, low - _SPAN)
    ports = list(range(first, low))
    start = os.getpid() % len(ports)  # two runs at once on one machine start apart
    return itertools.cycle(ports[start:] + ports[:start])


_CANDIDATES = _candidates()
_HANDED: set[int] = set()


def free_port() -> int:
    """A loopback TCP port nobody holds now, not handed out before in this run."""
    for _ in range(_SPAN):
        port = next(_CANDIDATES)
        if port in _HANDED:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED.add(port)
        return port
    raise RuntimeError("no free loopback port below the ephemeral range")
