"""What an idle TLS connection costs in asyncio: one receive buffer per event loop instead of one per connection.

asyncio's TLS protocol (``asyncio.sslproto.SSLProtocol``) gives every connection a receive buffer of
``max_size`` bytes (256 KiB by default) that the socket is read into and that is copied into OpenSSL's input
at once, in the same call. A mail server holds thousands of connections that do nothing for minutes (IMAP IDLE,
clients left open): that buffer is most of what each of them costs. Two changes, process-wide (SMTP and IMAP
listeners alike):

- the buffer is 16 KiB, the largest TLS record's plaintext, which costs a few more reads for big transfers
  and nothing else;
- it is shared by the connections of one event-loop thread: the loop reads one socket at a time, and the bytes
  are copied out before the next read (``get_buffer`` then ``buffer_updated``, synchronously).

Where asyncio's protocol does not have this shape (another Python version), only the size is changed.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import threading
from typing import Any

#: Receive buffer of the TLS connections: the largest record's plaintext.
TLS_READ_BUFFER = 16 * 1024

_local = threading.local()
_installed = False


def _shared_view(size: int) -> memoryview:
    """This thread's receive buffer, at least ``size`` bytes."""
    view: memoryview | None = getattr(_local, "view", None)
    if view is None or len(view) < size:
        view = _local.view = memoryview(bytearray(size))
    return view


def share_tls_read_buffers() -> None:
    """Make asyncio's TLS connections read into one 16 KiB buffer per event-loop thread (idempotent)."""
    global _installed
    from asyncio import sslproto

    protocol: Any = sslproto.SSLProtocol
    if protocol.max_size > TLS_READ_BUFFER:
        protocol.max_size = TLS_READ_BUFFER
    if _installed or not all(hasattr(protocol, name) for name in ("get_buffer", "buffer_updated")):
        return
    _installed = True
    original_init = protocol.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        if hasattr(self, "_ssl_buffer_view"):  # drop the connection's own buffer: the thread's is used
            self._ssl_buffer = b""
            self._ssl_buffer_view = _shared_view(self.max_size)

    def get_buffer(self: Any, n: int) -> memoryview:
        want = n if 0 < n <= self.max_size else self.max_size
        self._ssl_buffer_view = view = _shared_view(want)  # buffer_updated reads the bytes from this view
        return view

    protocol.__init__ = __init__
    protocol.get_buffer = get_buffer
