"""IMAP4rev2 protocol: framing, command grammar and response serialisation, with no I/O and no store access.

The server engine reads bytes into :class:`~gateway.imap.proto.reader.CommandReader`, turns each framed command
into a typed value with :func:`~gateway.imap.proto.parser.parse`, and writes answers built with
:mod:`gateway.imap.proto.response`. Every size, count and depth is bounded by :mod:`gateway.imap.proto.limits`.

SPDX-License-Identifier: GPL-3.0-or-later
"""
