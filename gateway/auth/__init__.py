"""Who is talking to us, one place for SMTP and IMAP: accounts and logins (``accounts``), Argon2id hashing in
worker processes (``hashing``, ``passwords``), the verified-credential cache (``cache``), the failed-login
throttle shared through the store (``throttle``, ``models``) and per-address and per-account limits (``anvil``).

SPDX-License-Identifier: GPL-3.0-or-later
"""
