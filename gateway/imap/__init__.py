"""IMAP access to the store for mail clients: pymap's protocol engine with a backend over our tables.

Nothing outside this package knows pymap exists; the daemon only calls :func:`gateway.imap.server.start_imap`.
"""
