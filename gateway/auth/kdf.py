"""Argon2id verification on memory the hashing thread keeps from one hash to the next.

libargon2 allocates its memory cost (19 MiB by default) for every hash. The daemon has glibc map every large
block on its own so that it goes back to the system when freed (:func:`gateway.malloc.return_large_buffers`),
which makes each hash fault in and zero ~4,900 fresh pages: about 15 ms of kernel time a hash, half again the
hash's own cost. Here libargon2 gets the calling thread's buffer through its allocation callbacks
(``argon2_context.allocate_cbk``), the same bytes for every hash of that thread. The buffer lives as long as the
thread: the hashing pool retires its threads after a quiet moment (:mod:`.hashing`), so a burst of logins
leaves no memory behind.

Only what :mod:`.hashing` makes goes through here (encoded Argon2id, version 19); anything else is verified by
argon2-cffi as before. The digest is compared in constant time.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import base64
import binascii
import hmac
import threading
from typing import Any

from argon2.low_level import ARGON2_VERSION, Type, core, ffi, lib

#: Bounds of what an encoded hash may ask for before any memory is taken (a stored hash is ours, but a bad row
#: must not make a login allocate gigabytes): the settings' own bounds (gateway/config/limits.py).
MAX_MEMORY_KIB = 4 * 1024 * 1024
MAX_TIME_COST = 100
MAX_LANES = 64
_local = threading.local()


@ffi.callback("int(uint8_t **, size_t)")
def _allocate(memory: Any, size: int) -> int:
    """libargon2 asks for its blocks: the thread's kept buffer, grown when a hash needs more."""
    buffer = getattr(_local, "buffer", None)
    if buffer is None or ffi.sizeof(buffer) < size:
        _local.buffer = None  # the old one goes before the new one is taken
        try:
            buffer = _local.buffer = ffi.new("uint8_t[]", size)
        except MemoryError:
            return int(lib.ARGON2_MEMORY_ALLOCATION_ERROR)
    memory[0] = buffer
    return int(lib.ARGON2_OK)


@ffi.callback("void(uint8_t *, size_t)")
def _keep(memory: Any, size: int) -> None:
    """libargon2 is done with its blocks (it has wiped them): they stay with the thread for its next hash."""


def _b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def parse(stored: str) -> tuple[int, int, int, bytes, bytes] | None:
    """``$argon2id$v=19$m=M,t=T,p=P$salt$digest`` as (m, t, p, salt, digest), or None when it is not one (or asks
    for more than the bounds)."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] or parts[1] != "argon2id" or parts[2] != f"v={ARGON2_VERSION}":
        return None
    fields = dict(item.split("=", 1) for item in parts[3].split(",") if "=" in item)
    try:
        memory, time_cost, lanes = int(fields["m"]), int(fields["t"]), int(fields["p"])
        salt, digest = _b64(parts[4]), _b64(parts[5])
    except (KeyError, ValueError, binascii.Error):
        return None
    if not (1 <= lanes <= MAX_LANES and 8 * lanes <= memory <= MAX_MEMORY_KIB and 1 <= time_cost <= MAX_TIME_COST
            and 8 <= len(salt) <= 64 and 4 <= len(digest) <= 64):
        return None
    return memory, time_cost, lanes, salt, digest


def verify(stored: str, password: str) -> bool | None:
    """Whether ``password`` matches ``stored``; None when ``stored`` is not an encoded Argon2id hash this module
    reads (the caller then asks argon2-cffi)."""
    parsed = parse(stored)
    if parsed is None:
        return None
    memory, time_cost, lanes, salt, digest = parsed
    secret = password.encode("utf-8")
    out = ffi.new("uint8_t[]", len(digest))
    context = ffi.new("argon2_context *", {
        "out": out, "outlen": len(digest),
        "pwd": ffi.from_buffer(secret), "pwdlen": len(secret),
        "salt": ffi.from_buffer(salt), "saltlen": len(salt),
        "secret": ffi.NULL, "secretlen": 0, "ad": ffi.NULL, "adlen": 0,
        "t_cost": time_cost, "m_cost": memory, "lanes": lanes, "threads": lanes,
        "version": ARGON2_VERSION, "allocate_cbk": _allocate, "free_cbk": _keep,
        "flags": lib.ARGON2_DEFAULT_FLAGS,
    })
    if core(context, Type.ID.value) != lib.ARGON2_OK:
        return None
    return hmac.compare_digest(bytes(ffi.buffer(out)), digest)


def kept_bytes() -> int:
    """The size of this thread's kept buffer (0 when it has none)."""
    buffer = getattr(_local, "buffer", None)
    return ffi.sizeof(buffer) if buffer is not None else 0
