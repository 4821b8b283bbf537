"""*Journal* (the event trail, R18: by date, actor, rule, patient; CSV export) and *Tableau de bord*.

The dashboard's chart is an SVG drawn here, server side (no script): documents received, filed automatically
and sent to review per day over two weeks; each figure links to the list behind it.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web
from markupsafe import Markup, escape
from sqlalchemy import Select, func, select

from gateway.dmp_bridge import outbox
from gateway.ins_matching import identities
from gateway.ins_matching.record import OPEN, DocumentReview
from gateway.store.models import Event, OutboundRecipient
from gateway.web.app import KEY, PARIS, date_fr

PAGE = 200
CSV_ROWS = 50_000
DAYS = 14


def _day(value: str) -> date | None:
    text = value.strip()
    try:
        if len(text) == 10 and text[2] == "/" and text[5] == "/":
            return date(int(text[6:]), int(text[3:5]), int(text[:2]))
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


async def _query(request: web.Request) -> tuple[Select[Any], dict[str, str]]:
    console = request.app[KEY]
    q = {k: request.query.get(k, "").strip()[:100] for k in ("du", "au", "acteur", "regle", "patient", "type")}
    query = select(Event).order_by(Event.id.desc())
    start, end = _day(q["du"]), _day(q["au"])
    if start is not None:
        query = query.where(Event.at >= datetime.combine(start, datetime.min.time(), PARIS))
    if end is not None:
        query = query.where(Event.at < datetime.combine(end + timedelta(days=1), datetime.min.time(), PARIS))
    if q["acteur"]:
        query = query.where(Event.actor.contains(q["acteur"], autoescape=True))
    if q["regle"]:
        query = query.where(Event.rule == q["regle"].upper())
    if q["type"]:
        query = query.where(Event.kind.startswith(q["type"], autoescape=True))
    if q["patient"]:
        async with console.sessions() as session:
            identity = await identities.find(session, q["patient"].replace(" ", ""), follow=False)
        query = query.where(Event.identity_id == (identity.id if identity is not None else -1))
    return query, q


def _detail(event: Event) -> str:
    return json.dumps(event.detail or {}, ensure_ascii=False, default=str, sort_keys=True)


async def journal(request: web.Request) -> web.StreamResponse:
    console = request.app[KEY]
    query, q = await _query(request)
    async with console.sessions() as session:
        events = list((await session.execute(query.limit(PAGE))).scalars())
    return console.render(request, "journal.html", events=events, q=q, detail=_detail, page=PAGE)


async def journal_csv(request: web.Request) -> web.StreamResponse:
    console = request.app[KEY]
    query, _ = await _query(request)
    async with console.sessions() as session:
        events = list((await session.execute(query.limit(CSV_ROWS))).scalars())
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";")
    writer.writerow(["id", "date", "type", "règle", "résultat", "acteur", "boîte", "message", "conversation",
                     "identité", "détail"])
    for e in events:
        writer.writerow([e.id, e.at.astimezone(PARIS).isoformat() if e.at.tzinfo else e.at.isoformat(), e.kind,
                         e.rule or "", e.outcome, e.actor or "", e.mailbox_id or "", e.message_id or "",
                         e.conversation_id or "", e.identity_id or "", _detail(e)])
    return web.Response(body=("\ufeff" + buffer.getvalue()).encode("utf-8"), content_type="text/csv",
                        charset="utf-8", headers={"Content-Disposition": 'attachment; filename="journal.csv"'})


def chart(days: list[date], series: list[tuple[str, str, dict[date, int]]]) -> Markup:
    """A grouped bar chart as SVG: one group per day, one bar per series, with a legend and a title per bar."""
    width, height, left, bottom = 760, 260, 40, 40
    top = max([1] + [n for _, _, values in series for n in values.values()])
    group = (width - left - 10) / max(1, len(days))
    bar = max(2.0, group / (len(series) + 1))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height + 30}" role="img" '
             f'aria-labelledby="titre-graphique" class="graphique"><title id="titre-graphique">Documents reçus, '
             f'classés automatiquement et mis à classer par jour</title>']
    parts.append(f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" class="axe"/>')
    parts.append(f'<text x="{left - 6}" y="20" class="echelle" text-anchor="end">{top}</text>')
    for i, day in enumerate(days):
        x0 = left + i * group
        for j, (_, css, values) in enumerate(series):
            n = values.get(day, 0)
            h = (height - bottom - 20) * n / top
            parts.append(f'<rect x="{x0 + j * bar:.1f}" y="{height - bottom - h:.1f}" width="{bar - 1:.1f}" '
                         f'height="{h:.1f}" class="{css}"><title>{escape(series[j][0])} le '
                         f'{day.strftime("%d/%m")} : {n}</title></rect>')
        parts.append(f'<text x="{x0 + group / 2:.1f}" y="{height - bottom + 14}" class="jour" '
                     f'text-anchor="middle">{day.strftime("%d/%m")}</text>')
    for j, (label, css, _) in enumerate(series):
        parts.append(f'<rect x="{left + j * 220}" y="{height}" width="12" height="12" class="{css}"/>'
                     f'<text x="{left + j * 220 + 18}" y="{height + 11}" class="legende">{escape(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 -- every text in it went through escape() or is a number


async def dashboard(request: web.Request) -> web.StreamResponse:
    console = request.app[KEY]
    today = datetime.now(PARIS).date()
    days = [today - timedelta(days=DAYS - 1 - i) for i in range(DAYS)]
    since = datetime.combine(days[0], datetime.min.time(), PARIS).astimezone(UTC)
    per_kind: dict[str, dict[date, int]] = {"received": {}, "auto": {}, "review": {}}
    async with console.sessions() as session:
        rows = await session.execute(select(Event.kind, Event.actor, Event.at).where(
            Event.at >= since, Event.kind.in_(("filing.done", "document.filed", "document.review_opened"))
        ).limit(200_000))
        for kind, actor, at in rows.all():
            moment = at if at.tzinfo else at.replace(tzinfo=UTC)
            day = moment.astimezone(PARIS).date()
            key = {"filing.done": "received", "document.review_opened": "review"}.get(
                kind, "auto" if (actor or "gateway") == "gateway" else "")
            if key:
                per_kind[key][day] = per_kind[key].get(day, 0) + 1
        backlog, oldest = (await session.execute(select(func.count(), func.min(DocumentReview.created_at)).where(
            DocumentReview.status == OPEN))).one()
        deposits = await outbox.counts(session)
        outbound = dict((await session.execute(select(OutboundRecipient.state, func.count()).group_by(
            OutboundRecipient.state))).all())
    age = None
    if oldest is not None:
        moment = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
        age = datetime.now(UTC) - moment
    svg = chart(days, [("Messages à classer reçus", "serie-recus", per_kind["received"]),
                       ("Classés automatiquement", "serie-auto", per_kind["auto"]),
                       ("Mis à classer", "serie-revue", per_kind["review"])])
    figures: dict[str, Any] = dict(backlog=backlog, oldest=oldest, age_days=age.days if age else None,
                                   age_hours=(age.seconds // 3600) if age else None, deposits=deposits,
                                   outbound=outbound)
    return console.render(request, "tableau.html", svg=svg, f=figures, date_fr=date_fr)


def routes(app: web.Application) -> None:
    app.router.add_get("/journal", journal)
    app.router.add_get("/journal.csv", journal_csv)
    app.router.add_get("/tableau-de-bord", dashboard)
