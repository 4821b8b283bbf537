"""The IMAP server engine: listeners, connections and the per-connection session state machine.

Bytes are framed and parsed by :mod:`gateway.imap.proto`, answered from the store through
:mod:`gateway.imap.view` and :mod:`gateway.imap.anatomy`; this package owns sockets, TLS, compression,
timers, the state machine of RFC 9051 section 3 and the order of untagged updates (RFC 9051 7.5).

SPDX-License-Identifier: GPL-3.0-or-later
"""
