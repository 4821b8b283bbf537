"""The IMAP harness of tests/imap/imap_support.py, starting gateway.imap.engine's server (fast timers)."""

from __future__ import annotations

from dataclasses import dataclass, field

from imap.imap_support import ALICE, BOB, PASSWORD, ImapHarness, message
from support.pki import PKIFiles
from support.process import free_port

from gateway.auth.accounts import Authenticator
from gateway.auth.throttle import LoginThrottle
from gateway.config import Config, Limits, Listen, TLSSettings
from gateway.imap.engine.server import Timers, start_imap
from gateway.store import db

__all__ = ["ALICE", "BOB", "PASSWORD", "EngineHarness", "make_engine", "message"]


@dataclass
class EngineHarness(ImapHarness):
    timers: Timers = field(default_factory=lambda: Timers(account_check=0.0))

    async def _start(self) -> None:
        await db.migrate(self.url)
        self.engine = db.create_engine(self.url)
        self.sessions = db.sessionmaker(self.engine)
        tls = TLSSettings(self.pki.server_cert, self.pki.server_key, client_ca=self.pki.ca_bundle)
        self.imap_port, self.imaps_port = free_port(), free_port()
        self.config = Config(
            hostname="mail.gateway.test", domains=frozenset({"pro.gateway.test"}),
            patient_domain="patient.gateway.test", database_url=self.url, tls=tls, submission=None,
            submissions=None, imap=Listen("127.0.0.1", self.imap_port), imaps=Listen("127.0.0.1", self.imaps_port),
            limits=self.limits)
        authenticator = Authenticator(db.read_sessionmaker(self.engine),
                                      LoginThrottle(self.limits.failed_logins, self.limits.failed_login_window))
        self.service = await start_imap(self.config, self.sessions, authenticator, self.hub,  # type: ignore[assignment]
                                        timers=self.timers)


def make_engine(url: str, pki: PKIFiles, limits: Limits | None = None, timers: Timers | None = None
                ) -> EngineHarness:
    harness = EngineHarness(url, pki, limits or Limits(message_size=2 * 1024 * 1024, failed_logins=3,
                                                       failed_login_window=600.0))
    if timers is not None:
        harness.timers = timers
    harness.start()
    harness.add_account(ALICE)
    harness.add_account(BOB)
    return harness
