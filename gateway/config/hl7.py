"""``[hl7]``: the MLLP listener for hospital systems (DPI, LIS, RIS) and the peers allowed to use it.

A peer is recognised by its client certificate (SHA-256 fingerprint, mutual TLS) or, without one, by its
source address; each peer names the structure mailbox its documents are sent from (the MSSanté ``From``, and
the DMP author's mailbox of ``[[dmp.professional]]``, R12), and optionally the MLLP address its acknowledgement
messages go back to. Every size and time the listener accepts is a setting with a bounded default.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.config.listeners import Listen
from gateway.config.reader import ConfigError

if TYPE_CHECKING:
    from gateway.config.reader import _Reader

MiB = 1024 * 1024
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Hl7Peer:
    """One hospital system allowed to send: by certificate fingerprint, or else by source address."""

    name: str
    #: The structure mailbox the documents leave from (an applicative BAL, ANS "FROM").
    sender: str
    addresses: tuple[str, ...] = ()
    #: SHA-256 of the peer's client certificate (lower-case hex, no colons); requires TLS.
    certificate_sha256: str | None = None
    #: Where acknowledgement messages and documents go back to over MLLP (optional).
    return_address: Listen | None = None

    def matches_address(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(a, strict=False) for a in self.addresses)


@dataclass(frozen=True)
class Hl7Settings:
    listen: Listen
    peers: tuple[Hl7Peer, ...]
    #: Implicit TLS on the listener with ``[tls]``'s certificate; client certificates are then requested.
    tls: bool = False
    client_ca: Path | None = None
    #: One MLLP frame (the whole HL7 message with its base64 CDA) read at most; larger frames close the link.
    max_frame_bytes: int = 16 * MiB
    #: Segments of one message.
    max_segments: int = 2000
    #: One decoded document (OBX ED); the DMP takes 5 MB (R15), a level-1 CDA in base64 adds a third.
    max_document_bytes: int = 8 * MiB
    #: Seconds without any byte from the peer before the connection is closed.
    read_timeout: float = 60.0
    #: Seconds one frame may take from its start block to its end block.
    frame_timeout: float = 120.0
    #: Seconds a connection may stay quiet between messages.
    idle_timeout: float = 3600.0
    #: Connections open at once, all peers together.
    max_connections: int = 64
    #: The peer (with a ``return_address``) that receives, as MDM^T02, the documents filed to patients (R10).
    documents_peer: str | None = None
    #: Seconds between the relay's safety-net polls; commits that owe a peer something wake it at once.
    relay_poll: float = 10.0

    def peer_for(self, host: str, fingerprint: str | None) -> Hl7Peer | None:
        """The peer a connection belongs to: its certificate first; an address only for peers without one."""
        if fingerprint is not None:
            for peer in self.peers:
                if peer.certificate_sha256 == fingerprint:
                    return peer
        for peer in self.peers:
            if peer.certificate_sha256 is None and peer.matches_address(host):
                return peer
        return None


def _fingerprint(value: str) -> str:
    return value.replace(":", "").strip().lower()


def parse_section(root: _Reader, path: Callable[..., Path | None]) -> Hl7Settings | None:
    """Read and check ``[hl7]`` and its ``[[hl7.peer]]`` tables; None when the section is absent."""
    from gateway.config.listeners import _listen
    from gateway.config.reader import _array_of_tables, _positive, _readable

    section = root.table("hl7")
    if section is None:
        return None
    listen = _listen(section, "listen")
    if listen is None:
        raise ConfigError("Configuration key 'hl7.listen' is missing; it must look like 'host:port'.")
    tls = section.get("tls", bool, False)
    client_ca = path(section, "client_ca", required=False)
    _readable(section, "client_ca", client_ca)
    peers = []
    for table in _array_of_tables(section, "peer"):
        name = table.get("name", str, required=True)
        sender = table.get("sender", str, required=True).strip().lower()
        table.check("sender", "@" in sender, "must be the structure mailbox address the documents are sent from")
        addresses = table.get("addresses", list, [])
        for address in addresses:
            ok = isinstance(address, str)
            if ok:
                try:
                    ipaddress.ip_network(address, strict=False)
                except ValueError:
                    ok = False
            table.check("addresses", ok, f"must hold IP addresses or networks, and {address!r} is not one")
        fingerprint = table.get("certificate_sha256", str, "") or None
        if fingerprint is not None:
            fingerprint = _fingerprint(fingerprint)
            table.check("certificate_sha256", bool(_FINGERPRINT.match(fingerprint)),
                        "must be the SHA-256 fingerprint of the peer's certificate (64 hexadecimal digits)")
            table.check("certificate_sha256", tls, "needs hl7.tls = true (a certificate is only seen over TLS)")
        table.check("addresses", bool(addresses) or fingerprint is not None,
                    "is missing: a peer is allowed by its addresses or by certificate_sha256")
        peers.append(Hl7Peer(name, sender, tuple(addresses), fingerprint, _listen(table, "return_address")))
        table.finish()
    names = [p.name for p in peers]
    section.check("peer", len(set(names)) == len(names), "must give each peer its own name")
    settings = Hl7Settings(
        listen, tuple(peers), tls, client_ca,
        max_frame_bytes=_positive(section, "max_frame_bytes", 16 * MiB, int),
        max_segments=_positive(section, "max_segments", 2000, int),
        max_document_bytes=_positive(section, "max_document_bytes", 8 * MiB, int),
        read_timeout=_positive(section, "read_timeout", 60.0, float),
        frame_timeout=_positive(section, "frame_timeout", 120.0, float),
        idle_timeout=_positive(section, "idle_timeout", 3600.0, float),
        max_connections=_positive(section, "max_connections", 64, int),
        relay_poll=_positive(section, "relay_poll", 10.0, float))
    documents_peer = section.get("documents_peer", str, "") or None
    if documents_peer is not None:
        target = next((p for p in peers if p.name == documents_peer), None)
        section.check("documents_peer", target is not None and target.return_address is not None,
                      "must name a [[hl7.peer]] that has a return_address (the DPI's MLLP server)")
    settings = replace(settings, documents_peer=documents_peer)
    section.check("max_document_bytes", settings.max_document_bytes < settings.max_frame_bytes,
                  "must be below max_frame_bytes (the document travels inside the frame)")
    section.finish()
    return settings
