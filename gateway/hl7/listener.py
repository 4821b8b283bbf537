"""The MLLP listener: hospital systems send ORU^R01 / MDM^T02 / MDM^T10 and get an ACK for each message.

One connection carries messages one after the other (MLLP is a request/answer protocol: the peer waits for our
ACK). Who may connect is decided before anything is read: the client certificate's SHA-256 (mutual TLS) or the
source address must be a configured peer; anyone else is closed with one event. Each frame is bounded by
:mod:`gateway.hl7.mllp` (size, per-read and per-frame time), read by :mod:`gateway.hl7.message` in a thread
(base64 and XML are CPU work), stored by :mod:`gateway.hl7.accept`, and only then answered ``AA``. A storage
failure answers ``AR`` (HL7: rejected for a circumstantial reason, send again later), never a traceback.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl

import structlog

from gateway.config import Config
from gateway.config.hl7 import Hl7Peer, Hl7Settings
from gateway.hl7 import ack, codes
from gateway.hl7.accept import accept, record_refusal, refused_event
from gateway.hl7.message import Refusal, normalise, parse, read_msh
from gateway.hl7.mllp import FrameError, FrameReader, frame
from gateway.store.committer import GroupCommitter
from gateway.tlsctx import server_context

log = structlog.get_logger("gateway.hl7")


def tls_context(config: Config, settings: Hl7Settings) -> ssl.SSLContext:
    """``[tls]``'s certificate; client certificates requested and verified against ``hl7.client_ca`` (or
    ``tls.client_ca``) when sent — whether one is required is the peer's setting."""
    context = server_context(config.tls, request_client_cert=True)
    if settings.client_ca is not None:
        context.load_verify_locations(cafile=str(settings.client_ca))
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


class Hl7Listener:
    """Serves ``[hl7] listen``; :meth:`start` binds, :meth:`close` stops accepting and ends the connections."""

    def __init__(self, config: Config, committer: GroupCommitter) -> None:
        assert config.hl7 is not None
        self.config = config
        self.settings: Hl7Settings = config.hl7
        self.committer = committer
        self.server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        context = tls_context(self.config, self.settings) if self.settings.tls else None
        listen = self.settings.listen
        self.server = await asyncio.start_server(self._serve, listen.host, listen.port, ssl=context,
                                                 reuse_address=True, reuse_port=True, limit=65536)
        log.info("listening", service="hl7", address=f"{listen.host}:{self.port}")

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 5)

    def _peer(self, writer: asyncio.StreamWriter) -> tuple[str, Hl7Peer | None]:
        address = writer.get_extra_info("peername")
        host = str(address[0]) if address else ""
        fingerprint = None
        ssl_object = writer.get_extra_info("ssl_object")
        if ssl_object is not None:
            der = ssl_object.getpeercert(binary_form=True)
            if der:
                fingerprint = hashlib.sha256(der).hexdigest()
        return host, self.settings.peer_for(host, fingerprint)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        client, peer = self._peer(writer)
        try:
            if len(self._connections) >= self.settings.max_connections:
                log.warning("hl7.connection", outcome="refused", reason="too_many_connections", client=client)
                return
            if peer is None:
                log.warning("hl7.connection", outcome="refused", reason="unknown_peer", client=client)
                return
            self._connections.add(task)
            await self._messages(reader, writer, peer, client)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)

    async def _messages(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Hl7Peer,
                        client: str) -> None:
        settings = self.settings
        frames = FrameReader(reader, max_bytes=settings.max_frame_bytes, read_timeout=settings.read_timeout,
                             frame_timeout=settings.frame_timeout, idle_timeout=settings.idle_timeout)
        while True:
            try:
                content = await frames.read()
            except FrameError as exc:
                log.warning("hl7.connection", outcome="closed", reason=exc.reason, peer=peer.name, client=client)
                return
            if content is None:
                return
            answer = await self.answer(content, peer, client)
            writer.write(frame(answer.encode("utf-8")))
            await writer.drain()

    async def answer(self, content: bytes, peer: Hl7Peer, client: str) -> str:
        """The ACK for one frame's content: AA once stored, AE/AR with ERR otherwise."""
        settings = self.settings
        try:
            doc = await asyncio.to_thread(
                parse, content, max_segments=settings.max_segments, max_document_bytes=settings.max_document_bytes,
                allow_test_identities=self.config.rules.allow_test_identities)
            result = await accept(self.committer, self.config, peer, doc, content, client)
            return result.ack
        except Refusal as refusal:
            try:  # the one event of the refusal, in the store and the log (R18)
                await record_refusal(self.committer, peer, refusal)
            except Exception:
                log.warning("hl7.refused", recorded=False, **refused_event(peer.name, client, refusal))
            return ack.build(refusal.header, refusal.ack, refusal)
        except Exception:
            log.exception("hl7.error", peer=peer.name, client=client)
            failure = Refusal(codes.AR, "MSH^1", codes.APPLICATION, "Erreur temporaire de la plateforme ; "
                              "renvoyez le message plus tard.")
            try:
                header = read_msh(normalise(content))[0]
            except Refusal:
                header = None
            return ack.build(header, codes.AR, failure)
