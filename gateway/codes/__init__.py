"""The facts every package shares, one module each: rule numbers, OIDs and code systems, XDS identifiers,
identity statuses and DMP codes. Constants only: nothing here imports the rest of the gateway.

SPDX-License-Identifier: GPL-3.0-or-later
"""
