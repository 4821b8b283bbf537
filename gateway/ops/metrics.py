"""Every metric the gateway exports, defined here and nowhere else, and the store's queues read at scrape time.

Labels come from closed vocabularies (listener names, IMAP command names, SASL mechanisms, R-numbers, ANS
codes, outbox states): each helper maps what it is given onto one of them and anything else becomes ``other``,
so no INS, address or name can reach a label, and no caller can make the number of series grow without bound.

Several worker processes (``[gateway] workers``): prometheus_client's multiprocess mode. The supervisor puts
``PROMETHEUS_MULTIPROC_DIR`` in the environment before the workers start (gateway/ops/multiprocess.py), each
process writes its values to files there, and ``/metrics`` merges the files of every worker, living or dead
(counters keep what a restarted worker had counted; the IMAP session gauge counts living workers only).
Without that variable, values live in this process and ``/metrics`` reads them directly.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import DateTime, String, column, func, select, table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.codes.rules import Rule
from gateway.store import events

#: The registry the gateway's own metrics live in (process metrics are added by gateway/ops/http.py).
REGISTRY = CollectorRegistry(auto_describe=True)

OTHER = "other"
_DataHandler = Callable[..., Awaitable[str]]

# --- vocabularies -----------------------------------------------------------------------------------------------
#: Listener names, as the daemon calls them (config keys: smtp.submission, smtp.submissions, relay, imap...).
LISTENERS = frozenset({"submission", "submissions", "relay", "imap", "imaps"})
PROTOCOLS = frozenset({"smtp", "imap", "web", "card", "hl7"})
#: SASL mechanisms (RFC 4422 registry names) and the IMAP LOGIN command, which counts as ``LOGIN``.
MECHANISMS = frozenset({"PLAIN", "LOGIN", "EXTERNAL", "XOAUTH2", "OAUTHBEARER", "CRAM-MD5", "SCRAM-SHA-1",
                        "SCRAM-SHA-256", "CERTIFICATE"})
#: gateway.auth's LoginOutcome values (ok, invalid, throttled), and refusals before any password is checked.
LOGIN_OUTCOMES = frozenset({"ok", "invalid", "throttled", "refused", "disabled"})
#: An SMTP transaction ends accepted (2xx after DATA), deferred (4xx), refused (5xx) or aborted (client gone).
SMTP_OUTCOMES = frozenset({"accepted", "deferred", "refused", "aborted"})
#: Commands of IMAP4rev2 (RFC 9051) and the extensions the engine serves; ``UID x`` is its own name.
IMAP_COMMAND_NAMES = frozenset({
    "CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "AUTHENTICATE", "LOGIN", "ENABLE", "SELECT", "EXAMINE", "CREATE",
    "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "LIST", "LSUB", "NAMESPACE", "STATUS", "APPEND", "IDLE",
    "CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE", "SORT", "THREAD", "ID",
    "GETQUOTA", "GETQUOTAROOT", "SETQUOTA", "COMPRESS", "GETMETADATA", "SETMETADATA", "XLIST",
    "UID FETCH", "UID STORE", "UID COPY", "UID MOVE", "UID SEARCH", "UID SORT", "UID THREAD", "UID EXPUNGE",
})
IMAP_STATUSES = frozenset({"OK", "NO", "BAD", "BYE"})
RULES = frozenset(rule.value for rule in Rule)
#: States of the DMP outbox (gateway/dmp_bridge/outbox.py STATES).
DMP_STATES = ("pending", "sent", "retry", "accepted", "refused", "cancelled")
#: A received document is filed, a duplicate of one filed, or sent for review with an ANS integration code (R10).
DOCUMENT_CODES = frozenset({"filed", "duplicate", "900", "901", "902", "903", "904", "905", "906"})

#: An event outcome is a short word of the code ("refused", "qualifiée", "filed_locally") or a code of at most
#: three digits; matricules, addresses and free text never match.
_WORD = re.compile(r"[^\W\d][\w.-]{0,23}|\d{1,3}")


def pick(value: object, allowed: frozenset[str] | tuple[str, ...], *, upper: bool = False) -> str:
    """``value`` if it is one of ``allowed`` (after case folding when asked), else ``other``."""
    text = " ".join(str(value).split())
    text = text.upper() if upper else text.lower()
    return text if text in allowed else OTHER


def outcome_label(outcome: object) -> str:
    """An event outcome as a label: a word of the code, never data (see ``_WORD``)."""
    text = str(outcome)
    return text if _WORD.fullmatch(text) else OTHER


def smtp_outcome(code: int | None) -> str:
    """The outcome of an SMTP transaction from its final reply code (RFC 5321 4.2.1); None: the client went."""
    if code is None:
        return "aborted"
    return {2: "accepted", 4: "deferred", 5: "refused"}.get(code // 100, OTHER)


# --- the metrics --------------------------------------------------------------------------------------------------
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

SMTP_TRANSACTIONS = Counter(
    "gateway_smtp_transactions", "SMTP transactions by listener and outcome (accepted, deferred, refused, aborted).",
    ["listener", "outcome"], registry=REGISTRY)
SMTP_DATA_SECONDS = Histogram(
    "gateway_smtp_data_seconds", "Seconds from the end of DATA to the 250 reply (committed to the store).",
    ["listener"], buckets=_LATENCY, registry=REGISTRY)
RULE_DECISIONS = Counter(
    "gateway_rule_decisions", "Recorded decisions of the event trail by rule number (R1-R18) and outcome.",
    ["rule", "outcome"], registry=REGISTRY)
LOGINS = Counter(
    "gateway_logins", "Login attempts by protocol, mechanism and outcome.",
    ["protocol", "mechanism", "outcome"], registry=REGISTRY)
IMAP_SESSIONS = Gauge(
    "gateway_imap_sessions", "IMAP connections open now, by listener.", ["listener"],
    multiprocess_mode="livesum", registry=REGISTRY)
IMAP_COMMANDS = Counter(
    "gateway_imap_commands", "IMAP commands by name and completion status.", ["command", "status"],
    registry=REGISTRY)
IMAP_COMMAND_SECONDS = Histogram(
    "gateway_imap_command_seconds", "Seconds from an IMAP command's last byte to its tagged completion.",
    ["command"], buckets=_LATENCY, registry=REGISTRY)
DMP_DEPOSITS = Counter(
    "gateway_dmp_deposits", "DMP outbox jobs entering each state (pending, sent, retry, accepted, refused...).",
    ["state"], registry=REGISTRY)
DOCUMENTS = Counter(
    "gateway_documents", "Received documents filed, duplicate, or sent for review by ANS integration code (R10).",
    ["code"], registry=REGISTRY)


# --- helpers the listeners call -----------------------------------------------------------------------------------
def smtp_transaction(listener: str, code: int | None, seconds: float | None = None) -> None:
    """One SMTP transaction ended with reply ``code`` (None: aborted); ``seconds`` from end of DATA to reply."""
    name = pick(listener, LISTENERS)
    outcome = smtp_outcome(code)
    SMTP_TRANSACTIONS.labels(name, outcome).inc()
    if seconds is not None and outcome == "accepted":
        SMTP_DATA_SECONDS.labels(name).observe(seconds)


def _reply_code(reply: object) -> int | None:
    text = str(reply)
    return int(text[:3]) if text[:3].isdigit() else None


def observe_data(listener: str | None = None) -> Callable[[_DataHandler], _DataHandler]:
    """Decorate an aiosmtpd ``handle_DATA`` method: count its transaction by the reply it returns and time the
    end of DATA to that reply (``listener`` given, or the handler's ``listener`` attribute)."""

    def decorate(handle: _DataHandler) -> _DataHandler:
        @functools.wraps(handle)
        async def observed(self: Any, *args: Any, **kwargs: Any) -> str:
            name = listener if listener is not None else str(getattr(self, "listener", ""))
            started = time.monotonic()
            try:
                reply = await handle(self, *args, **kwargs)
            except BaseException:
                smtp_transaction(name, None)
                raise
            smtp_transaction(name, _reply_code(reply), time.monotonic() - started)
            return reply

        return observed

    return decorate


def login(protocol: str, mechanism: str, outcome: str) -> None:
    """One login attempt: ``outcome`` is a LoginOutcome value (ok, invalid, throttled), refused (not allowed
    here, e.g. before TLS) or disabled."""
    LOGINS.labels(pick(protocol, PROTOCOLS), pick(mechanism, MECHANISMS, upper=True),
                  pick(outcome, LOGIN_OUTCOMES)).inc()


def imap_command(command: str, status: str, seconds: float | None = None) -> None:
    """One IMAP command completed with ``status`` (OK, NO, BAD; BYE when the server ended the session)."""
    name = pick(command, IMAP_COMMAND_NAMES, upper=True)
    IMAP_COMMANDS.labels(name, pick(status, IMAP_STATUSES, upper=True)).inc()
    if seconds is not None:
        IMAP_COMMAND_SECONDS.labels(name).observe(seconds)


def imap_session(listener: str, delta: int) -> None:
    """An IMAP connection opened (``+1``) or closed (``-1``) on ``listener``."""
    IMAP_SESSIONS.labels(pick(listener, LISTENERS)).inc(delta)


def count_event(row: Mapping[str, Any]) -> None:
    """Count one event of the trail (an observer of gateway.store.events, subscribed below at import).

    Counted when the event is written, like its log line: an event whose transaction then rolls back was counted.
    """
    rule = row.get("rule")
    outcome = str(row.get("outcome") or "")
    if rule:
        RULE_DECISIONS.labels(pick(rule, RULES, upper=True), outcome_label(outcome)).inc()
    kind = str(row.get("kind") or "")
    if kind.startswith("dmp.deposit.") and outcome in DMP_STATES:
        DMP_DEPOSITS.labels(outcome).inc()
    elif kind in ("document.filed", "document.review_opened"):
        DOCUMENTS.labels(pick(outcome, DOCUMENT_CODES)).inc()


# --- the store's queues, read when Prometheus scrapes ---------------------------------------------------------------
#: Queue name → (states still waiting for work, a state that means given up).
QUEUES = {"outbound": (("queued",), "failed"), "filing": (("pending",), "failed"),
          "dmp": (("pending", "sent", "retry"), "refused")}
#: Queue name → its table (OutboundRecipient, FilingJob, DmpDeposit; tests/architecture checks the names).
QUEUE_TABLES = {"outbound": "outbound_queue", "filing": "filing_jobs", "dmp": "dmp_deposits"}
#: Longest a scrape waits for the store; past it the queue gauges are left out and gateway_store_up is 0.
STORE_TIMEOUT = 1.0


@dataclass
class QueueFigures:
    """What one scrape read from the store."""

    ok: bool = False
    seconds: float = 0.0
    depth: dict[str, int] = field(default_factory=dict)
    oldest: dict[str, float] = field(default_factory=dict)
    by_state: dict[tuple[str, str], int] = field(default_factory=dict)


def _age(moment: datetime | None, now: datetime) -> float:
    if moment is None:
        return 0.0
    if moment.tzinfo is None:  # SQLite gives back naive datetimes, stored in UTC
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (now - moment).total_seconds())


async def _read_queues(session: AsyncSession) -> QueueFigures:
    """One grouped count per queue table, named rather than imported: the queues' packages sit above ops."""
    figures = QueueFigures()
    now = datetime.now(UTC)
    for queue, name in QUEUE_TABLES.items():
        waiting, given_up = QUEUES[queue]
        states = (*waiting, given_up)
        model = table(name, column("state", String), column("created_at", DateTime(timezone=True)))
        rows = await session.execute(select(model.c.state, func.count(), func.min(model.c.created_at))
                                     .where(model.c.state.in_(states)).group_by(model.c.state))
        depth, oldest = 0, None
        counts = dict.fromkeys(states, 0)
        for state, count, first in rows.all():
            counts[state] = int(count)
            if state in waiting:
                depth += int(count)
                oldest = first if oldest is None or (first is not None and first < oldest) else oldest
        figures.depth[queue] = depth
        figures.oldest[queue] = _age(oldest, now)
        figures.by_state.update({(queue, state): count for state, count in counts.items()})
    figures.ok = True
    return figures


class StoreCollector(Collector):
    """Queue depth, oldest waiting job and jobs per state of the outbound queue, filing jobs and DMP outbox.

    prometheus_client collects synchronously; the HTTP handler awaits :meth:`refresh` (bounded by
    ``STORE_TIMEOUT``) and then renders, so a scrape never blocks the event loop on the database.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self.figures = QueueFigures()
        self._lock = asyncio.Lock()

    async def refresh(self, within: float = STORE_TIMEOUT) -> QueueFigures:
        async with self._lock:  # concurrent scrapes share one round of queries
            started = time.monotonic()
            try:
                async with asyncio.timeout(within):
                    async with self.sessions() as session:
                        figures = await _read_queues(session)
            except Exception:  # the store is down or slow: say so in gateway_store_up, never fail the scrape
                figures = QueueFigures()
            figures.seconds = time.monotonic() - started
            self.figures = figures
            return figures

    def collect(self) -> Iterator[GaugeMetricFamily]:
        figures = self.figures
        yield GaugeMetricFamily("gateway_store_up", "1 when the last scrape could read the store's queues.",
                                value=1 if figures.ok else 0)
        yield GaugeMetricFamily("gateway_store_scrape_seconds", "Seconds the last scrape spent reading the store.",
                                value=figures.seconds)
        if not figures.ok:
            return
        depth = GaugeMetricFamily("gateway_queue_depth", "Jobs waiting in each durable queue.", labels=["queue"])
        oldest = GaugeMetricFamily("gateway_queue_oldest_seconds", "Age in seconds of the oldest waiting job.",
                                   labels=["queue"])
        for queue in QUEUES:
            depth.add_metric([queue], figures.depth.get(queue, 0))
            oldest.add_metric([queue], figures.oldest.get(queue, 0.0))
        jobs = GaugeMetricFamily("gateway_queue_jobs", "Jobs of each queue in a waiting or given-up state.",
                                 labels=["queue", "state"])
        for (queue, state), count in sorted(figures.by_state.items()):
            jobs.add_metric([queue, state], count)
        yield from (depth, oldest, jobs)


def multiprocess_dir() -> str | None:
    """The folder of multiprocess mode, or None when this process keeps its values in memory."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return path if path and os.path.isdir(path) else None


# Every recorded event is counted: the store tells its observers, it does not know of metrics (store sits below ops).
events.observe(count_event)
