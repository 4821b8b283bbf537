"""The submission handler: turns each SMTP event into a call on routing and returns the reply it chose.

Nothing here decides a business rule. MAIL checks the sender is the authenticated account; RCPT asks
:func:`gateway.routing.policy.decide`; DATA (or the last BDAT chunk) refuses smuggling-prone line endings and
spoofed From or Sender headers, asks the anvil whether the account may send now, completes the message as a
submission server must (RFC 6409 8: Received, Date, Message-ID; Bcc removed from what recipients and other
operators get, kept in the sender's Sent copy), then hands the delivery to the group committer and answers
only once it is committed.

Nothing is kept per session here: what a session needs lives on aiosmtpd's session and envelope objects.

SPDX-License-Identifier: GPL-3.0-or-later
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
from gateway.ops import metrics
from gateway.psc import smtp as psc_smtp
from gateway.routing import replies
from gateway.routing.addresses import parse
from gateway.routing.delivery import Outcome, plan_submission, record_refusal
from gateway.routing.headers import HeaderError, summarise, without_bcc
from gateway.routing.policy import Decision, Target, decide
from gateway.routing.replies import Reply
from gateway.smtp.data_lines import has_bare_line_ending
from gateway.smtp.refusals import trail_of
from gateway.smtp.submission_headers import Trace, complete, new_transaction_id
from gateway.store.anatomy import prepare
from gateway.store.bulk import Plan
from gateway.store.committer import GroupCommitter
from gateway.store.events import record
from gateway.store.mailstore import StoredMessage, deliver, folder_id, store_message
from gateway.store.models import Identity

log = structlog.get_logger("gateway.smtp")

#: How long (seconds) a session may reuse a recipient's acceptance for its next messages (SubmissionHandler._decide).
DECISION_REUSE = 1.0
#: Recipients whose acceptance a session keeps at most.
DECISIONS_KEPT = 64


def _account(session: Session) -> Account | None:
    data = session.auth_data
    return data if isinstance(data, Account) else None


def _client_ip(session: Session) -> str:
    peer = session.peer
    return str(peer[0]) if isinstance(peer, tuple) else str(peer)


def _tls(session: Session) -> tuple[str | None, str | None]:
    cipher = (session.ssl or {}).get("cipher")
    if isinstance(cipher, tuple) and len(cipher) > 1:
        return str(cipher[1]), str(cipher[0])
    return None, None


def _non_ascii_without_smtputf8(envelope: Envelope, address: str) -> bool:
    """RFC 6531 3.4: a UTF-8 address is only allowed in a transaction whose MAIL said SMTPUTF8."""
    return not address.isascii() and not getattr(envelope, "smtp_utf8", False)


class SubmissionHandler:
    def __init__(self, config: Config, authenticator: Authenticator, committer: GroupCommitter,
                 listener: str) -> None:
        self.config = config
        self.authenticator = authenticator
        self.committer = committer
        self.listener = listener
        #: Summary rows being written for sessions that ended (kept only until written).
        self._flushing: set[asyncio.Task[None]] = set()

    # --- refusals: bounded per session (gateway.smtp.refusals) -------------------------------------------------
    async def _refused(self, session: Session, account: Account, decision: Decision) -> None:
        if trail_of(session).admit(decision.kind, rule=decision.rule, actor=account.address,
                                   mailbox_id=account.id, reply=str(decision.reply)):
            await self.committer.run(lambda s: record_refusal(s, account, decision))

    def session_closed(self, session: Session) -> None:
        """Called by the protocol when the connection ends: the withheld refusals' summary rows are written."""
        trail = getattr(session, "refusal_trail", None)
        due = trail.take() if trail is not None else []
        if not due:
            return

        async def unit(db: Any) -> None:
            for kind, withheld in due:
                await record(db, kind, "refused", count=withheld.count, summary=True, **withheld.fields)

        async def write() -> None:
            try:
                await self.committer.run(unit)
            except Exception:
                log.exception("smtp.refusal_summary", outcome="failed", client=_client_ip(session))

        task = asyncio.get_running_loop().create_task(write())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    # --- EHLO -------------------------------------------------------------------------------------------
    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        responses = psc_smtp.ehlo(self.authenticator, responses)  # OAUTHBEARER/XOAUTH2 only with [psc]
        return [*responses[:-1], "250-ENHANCEDSTATUSCODES", "250-PIPELINING", responses[-1]]

    # --- AUTH (RFC 4954; PLAIN RFC 4616, LOGIN) --------------------------------------------------------------
    async def _login(self, server: SMTP, username: bytes, password: bytes, mechanism: str) -> AuthResult:
        assert server.session is not None
        try:
            user, secret = username.decode("utf-8"), password.decode("utf-8")
        except UnicodeDecodeError:
            return AuthResult(success=False, handled=False, message=str(replies.AUTH_INVALID))
        result = await self.authenticator.login(user, secret, _client_ip(server.session), "smtp",
                                                mechanism=mechanism)
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
        return await self._login(server, username, password, "PLAIN")

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
        return await self._login(server, username, password, "LOGIN")

    # --- AUTH OAUTHBEARER (RFC 7628) and XOAUTH2: Pro Sante Connect tokens (gateway/psc) ---------------------
    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        return await psc_smtp.auth(server, self.authenticator, args, "OAUTHBEARER")

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        return await psc_smtp.auth(server, self.authenticator, args, "XOAUTH2")

    # --- Transaction -----------------------------------------------------------------------------------
    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        account = _account(session)
        if account is None:
            return "530 5.7.0 Authentication required"
        if address in ("", "<>"):
            return str(replies.NULL_SENDER)
        if _non_ascii_without_smtputf8(envelope, address):
            return str(replies.UTF8_WITHOUT_SMTPUTF8)
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
        if _non_ascii_without_smtputf8(envelope, address):
            return str(replies.UTF8_WITHOUT_SMTPUTF8)
        decision = await self._decide(session, account, address)
        if not decision.accepted:
            await self._refused(session, account, decision)
            return str(decision.reply)
        assert decision.target is not None
        if decision.target.address not in envelope.rcpt_tos:
            envelope.rcpt_tos.append(decision.target.address)
            envelope.rcpt_options.extend(rcpt_options)
            envelope.targets.append(decision.target)  # type: ignore[attr-defined]
        return str(decision.reply)

    async def _decide(self, session: Session, account: Account, address: str) -> Decision:
        """R1-R5, R8 for one recipient, from facts read at most :data:`DECISION_REUSE` seconds ago.

        A session sending message after message to the same recipients reuses the acceptance it was given a
        moment ago instead of reading the same row again; past that age (or for a refusal, or with a mailbox
        quota, which every message changes) the facts are read anew, so a mailbox disabled or an identity
        no longer qualifiée is seen within that delay, as if the DATA had taken that long.
        """
        now = asyncio.get_running_loop().time()
        reuse = self.config.limits.mailbox_quota <= 0
        kept: dict[tuple[int, str], tuple[float, Decision]] | None = (
            getattr(session, "decisions", None) if reuse else None)
        key = (account.id, address.lower())
        if kept is not None:
            found = kept.get(key)
            if found is not None and now - found[0] < DECISION_REUSE:
                return found[1]
        async with self.committer.facts() as db:  # one autocommit statement: the latest commits
            decision = await decide(db, self.config, account, address)
        if reuse and decision.accepted:
            if kept is None or len(kept) >= DECISIONS_KEPT:
                kept = session.decisions = {}  # type: ignore[attr-defined]
            kept[key] = (now, decision)
        return decision

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
        return await asyncio.to_thread(package, raw, qualified.__contains__,
                                       self.config.software_reference) or raw

    @metrics.observe_data()  # transactions by outcome and the DATA → 250 latency, per listener
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        account = _account(session)
        assert account is not None and envelope.mail_from is not None
        raw = envelope.original_content or b""
        envelope.original_content = envelope.content = None  # one copy of the message in memory, not three
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
        if summary.sender_addresses not in ((), (account.address,)):  # RFC 5322 3.6.2: Sender is the account too
            log.info("smtp.data", outcome="refused", reason="header_sender", mailbox_id=account.id)
            return str(replies.SENDER_HEADER_SPOOFED)
        targets: list[Target] = list(envelope.targets)  # type: ignore[attr-defined]
        anvil = getattr(self.authenticator, "anvil", None)
        if anvil is not None:
            over = anvil.allow_message(_client_ip(session), account.id, len(targets))
            if over is not None:
                log.info("smtp.data", outcome="refused", reason="message_rate", mailbox_id=account.id,
                         client=_client_ip(session))
                return str(replies.MESSAGE_RATE.with_text(over) if over.isascii() else replies.MESSAGE_RATE)
        if self.config.documents is not None and self.config.documents.package_outgoing:
            raw = await self._package(raw)
        version, cipher = _tls(session)
        transaction_id = new_transaction_id()
        trace = Trace(helo=session.host_name or "", client_ip=_client_ip(session), hostname=self.config.hostname,
                      tls_version=version, cipher=cipher, account=account, transaction_id=transaction_id,
                      utf8=bool(getattr(envelope, "smtp_utf8", False)))
        sent_copy, summary = complete(raw, summary, trace)
        # RFC 5322 3.6.3: recipients (and other operators) never see Bcc; the sender's Sent copy keeps it.
        raw = without_bcc(sent_copy) if summary.has_bcc else sent_copy
        separate_sent = sent_copy if raw is not sent_copy else None
        mail_from = envelope.mail_from
        prepared = prepare(raw)  # the anatomy and index rows, before the write lock rather than under it

        async def unit(db: Any) -> Plan | Outcome:
            planned: Plan | Outcome = await plan_submission(db, self.config, account, mail_from, targets, raw,
                                                            summary)
            if isinstance(planned, Plan):
                planned.prepared = prepared
                if separate_sent is not None:
                    await _file_sent_copy(db, planned, account, mail_from, separate_sent)
            return planned

        try:
            outcome: Outcome = await self.committer.run(unit)
        except Exception:
            log.exception("smtp.data", outcome="temporary_failure", mailbox_id=account.id)
            return str(replies.TEMPORARY_FAILURE)
        log.info("smtp.transaction", outcome="accepted" if outcome.message_id else "refused",
                 listener=self.listener, mailbox_id=account.id, message_id=outcome.message_id,
                 smtp_id=transaction_id, recipients=len(outcome.delivered), refused=len(outcome.refused),
                 size=len(raw), bcc=separate_sent is not None)
        return str(outcome.reply)


async def _file_sent_copy(db: Any, plan: Plan, account: Account, mail_from: str, original: bytes) -> None:
    """The sender's Sent folder gets the message as written (with Bcc); the plan's own copy goes only to
    recipients and the outbound queue."""
    plan.placements = [p for p in plan.placements if not (p.mailbox_id == account.id and p.folder == "Sent")]
    stored = plan.message
    message_id = await store_message(db, StoredMessage(
        raw=original, mail_from=mail_from, rcpt_to=list(stored.rcpt_to), sender_mailbox_id=account.id,
        message_id_header=stored.message_id_header, subject=stored.subject, header_from=stored.header_from))
    await deliver(db, message_id, await folder_id(db, account.id, "Sent"), "\\Seen")


__all__ = ["Decision", "SubmissionHandler"]
