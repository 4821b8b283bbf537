"""The mailbox view over the store that the IMAP engine calls: folders, the selected folder, rows, flags,
mutations (APPEND, COPY, MOVE, EXPUNGE), SEARCH, SORT, THREAD and quota, with plain Python types only.

SPDX-License-Identifier: GPL-3.0-or-later
"""
