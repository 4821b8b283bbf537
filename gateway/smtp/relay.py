"""The relay listener (port 25 style): other operators of the trust space deliver mail for our domains here.

Contract, in the order a session meets it:

* STARTTLS is required before MAIL (530 5.7.0); the TLS handshake asks for a client certificate and OpenSSL
  verifies its chain to ``relay.trust_anchors``. A certificate from an unknown CA fails the handshake (the TLS
  alert is the reply) and the failure is recorded as an event.
* At MAIL the certificate must be present, within its validity period, usable for client authentication and not
  revoked (CRL, when configured), and it must name a whitelisted domain; the sender's domain must be whitelisted,
  not ours, and (by default) named by the certificate. Each refusal is a 5.7.x reply and an event (R18).
* At RCPT only our own domains are accepted (professional and patient); a patient recipient needs a qualified
  identity (R4) as for submitted mail (:func:`gateway.routing.policy.decide_relayed`).
* At DATA the message is stored and filed in one transaction, with the conversation effects of R1–R3 keyed by
  the remote sender's address, and only then "250". The same message (operator, Message-ID, envelope) relayed
  again within ``relay.dedupe_window`` is answered 250 and not stored twice: a peer that died between our 250
  and recording it re-sends it, and between two gateways each message arrives once.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import time
from datetime import timedelta
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session, TLSSetupException, syntax
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import Config
from gateway.routing import replies
from gateway.routing.addresses import parse
from gateway.routing.delivery import Outcome, plan_relayed, record_relay_refusal
from gateway.routing.headers import HeaderError, summarise
from gateway.routing.policy import Target, decide_relayed
from gateway.routing.replies import Reply
from gateway.smtp.data_lines import has_bare_line_ending
from gateway.smtp.protocol import GatewaySMTP
from gateway.store.anatomy import prepare
from gateway.store.bulk import Plan
from gateway.store.committer import GroupCommitter
from gateway.store.events import now, record
from gateway.store.models import RelayReceipt
from gateway.trust.certificates import PeerVerdict, RelayCertificateVerifier, peer_certificate
from gateway.trust.whitelist import covering_domain

log = structlog.get_logger("gateway.relay")


class RelaySMTP(GatewaySMTP):
    """The relay's protocol object: no DSN offered (we deliver at once) and handshake failures recorded."""

    offer_dsn = False

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:
        try:
            await super().smtp_STARTTLS(arg)
        except TLSSetupException as exc:
            handler = self.event_handler
            if isinstance(handler, RelayHandler):
                await handler.handshake_failed(self.session, exc.__cause__ or exc)
            raise


def _peer_ip(session: Session | None) -> str:
    peer = session.peer if session is not None else None
    return str(peer[0]) if isinstance(peer, tuple) else str(peer)


class RelayHandler:
    def __init__(self, config: Config, committer: GroupCommitter, verifier: RelayCertificateVerifier) -> None:
        assert config.relay is not None
        self.config = config
        self.relay = config.relay
        self.committer = committer
        self.verifier = verifier
        #: When this process last dropped the receipts older than the dedupe window (monotonic seconds).
        self._pruned = float("-inf")

    # --- events ---------------------------------------------------------------------------------------------
    async def _event(self, kind: str, outcome: str, actor: str | None = None, **detail: Any) -> None:
        async def unit(db: Any) -> None:
            await record(db, kind, outcome, actor=actor, **detail)
        try:
            await self.committer.run(unit)
        except Exception:  # the trail must not turn a refusal into a crash; the log line remains
            log.exception("relay.event_failed", kind=kind)

    async def handshake_failed(self, session: Session | None, error: BaseException) -> None:
        reason = str(getattr(error, "reason", None) or error)[:200]
        await self._event("relay.refused.tls", "refused", client=_peer_ip(session), reason=reason)

    # --- EHLO / STARTTLS ------------------------------------------------------------------------------------
    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        kept = [r for r in responses[:-1] if not r.startswith("250-AUTH")]
        return [*kept, "250-ENHANCEDSTATUSCODES", "250-PIPELINING", responses[-1]]

    def handle_STARTTLS(self, server: SMTP, session: Session, envelope: Envelope) -> bool:
        """Handshake done: judge the certificate once; the verdict is enforced (and recorded) at MAIL."""
        ssl_object = (session.ssl or {}).get("ssl_object")
        session.relay_verdict = self._verdict(peer_certificate(ssl_object))  # type: ignore[attr-defined]
        return True

    def _verdict(self, der: bytes | None) -> PeerVerdict:
        verdict = self.verifier.check(der)
        if verdict.ok and not any(covering_domain(n, self.config.trusted) for n in verdict.names):
            return PeerVerdict(replies.RELAY_PEER_NOT_WHITELISTED, "not_whitelisted", verdict.names,
                               verdict.subject, verdict.fingerprint)
        return verdict

    # --- transaction ----------------------------------------------------------------------------------------
    async def _refuse_peer(self, session: Session, verdict: PeerVerdict, reply: Reply, reason: str,
                           sender: str | None = None) -> str:
        await self._event(f"relay.refused.{reason}", "refused", actor=sender, client=_peer_ip(session),
                          certificate=verdict.subject, names=list(verdict.names)[:10], reply=str(reply))
        log.info("relay.mail", outcome="refused", reason=reason, client=_peer_ip(session))
        return str(reply)

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        verdict: PeerVerdict | None = getattr(session, "relay_verdict", None)
        if session.ssl is None or verdict is None:
            return str(replies.RELAY_TLS_REQUIRED)
        if verdict.reply is not None:
            return await self._refuse_peer(session, verdict, verdict.reply, verdict.reason)
        if address in ("", "<>"):  # a bounce or DSN from the remote operator (RFC 5321 4.5.5)
            sender = ""
        else:
            parsed = parse(address)
            if isinstance(parsed, Reply):
                return str(parsed)
            domain = parsed.domain
            if self.config.serves(domain):
                return await self._refuse_peer(session, verdict, replies.RELAY_SENDER_IS_OURS, "sender_is_ours",
                                               parsed.address)
            if domain not in self.config.trusted:
                return await self._refuse_peer(session, verdict, replies.RELAY_SENDER_NOT_WHITELISTED,
                                               "sender_not_whitelisted", parsed.address)
            if self.relay.sender_must_match_certificate and not _certificate_covers(verdict.names, domain):
                return await self._refuse_peer(session, verdict, replies.RELAY_SENDER_NOT_CERTIFIED,
                                               "sender_not_certified", parsed.address)
            sender = parsed.address
        envelope.mail_from = sender or NULL_SENDER  # aiosmtpd reads an empty sender as "no MAIL yet"
        envelope.mail_options.extend(mail_options)
        envelope.targets = []  # type: ignore[attr-defined]
        envelope.relay_peer = _peer_name(verdict)  # type: ignore[attr-defined]
        return str(replies.SENDER_OK)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        targets: list[Target] = envelope.targets  # type: ignore[attr-defined]
        peer: str = envelope.relay_peer  # type: ignore[attr-defined]
        if len(targets) >= self.config.limits.recipients_per_message:
            return str(replies.TOO_MANY_RECIPIENTS)
        async with self.committer.facts() as db:  # one autocommit statement: the latest commits
            decision = await decide_relayed(db, self.config, address, sender_of(envelope))
        if decision.target is None:
            sender = sender_of(envelope) or None
            await self.committer.run(lambda s: record_relay_refusal(s, peer, sender, decision))
            return str(decision.reply)
        if decision.target.address not in envelope.rcpt_tos:
            envelope.rcpt_tos.append(decision.target.address)
            targets.append(decision.target)
        return str(decision.reply)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if has_bare_line_ending(raw):
            return str(replies.BARE_LINE_ENDING)
        try:
            summary = summarise(raw)
        except HeaderError:
            return str(replies.BAD_HEADERS)
        peer: str = envelope.relay_peer  # type: ignore[attr-defined]
        targets: list[Target] = list(envelope.targets)  # type: ignore[attr-defined]
        mail_from = sender_of(envelope)
        raw = self._received(session, peer, targets) + raw

        key = receipt_key(peer, summary.message_id, mail_from, [t.address for t in targets])
        prepared = prepare(raw)  # the anatomy and index rows, before the write lock rather than under it

        async def unit(db: Any) -> Any:
            if key is not None and await self._already_received(db, key, peer, mail_from, summary.message_id):
                return Outcome(DUPLICATE)
            planned = await plan_relayed(db, peer, mail_from, targets, raw, summary)
            if isinstance(planned, Plan):
                planned.prepared = prepared
                if key is not None:
                    await _keep_receipt(db, key, peer)
            return planned

        try:
            outcome: Outcome = await self.committer.run(unit)
        except Exception:
            log.exception("relay.data", outcome="temporary_failure")
            return str(replies.TEMPORARY_FAILURE)
        verdict = "duplicate" if outcome.reply == DUPLICATE else "accepted" if outcome.message_id else "refused"
        log.info("relay.transaction", outcome=verdict, peer=peer,
                 message_id=outcome.message_id, recipients=len(outcome.delivered), size=len(raw))
        if key is not None and time.monotonic() - self._pruned > PRUNE_INTERVAL:
            await self._prune()
        return str(outcome.reply)

    async def _prune(self) -> None:
        """Receipts older than the window decide nothing any more: dropped, at most once per PRUNE_INTERVAL."""
        self._pruned = time.monotonic()
        before = now() - timedelta(seconds=self.relay.dedupe_window)

        async def unit(db: AsyncSession) -> int:
            done = await db.execute(delete(RelayReceipt).where(RelayReceipt.received_at < before))
            return int(getattr(done, "rowcount", 0) or 0)
        try:
            dropped = await self.committer.run(unit)
        except Exception:  # another instance pruning at the same moment: the next prune takes them
            log.warning("relay.receipts_prune_failed")
            return
        log.info("relay.receipts_pruned", dropped=dropped)

    async def _already_received(self, db: AsyncSession, key: str, peer: str, mail_from: str,
                                message_id: str | None) -> bool:
        """The same message from the same operator was accepted within ``relay.dedupe_window``: recorded (R18),
        answered 250 and not stored again."""
        since = now() - timedelta(seconds=self.relay.dedupe_window)
        seen = (await db.execute(select(RelayReceipt.received_at).where(
            RelayReceipt.key == key, RelayReceipt.received_at >= since))).first()
        if seen is None:
            return False
        await record(db, "relay.duplicate", "accepted", actor=mail_from or None, peer=peer,
                     message_id_header=message_id, first_received_at=str(seen.received_at))
        log.info("relay.duplicate", peer=peer)
        return True

    def _received(self, session: Session, peer: str, targets: list[Target]) -> bytes:
        """The trace header (RFC 5321 4.4), naming the TLS version and the operator's certificate."""
        ssl_info = session.ssl or {}
        cipher = ssl_info.get("cipher")
        version = cipher[1] if isinstance(cipher, tuple) and len(cipher) > 1 else "TLS"
        helo = (session.host_name or "unknown").replace("\r", "").replace("\n", "")[:100]
        for_clause = f"\r\n\tfor <{targets[0].address}>" if len(targets) == 1 else ""
        return (f"Received: from {helo} ([{_peer_ip(session)}])\r\n\tby {self.config.hostname} with ESMTPS "
                f"({version}, operator certificate {peer}){for_clause};\r\n\t"
                f"{email.utils.format_datetime(email.utils.localtime())}\r\n").encode("ascii", "replace")


#: Seconds between two prunings of the receipts older than ``relay.dedupe_window`` (per process).
PRUNE_INTERVAL = 3600.0
#: The answer to a message already accepted (within ``relay.dedupe_window``): stored once, acknowledged again.
DUPLICATE = replies.ACCEPTED.with_text("Message accepted (already received)")


#: The null reverse-path of bounces, DSNs and MDNs (RFC 5321 4.5.5), as the envelope keeps it.
NULL_SENDER = "<>"


def sender_of(envelope: Envelope) -> str:
    """The envelope sender, ``""`` for the null reverse-path."""
    mail_from = envelope.mail_from or ""
    return "" if mail_from == NULL_SENDER else mail_from


def receipt_key(peer: str, message_id: str | None, mail_from: str, recipients: list[str]) -> str | None:
    """What makes two relayed messages the same one: the operator, the Message-ID and the envelope (sender and
    recipients). None without a Message-ID: such a message cannot be told from another and is always stored."""
    if not message_id or not message_id.strip():
        return None
    parts = [peer.lower(), message_id.strip(), mail_from.lower(), *sorted({r.lower() for r in recipients})]
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogateescape")).hexdigest()


async def _keep_receipt(db: AsyncSession, key: str, peer: str) -> None:
    """Remember the message in the transaction that stores it (a receipt older than the window is renewed)."""
    renewed = await db.execute(update(RelayReceipt).where(RelayReceipt.key == key).values(received_at=now()))
    if not getattr(renewed, "rowcount", 0):
        db.add(RelayReceipt(key=key, peer=peer[:255], received_at=now()))
        await db.flush()  # a receipt of the same key committed meanwhile fails this unit, which is run again


def _peer_name(verdict: PeerVerdict) -> str:
    return verdict.names[0] if verdict.names else verdict.subject


def _certificate_covers(names: tuple[str, ...], domain: str) -> bool:
    """The certificate names the sender's domain, a host in it, or the domain is under a certified name."""
    return any(n == domain or n.endswith("." + domain) or domain.endswith("." + n) for n in names)


async def start_relay_listener(config: Config, committer: GroupCommitter) -> asyncio.AbstractServer:
    """Bind the relay listener; the caller closes the returned server."""
    from gateway.trust.certificates import relay_server_context

    assert config.relay is not None
    relay = config.relay
    tls = relay_server_context(config.tls, relay)
    verifier = RelayCertificateVerifier(relay.trust_anchors, relay.crl)
    handler = RelayHandler(config, committer, verifier)
    limits = config.limits

    def factory() -> RelaySMTP:
        return RelaySMTP(
            handler, hostname=config.hostname, ident="MSSante gateway relay", tls_context=tls,
            require_starttls=True, auth_required=False, auth_require_tls=True,
            auth_exclude_mechanism=["PLAIN", "LOGIN", "EXTERNAL"], data_size_limit=limits.message_size,
            timeout=limits.smtp_idle_timeout, decode_data=False,
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, relay.listen.host, relay.listen.port, reuse_address=True)
    log.info("listening", service="relay", address=str(relay.listen))
    return server
