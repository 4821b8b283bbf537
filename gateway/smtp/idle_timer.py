"""The SMTP connection's idle limit as one timer that follows a moving deadline.

aiosmtpd restarts the idle limit at every command and every block of DATA by cancelling its timer and creating a
new one: a sizeable share of a short command's work. Here the deadline moves and the connection's one timer stays
where it is; when it fires before the deadline it waits again for it. RFC 5321 4.5.3.2 timeouts are unchanged:
the limit still counts from the last thing the client sent.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any


class MovingIdleTimer:
    """Mixed into an aiosmtpd ``SMTP`` (before it): replaces its ``_reset_timeout``."""

    loop: asyncio.AbstractEventLoop
    _timeout_handle: Any
    _timeout_duration: float
    #: When the connection is idle for too long (the loop's clock), and whether a timer is waiting for it.
    _idle_deadline = 0.0
    _idle_armed = False

    if TYPE_CHECKING:  # aiosmtpd's, or the subclass's (not defined here: super() in a subclass must reach SMTP's)
        def _timeout_cb(self) -> None: ...

    def _reset_timeout(self, duration: float | None = None) -> None:
        """The idle limit starts again: the deadline moves, the timer moves only if it would fire after it."""
        self._idle_deadline = self.loop.time() + (duration or self._timeout_duration)
        handle = self._timeout_handle
        if not self._idle_armed or handle is None or handle.cancelled() or handle.when() > self._idle_deadline:
            if handle is not None:
                handle.cancel()
            self._timeout_handle = self.loop.call_at(self._idle_deadline, self._idle_check)
            self._idle_armed = True

    def _idle_check(self) -> None:
        if self.loop.time() < self._idle_deadline:
            self._timeout_handle = self.loop.call_at(self._idle_deadline, self._idle_check)
            return
        self._idle_armed = False
        self._timeout_cb()
