"""*DMP*: the deposit outbox by state, a deposit's answer, retry and cancel, and R12's "confirm authorship".

The same functions as ``gateway dmp``: gateway/dmp_bridge/outbox.py (``list_jobs``, ``show_job``, ``counts``,
``retry_job``, ``cancel_job``) and, for a confirmation, gateway/dmp_bridge/bridge.py ``consider_message`` with
``manual_request=True``, so the deposit rules (R12–R16) decide exactly as for the command; a manual deposit
needs a title (R14).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from aiohttp import web

from gateway.dmp_bridge import outbox
from gateway.store.models import Message
from gateway.web.app import KEY, person

STATE_WORDS = {outbox.PENDING: "en attente", outbox.SENT: "envoyé", outbox.RETRY: "nouvel essai prévu",
               outbox.ACCEPTED: "accepté", outbox.REFUSED: "refusé", outbox.CANCELLED: "annulé"}


async def outbox_page(request: web.Request) -> web.StreamResponse:
    console = request.app[KEY]
    state = request.query.get("etat", "")
    if state not in outbox.STATES:
        state = ""
    async with console.sessions() as session:
        jobs = await outbox.list_jobs(session, state or None, limit=300)
        counts = await outbox.counts(session)
    professionals = []
    if console.config.dmp is not None:
        from gateway.dmp_bridge.daemon import policy_from

        professionals = list(policy_from(console.config.dmp).professionals)
    return console.render(request, "dmp.html", jobs=jobs, counts=counts, state=state, states=STATE_WORDS,
                          configured=console.config.dmp is not None, professionals=professionals)


def _job_id(request: web.Request) -> int:
    value = request.match_info["id"]
    if not value.isdigit() or len(value) > 18:
        raise web.HTTPNotFound(text="Ce dépôt n'existe pas.")
    return int(value)


async def job_page(request: web.Request) -> web.StreamResponse:
    console = request.app[KEY]
    async with console.sessions() as session:
        try:
            job = await outbox.show_job(session, _job_id(request))
        except LookupError:
            raise web.HTTPNotFound(text="Ce dépôt n'existe pas.") from None
    return console.render(request, "depot.html", job=job, states=STATE_WORDS)


async def _act(request: web.Request, retry: bool) -> web.StreamResponse:
    console = request.app[KEY]
    job_id = _job_id(request)
    try:
        async with console.sessions() as session, session.begin():
            if retry:
                await outbox.retry_job(session, job_id, person(request).actor)
            else:
                await outbox.cancel_job(session, job_id, person(request).actor)
    except (LookupError, ValueError) as exc:
        await console.flash(request, str(exc))
    else:
        await console.flash(request, f"Dépôt n° {job_id} : {'relancé' if retry else 'annulé'}.")
    raise web.HTTPSeeOther(f"/dmp/{job_id}")


async def retry(request: web.Request) -> web.StreamResponse:
    return await _act(request, True)


async def cancel(request: web.Request) -> web.StreamResponse:
    return await _act(request, False)


async def confirm(request: web.Request) -> web.StreamResponse:
    """R12: a person confirms the structure wrote a received document; the rules then decide its deposit."""
    from gateway.dmp_bridge.bridge import consider_message
    from gateway.dmp_bridge.confirmation import confirmation_target
    from gateway.dmp_bridge.daemon import policy_from

    console = request.app[KEY]
    form = await request.post()
    if console.config.dmp is None:
        await console.flash(request, "Le DMP n'est pas configuré (section [dmp]).")
        raise web.HTTPSeeOther("/dmp")
    given = str(form.get("document", "")).strip()[:128]
    title = str(form.get("titre", "")).strip()[:300]
    author_id = str(form.get("auteur", "")).strip()[:20]
    policy = policy_from(console.config.dmp)
    author = policy.professional(author_id) if author_id else None
    lines: list[str] = []
    try:
        if not title:
            raise ValueError("Un dépôt demandé par une personne a besoin d'un titre (R14).")
        if not given:
            raise ValueError("Indiquez le numéro du message ou l'identifiant (uniqueId) du document.")
        if author_id and author is None:
            raise ValueError(f"{author_id} n'est pas un professionnel de la structure ([[dmp.professional]]).")
        async with console.sessions() as session, session.begin():
            message_id, only = await confirmation_target(session, given)
            message = await session.get(Message, message_id)
            if message is None:
                raise LookupError(f"Le message {message_id} n'existe pas.")
            results = await consider_message(
                session, message.id, bytes(message.raw), message.mail_from, list(message.rcpt_to), policy=policy,
                sender_mailbox_id=message.sender_mailbox_id, manual_request=True, confirmed_by=person(request).actor,
                author=author, title=title, only=only)
        for considered in results:
            refusal = considered.plan.refusal
            if considered.job_id is not None:
                lines.append(f"{considered.unique_id} : mis en file pour le DMP (dépôt n° {considered.job_id}).")
            elif refusal is None:
                lines.append(f"{considered.unique_id} : déjà dans la file.")
            else:
                lines.append(f"{considered.unique_id} : non déposé ({refusal.rule}) : {refusal.reason}")
        if not results:
            lines.append("Le message ne porte aucun document à déposer.")
    except (LookupError, ValueError) as exc:
        lines = [str(exc)]
    await console.flash(request, " ".join(lines))
    raise web.HTTPSeeOther("/dmp")


def routes(app: web.Application) -> None:
    app.router.add_get("/dmp", outbox_page)
    app.router.add_get("/dmp/{id}", job_page)
    app.router.add_post("/dmp/{id}/relancer", retry)
    app.router.add_post("/dmp/{id}/annuler", cancel)
    app.router.add_post("/dmp/confirmer", confirm)
