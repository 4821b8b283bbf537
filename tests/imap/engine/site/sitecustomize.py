"""Loaded by gateway processes the engine test plugin starts: their daemon uses gateway.imap.engine."""

import gateway.imap.server as _old
from gateway.imap.engine.server import start_imap as _start

_old.start_imap = _start  # type: ignore[assignment]
