"""Helpers of the card tests. A real PC/SC stack: pcscd with the virtual reader, virtual cards, in a private network.

pcscd runs in its own network namespace (loopback only, so the virtual reader's TCP port is never reachable
from outside) and its own mount namespace, where our temporary folder is mounted on ``/run/pcscd``: its socket
appears in that folder, and the test process reaches it through ``PCSCLITE_CSOCK_NAME``. Virtual cards join the
namespace with ``nsenter``. The tests skip, saying so, only when a piece of the stack is not installed
(``.ci/setup.d/40-pcsc.sh`` installs all of it).
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from support.pki import PKIFiles
from support.wait import until

from gateway.card import agent as agent_cli
from gateway.card import presence
from gateway.card.agent import Agent, AgentConfig, certificate_fingerprint
from gateway.card.client import GatewayClient, client_ssl_context
from gateway.card.endpoint import CardEndpoint, endpoint_ssl_context, start_card_endpoint
from gateway.ins_matching import identities
from gateway.ins_matching.insi import TEST_PATIENT
from gateway.store import db, mailstore
from gateway.store.models import Event

PRO = "dr.house@pro.gateway.test"
WORKSTATION = "consultation-1"

VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
VIRTUAL_CARD = Path(__file__).with_name("virtual_card.py")
SYSTEM_PYTHON = "/usr/bin/python3"
VPCD_PORT = 35963
READER_PREFIX = "Gateway Test PCD"
#: One socket folder for the whole run: libpcsclite reads PCSCLITE_CSOCK_NAME once per process.
_SOCKET_DIR = Path(tempfile.mkdtemp(prefix="gateway-pcsc-"))
atexit.register(shutil.rmtree, _SOCKET_DIR, True)


def missing_pieces() -> list[str]:
    missing = [tool for tool in ("pcscd", "unshare", "nsenter", "ip", "mount") if shutil.which(tool) is None]
    if not VPCD_DRIVER.exists():
        missing.append(f"vsmartcard-vpcd ({VPCD_DRIVER})")
    if not Path("/usr/lib/python3/site-packages/virtualsmartcard").is_dir():
        missing.append("python3-virtualsmartcard")
    if not Path(SYSTEM_PYTHON).exists() or subprocess.run(
            [SYSTEM_PYTHON, "-c", "import Cryptodome"], capture_output=True).returncode != 0:
        missing.append("python3-pycryptodome")
    if importlib.util.find_spec("smartcard") is None:
        missing.append("pyscard (pip install -e '.[card]')")
    if not missing:
        user_ns = [] if os.geteuid() == 0 else ["--map-root-user"]
        probe = subprocess.run(["unshare", *user_ns, "--net", "--mount", "true"], capture_output=True)
        if probe.returncode != 0:
            missing.append("permission to create private network and mount namespaces (unshare: "
                           + probe.stderr.decode(errors="replace").strip()[:100] + ")")
    return missing


class PcscStack:
    """pcscd with one virtual reader (two slots), and the virtual cards in it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.run_dir = _SOCKET_DIR
        self.conf_dir = folder / "reader.conf.d"
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        (self.conf_dir / "vpcd").write_text(
            f'FRIENDLYNAME "{READER_PREFIX}"\nDEVICENAME /dev/null:{VPCD_PORT}\n'
            f"LIBPATH {VPCD_DRIVER}\nCHANNELID {VPCD_PORT}\n")
        self.pcscd: subprocess.Popen[bytes] | None = None
        self.cards: list[subprocess.Popen[bytes]] = []

    @property
    def reader(self) -> str:
        return f"{READER_PREFIX} 00 00"

    def start(self) -> None:
        assert self.pcscd is None
        for leftover in self.run_dir.iterdir():
            leftover.unlink()
        script = (f"mkdir -p /run/pcscd && mount --bind {self.run_dir} /run/pcscd && ip link set lo up && "
                  f"exec pcscd --foreground --config {self.conf_dir}")
        user_ns = [] if os.geteuid() == 0 else ["--map-root-user"]
        with open(self.folder / "pcscd.log", "ab") as log:  # the child keeps its own copy of the descriptor
            self.pcscd = subprocess.Popen(
                ["unshare", *user_ns, "--net", "--mount", "--propagation", "private", "sh", "-c", script],
                stdout=log, stderr=subprocess.STDOUT)
        self.wait_for_readers()

    def wait_for_readers(self, timeout: float = 15.0) -> list[str]:
        from smartcard import scard

        deadline = time.monotonic() + timeout
        while True:
            assert self.pcscd is not None and self.pcscd.poll() is None, \
                f"pcscd stopped: {(self.folder / 'pcscd.log').read_text()[-2000:]}"
            if (self.run_dir / "pcscd.comm").exists():
                hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
                if hresult == scard.SCARD_S_SUCCESS:
                    hresult, readers = scard.SCardListReaders(context, [])
                    scard.SCardReleaseContext(context)
                    if hresult == scard.SCARD_S_SUCCESS and self.reader in readers:
                        return list(readers)
            assert time.monotonic() < deadline, "pcscd did not show the virtual reader in time"
            time.sleep(0.05)

    def wait_card(self, present: bool, timeout: float = 10.0) -> None:
        """Wait until pcscd itself sees a card in (or no card in) the first slot."""
        from smartcard import scard

        _, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        try:
            deadline = time.monotonic() + timeout
            while True:
                _, states = scard.SCardGetStatusChange(context, 0, [(self.reader, scard.SCARD_STATE_UNAWARE)])
                if bool(states and states[0][1] & scard.SCARD_STATE_PRESENT) == present:
                    return
                assert time.monotonic() < deadline, f"pcscd never saw the card {'in' if present else 'out'}"
                time.sleep(0.02)
        finally:
            scard.SCardReleaseContext(context)

    def stop(self) -> None:
        """Stop pcscd (as a crash or an upgrade would); the virtual cards lose their reader and end."""
        for card in self.cards:
            self.remove(card)
        if self.pcscd is not None:
            self.pcscd.send_signal(signal.SIGTERM)
            try:
                self.pcscd.wait(10)
            except subprocess.TimeoutExpired:
                self.pcscd.kill()
                self.pcscd.wait(5)
            self.pcscd = None

    def insert(self, atr: str, *aids: str, slot: int = 0, quickack: bool = True) -> subprocess.Popen[bytes]:
        """Put a virtual card with this ATR and these applications into the reader's slot."""
        assert self.pcscd is not None
        command = ["nsenter", "--target", str(self.pcscd.pid), "--net"]
        if os.geteuid() != 0:
            command += ["--user", "--preserve-credentials"]
        command += [SYSTEM_PYTHON, str(VIRTUAL_CARD), "--port", str(VPCD_PORT + slot), "--atr", atr]
        for aid in aids:
            command += ["--aid", aid]
        if not quickack:
            command.append("--no-quickack")
        with open(self.folder / "card.log", "ab") as log:
            card = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log)
        assert card.stdout is not None
        line = card.stdout.readline()  # the card prints once connected to the reader
        assert line.startswith(b"card ready"), f"the virtual card did not start: {line!r}"
        self.cards.append(card)
        return card

    def remove(self, card: subprocess.Popen[bytes]) -> None:
        if card.poll() is None:
            card.terminate()
            try:
                card.wait(10)
            except subprocess.TimeoutExpired:
                card.kill()
                card.wait(5)
        if card.stdout is not None:
            card.stdout.close()
        if card in self.cards:
            self.cards.remove(card)


@dataclass
class CardGateway:
    """The gateway's side: a store with a professional, the test patient and a registered agent; the endpoint."""

    sessions: async_sessionmaker[AsyncSession]
    endpoint: CardEndpoint | None
    pro: int
    folder: Path
    pki: PKIFiles
    settings: presence.PresenceSettings
    engine: AsyncEngine
    professional: str = PRO
    port: int = 0
    clients: list[GatewayClient] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def client(self, stem: str = "agent") -> GatewayClient:
        ctx = client_ssl_context(self.folder / f"{stem}.crt", self.folder / f"{stem}.key", self.pki.ca_bundle)
        client = GatewayClient(self.url, ctx, timeout=5)
        self.clients.append(client)
        return client

    async def close(self) -> None:
        for client in self.clients:
            client.close()
        if self.endpoint is not None:
            await self.endpoint.close()
        await self.engine.dispose()

    async def listen(self, port: int = 0, sweep_interval: float | None = None) -> None:
        context = endpoint_ssl_context(self.pki.server_cert, self.pki.server_key, self.pki.ca_bundle)
        self.endpoint = await start_card_endpoint("127.0.0.1", port, context, self.sessions, self.settings,
                                                  sweep_interval)
        self.port = self.endpoint.port

    async def events(self, prefix: str) -> list[Event]:
        async with self.sessions() as s:
            return list((await s.execute(
                select(Event).where(Event.kind.startswith(prefix)).order_by(Event.id))).scalars().all())

    async def present(self, matricule: str = TEST_PATIENT.matricule) -> bool:
        async with self.sessions() as s:
            return await presence.patient_present(s, self.pro, matricule)

    async def until(self, check: Callable[[], Awaitable[Any]], what: str, timeout: float = 20.0) -> Any:
        """Poll ``check`` until it returns something true, failing with ``what`` at the deadline."""
        return await until(check, timeout, what, interval=0.05)


async def make_card_gateway(store_url: str, pki: PKIFiles, folder: Path, timeout: float = 3600.0,
                            professional: str = PRO) -> CardGateway:
    """The store holds the professional, the test patient (qualifiée: INSi and passport, R7) and the agent."""
    await db.migrate(store_url)
    engine = db.create_engine(store_url)
    sessions = db.sessionmaker(engine)
    folder.mkdir(parents=True, exist_ok=True)
    pki.pki.software(WORKSTATION).write(folder / "agent.crt", folder / "agent.key")
    pki.pki.software("stranger").write(folder / "stranger.crt", folder / "stranger.key")
    async with sessions() as s, s.begin():
        pro = await mailstore.create_mailbox(s, professional, "PER")
        identity_id = await identities.add_identity(s, TEST_PATIENT.matricule, TEST_PATIENT.oid,
                                                    TEST_PATIENT.traits, "test", allow_test=True)
        await identities.record_insi(s, identity_id, "found", "test")
        await identities.record_document(s, identity_id, "passport", "test")
        await presence.register_agent(s, certificate_fingerprint(folder / "agent.crt"), WORKSTATION, professional,
                                      "admin")
    return CardGateway(sessions, None, pro, folder, pki, presence.PresenceSettings(timeout), engine, professional)


class RunningAgent:
    """The card agent in a thread of the test process, as ``gateway card-agent run`` runs it."""

    def __init__(self, config: AgentConfig, config_file: Path) -> None:
        self.config = config
        self.config_file = config_file
        self.stop = threading.Event()
        self.agent = Agent(config)
        self.thread = threading.Thread(target=self.agent.run, args=(self.stop,), name="test-card-agent")

    def __enter__(self) -> RunningAgent:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(15)
        assert not self.thread.is_alive(), "the agent did not stop"

    def bind(self, matricule: str, actor: str | None = None) -> int:
        """What ``gateway card-agent bind --matricule ...`` does (the CLI itself is tested in a subprocess)."""
        code, _ = agent_cli.bind(self.config, matricule, actor=actor)
        return code


def write_config(gw: CardGateway, folder: Path, port: int) -> tuple[AgentConfig, Path]:
    path = folder / "card-agent.toml"
    path.write_text(
        f'gateway_url = "https://localhost:{port}"\nworkstation = "{WORKSTATION}"\nprofessional = "{gw.professional}"\n'
        f'certificate = "{gw.folder / "agent.crt"}"\nprivate_key = "{gw.folder / "agent.key"}"\n'
        f'trust_anchors = "{gw.pki.ca_bundle}"\ndata_dir = "agent-data"\n'
        "retry_initial = 0.1\nretry_max = 0.5\npoll_ms = 100\n")
    return agent_cli.load_config(path), path


async def inserted(gw: CardGateway, count: int = 1) -> list[str]:
    async def check() -> list[str] | None:
        rows = await gw.events("card.inserted")
        return [e.outcome for e in rows] if len(rows) >= count else None
    return await gw.until(check, f"{count} card insertion(s) at the gateway")
