"""The gateway's side of the card agents: a small HTTPS endpoint with mutual TLS that receives their events.

Each request carries one JSON event (``POST /v1/card/events``). The client certificate, not the payload, says
who is talking: the agent registered with that certificate's fingerprint serves one workstation and one
professional mailbox, and an event naming anything else is refused. Replies tell the agent what to do with the
event it sent: 200 (applied, or already applied: agents resend after a lost reply), 400/422 (never acceptable:
set it aside), anything else (keep it and retry later, in order).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import ssl
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.card import presence
from gateway.card.atr import CardKind
from gateway.config import TLSSettings
from gateway.store.events import record
from gateway.tlsctx import server_context

log = structlog.get_logger("gateway.card")

PATH = "/v1/card/events"
#: Bounds on what an agent may send (R-free hygiene: every parser bounded).
MAX_BODY = 8192
BODY_TIMEOUT = 10.0
EVENT_TYPES = frozenset({"inserted", "removed", "bound", "agent_started"})
_INSERTION = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_HEX = re.compile(r"^[0-9A-Fa-f]{0,66}$")
_MATRICULE = re.compile(r"^[0-9A-Ba-b]{15}$")


class BadEvent(Exception):
    """The event is malformed: a sentence saying which field and why."""


@dataclass(frozen=True)
class CardEvent:
    """One validated event from an agent."""

    type: str
    workstation: str
    professional: str
    at: datetime | None
    insertion: str | None = None
    reader: str | None = None
    kind: str | None = None
    model: str | None = None
    atr: str | None = None
    reason: str | None = None
    matricule: str | None = None
    actor: str | None = None


def _text(data: dict[str, Any], name: str, limit: int, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise BadEvent(f"The field {name!r} is missing.")
        return None
    if not isinstance(value, str) or not value or len(value) > limit or not value.isprintable():
        raise BadEvent(f"The field {name!r} must be printable text of 1 to {limit} characters.")
    return value


def parse_event(data: object) -> CardEvent:
    """Validate an agent's JSON event; raises :class:`BadEvent`."""
    if not isinstance(data, dict):
        raise BadEvent("The body must be one JSON object.")
    kind_of_event = _text(data, "type", 20)
    if kind_of_event not in EVENT_TYPES:
        raise BadEvent(f"The event type must be one of {', '.join(sorted(EVENT_TYPES))}.")
    at_text = _text(data, "at", 40, required=False)
    try:
        at = datetime.fromisoformat(at_text) if at_text else None
    except ValueError:
        raise BadEvent("The field 'at' must be an ISO 8601 time.") from None
    if at is not None and at.tzinfo is None:
        raise BadEvent("The field 'at' must carry its time zone offset.")
    event = CardEvent(
        type=kind_of_event, workstation=_text(data, "workstation", 100) or "",
        professional=_text(data, "professional", 320) or "", at=at,
        insertion=_text(data, "insertion", 36, required=kind_of_event != "agent_started"),
        reader=_text(data, "reader", 200, required=kind_of_event == "inserted"),
        kind=_text(data, "kind", 10, required=kind_of_event == "inserted"),
        model=_text(data, "model", 60, required=False),
        atr=_text(data, "atr", 66, required=kind_of_event == "inserted"),
        reason=_text(data, "reason", 20, required=False),
        matricule=_text(data, "matricule", 15, required=kind_of_event == "bound"),
        actor=_text(data, "actor", 100, required=False),
    )
    if event.insertion is not None and not _INSERTION.match(event.insertion):
        raise BadEvent("The field 'insertion' must be a lower-case UUID.")
    if event.kind is not None and event.kind not in {k.value for k in CardKind}:
        raise BadEvent("The field 'kind' must be cps, vitale or unknown.")
    if event.atr is not None and (not _HEX.match(event.atr) or len(event.atr) % 2):
        raise BadEvent("The field 'atr' must be the ATR in hexadecimal.")
    if event.matricule is not None and not _MATRICULE.match(event.matricule):
        raise BadEvent("The field 'matricule' must have 15 characters (R8).")
    return event


def peer_fingerprint(request: web.Request) -> str | None:
    """SHA-256 of the client certificate the TLS layer verified, lower-case hex."""
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return hashlib.sha256(der).hexdigest() if der else None


async def apply(session: AsyncSession, agent: presence.CardAgent, event: CardEvent,
                settings: presence.PresenceSettings) -> presence.Outcome:
    """Apply a validated event from ``agent`` inside the caller's transaction."""
    if event.workstation != agent.workstation or \
            event.professional.lower() != (await presence.professional_address(session, agent)):
        return presence.Outcome("forbidden", "This certificate's agent serves another workstation or mailbox.")
    if event.type == "agent_started":
        await presence.agent_restarted(session, agent, event.at)
        return presence.Outcome("ok")
    assert event.insertion is not None
    if event.type == "inserted":
        assert event.reader and event.kind and event.atr is not None
        return await presence.card_inserted(
            session, agent, insertion=event.insertion, reader=event.reader, kind=event.kind, atr=event.atr.lower(),
            model=event.model, at=event.at, matricule=event.matricule, settings=settings)
    if event.type == "removed":
        return await presence.card_removed(session, agent, insertion=event.insertion,
                                           reason=event.reason or "removed", at=event.at)
    assert event.matricule is not None
    actor = f"{presence.actor_of(agent)}:{event.actor}" if event.actor else None
    return await presence.bind_patient(session, agent, insertion=event.insertion, matricule=event.matricule,
                                       at=event.at, settings=settings, actor=actor)


def _reply(status: int, outcome: str, message: str = "") -> web.Response:
    return web.json_response({"status": outcome, "message": message}, status=status)


@dataclass
class CardEndpoint:
    """The running endpoint: its bound port, and the task that closes windows at their timeout."""

    runner: web.AppRunner
    port: int
    sweeper: asyncio.Task[None] | None = None
    _closed: bool = field(default=False, repr=False)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.sweeper is not None:
            self.sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.sweeper
        await self.runner.cleanup()


def endpoint_ssl_context(certificate: Path, private_key: Path, client_ca: Path,
                         minimum_version: str = "1.2") -> ssl.SSLContext:
    """A server context that requires a client certificate chaining to ``client_ca`` (the agents' PKI)."""
    context = server_context(TLSSettings(certificate, private_key, minimum_version, client_ca=client_ca),
                             request_client_cert=True)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def make_app(sessions: async_sessionmaker[AsyncSession], settings: presence.PresenceSettings) -> web.Application:
    async def events(request: web.Request) -> web.Response:
        fingerprint = peer_fingerprint(request)
        if fingerprint is None:
            return _reply(403, "forbidden", "A client certificate is required.")
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _reply(413, "rejected", f"An event is at most {MAX_BODY} bytes.")
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                body = await request.read()
            event = parse_event(json.loads(body))
        except TimeoutError:
            return _reply(408, "retry", "The event was not received in time.")
        except (ValueError, RecursionError, BadEvent) as exc:
            message = str(exc) if isinstance(exc, BadEvent) else "The body is not valid JSON."
            return _reply(400, "rejected", message)
        async with sessions() as session, session.begin():
            agent = await presence.agent_by_fingerprint(session, fingerprint)
            if agent is None:
                await record(session, "card.agent.refused", "unknown-certificate", rule="R18",
                             fingerprint=fingerprint[:16])
                return _reply(403, "forbidden", "This certificate is not registered for a card agent; register "
                                                "it with the gateway.")
            outcome = await apply(session, agent, event, settings)
            if outcome.status == "forbidden":
                await record(session, "card.agent.refused", "wrong-workstation", rule="R18",
                             actor=presence.actor_of(agent), mailbox_id=agent.professional_mailbox_id)
        if outcome.status == "forbidden":
            return _reply(403, "forbidden", outcome.message)
        if not outcome.accepted:
            return _reply(422, "rejected", outcome.message)
        return _reply(200, outcome.status, outcome.message)

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post(PATH, events)
    return app


async def sweep(sessions: async_sessionmaker[AsyncSession], interval: float) -> None:
    """Close timed-out windows now and then, so that the trail shows when each one ended (R18)."""
    while True:
        try:
            async with sessions() as session, session.begin():
                await presence.close_expired(session)
        except Exception:  # a database hiccup must not stop the sweeper
            log.exception("card.sweep.failed")
        await asyncio.sleep(interval)


async def start_card_endpoint(listen_host: str, port: int, ssl_context: ssl.SSLContext,
                              sessions: async_sessionmaker[AsyncSession],
                              settings: presence.PresenceSettings | None = None,
                              sweep_interval: float | None = None) -> CardEndpoint:
    """Start the endpoint (``port`` 0 picks a free one) and the timeout sweeper; ``await endpoint.close()``."""
    settings = settings or presence.PresenceSettings()
    if ssl_context.verify_mode != ssl.CERT_REQUIRED:
        raise ValueError("The card endpoint needs a TLS context that requires client certificates "
                         "(see endpoint_ssl_context).")
    runner = web.AppRunner(make_app(sessions, settings), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, listen_host, port, ssl_context=ssl_context, backlog=64)
    await site.start()
    bound = runner.addresses[0][1]
    interval = sweep_interval or min(30.0, settings.timeout / 10)
    sweeper = asyncio.get_running_loop().create_task(sweep(sessions, interval), name="card-presence-sweeper")
    log.info("card.endpoint.started", host=listen_host, port=bound)
    return CardEndpoint(runner, bound, sweeper)
