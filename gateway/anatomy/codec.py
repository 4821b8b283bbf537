"""The stored form of an :class:`Anatomy`: compact JSON arrays, deflated when large, behind a version tag.

The first byte says the form (``j`` JSON, ``z`` deflated JSON) and the second the layout version, so a later
layout can be read beside this one. Strings keep undecodable header bytes as JSON ``\\udcXX`` escapes
(``surrogateescape``), so the envelope written to clients is byte-exact. :func:`decode` of bytes it did not
write raises :class:`ValueError`, nothing else.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from gateway.anatomy.analyse import Anatomy, Part
from gateway.anatomy.envelope import Address, Envelope

VERSION = b"1"
#: Encoded forms larger than this are deflated (most messages stay below and are read without zlib).
_DEFLATE_ABOVE = 2048
#: Largest inflated form accepted back (a stored anatomy is at most a few hundred KiB for MAX_PARTS parts).
_MAX_INFLATED = 64 * 1024 * 1024


def _addresses(addresses: tuple[Address, ...]) -> list[list[str | None]]:
    return [[a.name, a.adl, a.mailbox, a.host] for a in addresses]


def _envelope(env: Envelope | None) -> list[Any] | None:
    if env is None:
        return None
    return [env.date, env.subject, _addresses(env.from_), _addresses(env.sender), _addresses(env.reply_to),
            _addresses(env.to), _addresses(env.cc), _addresses(env.bcc), env.in_reply_to, env.message_id]


def _params(params: tuple[tuple[str, str], ...]) -> list[str]:
    return [item for pair in params for item in pair]


def _part(p: Part) -> list[Any]:
    disposition = None if p.disposition is None else [p.disposition[0], _params(p.disposition[1])]
    return [p.type, p.subtype, _params(p.params), p.id, p.description, p.encoding, disposition, list(p.language),
            p.location, p.md5, p.header_start, p.body_start, p.body_end, p.lines, list(p.children),
            _envelope(p.envelope)]


def encode(anatomy: Anatomy) -> bytes:
    body = json.dumps([anatomy.size, anatomy.refused, [_part(p) for p in anatomy.parts]],
                      separators=(",", ":")).encode("ascii")
    if len(body) > _DEFLATE_ABOVE:
        return b"z" + VERSION + zlib.compress(body, 6)
    return b"j" + VERSION + body


def _unaddresses(items: list[Any]) -> tuple[Address, ...]:
    return tuple(Address(*item) for item in items)


def _unenvelope(item: list[Any] | None) -> Envelope | None:
    if item is None:
        return None
    date, subject, from_, sender, reply_to, to, cc, bcc, in_reply_to, message_id = item
    return Envelope(date, subject, _unaddresses(from_), _unaddresses(sender), _unaddresses(reply_to),
                    _unaddresses(to), _unaddresses(cc), _unaddresses(bcc), in_reply_to, message_id)


def _unparams(items: list[str]) -> tuple[tuple[str, str], ...]:
    return tuple(zip(items[0::2], items[1::2], strict=True))


def _unpart(item: list[Any]) -> Part:
    (kind, sub, params, id_, description, encoding, disposition, language, location, md5, header_start,
     body_start, body_end, lines, children, env) = item
    return Part(kind, sub, _unparams(params), id_, description, encoding,
                None if disposition is None else (disposition[0], _unparams(disposition[1])), tuple(language),
                location, md5, header_start, body_start, body_end, lines, tuple(children), _unenvelope(env))


def decode(data: bytes) -> Anatomy:
    """The anatomy :func:`encode` wrote; ValueError for anything else."""
    data = bytes(data)
    if len(data) < 2 or data[1:2] != VERSION or data[:1] not in (b"j", b"z"):
        raise ValueError("not a stored anatomy")
    body = data[2:]
    try:
        if data[:1] == b"z":
            inflater = zlib.decompressobj()
            body = inflater.decompress(body, _MAX_INFLATED)
            if inflater.unconsumed_tail:
                raise ValueError("stored anatomy too large")
        size, refused, parts = json.loads(body)
        return Anatomy(tuple(_unpart(p) for p in parts), size, refused)
    except (zlib.error, TypeError, KeyError) as error:
        raise ValueError(f"damaged stored anatomy: {error}") from error
