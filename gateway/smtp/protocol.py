"""aiosmtpd's protocol object, adjusted for what a health gateway needs.

* Implicit TLS (port 465 style): aiosmtpd only counts STARTTLS as "TLS", so AUTH would be refused with
  538 on a connection that is encrypted from its first byte. We record the implicit TLS session the way
  STARTTLS would, so AUTH is offered and accepted there and STARTTLS is not offered twice.
* Enhanced status codes (RFC 2034/3463) on every reply: aiosmtpd's own fixed replies lack them, so
  :meth:`push` adds one, from a table for the replies we know and by reply class otherwise.
* DSN (RFC 3461) on submission: ``NOTIFY``/``ORCPT`` (RCPT) and ``RET``/``ENVID`` (MAIL) are taken off the
  command before aiosmtpd (which refuses unknown parameters) sees it, and attached to the accepted target.
* SASL EXTERNAL (RFC 4422 appendix A): a software mailbox logs in with the client certificate it presented;
  it is offered in EHLO only on a connection that presented one.
* SMTPUTF8 (RFC 6531) and CHUNKING/BDAT (RFC 3030; BINARYMIME is not offered, so BDAT carries the same
  CRLF text as DATA and the handler refuses bare CR or LF in both).
* DATA is read in blocks, not lines: the end ``CRLF.CRLF`` is searched in the bytes, dot-unstuffing is one
  ``replace``, the line-length check a scan by windows; no Python work per line.
* Time limits: inactivity per read and per command (``smtp_idle_timeout``) and a total for DATA/BDAT derived
  from the size limit and ``smtp_min_data_rate``, answered ``421 4.4.2`` before closing.
* Any unexpected error answers ``451 4.3.0`` (``454 4.7.0`` during AUTH) with a fixed text and is logged as
  one JSON event; no exception or SQL text reaches the client.
* Abuse limits: ``421 4.7.0`` and disconnect after ``smtp_max_errors`` error replies, or after
  ``smtp_max_pre_tls_commands`` refused commands before STARTTLS; the per-address connection limit of the
  authenticator's anvil, when there is one.

The session's state machine is here; the enhanced codes are added by ``enhanced_codes``, the DSN
parameters read by ``dsn_params``, the line-length check is in ``data_lines`` and the port 465 handshake in
``implicit_tls``.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import dataclasses
import re
from typing import Any

import structlog
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, TLSSetupException, syntax

from gateway.config import Limits
from gateway.routing import replies
from gateway.routing.policy import Target
from gateway.smtp.data_lines import BLOCK, END_OF_DATA, EndOfData, has_long_line
from gateway.smtp.dsn_params import _take_params, dsn_request
from gateway.smtp.enhanced_codes import with_enhanced_code
from gateway.smtp.idle_timer import MovingIdleTimer
from gateway.smtp.reply_batch import BatchedReplies
from gateway.smtp.session_init import QuietSession, init_session
from gateway.smtp.verbs import TrackedVerbs

log = structlog.get_logger("gateway.smtp")

#: An atom of a local part (RFC 5321 4.1.2).
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
#: ``<local@domain>`` with a dot-atom local part and a plain domain, then optional parameters after spaces.
_SIMPLE_PATH = re.compile(rf"<({_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(?: +(.*))?\Z")
_BDAT = re.compile(r"^([0-9]{1,15})(?: +(LAST))? *$", re.IGNORECASE)
#: MAIL's longest line once EHLO has offered SIZE and SMTPUTF8: the 512 of RFC 5321 4.5.3.1.4 and the room
#: aiosmtpd gives their parameters (RFC 1870, RFC 6531).
_MAIL_LINE_LIMIT = SMTP.command_size_limit + 26 + 10


class GatewaySMTP(BatchedReplies, MovingIdleTimer, SMTP):
    """aiosmtpd's SMTP with implicit-TLS awareness, enhanced status codes, DSN parameters and SASL EXTERNAL."""

    #: Offer DSN (RFC 3461) and accept its parameters; the relay listener turns it off (we deliver at once).
    offer_dsn = True
    #: RFC 4954 4: an AUTH line (with its initial response, e.g. an OAUTHBEARER token) may be 12288 octets.
    line_length_limit = 12288 + 2

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        kwargs.setdefault("enable_SMTPUTF8", True)
        # aiosmtpd keeps the lines' limits in one table of the class, which every new connection clears and every
        # EHLO widens: each session has its own here, so one client's EHLOs cannot change another's limits.
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        init_session(self, handler, **kwargs)  # aiosmtpd's __init__, its class scans made once (session_init)
        limits = getattr(getattr(handler, "config", None), "limits", None) or Limits()
        self.limits: Limits = limits
        self.command_size_limits["AUTH"] = 12288  # RFC 4954 4
        #: The longest a whole DATA or BDAT transfer may take: the size limit at the minimum rate, plus one idle.
        self.data_time_limit = (self.data_size_limit or limits.message_size) / limits.smtp_min_data_rate \
            + self._timeout_duration
        self.command: str | None = None
        self.errors = 0
        self.pre_tls_refusals = 0
        self.closing = False
        self._lease: Any = None
        self._refusal: str | None = None
        self._bdat: bytearray | None = None
        self._bdat_error: str | None = None
        self._bdat_started: float | None = None
        self._smtp_methods = TrackedVerbs(self, self._smtp_methods)  # the command in progress (verbs)

    @syntax("EHLO hostname")
    async def smtp_EHLO(self, hostname: str) -> None:
        await super().smtp_EHLO(hostname)
        self.command_size_limits["MAIL"] = _MAIL_LINE_LIMIT  # aiosmtpd adds the room again at every EHLO

    def _create_session(self) -> QuietSession:
        return QuietSession(self.loop)

    @property
    def client_ip(self) -> str:
        peer = self.session.peer if self.session is not None else None
        return str(peer[0]) if isinstance(peer, tuple) else str(peer)

    # --- connection ---------------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None
        implicit = self._original_transport is None and transport.get_extra_info("ssl_object") is not None
        super().connection_made(transport)
        if implicit and self.session is not None:
            # Encrypted from the first byte: the TLS session aiosmtpd looks for when deciding about AUTH.
            self._tls_protocol = getattr(transport, "_ssl_protocol", None) or True  # type: ignore[assignment]
            self.session.ssl = {
                "ssl_object": transport.get_extra_info("ssl_object"),
                "peercert": transport.get_extra_info("peercert"),
                "cipher": transport.get_extra_info("cipher"),
            }
        if first:
            self._open_lease()

    def _open_lease(self) -> None:
        """The authenticator's anvil counts this connection against its address (refused: 421 4.7.0)."""
        anvil = getattr(getattr(self.event_handler, "authenticator", None), "anvil", None)
        if anvil is None:
            return
        result = anvil.open(self.client_ip, "smtp")
        if callable(getattr(result, "close", None)):
            self._lease = result
        else:
            self._refusal = str(getattr(result, "reason", "") or "")
            log.info("smtp.connection", outcome="refused", reason="anvil", client=self.client_ip,
                     limit=getattr(result, "limit", None))

    def connection_lost(self, error: Exception | None) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.close()
        self._bdat = None
        super().connection_lost(error)
        closed = getattr(self.event_handler, "session_closed", None)
        if closed is not None and self.session is not None:
            closed(self.session)

    async def _handle_client(self) -> None:
        if self._refusal is not None:
            reason = self._refusal
            fixed = replies.TOO_MANY_CONNECTIONS
            await self._close_with(str(fixed.with_text(reason) if reason.isascii() and reason else fixed))
            return
        await super()._handle_client()

    def _timeout_cb(self) -> None:
        """RFC 5321 4.5.3.2: tell the client why before closing (421 4.4.2), then close."""
        if self.transport is not None and not self.closing:
            log.info("smtp.timeout", outcome="closed", client=self.client_ip, command=self.command)
            self.closing = True
            self._flush_replies()
            self._writer.write(f"{replies.IDLE_TIMEOUT}\r\n".encode())
        super()._timeout_cb()

    async def _close_with(self, reply: str) -> None:
        if self.closing or self.transport is None:
            return
        await self.push(reply)
        self._flush_replies()
        self.closing = True
        self.transport.close()

    # --- replies ------------------------------------------------------------------------------------------------
    async def push(self, status: Any) -> None:
        if self.closing:
            return
        if isinstance(status, bytes):  # AUTH challenges ("334 ...") come as bytes
            await self._send_reply(status)
            return
        text = with_enhanced_code(str(status))
        await self._send_reply(text.encode("utf-8" if self.enable_SMTPUTF8 else "ascii"))
        if text[:1] in ("4", "5") and not text.startswith("421"):
            await self._count_error()

    async def _count_error(self) -> None:
        """RFC 5321 4.5.3.2 leaves abusive sessions to us: a bounded number of errors, then 421 and close."""
        self.errors += 1
        before_tls = self.require_starttls and not self._tls_protocol
        if before_tls:
            self.pre_tls_refusals += 1
        if before_tls and self.pre_tls_refusals >= self.limits.smtp_max_pre_tls_commands:
            log.info("smtp.session", outcome="closed", reason="pre_tls_refusals", client=self.client_ip)
            await self._close_with(str(replies.TOO_MANY_PRE_TLS))
        elif self.errors >= self.limits.smtp_max_errors:
            log.info("smtp.session", outcome="closed", reason="too_many_errors", client=self.client_ip)
            await self._close_with(str(replies.TOO_MANY_ERRORS))

    async def handle_exception(self, error: Exception) -> str:
        """Any unexpected failure: a temporary reply with a fixed text, and one JSON event with the traceback."""
        if isinstance(error, TLSSetupException):
            log.info("smtp.tls", outcome="failed", client=self.client_ip,
                     reason=str(getattr(error.__cause__, "reason", None) or type(error.__cause__).__name__))
            return "554 5.7.0 TLS negotiation failed"
        log.error("smtp.unexpected_error", outcome="temporary_failure", command=self.command, client=self.client_ip,
                  mailbox_id=getattr(getattr(self.session, "auth_data", None), "id", None), exc_info=error)
        self._bdat = None
        command, self.command = self.command, None
        return str(replies.AUTH_TEMPORARY if command == "AUTH" else replies.TEMPORARY_ERROR)

    # --- EHLO ---------------------------------------------------------------------------------------------------
    def _has_client_certificate(self) -> bool:
        ssl_object = ((self.session.ssl if self.session is not None else None) or {}).get("ssl_object")
        return ssl_object is not None and ssl_object.getpeercert(binary_form=True) is not None

    def _ehlo_lines(self, lines: list[str]) -> list[str]:
        """CHUNKING (RFC 3030) and DSN; SASL EXTERNAL only to a session that presented a client certificate."""
        extra = ["250-CHUNKING"]
        if self.offer_dsn:
            extra.append("250-DSN")
        kept = []
        for line in lines[:-1]:
            if line.startswith("250-AUTH ") and not self._has_client_certificate():
                mechanisms = [m for m in line[len("250-AUTH "):].split() if m != "EXTERNAL"]
                if not mechanisms:
                    continue
                line = "250-AUTH " + " ".join(mechanisms)
            kept.append(line)
        return [*kept, *extra, lines[-1]]

    # --- DATA (RFC 5321 4.1.1.4), read in blocks -----------------------------------------------------------------
    def _set_post_data_state(self) -> None:
        super()._set_post_data_state()
        self._bdat = None
        self._bdat_error = None
        self._bdat_started = None

    async def _read_block(self, deadline: float, most: int = BLOCK) -> bytes | None:
        """Up to ``most`` bytes, within the idle time and the transfer's deadline; None (and 421) past either."""
        remaining = deadline - self.loop.time()
        wait = min(self._timeout_duration, remaining)
        try:
            if wait <= 0:
                raise TimeoutError
            async with asyncio.timeout(wait):
                block = await self._reader.read(most)
        except TimeoutError:
            late = remaining <= self._timeout_duration
            log.info("smtp.timeout", outcome="closed", client=self.client_ip, command=self.command,
                     reason="data_rate" if late else "idle")
            await self._close_with(str(replies.DATA_TIMEOUT if late else replies.IDLE_TIMEOUT))
            return None
        if not block:  # end of file: the client went away mid-message
            await self._close_with(str(replies.IDLE_TIMEOUT))
            return None
        self._reset_timeout()
        return block

    async def _read_dot_terminated(self) -> tuple[bytes | None, str | None] | None:
        """The message up to ``CRLF.CRLF``, unstuffed; (None, reply) when refused; None when the session ended.

        The search (:class:`~gateway.smtp.data_lines.EndOfData`) starts after a leading CRLF of our own (the one
        ending the DATA line), so an empty message ends at once. Bytes read past the end (pipelined commands) are
        given back to the reader.
        """
        buffer = bytearray(b"\r\n")
        limit = self.data_size_limit
        too_big = False
        ending = EndOfData()
        deadline = self.loop.time() + self.data_time_limit
        while (end := ending.find(buffer)) < 0:
            if limit and not too_big and len(buffer) > limit + len(END_OF_DATA) + 2:
                too_big = True
            if too_big and len(buffer) > BLOCK:
                del buffer[:-len(END_OF_DATA)]  # nothing is kept of a refused message but a possible end
                ending.scan = 0
            block = await self._read_block(deadline)
            if block is None:
                return None
            buffer += block
        rest = buffer[end + len(END_OF_DATA):]
        if rest:
            # Pipelined commands after the message: back to the reader, in front of anything it holds.
            self._reader._buffer[0:0] = rest  # type: ignore[attr-defined]
        if too_big or (limit and end - 2 > limit + 2):
            return None, "552 Error: Too much mail data"
        del buffer[end + 2:]
        if has_long_line(buffer):
            return None, str(replies.LINE_TOO_LONG)
        return ending.content(buffer), None

    async def _receive_data(self, arg: str) -> None:
        """DATA itself; :meth:`smtp_DATA` wraps it for the graceful stop."""
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if self._bdat is not None or self._bdat_error is not None:
            await self.push(str(replies.DATA_DURING_BDAT))
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        read = await self._read_dot_terminated()
        if read is None:
            return
        content, refusal = read
        if content is None:
            self._set_post_data_state()
            await self.push(refusal)
            return
        await self._deliver(content)

    async def _deliver(self, content: bytes) -> None:
        assert self.envelope is not None
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    # --- BDAT (RFC 3030) ---------------------------------------------------------------------------------------
    @syntax("BDAT <chunk-size> [LAST]")
    async def smtp_BDAT(self, arg: str | None) -> None:
        """A chunk of exactly ``size`` bytes follows the command: always read (or discarded) to keep framing."""
        match = _BDAT.match(arg or "")
        if match is None:
            await self._close_with(str(replies.BDAT_SYNTAX))
            return
        size, last = int(match.group(1)), match.group(2) is not None
        assert self.envelope is not None and self.session is not None
        refusal: str | None = None
        if not self.session.host_name:
            refusal = "503 5.5.1 Error: send EHLO first"
        elif self._auth_required and not self.session.authenticated:
            refusal = "530 5.7.0 Authentication required"
        elif not self.envelope.rcpt_tos:
            refusal = "503 Error: need RCPT command"
        if self._bdat_started is None:
            self._bdat_started = self.loop.time()
        deadline = self._bdat_started + self.data_time_limit
        keep = refusal is None and self._bdat_error is None
        if keep and self._bdat is None:
            self._bdat = bytearray()
        limit = self.data_size_limit
        if keep and limit and self._bdat is not None and len(self._bdat) + size > limit:
            self._bdat_error, self._bdat, keep = "552 Error: Too much mail data", None, False
        remaining = size
        while remaining:
            block = await self._read_block(deadline, min(BLOCK, remaining))
            if block is None:
                return
            remaining -= len(block)
            if keep and self._bdat is not None:
                self._bdat += block
        if refusal is not None:
            self._bdat_started = None if self._bdat is None else self._bdat_started
            await self.push(refusal)
            return
        if self._bdat_error is not None:
            error = self._bdat_error
            if last:
                self._set_post_data_state()
            await self.push(error)
            return
        if not last:
            await self.push(f"250 2.0.0 {size} octets received")
            return
        assert self._bdat is not None
        content = bytes(self._bdat)
        self._bdat = None
        if has_long_line(content):
            self._set_post_data_state()
            await self.push(str(replies.LINE_TOO_LONG))
            return
        done = self.data_done = asyncio.Event()  # the last chunk commits like DATA: a graceful stop waits for it
        try:
            await self._deliver(content)
        finally:
            self.data_done = None
            done.set()

    @syntax("RSET")
    async def smtp_RSET(self, arg: str) -> None:
        self._set_post_data_state()
        await super().smtp_RSET(arg)

    # --- MAIL and RCPT paths (RFC 5321 4.1.2) ----------------------------------------------------------------
    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """The common ``<dot-atom@domain>`` path is read with one regular expression; anything else (quoted
        local parts, source routes, address literals, UTF-8) goes to aiosmtpd's full RFC 5322 parser, which
        builds a token tree per address and was a sixth of the CPU of a submission."""
        match = _SIMPLE_PATH.match(arg)
        if match is None:
            return super()._getaddr(arg)
        address = match.group(1)
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, match.group(2) or ""

    # --- DSN parameters (RFC 3461) --------------------------------------------------------------------------
    async def _call_handler_hook(self, command: str, *args: Any) -> Any:
        result = await super()._call_handler_hook(command, *args)
        if command == "EHLO" and isinstance(result, list) and result:
            result = self._ehlo_lines(result)
        return result

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str) -> None:
        if not self.offer_dsn or not arg:
            await super().smtp_MAIL(arg)
            return
        arg, params = _take_params(arg, ("RET", "ENVID"))
        try:
            dsn_request(params, {})
        except ValueError:
            await self.push(str(replies.BAD_DSN_PARAMETER))
            return
        await super().smtp_MAIL(arg)
        self._dsn_mail = params

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str) -> None:
        if not self.offer_dsn or not arg:
            await super().smtp_RCPT(arg)
            return
        arg, params = _take_params(arg, ("NOTIFY", "ORCPT"))
        in_mail = self.envelope is not None and bool(self.envelope.mail_from)
        mail_params: dict[str, str] = getattr(self, "_dsn_mail", {}) if in_mail else {}
        try:
            request = dsn_request(mail_params, params)
        except ValueError:
            await self.push(str(replies.BAD_DSN_PARAMETER))
            return
        targets: list[Target] | None = getattr(self.envelope, "targets", None)
        before = len(targets) if targets is not None else 0
        await super().smtp_RCPT(arg)
        targets = getattr(self.envelope, "targets", None)
        if request is not None and targets is not None and len(targets) > before:
            targets[-1] = dataclasses.replace(targets[-1], dsn=request)

    # --- graceful stop (gateway/process) --------------------------------------------------------------------
    #: Set while a DATA command runs (message received, then committed and answered): a stopping daemon lets it
    #: end before it answers ``421`` (RFC 5321 3.8), so an acknowledged message is stored and a stored one is
    #: acknowledged.
    data_done: asyncio.Event | None = None

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        done = self.data_done = asyncio.Event()
        try:
            await self._receive_data(arg)
        finally:
            self.data_done = None
            done.set()

    # --- SASL EXTERNAL (RFC 4422 appendix A; RFC 4954) ------------------------------------------------------
    async def auth_EXTERNAL(self, _server: SMTP, args: list[str]) -> AuthResult:
        """Log in as the mailbox bound to the client certificate of this TLS connection; no password."""
        from gateway.trust.certificates import login_external

        authenticator = getattr(self.event_handler, "authenticator", None)
        if authenticator is None:
            return AuthResult(success=False, handled=False, message=str(replies.EXTERNAL_NOT_BOUND))
        if len(args) > 1:
            response: Any = b"" if args[1] == "=" else _b64(args[1])
        else:
            response = await self.challenge_auth("", encode_to_b64=False)
        if not isinstance(response, bytes):
            return AuthResult(success=False, handled=response is not None,
                              message="501 5.5.2 Cannot decode the EXTERNAL response")
        try:
            authzid = response.decode("utf-8")
        except UnicodeDecodeError:
            return AuthResult(success=False, handled=False, message="501 5.5.2 Cannot decode the EXTERNAL response")
        assert self.session is not None
        ssl_object = (self.session.ssl or {}).get("ssl_object")
        peer = self.session.peer
        client = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        account = await login_external(authenticator, ssl_object, authzid, client, "smtp")
        if isinstance(account, replies.Reply):
            return AuthResult(success=False, handled=False, message=str(account))
        return AuthResult(success=True, auth_data=account, message=str(replies.AUTH_OK))


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
