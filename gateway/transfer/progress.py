"""A progress line on stderr for long administration commands: rewritten in place on a terminal, otherwise
one line at most every few seconds, and always a last line with the total.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

#: Seconds between two lines when stderr is not a terminal (a log file), and between two rewrites on one.
FILE_INTERVAL = 5.0
TTY_INTERVAL = 0.2


class Progress:
    """``update(done)`` as work advances, ``finish()`` once: ``label: done/total what``."""

    def __init__(self, label: str, what: str, total: int | None = None, stream: TextIO | None = None) -> None:
        self.label = label
        self.what = what
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self._last = 0.0
        self.done = 0

    def _line(self) -> str:
        count = f"{self.done}/{self.total}" if self.total is not None else str(self.done)
        elapsed = time.monotonic() - self.started
        rate = f", {self.done / elapsed:.0f}/s" if elapsed > 0.5 else ""
        return f"{self.label}: {count} {self.what}{rate}"

    def update(self, done: int) -> None:
        self.done = done
        moment = time.monotonic()
        if moment - self._last < (TTY_INTERVAL if self.tty else FILE_INTERVAL):
            return
        self._last = moment
        self._write(self._line())

    def _write(self, line: str) -> None:
        try:
            if self.tty:
                self.stream.write("\r\x1b[K" + line)
            else:
                self.stream.write(line + "\n")
            self.stream.flush()
        except (BrokenPipeError, ValueError):
            pass

    def finish(self) -> None:
        self._write(self._line())
        if self.tty:
            try:
                self.stream.write("\n")
                self.stream.flush()
            except (BrokenPipeError, ValueError):
                pass
