"""The anatomy of a stored message, computed once when it is stored: pure, bounded and iterative.

:mod:`.analyse` walks the MIME structure, :mod:`.envelope` and :mod:`.headers` read the header fields,
:mod:`.transfer` undoes transfer encodings, :mod:`.text` derives the search and sort keys, :mod:`.codec` packs
the result for the store (``gateway.store.anatomy`` writes it beside the message; IMAP reads it for FETCH,
SEARCH, SORT and THREAD). :mod:`.limits` bounds everything a hostile message could make it walk.

SPDX-License-Identifier: GPL-3.0-or-later
"""
