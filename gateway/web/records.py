"""*Dossiers* (a patient's identity, its evidence, filed documents and DMP deposits) and *Identités* (R7–R9).

Identity changes go through gateway/ins_matching/identities.py, the same functions as ``gateway identity``:
the status is derived from the evidence (R7), never set here; INSi is asked through the simulator (R9).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from gateway.codes.oids import OID_NIA, OID_NIR, OID_NIR_DEMO, OID_NIR_TEST
from gateway.documents.errors import DocumentRefused
from gateway.documents.xdm_writer import build_xdm
from gateway.ins_matching import identities
from gateway.ins_matching import record as patient_record
from gateway.ins_matching.insi import service_for
from gateway.ins_matching.insi_check import ask_insi
from gateway.ins_matching.record import PatientDocument
from gateway.web.app import KEY, person
from gateway.web.review import inline_pdf, pdf_of, search_identities

DOCUMENT_KINDS = [("identity_card", "Carte nationale d'identité"), ("passport", "Passeport"),
                  ("residence_permit", "Titre de séjour"), ("family_booklet", "Livret de famille (enfant)"),
                  ("driving_licence", "Permis de conduire (faible confiance)"),
                  ("health_card", "Carte Vitale (faible confiance)"), ("other", "Autre (faible confiance)")]
OIDS = [(OID_NIR, "NIR"), (OID_NIA, "NIA"), (OID_NIR_TEST, "NIR de test"), (OID_NIR_DEMO, "NIR de démonstration")]


def _id(request: web.Request, name: str = "id") -> int:
    value = request.match_info[name]
    if not value.isdigit() or len(value) > 18:
        raise web.HTTPNotFound(text="Cette page n'existe pas.")
    return int(value)


async def search(request: web.Request) -> web.StreamResponse:
    console = request.app[KEY]
    query = request.query.get("q", "")
    async with console.sessions() as session:
        found = await search_identities(session, query, limit=100) if query else []
    return console.render(request, "dossiers.html", query=query, found=found)


async def record_page(request: web.Request) -> web.StreamResponse:
    from gateway.dmp_bridge.outbox import DmpDeposit

    console = request.app[KEY]
    identity_id = _id(request)
    async with console.sessions() as session:
        try:
            identity = await identities.get(session, identity_id)
        except identities.IdentityError:
            raise web.HTTPNotFound(text="Ce dossier n'existe pas.") from None
        evidence = await identities.evidence_of(session, identity_id)
        documents = await patient_record.documents_of(session, identity_id, include_superseded=True)
        deposits = list((await session.execute(select(DmpDeposit).where(
            DmpDeposit.matricule == identity.matricule).order_by(DmpDeposit.id.desc()).limit(200))).scalars())
    return console.render(request, "dossier.html", identity=identity, evidence=evidence, documents=documents,
                          deposits=deposits, kinds=DOCUMENT_KINDS, kind_words=dict(DOCUMENT_KINDS),
                          may_edit=person(request).role in ("secretariat", "admin"))


async def _document(request: web.Request) -> PatientDocument:
    console = request.app[KEY]
    async with console.sessions() as session:
        document = await session.get(PatientDocument, _id(request))
    if document is None:
        raise web.HTTPNotFound(text="Ce document n'existe pas.")
    return document


async def document_cda(request: web.Request) -> web.StreamResponse:
    document = await _document(request)
    return web.Response(body=document.content, content_type="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="document-{document.id}.xml"'})


async def document_pdf(request: web.Request) -> web.StreamResponse:
    document = await _document(request)
    body = pdf_of(document.content)
    if body is None:
        raise web.HTTPNotFound(text="Ce document ne contient pas de PDF.")
    return inline_pdf(body, f"document-{document.id}.pdf")


async def document_xdm(request: web.Request) -> web.StreamResponse:
    document = await _document(request)
    try:
        zipped, _ = build_xdm([document.content])
    except (DocumentRefused, ValueError):
        raise web.HTTPNotFound(text="Ce document ne peut pas être mis dans un paquet XDM.") from None
    return web.Response(body=zipped, content_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="IHE_XDM-{document.id}.ZIP"'})


async def identities_page(request: web.Request) -> web.StreamResponse:
    console = request.app[KEY]
    async with console.sessions() as session:
        rows = await identities.list_identities(session)
    return console.render(request, "identites.html", rows=rows[-500:], oids=OIDS)


async def add_identity(request: web.Request) -> web.StreamResponse:
    console = request.app[KEY]
    form = await request.post()

    def field(name: str, size: int = 200) -> str:
        return str(form.get(name, "")).strip()[:size]

    born = field("naissance", 10)
    if len(born) == 10 and born[2] == "/" and born[5] == "/":
        born = f"{born[6:]}-{born[3:5]}-{born[:2]}"
    traits = identities.Traits(field("nom").upper(), field("prenoms", 400).upper(), born, field("sexe", 1).upper(),
                               field("lieu", 5).upper())
    try:
        async with console.sessions() as session, session.begin():
            new_id = await identities.add_identity(session, field("matricule", 15).replace(" ", ""), field("oid", 64),
                                                   traits, person(request).actor,
                                                   allow_test=console.config.rules.allow_test_identities)
    except identities.IdentityError as exc:
        await console.flash(request, f"Identité refusée : {exc}")
        raise web.HTTPSeeOther("/identites") from None
    await console.flash(request, "Identité ajoutée, statut provisoire : vérifiez une pièce d'identité et appelez INSi.")
    raise web.HTTPSeeOther(f"/dossiers/{new_id}")


async def identity_document(request: web.Request) -> web.StreamResponse:
    console = request.app[KEY]
    identity_id = _id(request)
    form = await request.post()
    try:
        async with console.sessions() as session, session.begin():
            status = await identities.record_document(session, identity_id, str(form.get("piece", ""))[:40],
                                                      person(request).actor)
    except identities.IdentityError as exc:
        await console.flash(request, str(exc))
    else:
        await console.flash(request, f"Pièce d'identité enregistrée ; statut : {status}.")
    raise web.HTTPSeeOther(f"/dossiers/{identity_id}")


async def identity_insi(request: web.Request) -> web.StreamResponse:
    """Verify the INS with INSi (R9) as ``gateway identity insi`` does; an obsolete matricule moves (R8)."""
    console = request.app[KEY]
    identity_id = _id(request)
    actor = person(request).actor
    target = identity_id
    try:
        async with console.sessions() as session, session.begin():
            check = await ask_insi(session, identity_id, service_for(console.config), actor)
        target = check.identity_id
        if check.error is not None:
            message = "INSi ne répond pas : l'identité est inchangée ; réessayez plus tard."
        elif check.replaced:
            message = f"INSi : matricule obsolète, remplacé par le matricule principal (R8) ; statut : {check.status}."
        else:
            words = {"found": "identité trouvée", "none": "aucune identité", "several": "plusieurs identités"}
            message = f"INSi : {words.get(check.outcome, check.outcome)} ; statut : {check.status}."
    except identities.IdentityError as exc:
        message = str(exc)
    await console.flash(request, message)
    raise web.HTTPSeeOther(f"/dossiers/{target}")


def routes(app: web.Application) -> None:
    app.router.add_get("/dossiers", search)
    app.router.add_get("/dossiers/{id}", record_page)
    app.router.add_get("/documents/{id}/cda", document_cda)
    app.router.add_get("/documents/{id}/pdf", document_pdf)
    app.router.add_get("/documents/{id}/xdm", document_xdm)
    app.router.add_get("/identites", identities_page)
    app.router.add_post("/identites", add_identity)
    app.router.add_post("/identites/{id}/piece", identity_document)
    app.router.add_post("/identites/{id}/insi", identity_insi)
