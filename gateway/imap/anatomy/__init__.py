"""What FETCH, SEARCH, SORT and THREAD need of a message, computed once when it is stored.

:mod:`.analyse` walks the MIME structure (bounded, iterative), :mod:`.envelope` reads ENVELOPE fields,
:mod:`.render` writes BODYSTRUCTURE/ENVELOPE and resolves sections to byte ranges, :mod:`.codec` stores the
result, :mod:`.text` derives search and sort keys, :mod:`.store` writes and reads them in the database.

SPDX-License-Identifier: GPL-3.0-or-later
"""
