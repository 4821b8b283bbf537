"""gateway.auth.anvil: connection and message limits per address and per account (pure, a settable clock)."""

from __future__ import annotations

from gateway.auth.anvil import Anvil, Lease, Refusal
from gateway.config import Limits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_concurrent_connections_per_address_are_capped_and_closing_frees_a_slot() -> None:
    anvil = Anvil(connections_per_address=2, connection_rate_per_address=100)
    first, second = anvil.open("127.0.0.1", "smtp"), anvil.open("127.0.0.1", "imap")
    assert isinstance(first, Lease) and isinstance(second, Lease)
    third = anvil.open("127.0.0.1", "smtp")
    assert isinstance(third, Refusal) and third.limit == "connections_per_address" and "at most 2" in third.reason
    assert isinstance(anvil.open("192.0.2.1", "smtp"), Lease)  # another address is not affected
    first.close()
    first.close()  # idempotent
    assert anvil.connections("127.0.0.1") == 1
    assert isinstance(anvil.open("127.0.0.1", "smtp"), Lease)


def test_connection_rate_per_address_slides_over_a_minute() -> None:
    clock = Clock()
    anvil = Anvil(connections_per_address=50, connection_rate_per_address=3, clock=clock)
    for _ in range(3):
        lease = anvil.open("10.0.0.1", "smtp")
        assert isinstance(lease, Lease)
        lease.close()
    refused = anvil.open("10.0.0.1", "smtp")
    assert isinstance(refused, Refusal) and refused.limit == "connection_rate_per_address"
    clock.now += 60.5
    assert isinstance(anvil.open("10.0.0.1", "smtp"), Lease)


def test_messages_and_recipients_per_minute_per_account() -> None:
    clock = Clock()
    anvil = Anvil(messages_per_minute=2, recipients_per_minute=10, clock=clock)
    assert anvil.allow_message("10.0.0.1", 7, 4) is None
    assert anvil.allow_message("10.0.0.2", 7, 4) is None  # the account's count, whatever the address
    assert "messages" in (anvil.allow_message("10.0.0.1", 7, 1) or "")
    assert anvil.allow_message("10.0.0.1", 8, 10) is None
    clock.now += 61
    assert "recipients" in (anvil.allow_message("10.0.0.1", 7, 11) or "")
    assert anvil.allow_message("10.0.0.1", 7, 10) is None


def test_loopback_is_not_exempt_and_defaults_follow_the_limits() -> None:
    anvil = Anvil.from_limits(Limits(connections_per_address=1))
    assert isinstance(anvil.open("127.0.0.1", "imap"), Lease)
    assert isinstance(anvil.open("127.0.0.1", "imap"), Refusal)
    assert anvil.connection_rate_per_address == Limits().connection_rate_per_address == 0  # off, as Postfix
