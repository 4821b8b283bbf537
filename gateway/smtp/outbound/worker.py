"""Delivery to other operators: the worker that empties the outbound queue (:mod:`.queue`).

A dispatcher claims due recipients grouped by message and domain, and runs each group as one SMTP transaction
with STARTTLS (TLS >= 1.2, our client certificate, the peer verified against the trust anchors and its host name)
through aiosmtplib, to the configured route or the domain's MX, over sessions kept open between transactions
(:mod:`.pool`). The peer's answers are committed (:mod:`.results`) before the session carries anything else, so a
crash re-sends at most the one transaction in flight on each session; a live delivery renews its lease, so another
instance never takes it over.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

import aiosmtplib
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import Config, OutboundSettings
from gateway.routing.delivery import OUTBOUND_WAKE
from gateway.routing.headers import HeaderError, without_bcc
from gateway.smtp.outbound.pool import Hop, SessionPool
from gateway.smtp.outbound.queue import Group, Row, claim, extend, release
from gateway.smtp.outbound.results import Result, ResultRecorder, classify, reply_text
from gateway.store import queue as q
from gateway.store.changes import ChangeHub
from gateway.store.committer import GroupCommitter
from gateway.tasks import cancel_and_wait
from gateway.trust.certificates import outbound_client_context

log = structlog.get_logger("gateway.outbound")


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
        self.recorder = ResultRecorder(config)
        self.pool = SessionPool(self.settings, self.tls, config.hostname)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._dispatch(), name="outbound-dispatch")

    def kick(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        """Stop claiming; deliveries in flight get a moment to finish, then their claims lapse by lease."""
        await cancel_and_wait(self._task)
        self._task = None
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=5)
            pending = list(self._inflight)
            for task in pending:
                task.cancel()  # each gives its claim back (see _deliver) so the next start retries at once
            if pending:
                await asyncio.wait(pending, timeout=5)
        self.hub.unwatch(OUTBOUND_WAKE, self._wake)
        self.pool.close()

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
                    await self.committer.run(lambda s: release(s, group, lease))
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
        while ledger.lease is not None and ledger.recording is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds / 3)
                return
            async def renew(session: AsyncSession, held: q.Lease = ledger.lease) -> q.Lease | None:
                return await extend(session, group, held, seconds)

            try:
                ledger.lease = await self.committer.run(renew)
            except Exception:
                log.warning("outbound.lease_not_renewed", message_id=group.message_id)
                return

    async def next_hops(self, domain: str) -> list[Hop] | str:
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
                last = f"{host}:{port}: {message}"
                if isinstance(code, int) and code >= 400:
                    last = reply_text(code, message)
                if isinstance(code, int) and 500 <= code < 600:
                    return {r.id: Result("permanent", last, host) for r in group.rows}
                log.info("outbound.hop_failed", host=host, port=port, reason=last[:200])
        return {r.id: Result("temporary", last) for r in group.rows}

    async def _transaction(self, host: str, port: int, group: Group, ledger: Ledger | None) -> dict[int, Result]:
        hop = (host, port)
        client = self.pool.take(hop)
        if client is not None:
            try:
                return await self._on(client, hop, host, group, ledger)
            except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, ConnectionError):
                if ledger is not None and ledger.recording is not None:
                    raise  # answered already: never sent again from here
                # the peer closed the idle session meanwhile: open a new one
        return await self._on(await self.pool.connect(hop), hop, host, group, ledger)

    async def _on(self, client: aiosmtplib.SMTP, hop: Hop, host: str, group: Group,
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
                    results[row.id] = Result(classify(exc.code), reply_text(exc.code, exc.message), host)
            if accepted:
                try:
                    response = await client.data(_without_bcc(group.raw))  # RFC 5322 3.6.3
                    outcome = Result("sent", reply_text(response.code, response.message), host, peer_dsn)
                except aiosmtplib.SMTPDataError as exc:
                    outcome = Result(classify(exc.code), reply_text(exc.code, exc.message), host)
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
                self.pool.give_back(hop, client)
            else:
                client.close()


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
                worker.committer.run(lambda s: worker.recorder.record(s, group, results)))
        await asyncio.shield(self.recording)


def _without_bcc(raw: bytes) -> bytes:
    """Another operator never gets Bcc: submission already queues the Bcc-less copy; this also covers older rows."""
    try:
        return without_bcc(raw)
    except HeaderError:
        return raw
