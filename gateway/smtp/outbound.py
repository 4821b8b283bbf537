"""Delivery to other operators: the durable outbound queue in the store, and the worker that empties it.

* Mail for a whitelisted remote domain is queued per recipient in the transaction that stores the message
  (:func:`gateway.routing.delivery.enqueue_outbound`), so "250" to our sender means it cannot be lost.
* The table is a queue of the store's primitive (:data:`QUEUE`, :mod:`gateway.store.queue`). A dispatcher claims
  due recipients, grouped by message and domain (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several
  instances share one queue; SQLite's conditional update of the lease). Claiming moves ``next_attempt_at``
  forward by a lease: if the process dies mid-delivery the rows come due again by themselves (at-least-once
  delivery; nothing is lost).
* Each group is delivered over SMTP with STARTTLS (TLS ≥ 1.2, our client certificate, the peer verified against
  the trust anchors and its host name) by aiosmtplib, to the configured route or the domain's MX. Sessions
  are kept open for a while and reused for the next transactions to the same hop.
* Per recipient: 2xx = sent; 5xx = failed at once; 4xx or no connection = retried on ``retry_schedule`` until
  ``max_age``. A DSN (RFC 3464) is filed in the sender's INBOX on final failure, and on success when asked
  (NOTIFY=SUCCESS) and the peer does not report it itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiosmtplib
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import Config, OutboundSettings
from gateway.routing.delivery import OUTBOUND_WAKE
from gateway.routing.headers import HeaderError, without_bcc
from gateway.smtp import dsn
from gateway.store import queue as q
from gateway.store.changes import ChangeHub
from gateway.store.committer import GroupCommitter
from gateway.store.events import now, record
from gateway.store.mailstore import StoredMessage, deliver, folder_id, store_message
from gateway.store.models import Mailbox, Message, OutboundRecipient
from gateway.trust.certificates import outbound_client_context

log = structlog.get_logger("gateway.outbound")

QUEUED, SENT, FAILED = "queued", "sent", "failed"
#: Rows looked at per claim; the due ones are grouped by (message, domain).
CLAIM_SCAN = 200
MAX_RECIPIENTS_PER_TRANSACTION = 100
#: An open session to a next hop is reused for this long after its last transaction.
IDLE_SECONDS = 20.0

#: The outbound queue: one unit is the due recipients of one message at one domain (one SMTP transaction, at
#: most MAX_RECIPIENTS_PER_TRANSACTION); a claimed row stays ``queued`` and its lease is its due time. A final
#: failure (5xx, or ``max_age`` reached) is ``failed``, with its DSN.
QUEUE = q.Queue(OutboundRecipient, waiting=(QUEUED,), dead=FAILED, group=("message_id", "domain"),
                per_unit=MAX_RECIPIENTS_PER_TRANSACTION, wake=OUTBOUND_WAKE)


@dataclass(frozen=True)
class Row:
    id: int
    message_id: int
    sender_mailbox_id: int | None
    mail_from: str
    recipient: str
    domain: str
    notify: str | None
    orcpt: str | None
    ret: str | None
    envid: str | None
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class Group:
    """Recipients of one message at one domain: one SMTP transaction."""

    message_id: int
    domain: str
    rows: tuple[Row, ...]
    raw: bytes
    received_at: datetime
    lease: q.Lease | None = None


@dataclass(frozen=True)
class Result:
    kind: str  # "sent" | "permanent" | "temporary"
    reply: str
    remote_mta: str | None = None
    #: The peer advertised DSN and got our NOTIFY/ORCPT: it reports success itself.
    peer_reports: bool = False


def _as_row(r: OutboundRecipient) -> Row:
    return Row(r.id, r.message_id, r.sender_mailbox_id, r.mail_from, r.recipient, r.domain, r.notify, r.orcpt,
               r.ret, r.envid, r.attempts, r.created_at)


def _aware(value: datetime) -> datetime:
    """SQLite returns naive datetimes (stored as UTC); PostgreSQL returns aware ones."""
    return value if value.tzinfo is not None else value.replace(tzinfo=now().tzinfo)


async def claim(session: AsyncSession, groups: int, lease: float) -> list[Group]:
    """Claim up to ``groups`` due (message, domain) groups for this worker, for ``lease`` seconds."""
    units = await q.claim(session, QUEUE, units=groups, lease=lease, scan=CLAIM_SCAN)
    if not units:
        return []
    message_ids = {unit.key[0] for unit in units}
    messages = {m.id: (m.raw, m.received_at) for m in (await session.execute(
        select(Message.id, Message.raw, Message.received_at).where(Message.id.in_(message_ids)))).all()}
    result = []
    for unit in units:
        message_id, domain = unit.key
        raw, received = messages[message_id]
        result.append(Group(message_id, domain, tuple(_as_row(m) for m in unit.rows), raw, _aware(received),
                            unit.lease))
    return result


def _classify(code: int, message: str) -> str:
    return "sent" if 200 <= code < 300 else "permanent" if 500 <= code < 600 else "temporary"


def _reply(code: int, message: str) -> str:
    return f"{code} {' '.join(message.split())}"[:900]


def _dsn_options(row: Row) -> list[str]:
    options = []
    if row.notify:
        options.append(f"NOTIFY={row.notify}")
    if row.orcpt:
        options.append(f"ORCPT={row.orcpt}")
    return options


class OutboundWorker:
    """Claims due recipients and delivers them, at most ``concurrency`` SMTP transactions at a time."""

    def __init__(self, config: Config, committer: GroupCommitter, hub: ChangeHub) -> None:
        assert config.outbound is not None
        self.config = config
        self.settings: OutboundSettings = config.outbound
        self.committer = committer
        self.hub = hub
        self.tls = outbound_client_context(config.tls, self.settings)
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._wake = hub.watch(OUTBOUND_WAKE)
        self.postmaster = f"mailer-daemon@{sorted(config.domains)[0]}"
        self._idle: dict[tuple[str, int], list[tuple[float, aiosmtplib.SMTP]]] = {}

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._dispatch(), name="outbound-dispatch")

    def kick(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        """Stop claiming; deliveries in flight get a moment to finish, then their claims lapse by lease."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=5)
            pending = list(self._inflight)
            for task in pending:
                task.cancel()  # each gives its claim back (see _deliver) so the next start retries at once
            if pending:
                await asyncio.wait(pending, timeout=5)
        self.hub.unwatch(OUTBOUND_WAKE, self._wake)
        self._close_idle()

    async def _dispatch(self) -> None:
        while True:
            free = self.settings.concurrency - len(self._inflight)
            if free <= 0:
                await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
                continue
            self._wake.clear()
            try:
                groups = await self.committer.run(
                    lambda s, n=free: claim(s, n, self.settings.lease))  # type: ignore[misc]
            except Exception:
                log.exception("outbound.claim_failed")
                groups = []
            for group in groups:
                task = asyncio.get_running_loop().create_task(self._deliver(group))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
            if not groups:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval)

    # --- one SMTP transaction -------------------------------------------------------------------------------
    async def _deliver(self, group: Group) -> None:
        ledger = Ledger(self, group)
        try:
            results = await self._kept(group, ledger)
        except asyncio.CancelledError:
            if ledger.recording is not None:  # the peer answered: its answer is committed, not given back
                await asyncio.wait({ledger.recording}, timeout=5)
            elif ledger.lease is not None:  # stopping before an answer: due again now rather than after the lease
                lease = ledger.lease
                with contextlib.suppress(Exception):
                    await self.committer.run(lambda s: _release(s, group, lease))
            raise
        except Unrecorded:  # the claim lapses by lease; the peer's dedupe keeps the resend from doubling
            log.exception("outbound.record_failed", message_id=group.message_id)
            return
        except Exception as exc:  # never let one group kill the worker; it is retried
            log.exception("outbound.attempt_failed", message_id=group.message_id)
            results = {r.id: Result("temporary", f"internal error: {type(exc).__name__}") for r in group.rows}
        if ledger.recording is not None:
            return  # recorded on the connection, before it carried anything else
        try:
            await ledger.record(results)
        except Exception:
            log.exception("outbound.record_failed", message_id=group.message_id)

    async def _kept(self, group: Group, ledger: Ledger) -> dict[int, Result]:
        """The attempt, with the group's lease renewed while it runs: only a dead worker's lease runs out, so a
        live but slow delivery is never taken over and sent a second time by another instance."""
        stop = asyncio.Event()
        keeper = asyncio.ensure_future(self._keep(group, ledger, stop))
        try:
            return await self.attempt(group, ledger)
        finally:
            stop.set()
            await asyncio.wait({keeper}, timeout=5)  # a renewal being committed ends first: its lease is known

    async def _keep(self, group: Group, ledger: Ledger, stop: asyncio.Event) -> None:
        seconds = self.settings.lease
        ids = [r.id for r in group.rows]
        while ledger.lease is not None and ledger.recording is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds / 3)
                return
            async def renew(session: AsyncSession, held: q.Lease = ledger.lease) -> q.Lease | None:
                return await q.extend(session, QUEUE, held, ids, seconds)

            try:
                ledger.lease = await self.committer.run(renew)
            except Exception:
                log.warning("outbound.lease_not_renewed", message_id=group.message_id)
                return

    async def next_hops(self, domain: str) -> list[tuple[str, int]] | str:
        """Where to deliver ``domain``: the static route, else its MX hosts by preference, else the domain.

        A string is a permanent reason not to deliver (a null MX, RFC 7505).
        """
        route = self.settings.routes.get(domain)
        if route is not None:
            return [route]
        if not self.settings.use_mx:
            return [(domain, self.settings.port)]
        try:
            import dns.asyncresolver
            import dns.exception
            import dns.resolver

            answer = await dns.asyncresolver.resolve(domain, "MX", lifetime=self.settings.connect_timeout)
            records = sorted(((r.preference, str(r.exchange).rstrip(".")) for r in answer), key=lambda t: t[0])
        except ImportError:
            return [(domain, self.settings.port)]
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return [(domain, self.settings.port)]  # implicit MX (RFC 5321 5.1)
        except dns.exception.DNSException as exc:
            raise OSError(f"MX lookup for {domain} failed: {exc}") from None
        if len(records) == 1 and records[0][1] in ("", "."):
            return f"550 5.1.10 {domain} does not accept mail (null MX, RFC 7505)"
        return [(host, self.settings.port) for _, host in records]

    async def attempt(self, group: Group, ledger: Ledger | None = None) -> dict[int, Result]:
        """Try each next hop in turn until one answers; per-recipient results, recorded through ``ledger``
        (when given) before the session that got them carries another transaction."""
        try:
            hops = await self.next_hops(group.domain)
        except OSError as exc:  # DNS trouble: retried like an unreachable host
            return {r.id: Result("temporary", str(exc)[:300]) for r in group.rows}
        if isinstance(hops, str):
            return {r.id: Result("permanent", hops) for r in group.rows}
        last = "no next hop"
        for host, port in hops:
            try:
                return await self._transaction(host, port, group, ledger)
            except (aiosmtplib.SMTPException, OSError, ssl.SSLError, TimeoutError) as exc:
                code = getattr(exc, "code", None)
                message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
                last = _reply(code, message) if isinstance(code, int) and code >= 400 else f"{host}:{port}: {message}"
                if isinstance(code, int) and 500 <= code < 600:
                    return {r.id: Result("permanent", last, host) for r in group.rows}
                log.info("outbound.hop_failed", host=host, port=port, reason=last[:200])
        return {r.id: Result("temporary", last) for r in group.rows}

    # --- connections: kept open between transactions to the same next hop (no TLS handshake per message) ---
    async def _connect(self, host: str, port: int) -> aiosmtplib.SMTP:
        s = self.settings
        client = aiosmtplib.SMTP(hostname=host, port=port, local_hostname=self.config.hostname,
                                 tls_context=self.tls, start_tls=True, timeout=s.command_timeout)
        await client.connect(timeout=s.connect_timeout)
        return client

    def _take_idle(self, hop: tuple[str, int]) -> aiosmtplib.SMTP | None:
        idle = self._idle.get(hop, [])
        while idle:
            since, client = idle.pop()
            if client.is_connected and time.monotonic() - since < IDLE_SECONDS:
                return client
            client.close()
        return None

    def _release(self, hop: tuple[str, int], client: aiosmtplib.SMTP) -> None:
        idle = self._idle.setdefault(hop, [])
        if client.is_connected and len(idle) < self.settings.concurrency:
            idle.append((time.monotonic(), client))
        else:
            client.close()

    def _close_idle(self) -> None:
        for idle in self._idle.values():
            for _, client in idle:
                client.close()
        self._idle.clear()

    async def _transaction(self, host: str, port: int, group: Group, ledger: Ledger | None) -> dict[int, Result]:
        hop = (host, port)
        client = self._take_idle(hop)
        if client is not None:
            try:
                return await self._on(client, hop, host, group, ledger)
            except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, ConnectionError):
                if ledger is not None and ledger.recording is not None:
                    raise  # answered already: never sent again from here
                # the peer closed the idle session meanwhile: open a new one
        return await self._on(await self._connect(host, port), hop, host, group, ledger)

    async def _on(self, client: aiosmtplib.SMTP, hop: tuple[str, int], host: str, group: Group,
                  ledger: Ledger | None = None) -> dict[int, Result]:
        """One mail transaction on an open session; the session goes back to the pool when all went well.

        The peer's answers are committed (``ledger``) before the session is given back, so a crash re-sends at
        most the one transaction in flight on each session, never one the peer answered and we recorded.
        """
        reusable = False
        try:
            peer_dsn = client.supports_extension("dsn")
            first = group.rows[0]
            options = []
            if peer_dsn and first.ret:
                options.append(f"RET={first.ret}")
            if peer_dsn and first.envid:
                options.append(f"ENVID={first.envid}")
            await client.mail(first.mail_from, options=options)
            results: dict[int, Result] = {}
            accepted: list[Row] = []
            for row in group.rows:
                try:
                    await client.rcpt(row.recipient, options=_dsn_options(row) if peer_dsn else [])
                    accepted.append(row)
                except aiosmtplib.SMTPRecipientRefused as exc:
                    results[row.id] = Result(_classify(exc.code, exc.message), _reply(exc.code, exc.message), host)
            if accepted:
                try:
                    response = await client.data(_without_bcc(group.raw))  # RFC 5322 3.6.3
                    outcome = Result("sent", _reply(response.code, response.message), host, peer_dsn)
                except aiosmtplib.SMTPDataError as exc:
                    outcome = Result(_classify(exc.code, exc.message), _reply(exc.code, exc.message), host)
                results.update({row.id: outcome for row in accepted})
            else:
                await client.rset()
            if ledger is not None:
                try:
                    await ledger.record(results)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    raise Unrecorded(str(exc)) from exc
            reusable = True
            return results
        finally:
            if reusable:
                self._release(hop, client)
            else:
                client.close()

    # --- results --------------------------------------------------------------------------------------------
    async def record_results(self, session: AsyncSession, group: Group, results: dict[int, Result]) -> None:
        """Record the peer's answers. They are facts whether or not the claim is still current (the peer has the
        message), so they are written without the lease's condition."""
        at = now()
        retries = q.Retry(q.Schedule(tuple(self.settings.retry_schedule)))
        reports: dict[str, list[tuple[Row, dsn.RecipientStatus]]] = defaultdict(list)
        for row in group.rows:
            result = results.get(row.id) or Result("temporary", "no result")
            notify = set((row.notify or "FAILURE").split(","))
            values: dict[str, Any] = {"last_reply": result.reply, "remote_mta": result.remote_mta}
            kind = result.kind
            if kind == "temporary" and (at - _aware(row.created_at)).total_seconds() >= self.settings.max_age:
                kind = "expired"
            if kind == "sent":
                await q.finish(session, QUEUE, None, [row.id], SENT, finished_at=at, **values)
                if "SUCCESS" in notify and not result.peer_reports:
                    reports["relayed"].append((row, self._status(row, "relayed", "2.0.0", result, at)))
            elif kind in ("permanent", "expired"):
                await q.finish(session, QUEUE, None, [row.id], FAILED, finished_at=at, **values)
                status = _enhanced(result.reply, "5.0.0") if kind == "permanent" else "4.4.7"
                if "FAILURE" in notify:
                    reports["failed"].append((row, self._status(row, "failed", status, result, at)))
            else:
                await q.retry(session, QUEUE, None, [row.id], attempts=row.attempts, policy=retries, at=at, **values)
            outcome = {"sent": "delivered", "permanent": "failed", "expired": "expired"}.get(kind, "deferred")
            await record(session, f"outbound.{outcome}", outcome, actor=row.mail_from,
                         mailbox_id=row.sender_mailbox_id, message_id=row.message_id, domain=row.domain,
                         attempts=row.attempts, reply=result.reply[:300], recipient=row.recipient)
        for action, items in reports.items():
            await self._file_dsn(session, group, action, items)

    def _status(self, row: Row, action: str, status: str, result: Result, at: datetime) -> dsn.RecipientStatus:
        return dsn.RecipientStatus(row.recipient, action, status, row.orcpt, result.remote_mta, result.reply, at)

    async def _file_dsn(self, session: AsyncSession, group: Group, action: str,
                        items: list[tuple[Row, dsn.RecipientStatus]]) -> None:
        """File the report in the sender's INBOX (our senders are always local mailboxes)."""
        by_sender: dict[int, list[tuple[Row, dsn.RecipientStatus]]] = defaultdict(list)
        for row, status in items:
            if row.sender_mailbox_id is not None and row.mail_from:
                by_sender[row.sender_mailbox_id].append((row, status))
        for mailbox_id, entries in by_sender.items():
            mailbox = await session.get(Mailbox, mailbox_id)
            if mailbox is None or not mailbox.active:
                continue
            first = entries[0][0]
            try:
                raw = dsn.build(reporting_mta=self.config.hostname, postmaster=self.postmaster, to=mailbox.address,
                                recipients=[s for _, s in entries], original=group.raw, arrival=group.received_at,
                                envid=first.envid, ret=first.ret,
                                software_reference=self.config.software_reference)
            except HeaderError:
                raw = dsn.build(reporting_mta=self.config.hostname, postmaster=self.postmaster, to=mailbox.address,
                                recipients=[s for _, s in entries], original=b"\r\n", arrival=group.received_at,
                                envid=first.envid, software_reference=self.config.software_reference)
            message_id = await store_message(session, StoredMessage(
                raw=raw, mail_from="", rcpt_to=[mailbox.address], sender_mailbox_id=None, message_id_header=None,
                subject="Delivery status notification", header_from=self.postmaster))
            await deliver(session, message_id, await folder_id(session, mailbox_id, "INBOX"))
            await record(session, "outbound.dsn", action, actor=self.postmaster, mailbox_id=mailbox_id,
                         message_id=message_id, original_message_id=group.message_id, recipients=len(entries))


class Unrecorded(Exception):
    """The peer answered but its answer could not be committed: the group waits for its lease to run out."""


class Ledger:
    """Where one group's answers are committed, once. The commit is shielded from a stop: an answer the peer
    gave is recorded even when the worker is being cancelled, so it is never given back and sent again."""

    def __init__(self, worker: OutboundWorker, group: Group) -> None:
        self.worker = worker
        self.group = group
        self.recording: asyncio.Future[Any] | None = None
        #: The group's claim, renewed while the delivery runs; None once it lapsed and was taken over.
        self.lease: q.Lease | None = group.lease

    async def record(self, results: dict[int, Result]) -> None:
        if self.recording is None:
            worker, group = self.worker, self.group
            self.recording = asyncio.ensure_future(
                worker.committer.run(lambda s: worker.record_results(s, group, results)))
        await asyncio.shield(self.recording)


async def _release(session: AsyncSession, group: Group, lease: q.Lease) -> None:
    """Give the group back unanswered, due now and this attempt not counted (unless its lease was taken over)."""
    await q.release(session, QUEUE, lease, [r.id for r in group.rows])


def _enhanced(reply: str, default: str) -> str:
    parts = reply.split()
    if len(parts) > 1 and parts[1].count(".") == 2 and parts[1][0] in "245":
        return parts[1]
    return default


# --- administration (gateway queue ...) ---------------------------------------------------------------------
async def list_queue(session: AsyncSession, state: str | None = None, limit: int = 1000) -> list[OutboundRecipient]:
    query = select(OutboundRecipient).order_by(OutboundRecipient.id).limit(limit)
    if state:
        query = query.where(OutboundRecipient.state == state)
    return list((await session.execute(query)).scalars().all())


async def retry_now(session: AsyncSession, ids: list[int] | None = None) -> int:
    """Make queued recipients due at once (all, or those ``ids``); returns how many."""
    return await q.due_now(session, QUEUE, ids or None)


def _without_bcc(raw: bytes) -> bytes:
    """Another operator never gets Bcc: submission already queues the Bcc-less copy; this also covers older rows."""
    try:
        return without_bcc(raw)
    except HeaderError:
        return raw
