"""SMTP replies gathered into one write per turn of the event loop.

aiosmtpd writes every reply line on its own and waits for the transport to drain after each: an EHLO answer is
ten TLS records and ten ``send`` calls, and the replies to pipelined commands (RFC 2920) one each. Here a reply is
added to a buffer and the buffer is written once, when the session's task next waits (``call_soon``): the EHLO
lines, and the MAIL, RCPT and DATA replies of a pipelined group, leave in one record. A client that waits for each
reply gets it as soon as before: the task waits for the next command right after replying.

Replies after which the transport changes or closes (220 before TLS, 221, 421, 502 before aiosmtpd closes, 554)
are written at once, with anything before them. A client that sends without reading is still held back: when the
transport asks us to pause, the reply waits for the drain, as aiosmtpd's did.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
from typing import Any

#: Replies written at once: a STARTTLS switch or a close follows them without waiting for the loop.
_AT_ONCE = (b"220", b"221", b"421", b"502", b"554")
#: Buffered replies past this size are written at once (a client pipelining without reading).
_MOST_BUFFERED = 64 * 1024


class BatchedReplies:
    """Mixed into an aiosmtpd ``SMTP`` (before it): :meth:`_send_reply` instead of its ``push``'s write."""

    loop: asyncio.AbstractEventLoop
    transport: Any
    _writer: asyncio.StreamWriter
    _paused: bool  # asyncio's FlowControlMixin: the transport's buffer is over its high-water mark
    _replies: bytearray | None = None
    _flush_due = False

    async def _send_reply(self, line: bytes) -> None:
        """Queue one reply line (without CRLF); written with the others of this turn, or now when it must be."""
        replies = self._replies
        if replies is None:
            replies = self._replies = bytearray()
        replies += line
        replies += b"\r\n"
        if line[:3] in _AT_ONCE or len(replies) > _MOST_BUFFERED:
            self._flush_replies()
        elif not self._flush_due:
            self._flush_due = True
            self.loop.call_soon(self._flush_replies)
        if self._paused:
            self._flush_replies()
            await self._writer.drain()

    def _flush_replies(self) -> None:
        """Write the queued replies, in one piece; nothing when the connection is gone."""
        self._flush_due = False
        replies = self._replies
        if not replies:
            return
        self._replies = None
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(replies)
