"""``gateway card-agent``: the workstation's agent that tells the gateway which cards are in its readers.

It runs beside the practice software on the workstation of one professional. It follows the PC/SC readers
(:mod:`gateway.card.watcher`), recognises each inserted card (:mod:`gateway.card.atr`: CPS family, Vitale,
or unknown), and queues an event per insertion and removal on disk (:mod:`gateway.card.spool`); a sender
thread hands them to the gateway in order over mutual TLS (:mod:`gateway.card.client`). The gateway being
down, the reader being unplugged or ``pcscd`` restarting lose nothing: events wait, the watcher starts again.

A Vitale card's holder cannot be read through plain PC/SC (its data needs the national SESAM-Vitale
libraries), and one card may carry several beneficiaries. So the agent never says who the patient is by
itself: ``gateway card-agent bind --matricule ...`` (run by the practice software, or by a person) says which
identity of the repository the inserted card stands for, and only then does the presence window open (R14).

Subcommands: ``run`` (the agent), ``bind``, ``status``, ``fingerprint`` (of the agent's certificate, for
registering it on the gateway).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import threading
import time
import tomllib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.card import watcher as w
from gateway.card.client import GatewayClient, client_ssl_context
from gateway.card.spool import Delivery, Spool, SpoolFull

log = structlog.get_logger("gateway.card.agent")


@dataclass(frozen=True)
class AgentConfig:
    """The agent's settings (a small TOML file; every path relative to that file)."""

    gateway_url: str
    workstation: str
    professional: str
    certificate: Path
    private_key: Path
    trust_anchors: Path
    data_dir: Path
    retry_initial: float = 1.0
    retry_max: float = 60.0
    poll_ms: int = 500
    log_level: str = "info"


_KEYS = {"gateway_url", "workstation", "professional", "certificate", "private_key", "trust_anchors", "data_dir",
         "retry_initial", "retry_max", "poll_ms", "log_level"}


class AgentConfigError(Exception):
    """A configuration problem, as one sentence naming the key."""


def load_config(path: Path) -> AgentConfig:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AgentConfigError(f"The card agent's configuration file {str(path)!r} does not exist.") from None
    except tomllib.TOMLDecodeError as exc:
        raise AgentConfigError(f"The card agent's configuration file is not valid TOML: {exc}.") from None
    section = data.get("card_agent", data)
    unknown = sorted(set(section) - _KEYS)
    if unknown:
        raise AgentConfigError(f"The card agent setting {unknown[0]!r} is not a known setting.")
    base = path.parent.resolve()

    def text(name: str) -> str:
        value = section.get(name)
        if not isinstance(value, str) or not value:
            raise AgentConfigError(f"The card agent setting {name!r} is missing or is not text.")
        return value

    def file(name: str, must_exist: bool = True) -> Path:
        p = Path(text(name))
        p = p if p.is_absolute() else base / p
        if must_exist and not p.is_file():
            raise AgentConfigError(f"The card agent setting {name!r} names {str(p)!r}, which is not a readable file.")
        return p

    def number(name: str, default: float) -> float:
        value = section.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise AgentConfigError(f"The card agent setting {name!r} must be a number greater than zero.")
        return float(value)

    url = text("gateway_url")
    if not url.startswith("https://"):
        raise AgentConfigError("The card agent setting 'gateway_url' must be an https:// URL.")
    return AgentConfig(
        gateway_url=url, workstation=text("workstation"), professional=text("professional").lower(),
        certificate=file("certificate"), private_key=file("private_key"), trust_anchors=file("trust_anchors"),
        data_dir=file("data_dir", must_exist=False), retry_initial=number("retry_initial", 1.0),
        retry_max=number("retry_max", 60.0), poll_ms=int(number("poll_ms", 500)),
        log_level=str(section.get("log_level", "info")),
    )


def _now() -> str:
    return datetime.now(UTC).isoformat()


class State:
    """Which insertion is in which reader, on disk so that ``bind`` (another process) can name it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_bytes())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write(self, cards: dict[str, dict[str, Any]]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cards, sort_keys=True))
        os.replace(tmp, self.path)


class Agent:
    """Turns watcher events into queued gateway events, and sends the queue."""

    def __init__(self, config: AgentConfig, client: GatewayClient | None = None) -> None:
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.spool = Spool(config.data_dir / "spool")
        self.state = State(config.data_dir / "state.json")
        self.client = client or GatewayClient(config.gateway_url, client_ssl_context(
            config.certificate, config.private_key, config.trust_anchors))
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._cards: dict[str, dict[str, Any]] = {}
        self.watcher: w.PcscWatcher | None = None

    def event(self, event_type: str, **fields: Any) -> dict[str, Any]:
        return {"id": str(uuid.uuid4()), "type": event_type, "workstation": self.config.workstation,
                "professional": self.config.professional, "at": _now(),
                **{k: v for k, v in fields.items() if v is not None}}

    def queue(self, event: dict[str, Any]) -> None:
        try:
            self.spool.append(event)
        except SpoolFull as exc:
            log.error("card.agent.spool_full", message=str(exc))
        self._wake.set()

    def started(self) -> None:
        """A new run: whatever an earlier run reported is over (the cards may have changed meanwhile)."""
        with self._lock:
            self._cards = {}
            self.state.write({})
            self.queue(self.event("agent_started"))

    def handle(self, change: w.WatchEvent) -> None:
        """Called from the watcher thread for each change it sees."""
        with self._lock:
            if isinstance(change, w.CardInserted):
                insertion = str(uuid.uuid4())
                c = change.classification
                self._cards[change.reader] = {"insertion": insertion, "kind": c.kind.value, "model": c.model,
                                              "inserted_at": _now()}
                self.state.write(self._cards)
                self.queue(self.event("inserted", insertion=insertion, reader=change.reader, kind=c.kind.value,
                                      model=c.model, atr=change.atr.hex(), evidence=c.evidence))
                log.info("card.agent.inserted", reader=change.reader, kind=c.kind.value, evidence=c.evidence)
            elif isinstance(change, w.CardRemoved):
                card = self._cards.pop(change.reader, None)
                self.state.write(self._cards)
                if card is not None:
                    self.queue(self.event("removed", insertion=card["insertion"], reason=change.reason))
                    log.info("card.agent.removed", reader=change.reader, reason=change.reason)
            elif isinstance(change, w.ReaderChange):
                log.info("card.agent.reader", reader=change.reader, present=change.present)
            else:
                log.info("card.agent.pcsc_service", available=change.available)

    def send_loop(self, stop: threading.Event) -> None:
        """Empty the queue, in order; back off while the gateway is unreachable."""
        delay = self.config.retry_initial
        while not stop.is_set():
            self._wake.clear()
            try:
                result = self.spool.flush(self.client.send)
            except Exception:
                log.exception("card.agent.sender_error")
                result = False
            if result is False:
                self._wake.wait(delay)
                delay = min(delay * 2, self.config.retry_max)
                continue
            delay = self.config.retry_initial
            # Woken by our own events; the timeout picks up events queued by a ``bind`` run in another process.
            self._wake.wait(1.0 if result is None else 5.0)
        self.client.close()

    def run(self, stop: threading.Event) -> None:
        """Watch and send until ``stop`` is set."""
        self.started()
        self.watcher = w.PcscWatcher(self.handle, poll_ms=self.config.poll_ms, retry=self.config.retry_initial)
        threads = [threading.Thread(target=self.watcher.run, args=(stop,), name="card-watcher", daemon=True),
                   threading.Thread(target=self.send_loop, args=(stop,), name="card-sender", daemon=True)]
        for t in threads:
            t.start()
        log.info("card.agent.started", workstation=self.config.workstation)
        stop.wait()
        self._wake.set()
        self.watcher.cancel()
        for t in threads:
            t.join(timeout=5)


def bind(config: AgentConfig, matricule: str, reader: str | None = None, actor: str | None = None,
         client: GatewayClient | None = None, wait: float = 15.0) -> tuple[int, str]:
    """Say which patient the inserted Vitale card stands for; returns an exit code and a sentence."""
    cards = State(config.data_dir / "state.json").read()
    vitale = {r: c for r, c in cards.items() if c.get("kind") == "vitale" and (reader is None or r == reader)}
    if not vitale:
        where = f"in the reader {reader!r}" if reader else "in any reader of this workstation"
        return 2, f"No Vitale card is {where}; insert the patient's card first."
    if len(vitale) > 1:
        return 2, "Several Vitale cards are inserted; name the reader with --reader: " + ", ".join(sorted(vitale))
    name, card = next(iter(vitale.items()))
    agent = Agent(config, client)
    event = agent.event("bound", insertion=card["insertion"], matricule=matricule.strip().upper(), actor=actor)
    path = agent.spool.append(event)
    outcome: dict[str, Delivery] = {}

    def send(e: dict[str, Any]) -> Delivery:
        result = agent.client.send(e)
        if e.get("id") == event["id"]:
            outcome["mine"] = result
        return result

    # The running agent may be sending the queue right now: then wait for it to take our event along.
    deadline = time.monotonic() + wait
    while agent.spool.flush(send) is None and path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    agent.client.close()
    result = outcome.get("mine")
    if result is None and not path.exists():
        result = Delivery.REJECTED if (agent.spool.rejected / path.name).exists() else Delivery.DELIVERED
    if result is Delivery.DELIVERED:
        return 0, f"The card in {name!r} now stands for this patient; the presence window is open."
    if result is Delivery.REJECTED:
        return 1, "The gateway refused: " + (agent.client.last_message or "see the card agent's log.")
    return 3, "The gateway is not reachable now; the choice is queued and will be sent in order."


def certificate_fingerprint(path: Path) -> str:
    """SHA-256 of the first certificate in a PEM file (DER), lower-case hex: what the gateway registers."""
    cert = x509.load_pem_x509_certificates(path.read_bytes())[0]
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway card-agent", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=Path("card-agent.toml"), help="the agent's TOML file")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="follow the readers and report to the gateway (default)")
    b = sub.add_parser("bind", help="say which patient (matricule) the inserted Vitale card stands for")
    b.add_argument("--matricule", required=True)
    b.add_argument("--reader")
    b.add_argument("--actor", help="who chose (a person's login, or the practice software's name)")
    sub.add_parser("status", help="show the cards the agent currently reports")
    sub.add_parser("fingerprint", help="print the agent certificate's SHA-256 fingerprint (for registration)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except AgentConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    from gateway.logs import configure

    configure(config.log_level)
    if args.command == "fingerprint":
        print(certificate_fingerprint(config.certificate))
        return 0
    if args.command == "status":
        cards = State(config.data_dir / "state.json").read()
        for name, card in sorted(cards.items()):
            print(f"{name}: {card.get('kind')} {card.get('model') or ''} since {card.get('inserted_at')}".rstrip())
        print(f"{len(Spool(config.data_dir / 'spool'))} event(s) waiting for the gateway")
        return 0
    if args.command == "bind":
        code, message = bind(config, args.matricule, args.reader, args.actor)
        print(message, file=sys.stderr if code else sys.stdout)
        return code
    import signal

    try:
        import smartcard  # noqa: F401
    except ImportError:
        print("The card agent needs pyscard: install the 'card' extra (pip install 'mss-gateway[card]'; building it "
              "needs the libpcsclite-dev and swig packages).", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    Agent(config).run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
