"""MAIL/RCPT paths: the fast reader of ``<dot-atom@domain>`` agrees with aiosmtpd's RFC 5322 parser.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import pytest
from aiosmtpd.smtp import SMTP

from gateway.smtp.protocol import _SIMPLE_PATH, GatewaySMTP

PATHS = [
    "<a@b.c> SIZE=12", "<a@b.c>", "<a.b+c@d-e.f>  BODY=8BITMIME", "<a@b.c> ", '<"q"@b>', "<a@[1.2.3.4]>",
    "<@x:a@b>", "<a..b@c>", "<.a@b>", "< a@b >", "<a@b.c>SIZE=1", "<é@b.c>", "a@b.c", "", "<>", "<a@b.c",
    "<a@b.c> NOTIFY=SUCCESS ORCPT=rfc822;a@b.c", "<a(comment)@b.c>", "<a@b.c>>",
]


def _parsers(limit: int) -> tuple[SMTP, GatewaySMTP]:
    reference, ours = SMTP.__new__(SMTP), GatewaySMTP.__new__(GatewaySMTP)
    reference.local_part_limit = ours.local_part_limit = limit
    return reference, ours


@pytest.mark.parametrize("path", PATHS)
def test_fast_path_reader_gives_what_aiosmtpd_gives(path: str) -> None:
    reference, ours = _parsers(0)
    assert ours._getaddr(path) == SMTP._getaddr(reference, path)


@pytest.mark.parametrize("path", ["<a@b.c> SIZE=12", "<a.b@c.d>"])
def test_common_paths_take_the_fast_reader(path: str) -> None:
    assert _SIMPLE_PATH.match(path) is not None


def test_local_part_limit_refuses_a_long_simple_path_like_aiosmtpd() -> None:
    reference, ours = _parsers(8)
    path = "<abcdefghij@b.c>"
    assert ours._getaddr(path) == SMTP._getaddr(reference, path) == (None, None)
