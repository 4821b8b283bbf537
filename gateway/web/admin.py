"""*Conversations* (R1–R5: open conversations, replies blocked or allowed, history) and *Boîtes* (admin only).

Conversation changes go through gateway/routing/conversations.py (``set_replies_blocked``), the function of
``gateway conversation block|unblock``. A mailbox disabled here is refused at its next login by every
listener (the account check reads ``active``), as with ``gateway mailbox disable``; a new password is hashed
with Argon2id (gateway/auth/passwords.py); a software's certificate is bound by its SHA-256 fingerprint
(SASL EXTERNAL), as ``gateway mailbox add --certificate-fingerprint``.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import secrets

from aiohttp import web
from sqlalchemy import select

from gateway.auth import hashing
from gateway.codes.rules import Rule
from gateway.routing import conversations
from gateway.store.events import record
from gateway.store.models import Conversation, Mailbox
from gateway.web.app import KEY, person

KINDS = {"PER": "personnelle", "ORG": "organisationnelle", "APP": "applicative", "CAB": "cabinet", "PAT": "patient"}


def _id(request: web.Request) -> int:
    value = request.match_info["id"]
    if not value.isdigit() or len(value) > 18:
        raise web.HTTPNotFound(text="Cette page n'existe pas.")
    return int(value)


async def conversations_page(request: web.Request) -> web.StreamResponse:
    console = request.app[KEY]
    chosen = request.query.get("boite", "")
    professional_id = int(chosen) if chosen.isdigit() and len(chosen) < 18 else None
    async with console.sessions() as session:
        rows = (await conversations.list_conversations(session, professional_id))[-500:]
        names = dict((await session.execute(select(Mailbox.id, Mailbox.address).where(
            Mailbox.kind != "PAT").order_by(Mailbox.address))).all())
    return console.render(request, "conversations.html", rows=rows, names=names, chosen=professional_id)


async def conversation_page(request: web.Request) -> web.StreamResponse:
    console = request.app[KEY]
    async with console.sessions() as session:
        conversation = await session.get(Conversation, _id(request))
        if conversation is None:
            raise web.HTTPNotFound(text="Cette conversation n'existe pas.")
        events = await conversations.history(session, conversation.id)
        owner = await session.get(Mailbox, conversation.professional_id) if conversation.professional_id else None
    return console.render(request, "conversation.html", conversation=conversation, events=events, owner=owner)


async def conversation_block(request: web.Request) -> web.StreamResponse:
    console = request.app[KEY]
    form = await request.post()
    blocked = form.get("bloquer") == "1"
    conversation_id = _id(request)
    async with console.sessions() as session, session.begin():
        conversation = await session.get(Conversation, conversation_id)
        if conversation is None:
            raise web.HTTPNotFound(text="Cette conversation n'existe pas.")
        await conversations.set_replies_blocked(session, conversation, blocked, person(request).actor)
    await console.flash(request, "Réponses du patient " + ("bloquées (R3)." if blocked else "autorisées (R3)."))
    raise web.HTTPSeeOther(f"/conversations/{conversation_id}")


async def mailboxes_page(request: web.Request) -> web.StreamResponse:
    console = request.app[KEY]
    async with console.sessions() as session:
        rows = list((await session.execute(select(Mailbox).order_by(Mailbox.id).limit(1000))).scalars())
    return console.render(request, "boites.html", rows=rows, kinds=KINDS)


async def mailbox_active(request: web.Request) -> web.StreamResponse:
    console = request.app[KEY]
    form = await request.post()
    active = form.get("actif") == "1"
    mailbox_id = _id(request)
    async with console.sessions() as session, session.begin():
        mailbox = await session.get(Mailbox, mailbox_id)
        if mailbox is None:
            raise web.HTTPNotFound(text="Cette boîte n'existe pas.")
        mailbox.active = active
        await record(session, "mailbox.enabled" if active else "mailbox.disabled", "ok", rule=Rule.R18,
                     actor=person(request).actor, mailbox_id=mailbox.id)
    await console.flash(request, f"Boîte n° {mailbox_id} {'réactivée' if active else 'désactivée'}.")
    raise web.HTTPSeeOther("/boites")


async def mailbox_password(request: web.Request) -> web.StreamResponse:
    """A new random password, shown once to the administrator who hands it over."""
    console = request.app[KEY]
    mailbox_id = _id(request)
    secret = secrets.token_urlsafe(15)
    hashed = await hashing.hash_password(secret)  # in the hashing workers, not on the event loop
    async with console.sessions() as session, session.begin():
        mailbox = await session.get(Mailbox, mailbox_id)
        if mailbox is None:
            raise web.HTTPNotFound(text="Cette boîte n'existe pas.")
        mailbox.password_hash = hashed
        await record(session, "mailbox.password", "changed", rule=Rule.R18, actor=person(request).actor,
                     mailbox_id=mailbox.id)
    await console.flash(request, f"Nouveau mot de passe de la boîte n° {mailbox_id} (affiché une seule fois) : "
                                 f"{secret}")
    raise web.HTTPSeeOther("/boites")


async def mailbox_certificate(request: web.Request) -> web.StreamResponse:
    """Bind a software's client certificate (SHA-256 fingerprint) for SASL EXTERNAL, or remove the binding."""
    console = request.app[KEY]
    mailbox_id = _id(request)
    form = await request.post()
    fingerprint = str(form.get("empreinte", "")).strip().lower().replace(":", "").replace(" ", "")
    if fingerprint and (len(fingerprint) != 64 or any(c not in "0123456789abcdef" for c in fingerprint)):
        await console.flash(request, "L'empreinte doit être le SHA-256 du certificat : 64 chiffres hexadécimaux.")
        raise web.HTTPSeeOther("/boites")
    async with console.sessions() as session, session.begin():
        mailbox = await session.get(Mailbox, mailbox_id)
        if mailbox is None:
            raise web.HTTPNotFound(text="Cette boîte n'existe pas.")
        taken = fingerprint and (await session.execute(select(Mailbox.id).where(
            Mailbox.certificate_fingerprint == fingerprint, Mailbox.id != mailbox_id))).scalar()
        if not taken:
            mailbox.certificate_fingerprint = fingerprint or None
            await record(session, "mailbox.certificate", "bound" if fingerprint else "unbound", rule=Rule.R18,
                         actor=person(request).actor, mailbox_id=mailbox.id)
    await console.flash(request, "Ce certificat est déjà lié à une autre boîte." if taken else
                        f"Boîte n° {mailbox_id} : certificat {'lié' if fingerprint else 'délié'}.")
    raise web.HTTPSeeOther("/boites")


async def settings_page(request: web.Request) -> web.StreamResponse:
    """What this gateway is configured to do (no secret shown), and who may use the console."""
    from gateway.web import accounts

    console = request.app[KEY]
    config = console.config
    listeners = [(name, str(listen)) for name, listen in (
        ("SMTP (soumission)", config.submission), ("SMTP (TLS implicite)", config.submissions),
        ("IMAP", config.imap), ("IMAP (TLS implicite)", config.imaps),
        ("Relais entre opérateurs", config.relay.listen if config.relay else None),
        ("Console", config.web.listen if config.web else None)) if listen is not None]
    async with console.sessions() as session:
        users = await accounts.list_users(session)
    return console.render(request, "reglages.html", config=config, listeners=listeners, users=users,
                          oidc=console.settings.oidc, idle_minutes=int(console.settings.idle_timeout // 60))


def routes(app: web.Application) -> None:
    app.router.add_get("/conversations", conversations_page)
    app.router.add_get("/conversations/{id}", conversation_page)
    app.router.add_post("/conversations/{id}/reponses", conversation_block)
    app.router.add_get("/boites", mailboxes_page)
    app.router.add_get("/reglages", settings_page)
    app.router.add_post("/boites/{id}/actif", mailbox_active)
    app.router.add_post("/boites/{id}/mot-de-passe", mailbox_password)
    app.router.add_post("/boites/{id}/certificat", mailbox_certificate)
