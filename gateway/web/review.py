"""*À classer* (the review queue, R10–R11) and the document view.

Every decision goes through gateway/ins_matching/record.py (``list_reviews``, ``show_review``,
``resolve_review``, ``reject_review``); this module only shows and asks. It refuses, before calling them, to
file a document into an identity that is not ``qualifiée`` (R7: only a qualified identity feeds a record).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from aiohttp import web
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.codes.identity_status import QUALIFIEE
from gateway.documents.cda_body import non_xml_body
from gateway.documents.errors import DocumentRefused
from gateway.documents.mime import Part, walk
from gateway.ins_matching import identities
from gateway.ins_matching import record as patient_record
from gateway.ins_matching.normalise import normalise
from gateway.ins_matching.record import OPEN, REVIEW_STATUSES, DocumentReview, RecordError
from gateway.store.models import Identity, Message
from gateway.web import narrative
from gateway.web.app import KEY, date_fr, person

#: The ANS integration codes (R10) in the words the staff read.
REASONS = {
    900: "Version du document incorrecte", 901: "Auteur non autorisé", 902: "Patient inconnu",
    903: "INS absent", 904: "INS ou traits discordants avec l'identité enregistrée",
    905: "Traits d'identité incomplets", 906: "Autre motif",
}
STATUS_WORDS = {"open": "à classer", "resolved": "classé", "rejected": "rejeté"}
TRAITS = [("birth_name", "Nom de naissance"), ("first_names", "Prénoms de naissance"),
          ("first_name", "Premier prénom"), ("birth_date", "Date de naissance"), ("sex", "Sexe"),
          ("birth_place", "Lieu de naissance (INSEE)")]
#: Which normalised trait decides whether a shown trait differs (R10 compares after normalisation).
_COMPARED = {"birth_name": "birth_name", "first_names": "first_name", "first_name": "first_name",
             "birth_date": "birth_date", "sex": "sex", "birth_place": "birth_place"}


@dataclass(frozen=True)
class TraitRow:
    label: str
    document: str
    identity: str
    differs: bool


def trait_rows(patient: dict[str, Any], identity: Identity | None) -> list[TraitRow]:
    """The document's traits beside the identity's, a row flagged where they disagree after normalisation."""
    doc = SimpleNamespace(**{k: patient.get(k) for k, _ in TRAITS})
    left = normalise(doc)  # type: ignore[arg-type]
    right = normalise(identity) if identity is not None else None  # type: ignore[arg-type]
    rows = []
    for key, label in TRAITS:
        mine = patient.get(key) or ""
        theirs = getattr(identity, key, "") if identity is not None else ""
        differs = right is not None and getattr(left, _COMPARED[key]) != getattr(right, _COMPARED[key])
        if key == "birth_date":
            mine, theirs = date_fr(str(mine)), date_fr(str(theirs or ""))
        rows.append(TraitRow(label, str(mine), str(theirs or ""), differs))
    return rows


async def search_identities(session: AsyncSession, query: str, limit: int = 20) -> list[Identity]:
    """Identities by matricule, birth name (prefix, any case) or birth date (JJ/MM/AAAA or AAAA-MM-JJ)."""
    text = query.strip()[:100]
    if not text:
        return []
    date = text
    if len(text) == 10 and text[2] == "/" and text[5] == "/":
        date = f"{text[6:]}-{text[3:5]}-{text[:2]}"
    conditions = [Identity.matricule == text.replace(" ", ""), Identity.birth_date == date,
                  func.lower(Identity.birth_name).startswith(text.lower(), autoescape=True)]
    result = await session.execute(select(Identity).where(or_(*conditions)).order_by(Identity.birth_name,
                                                                                    Identity.id).limit(limit))
    return list(result.scalars().all())


async def attached_pdfs(session: AsyncSession, message_id: int | None) -> list[Part]:
    """The PDF parts of the message that brought the document (a lab's readable copy beside its CDA)."""
    if message_id is None:
        return []
    message = await session.get(Message, message_id)
    if message is None:
        return []
    try:
        parts = await asyncio.to_thread(walk, bytes(message.raw))  # bounded (gateway/documents/limits.py)
    except DocumentRefused:
        return []
    return [p for p in parts if p.data.startswith(b"%PDF")][:20]


def pdf_of(content: bytes) -> bytes | None:
    """The PDF a level-1 CDA wraps, when it is one."""
    body = non_xml_body(content)
    return body if body is not None and body.startswith(b"%PDF") else None


async def queue(request: web.Request) -> web.StreamResponse:
    console = request.app[KEY]
    status = request.query.get("statut", OPEN)
    if status not in REVIEW_STATUSES:
        status = OPEN
    code = request.query.get("code", "")
    async with console.sessions() as session:
        items = await patient_record.list_reviews(session, status, limit=500)
        if code.isdigit():
            items = [i for i in items if i.code == int(code)]
        ids = [i.id for i in items]
        senders: dict[int, tuple[str, Any]] = {}
        if ids:
            rows = await session.execute(select(DocumentReview.id, Message.mail_from, Message.received_at).join(
                Message, Message.id == DocumentReview.message_id).where(DocumentReview.id.in_(ids)))
            senders = {r: (sender, received) for r, sender, received in rows.all()}
        counts = dict((await session.execute(select(DocumentReview.code, func.count()).where(
            DocumentReview.status == status).group_by(DocumentReview.code))).all())
    return console.render(request, "a_classer.html", items=items, senders=senders, counts=counts,
                          reasons=REASONS, state=status, code=code, statuses=STATUS_WORDS,
                          total=sum(counts.values()))


async def _item_id(request: web.Request) -> int:
    value = request.match_info["id"]
    if not value.isdigit() or len(value) > 18:
        raise web.HTTPNotFound(text="Ce document n'existe pas.")
    return int(value)


async def view(request: web.Request) -> web.StreamResponse:
    console = request.app[KEY]
    review_id = await _item_id(request)
    search = request.query.get("recherche", "")
    async with console.sessions() as session:
        try:
            item = await patient_record.show_review(session, review_id)
        except RecordError:
            raise web.HTTPNotFound(text="Ce document n'existe pas.") from None
        header = item.header or {}
        patient = header.get("patient") or {}
        candidate = None
        if item.summary.candidate_identity_id is not None:
            candidate = await session.get(Identity, item.summary.candidate_identity_id)
        elif item.matricule:
            candidate = await identities.find(session, item.matricule)
        found = await search_identities(session, search) if search else []
        choices = ([candidate] if candidate is not None else []) + [i for i in found if candidate is None
                                                                    or i.id != candidate.id]
        sender = None
        if item.message_id is not None:
            message = await session.get(Message, item.message_id)
            sender = message.mail_from if message is not None else None
        attachments = [p.filename or f"document-{n}.pdf" for n, p in
                       enumerate(await attached_pdfs(session, item.message_id), start=1)]
    sections = narrative.sections(item.content)
    authors = header.get("authors") or []
    return console.render(request, "document.html", item=item, summary=item.summary, header=header,
                          patient=patient, candidate=candidate, rows=trait_rows(patient, candidate),
                          choices=choices, search=search, sections=sections, has_pdf=pdf_of(item.content) is not None,
                          reasons=REASONS, statuses=STATUS_WORDS, qualified=QUALIFIEE, sender=sender,
                          attachments=attachments,
                          author=authors[0] if authors else {})


async def pdf(request: web.Request) -> web.StreamResponse:
    console = request.app[KEY]
    review_id = await _item_id(request)
    async with console.sessions() as session:
        try:
            item = await patient_record.show_review(session, review_id)
        except RecordError:
            raise web.HTTPNotFound(text="Ce document n'existe pas.") from None
    body = pdf_of(item.content)
    if body is None:
        raise web.HTTPNotFound(text="Ce document ne contient pas de PDF.")
    return inline_pdf(body, f"document-{review_id}.pdf")


async def attachment(request: web.Request) -> web.StreamResponse:
    """The n-th PDF attached to the message that brought the document, shown inline."""
    console = request.app[KEY]
    review_id = await _item_id(request)
    number = request.match_info["n"]
    async with console.sessions() as session:
        try:
            item = await patient_record.show_review(session, review_id)
        except RecordError:
            raise web.HTTPNotFound(text="Ce document n'existe pas.") from None
        pdfs = await attached_pdfs(session, item.message_id)
    if not number.isdigit() or not 1 <= int(number) <= len(pdfs):
        raise web.HTTPNotFound(text="Cette pièce jointe n'existe pas.")
    return inline_pdf(pdfs[int(number) - 1].data, f"piece-{review_id}-{number}.pdf")


def inline_pdf(body: bytes, name: str) -> web.Response:
    """A PDF the browser shows itself; its own CSP forbids scripts in the PDF's frame."""
    return web.Response(body=body, content_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{name}"',
        "Content-Security-Policy": "default-src 'none'; object-src 'self'; frame-ancestors 'self'"})


async def original(request: web.Request) -> web.StreamResponse:
    console = request.app[KEY]
    review_id = await _item_id(request)
    async with console.sessions() as session:
        try:
            item = await patient_record.show_review(session, review_id)
        except RecordError:
            raise web.HTTPNotFound(text="Ce document n'existe pas.") from None
    return web.Response(body=item.content, content_type="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="document-{review_id}.xml"'})


async def file_to(request: web.Request) -> web.StreamResponse:
    """File the document into a chosen identity (R11), only a ``qualifiée`` one (R7)."""
    console = request.app[KEY]
    who = person(request)
    review_id = await _item_id(request)
    form = await request.post()
    chosen = str(form.get("identite", ""))
    note = str(form.get("motif", "")).strip()[:1000]
    back = f"/a-classer/{review_id}"
    if not chosen.isdigit():
        await console.flash(request, "Choisissez l'identité du patient à qui classer ce document.")
        raise web.HTTPSeeOther(back)
    if not note:
        await console.flash(request, "Indiquez le motif du classement : il est gardé dans le journal (R18).")
        raise web.HTTPSeeOther(back)
    try:
        async with console.sessions() as session, session.begin():
            identity = await identities.get(session, int(chosen))
            if identity.status != QUALIFIEE:
                raise RecordError(f"L'identité de {identity.birth_name} est « {identity.status} » : un document ne"
                                  " se classe que dans le dossier d'une identité qualifiée (R7). Qualifiez-la"
                                  " d'abord (pièce d'identité et appel INSi).")
            document_id = await patient_record.resolve_review(session, review_id, identity.id, who.actor, note)
    except (RecordError, identities.IdentityError) as exc:
        await console.flash(request, str(exc))
        raise web.HTTPSeeOther(back) from None
    await console.flash(request, f"Document classé dans le dossier de {identity.birth_name} {identity.first_name}"
                                 f" (document n° {document_id}).")
    raise web.HTTPSeeOther("/a-classer")


async def reject(request: web.Request) -> web.StreamResponse:
    console = request.app[KEY]
    who = person(request)
    review_id = await _item_id(request)
    form = await request.post()
    reason = str(form.get("motif", "")).strip()[:1000]
    try:
        async with console.sessions() as session, session.begin():
            if not reason:
                raise RecordError("Indiquez pourquoi le document est rejeté : le motif est gardé dans le journal"
                                  " (R18).")
            await patient_record.reject_review(session, review_id, who.actor, reason)
    except RecordError as exc:
        await console.flash(request, str(exc))
        raise web.HTTPSeeOther(f"/a-classer/{review_id}") from None
    await console.flash(request, f"Document n° {review_id} rejeté.")
    raise web.HTTPSeeOther("/a-classer")


async def propose(request: web.Request) -> web.StreamResponse:
    """R11: the document's INS and traits become a ``provisoire`` identity for a person to qualify (INSi and an
    identity document remain required); the document itself is not filed."""
    console = request.app[KEY]
    who = person(request)
    review_id = await _item_id(request)
    try:
        async with console.sessions() as session, session.begin():
            item = await patient_record.show_review(session, review_id)
            patient = (item.header or {}).get("patient") or {}
            ins = patient.get("ins") or []
            if not ins or not ins[0].get("extension"):
                raise identities.IdentityError("Le document ne porte pas d'INS : il n'y a rien à proposer (R11).")
            if await identities.find(session, ins[0]["extension"], follow=False) is not None:
                raise identities.IdentityError("Une identité a déjà ce matricule : qualifiez-la depuis son dossier.")
            traits = identities.Traits(patient.get("birth_name") or "", patient.get("first_names") or "",
                                       patient.get("birth_date") or "", patient.get("sex") or "",
                                       patient.get("birth_place") or "")
            new_id = await identities.add_identity(session, ins[0]["extension"], ins[0].get("root") or "", traits,
                                                   who.actor, allow_test=console.config.rules.allow_test_identities)
    except (RecordError, identities.IdentityError) as exc:
        await console.flash(request, str(exc))
        raise web.HTTPSeeOther(f"/a-classer/{review_id}") from None
    await console.flash(request, "Identité proposée, statut provisoire (R11) : vérifiez une pièce d'identité et"
                                 " appelez INSi avant d'y classer le document.")
    raise web.HTTPSeeOther(f"/dossiers/{new_id}")


def routes(app: web.Application) -> None:
    app.router.add_get("/a-classer", queue)
    app.router.add_get("/a-classer/{id}", view)
    app.router.add_get("/a-classer/{id}/pdf", pdf)
    app.router.add_get("/a-classer/{id}/original", original)
    app.router.add_get("/a-classer/{id}/piece/{n}", attachment)
    app.router.add_post("/a-classer/{id}/classer", file_to)
    app.router.add_post("/a-classer/{id}/rejeter", reject)
    app.router.add_post("/a-classer/{id}/proposer", propose)
