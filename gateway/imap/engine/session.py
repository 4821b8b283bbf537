"""One IMAP connection's state machine: not authenticated → authenticated → selected → logout (RFC 9051 3).

Commands are read by :class:`~gateway.imap.proto.reader.CommandReader` (literal-aware framing, sizes checked
before a byte of a literal is read) and parsed by :func:`gateway.imap.proto.parser.parse`, then dispatched by
class to the handlers of :mod:`gateway.imap.engine.commands`. Pipelined commands run one after the other in
the order received. Every failure is a tagged ``NO``/``BAD`` with an RFC 5530 code; a store failure is
``NO [UNAVAILABLE]``; an unexpected one is logged as one JSON event and answered the same way, never with a
traceback.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

import structlog

from gateway.auth.accounts import Account
from gateway.imap.engine import wire
from gateway.imap.engine.capabilities import capabilities
from gateway.imap.engine.channel import Channel, Closed, TimedOut
from gateway.imap.engine.state import Answered, Bad, Bye, CommandFailed, Done, No, State
from gateway.imap.engine.store import is_store_error, translate
from gateway.imap.proto import reader as framing
from gateway.imap.proto.errors import ProtocolError
from gateway.imap.proto.limits import MAX_LINE
from gateway.imap.proto.parser import parse
from gateway.ops import metrics

if TYPE_CHECKING:
    from gateway.imap.engine.backend import Backend
    from gateway.imap.engine.server import Context
    from gateway.imap.engine.updates import Selected

log = structlog.get_logger("gateway.imap")

#: Literals refused in a row before the connection is closed.
MAX_REFUSALS = 3
#: Commands in a row that failed to parse before the connection is closed.
MAX_BAD = 20


class Session:
    """The state of one connection and the loop that serves it."""

    def __init__(self, context: Context, channel: Channel) -> None:
        self.context = context
        self.channel = channel
        self.state = State.NOT_AUTHENTICATED
        self.account: Account | None = None
        self.selected: Selected | None = None
        self.selected_name: str | None = None
        self.backend: Backend = None  # type: ignore[assignment]  # set at login
        self.enabled: set[str] = set()
        self.saved: list[int] = []  # RFC 5182 SEARCHRES: UIDs of the last SEARCH RETURN (SAVE)
        self.reader = self.new_reader()
        self._events: deque[Any] = deque()
        self._refusals = 0
        self._bad = 0
        self._account_checked = 0.0
        self.log = log.bind(client=channel.client)

    # --- properties handlers use ----------------------------------------------------------------------------
    @property
    def utf8(self) -> bool:
        return "UTF8=ACCEPT" in self.enabled

    @property
    def condstore(self) -> bool:
        return "CONDSTORE" in self.enabled or "QRESYNC" in self.enabled

    @property
    def qresync(self) -> bool:
        return "QRESYNC" in self.enabled

    @property
    def rev2(self) -> bool:
        return "IMAP4REV2" in self.enabled

    def capability_list(self) -> list[str]:
        return capabilities(tls=self.channel.tls, authenticated=self.account is not None,
                            client_certificate=self.channel.client_certificate,
                            compressed=self.channel.deflate is not None, message_size=self.context.message_size,
                            psc=self.context.authenticator.psc is not None)

    def capability_code(self) -> str:
        return "CAPABILITY " + " ".join(self.capability_list())

    def new_reader(self) -> framing.CommandReader:
        """A command reader with this state's literal limits (RFC 7888 4, RFC 4469 TOOBIG)."""
        ctx = self.context
        if self.account is None:
            return framing.CommandReader(ctx.literal_unauthenticated)
        return framing.CommandReader(ctx.literal_authenticated, append_limit=ctx.message_size,
                                     append_total=2 * ctx.message_size + MAX_LINE)

    def _timeout(self) -> float:
        timers = self.context.timers
        return timers.authenticated if self.account is not None else timers.unauthenticated

    # --- output ---------------------------------------------------------------------------------------------
    async def send(self, data: bytes) -> None:
        await self.channel.write(data)

    async def untagged(self, data: bytes | str) -> None:
        await self.channel.write(wire.untagged(data))

    # --- input ----------------------------------------------------------------------------------------------
    async def next_event(self) -> Any:
        """The next framed event; reads (with the autologout timer) only when none is buffered."""
        while not self._events:
            if self.reader.buffered:  # the reader stopped after IDLE/AUTHENTICATE/...: frame what is left
                self._events.extend(self.reader.feed(b""))
                if self._events:
                    break
            data = await self.channel.read(self._timeout())
            self._events.extend(self.reader.feed(data))
        return self._events.popleft()

    def pending_input(self) -> bool:
        """Whether anything was received beyond the last command (STARTTLS injection, RFC 9051 11.1)."""
        return bool(self._events) or self.reader.buffered > 0 or self.channel.buffered()

    async def read_line(self) -> bytes:
        """A plain line (IDLE's DONE, an AUTHENTICATE response), without its CRLF."""
        self.reader.line_mode = True
        try:
            while True:
                event = await self.next_event()
                if isinstance(event, framing.Line):
                    return bytes(event.data)
                if isinstance(event, framing.LineTooLong):
                    raise Bye("Line too long; closing.", "TOOBIG")
                raise Bye("Unexpected input; closing.")
        finally:
            self.reader.line_mode = False

    # --- the loop -------------------------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            await self.send(wire.status("*", "OK", f"{self.context.config.hostname} IMAP ready",
                                        self.capability_code()))
            while self.state is not State.LOGOUT:
                event = await self.next_event()
                await self._handle(event)
        except Bye as bye:
            self.channel.write_nowait(wire.status("*", "BYE", bye.text, bye.code))
        except TimedOut:
            self.log.info("imap_autologout", mailbox_id=self.account.id if self.account else None)
            self.channel.write_nowait(wire.status("*", "BYE", "Autologout; idle for too long."))
        except Closed:
            pass
        finally:
            if self.selected is not None:
                self.selected.close()
                self.selected.view.close()
                self.selected = None

    async def _handle(self, event: Any) -> None:
        if isinstance(event, framing.Continue):
            await self.send(wire.continuation("Ready"))
            return
        if isinstance(event, framing.LiteralRefused):
            await self._refuse(event)
            return
        if isinstance(event, framing.LineTooLong):
            raise Bye("Command line too long; closing.", "TOOBIG")
        if isinstance(event, framing.Line):  # a line the reader could not frame as a command
            await self.send(wire.status("*", "BAD", "Command not understood."))
            return
        self._refusals = 0
        try:
            command = parse(event.raw, utf8=self.utf8)
        except ProtocolError as exc:
            self._bad += 1
            tag = exc.tag or "*"
            self.log.info("imap_command_bad", reason=exc.text)
            # RFC 9051 6.4.4: an unsupported CHARSET is a NO [BADCHARSET], not a BAD.
            kind = "NO" if (exc.code or "").startswith("BADCHARSET") else "BAD"
            await self.send(wire.status(tag, kind, exc.text, exc.code))
            if self._bad >= MAX_BAD:
                raise Bye("Too many malformed commands; closing.") from None
            return
        self._bad = 0
        await self.execute(command)

    async def _refuse(self, event: Any) -> None:
        """RFC 7888 4 and RFC 4469: refuse before reading; close if the bytes are already on their way."""
        self._refusals += 1
        self.log.info("imap_literal_refused", nonsync=event.nonsync, size=event.size,
                      authenticated=self.account is not None)
        if event.nonsync or self._refusals >= MAX_REFUSALS:
            raise Bye("Literal larger than this server accepts; closing.", "TOOBIG")
        await self.send(wire.status(event.tag or "*", "NO",
                                    "Literal larger than this server accepts here; nothing was read.", "TOOBIG"))

    async def execute(self, command: Any) -> None:
        """Run one parsed command and write its tagged answer; counted and timed for the metrics."""
        self._command_status = "OK"
        started = time.monotonic()
        try:
            await self._execute(command)
        finally:
            name = ("UID " if getattr(command, "uid", False) else "") + type(command).__name__.upper()
            metrics.imap_command(name, self._command_status, time.monotonic() - started)

    async def _execute(self, command: Any) -> None:
        """Run one parsed command and write its tagged answer (untagged updates first, RFC 9051 7.5)."""
        from gateway.imap.engine.commands import HANDLERS

        tag = command.tag
        entry = HANDLERS.get(type(command))
        if entry is None:
            self._command_status = "BAD"
            await self.send(wire.status(tag, "BAD", "Command not supported.", "CLIENTBUG"))
            return
        handler, states, updates = entry
        if self.state not in states:
            self._command_status = "BAD"
            await self.send(wire.status(tag, "BAD", f"Command not allowed in the {self.state.value} state.",
                                        "CLIENTBUG"))
            return
        name = type(command).__name__.upper()
        try:
            await self.check_account()
            done = await handler(self, command)
            if self.selected is not None and updates is not None:
                # RFC 9051 7.5.1: no EXPUNGE while answering FETCH/STORE/SEARCH by number; UID forms may.
                await self._announce(name, expunges=updates or bool(getattr(command, "uid", False)))
        except Bye:
            raise
        except CommandFailed as failed:
            self._log_failure(name, failed.status, failed.code, failed.text)
            self._command_status = failed.status
            await self.send(wire.status(tag, failed.status, failed.text, failed.code))
            return
        except (Closed, TimedOut):
            raise
        except Exception as exc:
            if is_store_error(exc):
                refusal = translate(exc)
                self._log_failure(name, refusal.status, refusal.code, refusal.text)
                self._command_status = refusal.status
                await self.send(wire.status(tag, refusal.status, refusal.text, refusal.code))
                return
            self.log.exception("imap_command_failed", command=name,
                               mailbox_id=self.account.id if self.account else None)
            self._command_status = "NO"
            await self.send(wire.status(tag, "NO", "The store is unavailable; try again later.", "UNAVAILABLE"))
            return
        if isinstance(done, Answered):
            return
        if done is None:
            done = Done(f"{name} completed")
        await self.send(wire.status(tag, "OK", done.text, done.code))

    async def _announce(self, command: str, *, expunges: bool) -> None:
        """Untagged updates after a command that succeeded; a store outage here leaves them for a later command
        rather than turn the command's OK into a NO (its effect is done; a NOOP never fails, RFC 9051 6.1.2)."""
        assert self.selected is not None
        try:
            await self.selected.announce(self, expunges=expunges)
        except (Bye, Closed, TimedOut):
            raise
        except Exception as exc:
            if not is_store_error(exc):
                raise
            self.log.info("imap_updates_deferred", command=command, reason="store unavailable",
                          mailbox_id=self.account.id if self.account else None)

    def _log_failure(self, command: str, status: str, code: str | None, text: str) -> None:
        self.log.info("imap_command_refused", command=command, status=status, code=code, reason=text,
                      mailbox_id=self.account.id if self.account else None)

    async def check_account(self, *, force: bool = False) -> None:
        """A disabled mailbox's sessions end with ``BYE`` at their next command (``gateway mailbox disable``)."""
        if self.account is None:
            return
        now = time.monotonic()
        if not force and now - self._account_checked < self.context.timers.account_check:
            return
        self._account_checked = now
        if not await account_active(self.context, self.account.id):
            self.log.info("imap_mailbox_disabled", mailbox_id=self.account.id)
            raise Bye("This mailbox has been disabled.", "UNAVAILABLE")

    # --- state changes handlers make ------------------------------------------------------------------------
    def login(self, account: Account) -> None:
        from gateway.imap.engine.backend import Backend

        self.account = account
        self.backend = Backend(self.context, account)
        self.state = State.AUTHENTICATED
        ctx = self.context  # the authenticated literal limits from now on (RFC 9051 11.1)
        self.reader.literal_limit = ctx.literal_authenticated
        self.reader.append_limit = ctx.message_size
        self.reader.append_total = 2 * ctx.message_size + MAX_LINE
        self._account_checked = time.monotonic()
        self.log = self.log.bind(mailbox_id=account.id)

    def deselect(self) -> None:
        if self.selected is not None:
            self.selected.close()
            self.selected.view.close()
        self.selected = None
        self.selected_name = None
        self.saved = []
        if self.state is State.SELECTED:
            self.state = State.AUTHENTICATED


async def account_active(context: Context, account_id: int) -> bool:
    """Whether the mailbox may still use IMAP (``mailboxes.active``)."""
    from sqlalchemy import select

    from gateway.store.models import Mailbox

    async with context.reads() as session:
        active = (await session.execute(select(Mailbox.active).where(Mailbox.id == account_id))).scalar()
    return bool(active)


__all__ = ["Bad", "Bye", "Done", "No", "Session"]
