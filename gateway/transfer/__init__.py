"""Moving a structure's mail and accounts in and out of the store: Maildir and mbox trees, account lists, backups.

Readers here are bounded (message size, folder count and depth named as constants) and iterative; writers go
through the same columns IMAP APPEND fills, one transaction per batch, so a daemon running beside them sees
complete batches only.

SPDX-License-Identifier: GPL-3.0-or-later
"""
