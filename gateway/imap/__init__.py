"""IMAP access to the store for mail clients: the gateway's own IMAP4rev1/IMAP4rev2 engine over our tables.

``proto`` (pure protocol), ``anatomy`` (what FETCH and SEARCH need, computed at delivery), ``view`` (the mailbox
view over the store) and ``engine`` (the asyncio server); the daemon only calls
:func:`gateway.imap.engine.server.start_imap`.

SPDX-License-Identifier: GPL-3.0-or-later
"""
