"""gateway.auth.cache: keyed hashes, hash fingerprint check at use, TTL and size bound (pure)."""

from __future__ import annotations

from gateway.auth.cache import CredentialCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_keys_are_keyed_per_process_and_unambiguous() -> None:
    one, two = CredentialCache(), CredentialCache()
    assert one.key("a@x.test", "pw") == one.key("a@x.test", "pw")
    assert one.key("a@x.test", "pw") != two.key("a@x.test", "pw")  # another process's key
    assert one.key("ab", "c") != one.key("a", "bc")
    assert b"pw" not in one.key("a@x.test", "pw")


def test_entry_is_used_only_against_the_same_stored_hash() -> None:
    cache = CredentialCache()
    key = cache.key("a@x.test", "pw")
    cache.store(key, 1, "$argon2id$old")
    assert cache.lookup(key, 1, "$argon2id$old")
    assert not cache.lookup(key, 1, "$argon2id$new")  # the password changed: the entry is dropped
    assert not cache.lookup(key, 1, "$argon2id$old")
    cache.store(key, 1, "$argon2id$old")
    assert not cache.lookup(key, 2, "$argon2id$old") and not cache.lookup(key, 1, None)


def test_entries_expire_after_the_ttl_and_zero_turns_the_cache_off() -> None:
    clock = Clock()
    cache = CredentialCache(ttl=300, clock=clock)
    key = cache.key("a@x.test", "pw")
    cache.store(key, 1, "h")
    clock.now = 299
    assert cache.lookup(key, 1, "h")
    clock.now = 600
    assert not cache.lookup(key, 1, "h") and len(cache) == 0
    off = CredentialCache(ttl=0)
    off.store(key, 1, "h")
    assert len(off) == 0


def test_size_is_bounded_least_recently_used_first_out() -> None:
    cache = CredentialCache(max_entries=2)
    keys = [cache.key(f"u{i}@x.test", "pw") for i in range(3)]
    cache.store(keys[0], 1, "h")
    cache.store(keys[1], 2, "h")
    assert cache.lookup(keys[0], 1, "h")
    cache.store(keys[2], 3, "h")
    assert len(cache) == 2 and not cache.lookup(keys[1], 2, "h") and cache.lookup(keys[0], 1, "h")


def test_forget_mailbox_drops_all_its_entries() -> None:
    cache = CredentialCache()
    cache.store(cache.key("a@x.test", "one"), 1, "h")
    cache.store(cache.key("A@x.test", "two"), 1, "h")
    cache.store(cache.key("b@x.test", "one"), 2, "h")
    assert cache.forget_mailbox(1) == 2 and len(cache) == 1


def test_workers_sharing_a_key_see_each_others_entries_and_nothing_else() -> None:
    sent: list[dict[str, object]] = []
    one, two = CredentialCache(), CredentialCache()
    one.share(sent.append, b"k" * 32)
    two.share(lambda message: None, b"k" * 32)
    key = one.key("a@x.test", "pw")
    assert key == two.key("a@x.test", "pw")  # the daemon's key, not each process's
    one.store(key, 1, "$argon2id$h")
    assert sent == [{"t": "verified", "k": key.hex(), "m": 1, "h": "$argon2id$h"}]
    assert "pw" not in str(sent)
    two.apply_verified(sent[0])
    assert two.lookup(key, 1, "$argon2id$h") and not two.lookup(key, 1, "$argon2id$other")
    for bad in ({"t": "verified"}, {"k": "zz", "m": 1, "h": "x"}, {"k": "ab", "m": 1, "h": "x"},
                {"k": key.hex(), "m": "one", "h": "x"}, {"k": key.hex(), "m": 1, "h": 7}):
        two.apply_verified(bad)  # ignored
    assert len(two) == 0
    off = CredentialCache(ttl=0)
    off.share(sent.append, b"k" * 32)
    off.store(key, 1, "$argon2id$h")
    assert len(sent) == 1  # a cache turned off neither keeps nor sends
