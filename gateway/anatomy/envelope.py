"""ENVELOPE fields (RFC 9051 7.5.2) from a message's header fields: addresses, groups, routes, never raising.

Values are the header's own text (encoded words untouched, as the RFC wants); :func:`display_text` gives the
decoded form SEARCH and SORT use. Address lists are read with a small tokenizer and a flat state machine:
malformed input (unbalanced quotes or brackets, several ``@``, several Sender addresses) gives a best-effort
list, bounded by :data:`MAX_ADDRESSES`.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.anatomy.headers import decode_words, first, quoted, skip_cfws
from gateway.anatomy.limits import MAX_ADDRESSES

#: The header fields the envelope reads, lower case.
ENVELOPE_FIELDS = ("date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc", "in-reply-to", "message-id")


@dataclass(frozen=True, slots=True)
class Address:
    """One address of an envelope list: ``(name adl mailbox host)``.

    A group is written as an address with ``host`` None and ``mailbox`` the group name, and closed by an
    address whose four fields are None (RFC 9051 7.5.2).
    """

    name: str | None
    adl: str | None
    mailbox: str | None
    host: str | None

    @property
    def is_group_marker(self) -> bool:
        return self.host is None

    @property
    def addr_spec(self) -> str:
        if self.host:
            return f"{self.mailbox or ''}@{self.host}"
        return self.mailbox or ""


@dataclass(frozen=True, slots=True)
class Envelope:
    date: str | None = None
    subject: str | None = None
    from_: tuple[Address, ...] = ()
    sender: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    in_reply_to: str | None = None
    message_id: str | None = None


_SPECIALS = frozenset('<>@,;:.[]"()')


def _tokens(value: str) -> list[tuple[str, str]]:
    """``(kind, text)``: ``w`` atom, ``q`` quoted string, ``c`` comment, ``d`` domain literal, else a special."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(value)
    while i < n and len(out) < MAX_ADDRESSES * 16:
        c = value[i]
        if c in " \t\r\n":
            i += 1
        elif c == "(":
            j = skip_cfws(value, i)
            out.append(("c", value[i + 1:j - 1] if j - 1 > i else ""))
            i = max(j, i + 1)
        elif c == '"':
            text, i = quoted(value, i)
            out.append(("q", text))
        elif c == "[":
            j = value.find("]", i)
            j = n if j < 0 else j + 1
            out.append(("d", value[i:j]))
            i = j
        elif c in _SPECIALS:
            out.append((c, c))
            i += 1
        else:
            j = i
            while j < n and value[j] not in _SPECIALS and value[j] not in " \t\r\n":
                j += 1
            out.append(("w", value[i:j]))
            i = j
    return out


def _phrase(tokens: list[tuple[str, str]]) -> str | None:
    words: list[str] = []
    for kind, text in tokens:
        if kind in ("w", "q"):
            words.append(text)
        elif kind == "." and words:
            words[-1] += "."
    return " ".join(words) if words else None


def _spec(tokens: list[tuple[str, str]]) -> tuple[str | None, str, str]:
    """``(adl, mailbox, host)`` from the tokens of an addr-spec, possibly with a route (``@a,@b:``)."""
    adl = None
    kinds = [kind for kind, _ in tokens]
    if kinds and kinds[0] == "@" and ":" in kinds:
        colon = kinds.index(":")
        adl = "".join(text for kind, text in tokens[:colon] if kind != "c")
        tokens = tokens[colon + 1:]
        kinds = kinds[colon + 1:]
    at = len(kinds) - 1 - kinds[::-1].index("@") if "@" in kinds else len(kinds)
    local = "".join(text for kind, text in tokens[:at] if kind != "c")
    host = "".join(text for kind, text in tokens[at + 1:] if kind != "c")
    return adl, local, host


def _mailbox(tokens: list[tuple[str, str]]) -> Address | None:
    if not tokens:
        return None
    kinds = [kind for kind, _ in tokens]
    if "<" in kinds:
        open_ = kinds.index("<")
        close = kinds.index(">", open_) if ">" in kinds[open_:] else len(kinds)
        name = _phrase(tokens[:open_])
        adl, local, host = _spec(tokens[open_ + 1:close])
    else:
        comments = [text for kind, text in tokens if kind == "c"]
        name = comments[-1].strip() if comments and comments[-1].strip() else None  # "a@b (Name)", RFC 5322 4.4
        adl, local, host = _spec(tokens)
    if not local and not host and name is None:
        return None
    return Address(name, adl, local, host)


def parse_addresses(value: str | None) -> tuple[Address, ...]:
    """The envelope address list of an address header value; groups as start/end markers."""
    if not value:
        return ()
    result: list[Address] = []
    current: list[tuple[str, str]] = []
    in_group = in_angle = False

    def flush() -> None:
        address = _mailbox(current)
        if address is not None and len(result) < MAX_ADDRESSES:
            result.append(address)
        current.clear()

    for kind, text in _tokens(value):
        if kind == "<":
            in_angle = True
        elif kind == ">":
            in_angle = False
        elif in_angle:
            pass
        elif kind == ":" and not in_group and "@" not in [k for k, _ in current]:
            result.append(Address(None, None, _phrase(current) or "", None))
            current.clear()
            in_group = True
            continue
        elif kind == ";" and in_group:
            flush()
            result.append(Address(None, None, None, None))
            in_group = False
            continue
        elif kind == ",":
            flush()
            continue
        current.append((kind, text))
    flush()
    if in_group:
        result.append(Address(None, None, None, None))
    return tuple(result[:MAX_ADDRESSES])


def envelope(found: list[tuple[str, str]]) -> Envelope:
    """The ENVELOPE of a message from its header fields; Sender and Reply-To default to From (RFC 9051 7.5.2)."""
    from_ = parse_addresses(first(found, "from"))
    sender = parse_addresses(first(found, "sender")) or from_
    reply_to = parse_addresses(first(found, "reply-to")) or from_
    return Envelope(
        date=first(found, "date"),
        subject=first(found, "subject"),
        from_=from_,
        sender=sender,
        reply_to=reply_to,
        to=parse_addresses(first(found, "to")),
        cc=parse_addresses(first(found, "cc")),
        bcc=parse_addresses(first(found, "bcc")),
        in_reply_to=first(found, "in-reply-to"),
        message_id=first(found, "message-id"),
    )


def display_text(addresses: tuple[Address, ...]) -> str:
    """Decoded ``Name <mailbox@host>`` pieces for SEARCH FROM/TO/CC/BCC."""
    pieces = []
    for address in addresses:
        if address.is_group_marker:
            if address.mailbox:
                pieces.append(decode_words(address.mailbox) + ":")
            continue
        name = decode_words(address.name) if address.name else ""
        pieces.append(f"{name} <{address.addr_spec}>" if name else address.addr_spec)
    return ", ".join(pieces)
