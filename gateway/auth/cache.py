"""Verified-credential cache (as Dovecot's auth_cache): a login already verified is not hashed again for a while.

Mail clients log in again and again with the same password (IMAP clients open several connections, practice
software sends each message on a new SMTP connection): without a cache every one costs an Argon2id run.

Safety:

- Keys are HMAC-SHA256 of (user name, password) under a random key drawn per process: the password is never
  kept, and the key cannot be recomputed outside this process's memory.
- An entry holds the ``password_hash`` string it was verified against. The caller reads the mailbox's current
  hash and active flag at every login (one small query) and uses an entry only when the hash is the same: a
  password changed or a mailbox disabled by any process (``gateway mailbox password|disable`` runs in its own)
  takes effect at the next login.
- The worker processes of one daemon share their entries (:meth:`CredentialCache.share`): the supervisor hands
  them one key over their channels, and each verified login is sent to the others as its keyed hash, mailbox id
  and stored hash (never the password), so an account is hashed once per daemon, not once per worker.
- Entries live ``ttl`` seconds (``[auth] cache_ttl``; 0 turns the cache off) and at most ``max_entries`` are kept
  (least recently used first out).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CachedLogin:
    mailbox_id: int
    password_hash: str
    expires: float


class CredentialCache:
    """In-memory, per-process map from keyed hashes of verified credentials to the hash they matched."""

    def __init__(self, ttl: float = 300.0, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, CachedLogin] = OrderedDict()
        self._send: Callable[[dict[str, Any]], None] | None = None
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.ttl > 0 and self.max_entries > 0

    def key(self, username: str, password: str) -> bytes:
        """HMAC-SHA256 of the length-prefixed pair, so ("ab", "c") and ("a", "bc") differ."""
        user = username.encode("utf-8", "surrogatepass")
        secret = password.encode("utf-8", "surrogatepass")
        message = len(user).to_bytes(4, "big") + user + secret
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def lookup(self, key: bytes, mailbox_id: int, password_hash: str | None) -> bool:
        """Whether ``key`` was verified for this mailbox against exactly ``password_hash`` and has not expired."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return False
        if (entry.expires <= self._clock() or entry.mailbox_id != mailbox_id or password_hash is None
                or not hmac.compare_digest(entry.password_hash, password_hash)):
            del self._entries[key]  # expired, or the password changed since: never usable again
            self.misses += 1
            return False
        self._entries.move_to_end(key)
        self.hits += 1
        return True

    def share(self, send: Callable[[dict[str, Any]], None], secret: bytes) -> None:
        """Share entries with the daemon's other worker processes: their common key (from the supervisor), and
        ``send`` for each entry stored here from now on. Entries made under the old key are dropped."""
        self._key = secret
        self._entries.clear()
        self._send = send

    def apply_verified(self, message: dict[str, Any]) -> None:
        """An entry another worker stored (a ``verified`` message); anything malformed is ignored."""
        try:
            key, mailbox_id, password_hash = bytes.fromhex(message["k"]), int(message["m"]), message["h"]
        except (KeyError, TypeError, ValueError):
            return
        if len(key) == hashlib.sha256().digest_size and isinstance(password_hash, str) and len(password_hash) < 512:
            self._put(key, mailbox_id, password_hash)

    def store(self, key: bytes, mailbox_id: int, password_hash: str) -> None:
        if self._put(key, mailbox_id, password_hash) and self._send is not None:
            self._send({"t": "verified", "k": key.hex(), "m": mailbox_id, "h": password_hash})

    def _put(self, key: bytes, mailbox_id: int, password_hash: str) -> bool:
        if not self.enabled:
            return False
        self._entries[key] = CachedLogin(mailbox_id, password_hash, self._clock() + self.ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return True

    def forget(self, key: bytes) -> None:
        self._entries.pop(key, None)

    def forget_mailbox(self, mailbox_id: int) -> int:
        """Drop every entry of a mailbox (its password changed or it was disabled in this process)."""
        stale = [k for k, e in self._entries.items() if e.mailbox_id == mailbox_id]
        for k in stale:
            del self._entries[k]
        return len(stale)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
