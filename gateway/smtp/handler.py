"""The submission handler: turns each SMTP event into a call on routing and returns the reply it chose.

Nothing here decides a business rule. MAIL checks the sender is the authenticated account; RCPT asks
:func:`gateway.routing.policy.decide`; DATA refuses smuggling-prone line endings and spoofed From headers,
then hands the delivery to the group committer and answers only once it is committed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session
from sqlalchemy import select

from gateway.auth.accounts import Account, Authenticator, LoginOutcome
from gateway.config import Config
from gateway.ins_matching import identities
from gateway.routing import replies
from gateway.routing.addresses import parse
from gateway.routing.delivery import Outcome, plan_submission, record_refusal
from gateway.routing.headers import HeaderError, summarise
from gateway.routing.policy import Decision, Target, decide
from gateway.routing.replies import Reply
from gateway.store.bulk import Plan
from gateway.store.committer import GroupCommitter
from gateway.store.models import Identity

log = structlog.get_logger("gateway.smtp")


def has_bare_line_ending(data: bytes) -> bool:
    """Any CR not followed by LF, or LF not preceded by CR (the SMTP smuggling vectors, RFC 5321 2.3.8)."""
    return data.count(b"\r") != data.count(b"\r\n") or data.count(b"\n") != data.count(b"\r\n")


def _account(session: Session) -> Account | None:
    data = session.auth_data
    return data if isinstance(data, Account) else None


def _client_ip(session: Session) -> str:
    peer = session.peer
    return str(peer[0]) if isinstance(peer, tuple) else str(peer)


class SubmissionHandler:
    def __init__(self, config: Config, authenticator: Authenticator, committer: GroupCommitter,
                 listener: str) -> None:
        self.config = config
        self.authenticator = authenticator
        self.committer = committer
        self.listener = listener

    # --- EHLO -------------------------------------------------------------------------------------------
    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-ENHANCEDSTATUSCODES", "250-PIPELINING", responses[-1]]

    # --- AUTH (RFC 4954; PLAIN RFC 4616, LOGIN) --------------------------------------------------------------
    async def _login(self, server: SMTP, username: bytes, password: bytes) -> AuthResult:
        assert server.session is not None
        try:
            user, secret = username.decode("utf-8"), password.decode("utf-8")
        except UnicodeDecodeError:
            return AuthResult(success=False, handled=False, message=str(replies.AUTH_INVALID))
        result = await self.authenticator.login(user, secret, _client_ip(server.session), "smtp")
        if result.outcome is LoginOutcome.THROTTLED:
            return AuthResult(success=False, handled=False, message=str(replies.LOGIN_THROTTLED))
        if result.account is None:
            return AuthResult(success=False, handled=False, message=str(replies.AUTH_INVALID))
        return AuthResult(success=True, auth_data=result.account, message=str(replies.AUTH_OK))

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) == 1:
            answer = await server.challenge_auth("", encode_to_b64=False)
            if not isinstance(answer, bytes):
                return AuthResult(success=False, handled=True)
            blob = answer
        else:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except (binascii.Error, ValueError):
                return AuthResult(success=False, handled=False, message="501 5.5.2 Cannot decode base64")
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            return AuthResult(success=False, handled=False, message="501 5.5.2 Cannot split the PLAIN response")
        authzid, username, password = parts
        if authzid and authzid != username:
            return AuthResult(success=False, handled=False, message=str(replies.AUTH_INVALID))
        return await self._login(server, username, password)

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) == 1:
            username = await server.challenge_auth("Username:")
        else:
            try:
                username = base64.b64decode(args[1], validate=True)
            except (binascii.Error, ValueError):
                return AuthResult(success=False, handled=False, message="501 5.5.2 Cannot decode base64")
        if not isinstance(username, bytes):
            return AuthResult(success=False, handled=True)
        password = await server.challenge_auth("Password:")
        if not isinstance(password, bytes):
            return AuthResult(success=False, handled=True)
        return await self._login(server, username, password)

    # --- Transaction -----------------------------------------------------------------------------------
    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        account = _account(session)
        if account is None:
            return "530 5.7.0 Authentication required"
        if address in ("", "<>"):
            return str(replies.NULL_SENDER)
        parsed = parse(address)
        if isinstance(parsed, Reply) or parsed.address != account.address:
            log.info("smtp.mail", outcome="refused", reason="not_own_address", mailbox_id=account.id)
            return str(replies.NOT_YOUR_ADDRESS)
        envelope.mail_from = parsed.address
        envelope.mail_options.extend(mail_options)
        envelope.targets = []  # type: ignore[attr-defined]
        return str(replies.SENDER_OK)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        account = _account(session)
        assert account is not None  # aiosmtpd refuses RCPT before MAIL, and MAIL before AUTH
        if len(envelope.rcpt_tos) >= self.config.limits.recipients_per_message:
            return str(replies.TOO_MANY_RECIPIENTS)
        async with self.committer.reader() as db:
            decision = await decide(db, self.config, account, address)
        if not decision.accepted:
            await self.committer.run(lambda s: record_refusal(s, account, decision))
            return str(decision.reply)
        assert decision.target is not None
        if decision.target.address not in envelope.rcpt_tos:
            envelope.rcpt_tos.append(decision.target.address)
            envelope.rcpt_options.extend(rcpt_options)
            envelope.targets.append(decision.target)  # type: ignore[attr-defined]
        return str(decision.reply)

    async def _package(self, raw: bytes) -> bytes:
        """Bare CDA get an IHE XDM zip and the X-MSS headers (ANS client spec); X-MSS-INS says O only for
        matricules that are qualifiée here (R7)."""
        from gateway.documents.packaging import matricules, package

        found = await asyncio.to_thread(matricules, raw)
        qualified: set[str] = set()
        if found:
            async with self.committer.reader() as db:
                query = select(Identity.matricule).where(Identity.matricule.in_(found),
                                                         Identity.status == identities.QUALIFIEE)
                qualified = set((await db.execute(query)).scalars())
        return await asyncio.to_thread(package, raw, qualified.__contains__) or raw

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        account = _account(session)
        assert account is not None and envelope.mail_from is not None
        raw = envelope.original_content or b""
        if has_bare_line_ending(raw):
            log.warning("smtp.data", outcome="refused", reason="bare_line_ending", mailbox_id=account.id)
            return str(replies.BARE_LINE_ENDING)
        try:
            summary = summarise(raw)
        except HeaderError:
            return str(replies.BAD_HEADERS)
        if summary.from_addresses != (account.address,):
            log.info("smtp.data", outcome="refused", reason="header_from", mailbox_id=account.id)
            return str(replies.HEADER_FROM_SPOOFED)
        if self.config.documents is not None and self.config.documents.package_outgoing:
            raw = await self._package(raw)
        targets: list[Target] = list(envelope.targets)  # type: ignore[attr-defined]
        mail_from = envelope.mail_from

        async def unit(db: Any) -> Plan | Outcome:
            return await plan_submission(db, self.config, account, mail_from, targets, raw, summary)

        try:
            outcome: Outcome = await self.committer.run(unit)
        except Exception:
            log.exception("smtp.data", outcome="temporary_failure", mailbox_id=account.id)
            return str(replies.TEMPORARY_FAILURE)
        log.info("smtp.transaction", outcome="accepted" if outcome.message_id else "refused",
                 listener=self.listener, mailbox_id=account.id, message_id=outcome.message_id,
                 recipients=len(outcome.delivered), refused=len(outcome.refused), size=len(raw))
        return str(outcome.reply)


__all__ = ["Decision", "SubmissionHandler", "has_bare_line_ending"]
