"""The staff's web console: review queue, patient records, DMP outbox, identities, over HTTPS (aiohttp, Jinja2).

Stateless around the store: console accounts and sessions live in the database (migration ``web_0001``), so
every worker process and every gateway instance on one PostgreSQL serves the same sessions.

SPDX-License-Identifier: GPL-3.0-or-later
"""
