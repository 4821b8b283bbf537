"""Bcc on mail leaving through the outbound queue (RFC 5322 3.6.3): the other operator never receives the Bcc
line, the sender's Sent copy keeps it. Two real gateways (operators A and B) over mutual TLS.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.mail import message
from support.pki import PKIFiles
from support.relay import Pair, make_pair, queue_rows, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def sqlite_pair(tmp_path: Path, pki: PKIFiles) -> Iterator[Pair]:
    pair = make_pair(tmp_path, pki, [f"sqlite+aiosqlite:///{tmp_path / f'{n}.sqlite3'}" for n in ("a", "b")])
    yield pair
    pair.stop()


def _head(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def test_bcc_is_not_sent_to_the_other_operator_and_stays_in_sent(sqlite_pair: Pair) -> None:
    pair = sqlite_pair
    dr_a, dr_b, hidden = pair.a.address("dr.alpha"), pair.b.address("dr.beta"), pair.b.address("dr.gamma")
    pair.store_a.add_mailbox(dr_a)
    pair.store_b.add_mailbox(dr_b)
    pair.store_b.add_mailbox(hidden)
    raw = message(dr_a, dr_b, "Avis confidentiel", headers={"Bcc": hidden})
    with pair.a.smtp(dr_a) as client:
        assert client.sendmail(dr_a, [dr_b, hidden], raw) == {}
    for recipient in (dr_b, hidden):
        (copy,) = wait_for(lambda r=recipient: pair.store_b.messages_in(r))
        assert b"\r\nBcc:" not in b"\r\n" + _head(copy) and b"Avis confidentiel" in copy
        if recipient == dr_b:  # nothing in the visible recipient's copy names the hidden one
            assert hidden.encode() not in copy
    wait_for(lambda: [r for r in queue_rows(pair.store_a) if r.state == "sent"])
    (sent,) = pair.store_a.messages_in(dr_a, "Sent")
    assert f"Bcc: {hidden}".encode() in _head(sent)
