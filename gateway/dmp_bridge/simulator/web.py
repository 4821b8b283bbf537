"""The simulated DMP on HTTPS: the repository (ITI-41), registry (ITI-18), TD0.2 and admin endpoints, the TLS
context that requires client certificates, and ``gateway dmp-simulator``.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import structlog
from aiohttp import web
from aiohttp.web import AppRunner, TCPSite
from cryptography import x509
from lxml import etree

from gateway.dmp_bridge import constants as c
from gateway.dmp_bridge import metadata, precheck, soap
from gateway.dmp_bridge.simulator.core import Simulator
from gateway.dmp_bridge.simulator.model import FAULT_MODES, PRECHECK_FAULT_MODES, DmpState
from gateway.tasks import run_until_interrupted

log = structlog.get_logger("gateway.dmp_bridge.simulator")

__all__ = ["AppRunner", "TCPSite", "build_app", "load_anchors", "main", "serve", "server_ssl_context"]


class HttpFront:
    """The HTTP handlers of one simulator."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim


    async def _repository(self, request: web.Request) -> web.Response:
        self.sim.requests += 1
        fault = self.sim._next_fault()
        if fault is not None and fault.mode == "unavailable":
            return web.Response(status=503, text="Service temporarily unavailable (simulated).")
        if fault is not None and fault.mode in ("hang", "slow"):
            await self.sim._pause(fault.delay)
            if fault.mode == "hang":
                return web.Response(status=503, text="Gave up (simulated hang).")
        try:
            message = soap.mtom_decode(request.headers.get("Content-Type", ""), await request.read())
        except soap.SoapError as exc:
            return soap_fault(str(exc))
        self.sim.last_request = message
        async with self.sim.lock:
            errors = self.sim.provide_and_register(message)
        if fault is not None and fault.mode == "lost_answer":
            return web.Response(status=503, text="Answer lost (simulated, after storing).")
        if fault is not None and fault.mode == "store_then_hang":
            await self.sim._pause(fault.delay)  # stored, but the answer comes late: the client may die meanwhile
        return soap_response(c.ACTION_ITI41_RESPONSE, soap.registry_response(errors))

    async def _registry(self, request: web.Request) -> web.Response:
        try:
            message = soap.mtom_decode(request.headers.get("Content-Type", ""), await request.read())
        except soap.SoapError as exc:
            return soap_fault(str(exc))
        async with self.sim.lock:
            errors, entries = self.sim.stored_query(message.envelope)
        response = etree.Element(f"{{{c.NS_QUERY}}}AdhocQueryResponse",
                                 nsmap={"query": c.NS_QUERY, "rim": c.NS_RIM, "rs": c.NS_RS},
                                 status=c.RESPONSE_FAILURE if errors else c.RESPONSE_SUCCESS)
        if errors:
            error_list = soap.registry_response(errors).find(f"{{{c.NS_RS}}}RegistryErrorList")
            assert error_list is not None
            response.append(error_list)
        objects = etree.SubElement(response, f"{{{c.NS_RIM}}}RegistryObjectList")
        for xml in entries:
            objects.append(etree.fromstring(xml))
        return soap_response(c.ACTION_ITI18_RESPONSE, response)

    async def _admin(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        try:
            data = await request.json() if request.can_read_body else {}
            if action == "faults":
                self.sim.inject(str(data.get("mode", "none")), int(data.get("count", 1)), float(data.get("delay", 0)))
            elif action == "patients":
                self.sim.set_patient(str(data["matricule"]), state=data.get("state"),
                                 require_authorisation=data.get("require_authorisation"),
                                 authorise=data.get("authorise", []), block=data.get("block", []),
                                 unblock=data.get("unblock", []))
            elif action == "documents":
                return web.json_response(self.sim.entries(data.get("matricule")))
            elif action == "stats":
                return web.json_response({"requests": self.sim.requests, "accepted": self.sim.accepted,
                                          "prechecks": self.sim.prechecks,
                                          "documents": len(self.sim.documents)})
            else:
                return web.json_response({"error": f"unknown action {action}"}, status=404)
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"ok": True})

    async def _patients(self, request: web.Request) -> web.Response:
        """TD0.2 (PRPA_IN201307UV02) on the patients endpoint, with its own faults."""
        fault = self.sim._next_fault(self.sim.precheck_faults)
        if fault is not None and fault.mode == "precheck_unavailable":
            return web.Response(status=503, text="Service temporarily unavailable (simulated).")
        if fault is not None and fault.mode == "precheck_hang":
            await self.sim._pause(fault.delay)
            return web.Response(status=503, text="Gave up (simulated hang).")
        if fault is not None and fault.mode == "precheck_garbled":
            return web.Response(status=200, body=b"<html>maintenance</html>", content_type="application/soap+xml")
        try:
            message = soap.mtom_decode(request.headers.get("Content-Type", ""), await request.read())
        except soap.SoapError as exc:
            return soap_fault(str(exc))
        async with self.sim.lock:
            query, matricule, oid, check = self.sim.check_access(message.envelope)
        log.info("dmp_simulator.precheck", refusal=check.refusal.code if check.refusal else None)
        return soap_response(precheck.ACTION_TD02_RESPONSE, precheck.answer(query, matricule, oid, check))

    def app(self) -> web.Application:
        application = web.Application(client_max_size=c.MAX_SOAP_SIZE)
        application.router.add_post("/repository", self._repository)
        application.router.add_post("/registry", self._registry)
        application.router.add_post("/patients", self._patients)
        application.router.add_post("/admin/{action}", self._admin)
        return application


def build_app(sim: Simulator) -> web.Application:
    return HttpFront(sim).app()


def soap_response(action: str, body: etree._Element) -> web.Response:
    env = soap.envelope(action, "http://www.w3.org/2005/08/addressing/anonymous", body, None)
    return web.Response(body=etree.tostring(env, xml_declaration=True, encoding="UTF-8"),
                        content_type="application/soap+xml", charset="utf-8")


def soap_fault(reason: str) -> web.Response:
    env = etree.Element(f"{{{c.NS_SOAP}}}Envelope", nsmap={"soap": c.NS_SOAP})
    fault = etree.SubElement(etree.SubElement(env, f"{{{c.NS_SOAP}}}Body"), f"{{{c.NS_SOAP}}}Fault")
    code = etree.SubElement(fault, f"{{{c.NS_SOAP}}}Code")
    etree.SubElement(code, f"{{{c.NS_SOAP}}}Value").text = "soap:Sender"
    reason_el = etree.SubElement(fault, f"{{{c.NS_SOAP}}}Reason")
    text = etree.SubElement(reason_el, f"{{{c.NS_SOAP}}}Text")
    text.set(f"{{{c.NS_XML}}}lang", "en")
    text.text = reason
    return web.Response(status=400, body=etree.tostring(env, xml_declaration=True, encoding="UTF-8"),
                        content_type="application/soap+xml", charset="utf-8")


def server_ssl_context(certificate: Path, key: Path, client_ca: Path) -> ssl.SSLContext:
    """TLS 1.2+ server context that requires a client certificate chaining to ``client_ca``."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(client_ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(str(certificate), str(key))
    return ctx


def load_anchors(bundle: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(bundle.read_bytes())


async def serve(host: str, port: int, *, certificate: Path, key: Path, ca_bundle: Path,
                schema_dir: Path | None = None, state_file: Path | None = None, auto_create: bool = True,
                clock: Callable[[], datetime] | None = None) -> Simulator:
    """Start a simulator (HTTPS, client certificates from ``ca_bundle``, VIHF signed by a certificate from the same
    bundle) and return it; ``simulator.url`` is its base URL, ``await simulator.stop()`` ends it."""
    simulator = Simulator(load_anchors(ca_bundle), schema_dir=schema_dir or metadata.default_schema_dir(),
                          state_file=state_file, auto_create=auto_create, clock=clock)
    await simulator.start(host, port, server_ssl_context(certificate, key, ca_bundle))
    return simulator


def main(argv: Sequence[str] | None = None) -> int:
    """``gateway dmp-simulator``: run the simulator until interrupted."""
    parser = argparse.ArgumentParser(prog="gateway dmp-simulator",
                                     description="A DMP simulator: ITI-41 / ITI-18 over HTTPS, client certificates.")
    parser.add_argument("--listen", default="127.0.0.1:8443", help="host:port (default 127.0.0.1:8443)")
    parser.add_argument("--certificate", type=Path, required=True, help="server certificate (PEM, with chain)")
    parser.add_argument("--key", type=Path, required=True, help="server private key (PEM)")
    parser.add_argument("--ca", type=Path, required=True,
                        help="CA bundle for client certificates and VIHF signing certificates")
    parser.add_argument("--schema-dir", type=Path, default=None, help="folder holding IHE/XDS.b_DocumentRepository.xsd")
    parser.add_argument("--state-file", type=Path, default=None, help="JSON file keeping accepted documents")
    parser.add_argument("--closed", action="append", default=[], help="matricule whose DMP is closed")
    parser.add_argument("--not-created", action="append", default=[], help="matricule who has no DMP")
    parser.add_argument("--require-signature", action="store_true",
                        help="refuse a submission set without its XAdES signature (a signed one is always checked)")
    parser.add_argument("--authorisation-required", action="append", default=[], metavar="MATRICULE",
                        help="matricule whose DMP needs an explicit authorisation at a professional's first access")
    parser.add_argument("--blocked", action="append", default=[], metavar="MATRICULE:RPPS",
                        help="a professional the patient blocked")
    parser.add_argument("--fault", action="append", default=[], metavar="MODE[:COUNT[:DELAY]]",
                        help="fail the next COUNT ITI-41 requests (unavailable, hang, slow, lost_answer, "
                             "store_then_hang) or TD0.2 queries (precheck_unavailable, precheck_hang, "
                             "precheck_garbled), e.g. slow:5:3")
    args = parser.parse_args(argv)
    faults = []
    for text in args.fault:
        mode, _, rest = text.partition(":")
        count, _, delay = rest.partition(":")
        try:
            faults.append((mode, int(count or 1), float(delay or 0)))
        except ValueError:
            parser.error(f"--fault {text}: expected MODE[:COUNT[:DELAY]]")
        if mode not in (*FAULT_MODES, *PRECHECK_FAULT_MODES):
            parser.error(f"--fault {text}: the mode is one of {', '.join((*FAULT_MODES, *PRECHECK_FAULT_MODES))}")
    host, _, port = args.listen.rpartition(":")

    async def run() -> None:
        simulator = await serve(host or "127.0.0.1", int(port), certificate=args.certificate, key=args.key,
                                ca_bundle=args.ca, schema_dir=args.schema_dir, state_file=args.state_file)
        for matricule in args.closed:
            simulator.set_patient(matricule, state=DmpState.CLOSED)
        simulator.require_signature = args.require_signature
        for matricule in args.not_created:
            simulator.set_patient(matricule, state=DmpState.NOT_CREATED)
        for matricule in args.authorisation_required:
            simulator.set_patient(matricule, require_authorisation=True)
        for pair in args.blocked:
            matricule, _, rpps = pair.partition(":")
            simulator.set_patient(matricule, block=[rpps])
        for mode, count, delay in faults:
            simulator.inject(mode, count, delay)
        print(f"DMP simulator listening on {simulator.url} (repository /repository, registry /registry)",
              flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await simulator.stop()

    return run_until_interrupted(run())
