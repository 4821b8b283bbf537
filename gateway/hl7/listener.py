"""The MLLP listener: hospital systems send ORU^R01 / MDM^T02 / MDM^T10 and get an ACK for each message.

One connection carries messages one after the other (MLLP is a request/answer protocol: the peer waits for our
ACK). Who may connect is decided before anything is read: the client certificate's SHA-256 (mutual TLS) or the
source address must be a configured peer; anyone else is closed with one event. Each frame is bounded by
:mod:`gateway.hl7.mllp` (size, per-read and per-frame time), read by :mod:`gateway.hl7.message` with its
mails' attachments made in the same pass (on the loop for a usual message, on a thread above
:data:`gateway.hl7.accept.INLINE_BYTES`), stored by
:mod:`gateway.hl7.accept`, and only then answered ``AA``. A storage failure answers ``AR`` (HL7: rejected for
a circumstantial reason, send again later), never a traceback.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import socket
import ssl

import structlog

from gateway.config import Config
from gateway.config.hl7 import Hl7Peer, Hl7Settings
from gateway.hl7 import ack, codes
from gateway.hl7.accept import accept, off_loop, read, record_refusal, refused_event
from gateway.hl7.message import Refusal, normalise, read_msh
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


#: How long a worker process serving ``n`` connections waits (``n`` times this, at most 4) before it accepts
#: another: the listening socket is shared by the daemon's workers, and asyncio's own accept loop takes every
#: pending connection at once, so a burst of peers (4 DPI connections opened together) all went to whichever
#: worker woke first (3 to 1 measured) while the other's core stayed idle. Waiting lets the less busy one
#: take the next; a lone worker (``[gateway] workers = 1``) never waits.
SHARE_DELAY = 0.1
#: The stream's buffer before it stops reading the socket (twice this): a document message of a few hundred KiB
#: is taken in a few reads rather than one per 64 KiB (:data:`gateway.hl7.mllp.CHUNK`).
STREAM_LIMIT = 512 * 1024
#: Pending connections of a socket bound here (a lone process); an inherited one keeps the supervisor's.
BACKLOG = 100


class _Acceptor(asyncio.AbstractServer):
    """What :meth:`gateway.app.Gateway.drain` closes to stop accepting: the listener's accept loop."""

    def __init__(self, listener: Hl7Listener) -> None:
        self._listener = listener

    def close(self) -> None:
        self._listener.stop_accepting()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def is_serving(self) -> bool:
        return self._listener.accepting

    async def start_serving(self) -> None:
        return None

    async def serve_forever(self) -> None:
        raise NotImplementedError

    async def wait_closed(self) -> None:
        return None


class Hl7Listener:
    """Serves ``[hl7] listen``; :meth:`start` binds, :meth:`close` stops accepting and ends the connections."""

    def __init__(self, config: Config, committer: GroupCommitter) -> None:
        assert config.hl7 is not None
        self.config = config
        self.settings: Hl7Settings = config.hl7
        self.committer = committer
        self.server: asyncio.AbstractServer | None = None
        self._socket: socket.socket | None = None
        self._acceptor: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._handshakes: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._socket is not None
        return int(self._socket.getsockname()[1])

    @property
    def accepting(self) -> bool:
        return self._acceptor is not None and not self._acceptor.done()

    async def start(self) -> None:
        context = tls_context(self.config, self.settings) if self.settings.tls else None
        listen = self.settings.listen
        loop = asyncio.get_running_loop()
        # The socket the daemon's loop hands out for this address (inherited from the supervisor) or a new one;
        # the loop's server is not started: connections are accepted one at a time by _accept.
        bound = await loop.create_server(asyncio.Protocol, listen.host, listen.port, reuse_address=True,
                                         reuse_port=True, start_serving=False)
        self._socket = socket.socket(fileno=os.dup(bound.sockets[0].fileno()))
        self._socket.setblocking(False)
        bound.close()
        if not self._socket.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):  # bound here, not inherited
            self._socket.listen(BACKLOG)
        self._acceptor = loop.create_task(self._accept(context))
        self.server = _Acceptor(self)
        log.info("listening", service="hl7", address=f"{listen.host}:{self.port}")

    async def _accept(self, context: ssl.SSLContext | None) -> None:
        assert self._socket is not None
        loop = asyncio.get_running_loop()
        shared = self.config.workers > 1
        try:
            while True:
                held = len(self._connections) + len(self._handshakes)
                if shared and held:
                    await asyncio.sleep(SHARE_DELAY * min(held, 4))
                try:
                    connection, _ = await loop.sock_accept(self._socket)
                except OSError as exc:  # EMFILE and the like: the pending peer waits; the loop goes on
                    log.warning("hl7.connection", outcome="accept_failed", reason=type(exc).__name__)
                    await asyncio.sleep(SHARE_DELAY)
                    continue
                task = loop.create_task(self._connect(connection, context))
                self._handshakes.add(task)
                task.add_done_callback(self._handshakes.discard)
        finally:
            self._socket.close()

    async def _connect(self, connection: socket.socket, context: ssl.SSLContext | None) -> None:
        """The accepted socket as a stream pair served by :meth:`_serve` (after the TLS handshake, if any)."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=STREAM_LIMIT, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, self._serve, loop=loop)
        try:
            await loop.connect_accepted_socket(lambda: protocol, connection, ssl=context)
        except (OSError, ssl.SSLError, TimeoutError):
            connection.close()  # a failed handshake: nothing was read from this peer

    def stop_accepting(self) -> None:
        """Stop accepting: the accept loop ends and closes this process's copy of the listening socket."""
        if self._acceptor is not None:
            self._acceptor.cancel()

    async def close(self) -> None:
        self.stop_accepting()
        if self._acceptor is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._acceptor
        for task in [*self._handshakes, *self._connections]:
            task.cancel()
        for task in [*self._handshakes, *self._connections]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

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
            doc, parts = await off_loop(len(content), functools.partial(
                read, self.config, content, max_segments=settings.max_segments,
                max_document_bytes=settings.max_document_bytes,
                allow_test_identities=self.config.rules.allow_test_identities))
            result = await accept(self.committer, self.config, peer, doc, content, client, parts)
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
