"""Argon2id verification through libsodium, whose Argon2 core uses the processor's vector units.

A login's cost is its hash. libargon2 as argon2-cffi ships it runs Argon2's compression function on SSE2; libsodium
(through PyNaCl) picks AVX2 or AVX-512 at run time. On a cache-resident memory cost that halves a hash: OWASP's
7 MiB, 5 passes (the gateway's default, :mod:`.hashing`) takes ~11 ms of one core here (8 user, 3 of the kernel
mapping its pages) against ~18 ms, and its 19 MiB, 2 passes ~17–21 ms against ~20–24. libsodium maps each hash's
memory afresh and unmaps it when done, so a burst of logins leaves nothing behind.

libsodium reads the one-lane hashes :mod:`.hashing` makes (encoded Argon2id, version 19). Anything else — other
variants, several lanes, a malformed string — is left to argon2-cffi (:func:`verify` answers None). The bounds
are checked before libsodium sees the string: a bad row must not make a login allocate gigabytes.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import base64
import binascii

from nacl.bindings import crypto_pwhash_str_verify
from nacl.exceptions import InvalidkeyError

#: The Argon2 version this module reads (0x13, RFC 9106).
ARGON2_VERSION = 19
#: Bounds of what an encoded hash may ask for before any memory is taken: the settings' own bounds
#: (gateway/config/limits.py).
MAX_MEMORY_KIB = 4 * 1024 * 1024
MAX_TIME_COST = 100
MAX_LANES = 64
#: The longest encoded hash libsodium takes (``crypto_pwhash_STRBYTES`` less its terminator).
MAX_ENCODED = 127


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
    """Whether ``password`` matches ``stored``; None when ``stored`` is not a one-lane encoded Argon2id hash
    within the bounds (the caller then asks argon2-cffi). The call releases the interpreter lock while it hashes."""
    parsed = parse(stored)
    if parsed is None or parsed[2] != 1 or len(stored) > MAX_ENCODED:
        return None
    try:
        return bool(crypto_pwhash_str_verify(stored.encode("ascii"), password.encode("utf-8")))
    except InvalidkeyError:
        return False
