"""IMAP's use of the stored anatomy (``gateway.anatomy``, written by ``gateway.store.anatomy``).

:mod:`.render` writes BODYSTRUCTURE/ENVELOPE and resolves sections to byte ranges, :mod:`.store` reads
anatomies, byte ranges and the full-text index for FETCH and SEARCH, :mod:`.indexer` indexes long bodies after
their commit.

SPDX-License-Identifier: GPL-3.0-or-later
"""
