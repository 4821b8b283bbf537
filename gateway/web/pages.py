"""The console's pages, in the order of the menu (each module keeps its own routes).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from aiohttp import web

from gateway.web import admin, dmp, journal, records, review


def routes(app: web.Application) -> None:
    for module in (review, records, dmp, admin, journal):
        module.routes(app)
