"""Bounds on what the analysis of a stored message walks and keeps.

A message beyond one of them is not refused at delivery (it was accepted, R-durable): its anatomy becomes one
flat ``application/octet-stream`` part with the reason, so FETCH still returns its bytes.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

#: Most MIME entities (parts, embedded messages included) described for one message.
MAX_PARTS = 1_000
#: Deepest MIME nesting (multipart in multipart, message/rfc822 in message/rfc822).
MAX_DEPTH = 32
#: Largest header block of one entity, blank line included.
MAX_HEADER = 256 * 1024
#: Most parameters kept for a Content-Type or Content-Disposition.
MAX_PARAMS = 64
#: Most addresses kept for one address header (From, To, ...).
MAX_ADDRESSES = 1_000
#: Longest boundary parameter (RFC 2046 5.1.1 allows 70; longer ones are tolerated up to this).
MAX_BOUNDARY = 200
#: Most decoded text kept for SEARCH TEXT/BODY per message, in characters.
MAX_TEXT = 1024 * 1024
#: Longest value kept for one sort or search header column.
MAX_FIELD = 998 * 4
