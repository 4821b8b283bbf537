"""Bounds on everything a client can make the protocol layer hold or walk.

One place for these numbers so the reader, the parser and the tests agree; the server may lower the literal
limits per connection state (a client that has not logged in gets :data:`MAX_LITERAL_UNAUTH`, RFC 9051 11.1).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

#: Longest command line, literals excluded (RFC 7162 4 recommends at least 8192 octets).
MAX_LINE = 64 * 1024
#: Longest command, literals included, for every command but APPEND (whose limit is the message size limit).
MAX_COMMAND = 1024 * 1024
#: Largest literal accepted before authentication (RFC 9051 11.1: do not let strangers make us buffer).
MAX_LITERAL_UNAUTH = 8 * 1024
#: Largest non-synchronizing literal when only LITERAL- is offered (RFC 7888 5).
MAX_LITERAL_MINUS = 4096
#: Deepest parenthesis nesting in one command (search keys, fetch items, ID lists).
MAX_DEPTH = 32
#: Most list items or search keys in one command.
MAX_ITEMS = 10_000
#: Most ranges in one sequence set.
MAX_SEQUENCE_RANGES = 10_000
#: Longest tag.
MAX_TAG = 64
#: Most literals in one command (MULTIAPPEND messages and string arguments together).
MAX_LITERALS = 1_000
#: Largest number a number / nz-number / number64 can hold (RFC 9051 4.2: 63-bit for mod-sequences).
MAX_NUMBER64 = 2**63 - 1
#: Largest 32-bit number (sequence numbers, UIDs, sizes: RFC 9051 4.2 "number").
MAX_NUMBER = 2**32 - 1
#: Longest quoted string the response writer emits as a quoted string rather than a literal.
MAX_QUOTED_OUT = 1000
