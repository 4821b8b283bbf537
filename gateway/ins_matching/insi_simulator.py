"""``gateway insi-simulator``: a local INSi speaking the messages of insi_messages.py over HTTPS, requiring a
client certificate (mutual TLS), for development and tests.

It knows the built-in test identities of insi.py (the ANS samples' test patient, two homonyms, a person with an
obsolete matricule) and every identity of the files given with ``--identities`` (TOML, ``[[person]]`` tables with
matricule, oid, birth_name, first_names, birth_date, sex, birth_place and optionally ``former`` matricules), so a
structure trying the product can qualify its own test patients. ``--fault`` makes it fail: ``unavailable``
(HTTP 503), ``hang`` (answers after DELAY seconds), ``garbled`` (not SOAP), ``fault`` (a SOAP Fault).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from aiohttp import web

from gateway.ins_matching import insi_messages as m
from gateway.ins_matching.identities import Traits
from gateway.ins_matching.insi import InsiIdentity, InsiSimulator, same_traits
from gateway.tasks import run_until_interrupted

log = structlog.get_logger("gateway.ins_matching.insi_simulator")
FAULT_MODES = ("unavailable", "hang", "garbled", "fault")
MAX_PEOPLE = 10_000


class IdentityFileError(ValueError):
    """A test identities file that cannot be used; the text names the file and the entry."""


def load_identities(path: Path) -> tuple[list[InsiIdentity], dict[str, str]]:
    """The people of one file, and their former matricules (former → principal)."""
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise IdentityFileError(f"{path}: {exc}") from exc
    entries = data.get("person", [])
    if not isinstance(entries, list) or len(entries) > MAX_PEOPLE:
        raise IdentityFileError(f"{path}: expected up to {MAX_PEOPLE} [[person]] tables.")
    people, former = [], {}
    for index, entry in enumerate(entries):
        try:
            traits = Traits(str(entry["birth_name"]), str(entry["first_names"]), str(entry["birth_date"]),
                            str(entry["sex"]), str(entry.get("birth_place", "")))
            person = InsiIdentity(str(entry["matricule"]), str(entry.get("oid", "1.2.250.1.213.1.4.8")), traits)
        except (KeyError, TypeError) as exc:
            raise IdentityFileError(f"{path}: person {index + 1} lacks {exc}.") from exc
        if len(person.matricule) != 15 or traits.sex not in ("M", "F", "U"):
            raise IdentityFileError(f"{path}: person {index + 1} needs a 15-character matricule and sex M, F or U.")
        people.append(person)
        for old in entry.get("former", []):
            former[str(old)] = person.matricule
    return people, former


@dataclass
class Fault:
    mode: str
    count: int = 1
    delay: float = 0.0


@dataclass
class Service:
    """The simulated INSi: the directory of people (insi.InsiSimulator) and the faults to inject."""

    directory: InsiSimulator = field(default_factory=InsiSimulator)
    faults: list[Fault] = field(default_factory=list)
    requests: int = 0
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, people: Sequence[InsiIdentity], former: dict[str, str]) -> None:
        known = {p.matricule for p in self.directory.people}
        self.directory.people.extend(p for p in people if p.matricule not in known)
        self.directory.obsolete.update(former)

    def inject(self, mode: str, count: int = 1, delay: float = 0.0) -> None:
        if mode not in FAULT_MODES:
            raise ValueError(f"Unknown fault mode {mode}; one of {', '.join(FAULT_MODES)}.")
        self.faults.append(Fault(mode, count, delay))

    def _fault(self) -> Fault | None:
        while self.faults and self.faults[0].count <= 0:
            self.faults.pop(0)
        if not self.faults:
            return None
        self.faults[0].count -= 1
        return self.faults[0]

    def answer(self, req: m.Request) -> m.Answer:
        people = self.directory.people
        if req.operation == m.OP_TRAITS:
            assert req.traits is not None
            hits = [p for p in people if same_traits(p.traits, req.traits)]
        elif req.operation == m.OP_CARD:
            hits = [p for p in people if p.matricule == req.matricule and p.traits.birth_date == req.birth_date]
        else:
            assert req.traits is not None
            wanted = self.directory.obsolete.get(req.matricule, req.matricule)
            hits = [p for p in people if p.matricule == wanted and same_traits(p.traits, req.traits)]
        if not hits:
            return m.Answer(m.CR_NONE)
        if len(hits) > 1:
            return m.Answer(m.CR_SEVERAL)
        person = hits[0]
        history = tuple(old for old, new in self.directory.obsolete.items() if new == person.matricule)
        return m.Answer(m.CR_FOUND, m.Person(person.matricule, person.oid, person.traits), history)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        fault = self._fault()
        if fault is not None and fault.mode == "unavailable":
            return web.Response(status=503, text="INSi temporarily unavailable (simulated).")
        if fault is not None and fault.mode == "hang":
            try:
                await asyncio.wait_for(self.closing.wait(), fault.delay)
            except TimeoutError:
                pass
        if fault is not None and fault.mode == "garbled":
            return web.Response(status=200, body=b"<html>maintenance</html>", content_type="application/soap+xml")
        if fault is not None and fault.mode == "fault":
            return web.Response(status=500, body=m.fault("Service INSi indisponible (simulé)."),
                                content_type="application/soap+xml")
        try:
            req = m.read_request(m.parse(await request.content.read(m.MAX_MESSAGE + 1)))
        except m.InsiMessageError as exc:
            return web.Response(status=400, body=m.fault(str(exc)), content_type="application/soap+xml")
        answer = self.answer(req)
        log.info("insi_simulator.answer", operation=req.operation, outcome=answer.outcome)
        return web.Response(body=m.answer(req.operation, answer), content_type="application/soap+xml")


def server_context(certificate: Path, key: Path, client_ca: Path) -> ssl.SSLContext:
    """TLS 1.2+ requiring a client certificate that chains to ``client_ca`` (INSi authenticates the structure)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(client_ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(str(certificate), str(key))
    return ctx


async def serve(service: Service, host: str, port: int, context: ssl.SSLContext) -> tuple[web.AppRunner, str]:
    app = web.Application(client_max_size=m.MAX_MESSAGE)
    app.router.add_post("/insi", service.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=context)
    await site.start()
    sockets = site._server.sockets if site._server is not None else []  # type: ignore[union-attr,attr-defined]
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, f"https://{host}:{bound}/insi"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway insi-simulator",
                                     description="A local INSi (mutual TLS) answering from test identities.")
    parser.add_argument("--listen", default="127.0.0.1:8446", help="host:port (default 127.0.0.1:8446)")
    parser.add_argument("--certificate", type=Path, required=True, help="server certificate (PEM, with chain)")
    parser.add_argument("--key", type=Path, required=True, help="server private key (PEM)")
    parser.add_argument("--ca", type=Path, required=True, help="CA bundle the client certificates chain to")
    parser.add_argument("--identities", type=Path, action="append", default=[],
                        help="TOML file of [[person]] test identities, added to the built-in ones (repeatable)")
    parser.add_argument("--fault", action="append", default=[], metavar="MODE[:COUNT[:DELAY]]",
                        help=f"fail the next COUNT requests ({', '.join(FAULT_MODES)}), e.g. hang:1:30")
    args = parser.parse_args(argv)
    service = Service()
    try:
        for path in args.identities:
            service.add(*load_identities(path))
        for text in args.fault:
            mode, _, rest = text.partition(":")
            count, _, delay = rest.partition(":")
            service.inject(mode, int(count or 1), float(delay or 0))
    except (IdentityFileError, ValueError) as exc:
        parser.error(str(exc))
    host, _, port = args.listen.rpartition(":")

    async def run() -> None:
        runner, url = await serve(service, host or "127.0.0.1", int(port),
                                  server_context(args.certificate, args.key, args.ca))
        print(f"INSi simulator listening on {url} ({len(service.directory.people)} identities)", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            service.closing.set()
            await runner.cleanup()

    return run_until_interrupted(run())
