"""What an idle TLS connection costs in asyncio: one receive buffer per event loop instead of one per connection.

asyncio's TLS protocol (``asyncio.sslproto.SSLProtocol``) gives every connection a receive buffer of
``max_size`` bytes (256 KiB by default) that the socket is read into and that is copied into OpenSSL's input
at once, in the same call. A mail server holds thousands of connections that do nothing for minutes (IMAP IDLE,
clients left open): that buffer is most of what each of them costs. Two changes, process-wide (SMTP and IMAP
listeners alike):

- the buffer is 16 KiB, the largest TLS record's plaintext, which costs a few more reads for big transfers
  and nothing else;
- it is shared by the connections of one event-loop thread: the loop reads one socket at a time, and the bytes
  are copied out before the next read (``get_buffer`` then ``buffer_updated``, synchronously);
- on Python 3.11 the write backlog, a deque that is empty between writes, is a list (:data:`_LIST_BACKLOG`).

Where asyncio's protocol does not have this shape (another Python version), only the size is changed.

OpenSSL's own record buffers already go back when empty (CPython sets ``SSL_MODE_RELEASE_BUFFERS`` on every
context, STARTTLS and implicit TLS alike), but asyncio talks to OpenSSL through two memory BIOs that keep their
largest size for the life of the connection: the server's handshake flight (certificate chain, ~3.5 KiB), the
last FETCH written (up to ~90 KiB) or APPEND read (~20 KiB). :func:`release_idle_bios` gives them back when a
connection waits for its client with nothing left in them (OpenSSL ``BIO_set_mem_buf`` with a fresh, empty
``BUF_MEM``). It needs ctypes access to the BIO behind :class:`ssl.MemoryBIO`; that access is checked once
against a known BIO (same libssl as the ``ssl`` module, a memory BIO whose pending count matches) and turned off
otherwise.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import collections
import ctypes
import ssl
import sys
import threading
from typing import Any

#: Receive buffer of the TLS connections: the largest record's plaintext.
TLS_READ_BUFFER = 16 * 1024

_local = threading.local()
_installed = False
#: Python 3.11's SSLProtocol only appends to its write backlog, reads and deletes its first item and clears it:
#: a list does that for 56 bytes per connection where an empty deque takes 760 (one 64-slot block).
_LIST_BACKLOG = sys.version_info[:2] == (3, 11)

#: A memory BIO whose storage reached this size is given a fresh one when it is empty.
RELEASE_AT = 1024
_BIO_CTRL_PENDING = 10
_BIO_C_SET_BUF_MEM = 114
_BIO_C_GET_BUF_MEM_PTR = 115
_BIO_CLOSE = 1
_BIO_TYPE_MEM = 1 | 0x0400


class _BufMem(ctypes.Structure):
    """OpenSSL's ``BUF_MEM`` (include/openssl/buffer.h), stable since 1.1.0."""

    _fields_ = [("length", ctypes.c_size_t), ("data", ctypes.c_void_p), ("max", ctypes.c_size_t),
                ("flags", ctypes.c_ulong)]


class _MemoryBios:
    """ctypes calls on the ``BIO *`` that CPython's ``PySSLMemoryBIO`` holds right after its object header."""

    def __init__(self, lib: Any) -> None:
        self._ctrl = lib.BIO_ctrl
        self._ctrl.restype = ctypes.c_long
        self._ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
        self._new = lib.BUF_MEM_new
        self._new.restype = ctypes.c_void_p
        self._new.argtypes = []
        self._type = lib.BIO_method_type
        self._type.restype = ctypes.c_int
        self._type.argtypes = [ctypes.c_void_p]
        self._offset = object.__basicsize__

    def pointer(self, bio: ssl.MemoryBIO) -> int | None:
        value: int | None = ctypes.c_void_p.from_address(id(bio) + self._offset).value
        return value

    def check(self) -> bool:
        """Whether the layout is the expected one: a known memory BIO reads back through ctypes."""
        probe = ssl.MemoryBIO()
        probe.write(b"x" * 1234)
        ptr = self.pointer(probe)
        if not ptr or self._type(ptr) != _BIO_TYPE_MEM or self._ctrl(ptr, _BIO_CTRL_PENDING, 0, None) != 1234:
            return False
        probe.read()
        return self.release(probe) and probe.pending == 0 and self._capacity(ptr) == 0

    def _capacity(self, ptr: int) -> int:
        mem = ctypes.POINTER(_BufMem)()
        self._ctrl(ptr, _BIO_C_GET_BUF_MEM_PTR, 0, ctypes.byref(mem))
        return int(mem.contents.max) if mem else 0

    def release(self, bio: ssl.MemoryBIO) -> bool:
        """Give an empty BIO's storage back (OpenSSL frees the old ``BUF_MEM``: the BIO owns it, BIO_CLOSE)."""
        if bio.pending:
            return False
        ptr = self.pointer(bio)
        if not ptr or self._capacity(ptr) < RELEASE_AT:
            return False
        fresh = self._new()
        if not fresh:
            return False
        self._ctrl(ptr, _BIO_C_SET_BUF_MEM, _BIO_CLOSE, fresh)
        return True


def _memory_bios() -> _MemoryBios | None:
    if sys.implementation.name != "cpython" or ssl.OPENSSL_VERSION_INFO[0] < 3:
        return None
    try:
        lib = ctypes.CDLL(f"libssl.so.{ssl.OPENSSL_VERSION_INFO[0]}")
        lib.OpenSSL_version_num.restype = ctypes.c_ulong
        if lib.OpenSSL_version_num() != ssl.OPENSSL_VERSION_NUMBER:  # not the library the ssl module uses
            return None
        bios = _MemoryBios(lib)
        return bios if bios.check() else None
    except (OSError, AttributeError, ValueError):
        return None


_bios: _MemoryBios | None = None
_bios_checked = False


def release_idle_bios(transport: Any) -> int:
    """Free the memory BIOs of an asyncio TLS ``transport`` that hold nothing but storage; how many were freed.

    Called when a connection starts waiting for its client (IMAP: before each read), so a connection left idle
    keeps a few hundred bytes instead of its largest burst. A plain transport, or another asyncio, is left as
    it is."""
    global _bios, _bios_checked
    if not _bios_checked:
        _bios_checked = True
        _bios = _memory_bios()
    bios = _bios
    protocol = getattr(transport, "_ssl_protocol", None)
    if bios is None or protocol is None:
        return 0
    freed = 0
    for name in ("_incoming", "_outgoing"):
        bio = getattr(protocol, name, None)
        if isinstance(bio, ssl.MemoryBIO) and bios.release(bio):
            freed += 1
    return freed


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
        if _LIST_BACKLOG and isinstance(getattr(self, "_write_backlog", None), collections.deque):
            self._write_backlog = []

    def get_buffer(self: Any, n: int) -> memoryview:
        want = n if 0 < n <= self.max_size else self.max_size
        self._ssl_buffer_view = view = _shared_view(want)  # buffer_updated reads the bytes from this view
        return view

    protocol.__init__ = __init__
    protocol.get_buffer = get_buffer
