"""Logging set-up: every line on stderr is one JSON object, one event per transaction and per rule decision.

Our events go through structlog. What libraries report through the standard :mod:`logging` module (aiosmtpd's
``mail.log``, asyncio, SQLAlchemy, alembic...) is routed through the same processors by
:class:`structlog.stdlib.ProcessorFormatter` on the root logger, warnings through ``py.warnings``, and uncaught
exceptions (main thread, other threads, asyncio tasks) become one ``exception`` event whose traceback is a
field of the JSON object, never lines of their own.

Health data (INS, names, content) only ever appears in debug events (see store/events.py).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import logging
import sys
import threading
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import structlog
from structlog.typing import Processor

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

#: aiosmtpd says on every login (a ``mail.log`` warning, not a Python warning) that a field we never use is
#: deprecated: noise that would hide real warnings.
_SILENCED_WARNINGS = ("Session.login_data is deprecated",)


class _Silence(logging.Filter):
    """Drops the library messages of ``_SILENCED_WARNINGS``."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg if isinstance(record.msg, str) else ""
        return not message.startswith(_SILENCED_WARNINGS)

log = structlog.get_logger("gateway")


def _processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _uncaught(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    log.error("uncaught_exception", exc_info=(kind, value, tb))


def _uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    log.error("uncaught_exception", thread=args.thread.name if args.thread else None,
              exc_info=(args.exc_type, args.exc_value, args.exc_traceback))


class LogFile:
    """A log file opened for appending, reopened on demand (SIGUSR1 after logrotate moved it away).

    Each JSON line is written with one ``write`` on a file opened with ``O_APPEND``, so the daemon's worker
    processes can share one file without mixing their lines.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO = self._open()

    def _open(self) -> TextIO:
        return open(self.path, "a", encoding="utf-8", buffering=1)

    def write(self, text: str) -> int:
        return self._file.write(text)

    def flush(self) -> None:
        self._file.flush()

    def reopen(self) -> None:
        old, self._file = self._file, self._open()
        old.close()


#: The log file of this process, when ``[gateway] log_file`` is set (:func:`reopen` acts on it).
_log_file: LogFile | None = None


def reopen() -> None:
    """SIGUSR1: reopen the log file (a no-op when logging to stderr)."""
    if _log_file is not None:
        _log_file.reopen()
        structlog.get_logger("gateway.logs").info("log_reopened")


def configure(level: str = "info", stream: TextIO | None = None, path: Path | None = None) -> None:
    """JSON lines on ``stream`` (stderr), or appended to the file ``path``, for structlog and the standard
    library alike.

    Libraries' own messages are shown from ``warning`` up, or all of them at ``debug`` (aiosmtpd logs each
    connection's peer at ``info``).
    """
    global _log_file
    if path is not None:
        if _log_file is None or _log_file.path != path:
            _log_file = LogFile(path)
        stream = _log_file  # type: ignore[assignment]
    out = stream or sys.stderr
    numeric = _LEVELS.get(level, logging.INFO)
    shared = _processors()
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        # Not cached: a logger used once would keep this configuration for ever, and a reload (SIGHUP) changes
        # the level or the file; binding costs microseconds per event, next to milliseconds per transaction.
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, structlog.processors.JSONRenderer()],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    handler.addFilter(_Silence())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric if numeric == logging.DEBUG else max(numeric, logging.WARNING))
    for message in _SILENCED_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    logging.captureWarnings(True)
    sys.excepthook = _uncaught
    threading.excepthook = _uncaught_in_thread


def asyncio_exception_handler(loop: Any, context: dict[str, Any]) -> None:
    """An event loop exception handler writing one JSON event (the default one writes several lines of text)."""
    exception = context.get("exception")
    fields: dict[str, Any] = {"detail": context.get("message", "")}
    peer = context.get("transport") and context["transport"].get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        fields["client"] = str(peer[0])
    if exception is not None:
        log.error("asyncio_error", exc_info=exception, **fields)
    else:
        log.error("asyncio_error", **fields)
