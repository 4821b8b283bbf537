"""A local Annuaire Santé for development and tests: the same FHIR R4 searches over HTTPS, from a file.

``gateway directory-simulator --data professionals.toml --certificate ... --key ... --api-key KEY`` serves
``Practitioner``, ``PractitionerRole`` and ``Organization`` under ``/fhir/v2`` as the national API does
(searchset Bundles, ``_include``, ``next`` links every ``--page-size`` entries), refuses a request without
the right ``ESANTE-API-KEY`` with 401, and can be told to fail (``--fault MODE[:COUNT]``, or
``POST /_admin/fault {"mode": ..., "count": ...}`` with the key): ``down`` (503), ``hang`` (no answer),
``oversized`` (an answer of several megabytes), ``deep`` (JSON nested thousands deep), ``many`` (a Bundle of
thousands of entries), ``endless`` (a ``next`` link on every page), ``offsite`` (a ``next`` link to another
host), ``garbage`` (not JSON).

The data file (TOML) lists ``[[organisation]]`` (id, identifier, name, city, postal_code, mailboxes) and
``[[professional]]`` (national_id, family, given, profession TRE_G15, specialty TRE_R38, mailboxes,
organisations: the ids where they practise; active). A mailbox is an address (PER for a professional, ORG
for an organisation) or a table ``{address, type, red_list}``.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import ssl
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from gateway.directory import fhir
from gateway.directory.client import API_KEY_HEADER
from gateway.tasks import run_until_interrupted

BASE_PATH = "/fhir/v2"
FAULT_MODES = ("down", "hang", "oversized", "deep", "many", "endless", "offsite", "garbage")

#: What the simulator serves without ``--data``: a GP, a biologist and a nurse of two structures.
DEFAULT_DATA = """
[[organisation]]
id = "lab-charmes"
identifier = "1120459876"
name = "Laboratoire des charmes"
city = "Paris"
postal_code = "75011"
mailboxes = [{ address = "accueil@labo-charmes.mssante.test", type = "ORG" }]

[[organisation]]
id = "cabinet-tilleuls"
identifier = "1750012345"
name = "Cabinet des tilleuls"
city = "Lyon"
postal_code = "69003"

[[professional]]
national_id = "801234534765"
family = "CAMPARINI"
given = "Marcel"
profession = "21"
specialty = "SM03"
mailboxes = ["marcel.camparini@labo-charmes.mssante.test"]
organisations = ["lab-charmes"]

[[professional]]
national_id = "801234567897"
family = "MEDECIN"
given = "Jean"
profession = "10"
specialty = "SM54"
mailboxes = ["jean.medecin@tilleuls.mssante.test"]
organisations = ["cabinet-tilleuls"]

[[professional]]
national_id = "810100000011"
family = "SOIGNANT"
given = "Claire"
profession = "60"
mailboxes = [{ address = "claire.soignant@tilleuls.mssante.test", type = "PER", red_list = true }]
organisations = ["cabinet-tilleuls"]
"""


class DataError(ValueError):
    """The data file is not what the simulator reads (one sentence naming the entry)."""


def _box(value: Any, default_kind: str, where: str) -> dict[str, Any]:
    if isinstance(value, str):
        value = {"address": value}
    if not isinstance(value, dict) or "@" not in str(value.get("address", "")):
        raise DataError(f"{where}: a mailbox is an address or a table with 'address'.")
    meta = [{"url": "type", "valueCodeableConcept": {"coding": [
        {"system": fhir.SYSTEM_MAILBOX_TYPE, "code": str(value.get("type", default_kind))}]}},
        {"url": "listeRouge", "valueBoolean": bool(value.get("red_list", False))}]
    return {"system": "email", "value": str(value["address"]),
            "extension": [{"url": fhir.EXT_EMAIL_TYPE, "valueCoding": {
                "system": fhir.SYSTEM_MESSAGING_TYPE, "code": fhir.MESSAGING_MSSANTE}},
                {"url": fhir.EXT_MAILBOX_METADATA, "extension": meta}]}


def _coding(system: str, code: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": labels.get(code, code)}]}


@dataclass
class Directory:
    """The resources served, built once from the data file."""

    organisations: list[dict[str, Any]] = field(default_factory=list)
    practitioners: list[dict[str, Any]] = field(default_factory=list)
    roles: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_toml(cls, text: str) -> Directory:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise DataError(f"The data file is not valid TOML: {exc}.") from None
        d = cls()
        org_ids = set()
        for n, org in enumerate(data.get("organisation", [])):
            where = f"organisation #{n + 1}"
            if not isinstance(org, dict) or not org.get("id") or not org.get("name"):
                raise DataError(f"{where} needs an id and a name.")
            org_ids.add(str(org["id"]))
            d.organisations.append({
                "resourceType": "Organization", "id": str(org["id"]), "active": bool(org.get("active", True)),
                "identifier": [{"system": fhir.SYSTEM_IDNAT_STRUCTURE, "value": str(org.get("identifier", ""))}],
                "name": str(org["name"]),
                "address": [{"city": str(org.get("city", "")), "postalCode": str(org.get("postal_code", ""))}],
                "telecom": [_box(b, "ORG", where) for b in org.get("mailboxes", [])]})
        for n, pro in enumerate(data.get("professional", [])):
            where = f"professional #{n + 1}"
            national_id = str(pro.get("national_id", "")) if isinstance(pro, dict) else ""
            if not (national_id.isdigit() and len(national_id) == 12 and national_id.startswith("8")):
                raise DataError(f"{where}: national_id must be '8' followed by the 11-digit RPPS number.")
            pid = f"pr-{national_id}"
            qualifications = []
            codes = []
            if pro.get("profession"):
                code = _coding(fhir.SYSTEM_PROFESSION, str(pro["profession"]), dict(fhir.PROFESSION_LABELS))
                qualifications.append({"code": code})
                codes.append(code)
            specialty = []
            if pro.get("specialty"):
                spec = _coding(fhir.SYSTEM_SPECIALTY, str(pro["specialty"]), dict(fhir.SPECIALTY_LABELS))
                qualifications.append({"code": spec})
                specialty.append(spec)
            d.practitioners.append({
                "resourceType": "Practitioner", "id": pid, "active": bool(pro.get("active", True)),
                "identifier": [{"system": fhir.SYSTEM_IDNAT_PS, "value": national_id, "use": "official"},
                               {"system": fhir.SYSTEM_RPPS, "value": national_id[1:]}],
                "name": [{"use": "official", "family": str(pro.get("family", "")),
                          "given": [str(pro.get("given", ""))]}],
                "telecom": [_box(b, "PER", where) for b in pro.get("mailboxes", [])],
                "qualification": qualifications})
            for org_id in pro.get("organisations", []):
                if str(org_id) not in org_ids:
                    raise DataError(f"{where}: organisation {org_id!r} is not listed.")
                d.roles.append({
                    "resourceType": "PractitionerRole", "id": f"ro-{national_id}-{org_id}", "active": True,
                    "practitioner": {"reference": f"Practitioner/{pid}"},
                    "organization": {"reference": f"Organization/{org_id}"},
                    "code": codes, "specialty": specialty})
        return d

    # --- Searches -----------------------------------------------------------------------------------------
    @staticmethod
    def _has_mailbox(resource: dict[str, Any], address: str) -> bool:
        return any(str(t.get("value", "")).lower() == address.lower() for t in resource.get("telecom", []))

    @staticmethod
    def _identified(resource: dict[str, Any], wanted: str) -> bool:
        system, bar, value = wanted.rpartition("|")
        return any(i.get("value") == value and (not bar or not system or i.get("system") == system)
                   for i in resource.get("identifier", []))

    def _org(self, ref: str) -> dict[str, Any] | None:
        return next((o for o in self.organisations if f"Organization/{o['id']}" == ref), None)

    def _practitioner(self, ref: str) -> dict[str, Any] | None:
        return next((p for p in self.practitioners if f"Practitioner/{p['id']}" == ref), None)

    def search(self, kind: str, query: dict[str, list[str]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(matches, included resources) of one search."""
        one = {k: v[0] for k, v in query.items() if v}
        included: list[dict[str, Any]] = []
        if kind == "Practitioner":
            found = self.practitioners
            if "identifier" in one:
                found = [p for p in found if self._identified(p, one["identifier"])]
            if "name" in one:
                wanted = one["name"].lower()
                found = [p for p in found if any(wanted in f"{n.get('family', '')} {' '.join(n.get('given', []))}"
                                                 .lower() for n in p["name"])]
            if fhir.SEARCH_MAILBOX in one:
                found = [p for p in found if self._has_mailbox(p, one[fhir.SEARCH_MAILBOX])]
            return found, included
        if kind == "Organization":
            found = self.organisations
            if fhir.SEARCH_MAILBOX in one:
                found = [o for o in found if self._has_mailbox(o, one[fhir.SEARCH_MAILBOX])]
            if "address-city" in one:
                found = [o for o in found if o["address"][0]["city"].lower() == one["address-city"].lower()]
            return found, included
        found = self.roles
        if "practitioner" in one:
            refs = set(one["practitioner"].split(","))
            found = [r for r in found if r["practitioner"]["reference"] in refs]
        if "practitioner.identifier" in one:
            found = [r for r in found if (p := self._practitioner(r["practitioner"]["reference"])) is not None
                     and self._identified(p, one["practitioner.identifier"])]
        if "organization.address-city" in one:
            city = one["organization.address-city"].lower()
            found = [r for r in found if (o := self._org(r["organization"]["reference"])) is not None
                     and o["address"][0]["city"].lower() == city]
        if fhir.SEARCH_MAILBOX in one:
            found = [r for r in found if self._has_mailbox(r, one[fhir.SEARCH_MAILBOX])]
        includes = query.get("_include", [])
        for r in found:
            if "PractitionerRole:organization" in includes:
                org = self._org(r["organization"]["reference"])
                if org is not None and org not in included:
                    included.append(org)
            if "PractitionerRole:practitioner" in includes:
                pr = self._practitioner(r["practitioner"]["reference"])
                if pr is not None and pr not in included:
                    included.append(pr)
        return found, included


class DirectorySimulator:
    """The HTTP application and its fault switch."""

    def __init__(self, directory: Directory, api_key: str, page_size: int = 50) -> None:
        self.directory = directory
        self.api_key = api_key
        self.page_size = page_size
        self.faults: list[str] = []
        self.requests = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    def inject(self, mode: str, count: int = 1) -> None:
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}; one of {', '.join(FAULT_MODES)}")
        if count == 0:  # the switch off: no more faults queued
            self.faults.clear()
        self.faults.extend([mode] * count)

    def _authorised(self, request: web.Request) -> bool:
        return hmac.compare_digest(request.headers.get(API_KEY_HEADER, "").encode(), self.api_key.encode())

    async def _search(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if not self._authorised(request):
            return _outcome(401, "security", "Missing or wrong ESANTE-API-KEY.")
        kind = request.match_info["kind"]
        if kind not in ("Practitioner", "PractitionerRole", "Organization"):
            return _outcome(404, "not-supported", f"Unknown resource type {kind}.")
        fault = self.faults.pop(0) if self.faults else None
        if fault == "down":
            return _outcome(503, "transient", "Service indisponible.")
        if fault == "hang":
            await asyncio.sleep(3600)
        if fault == "garbage":
            return web.Response(body=b"<html>maintenance</html>", content_type="text/html")
        if fault == "deep":
            return web.Response(body=b"[" * 100_000 + b"]" * 100_000, content_type="application/fhir+json")
        query: dict[str, list[str]] = {}
        for k, v in request.query.items():
            query.setdefault(k, []).append(v)
        found, included = self.directory.search(kind, query)
        if fault == "many":
            found = [{"resourceType": kind, "id": f"x{n}"} for n in range(2_000)]
        page = int(query.get("_page", ["1"])[0] or 1)
        start = (page - 1) * self.page_size
        size = len(found) if fault == "many" else self.page_size
        entries = [{"fullUrl": f"{self.url}{BASE_PATH}/{r['resourceType']}/{r['id']}", "resource": r,
                    "search": {"mode": "match"}} for r in found[start:start + size]]
        if page == 1:
            entries += [{"resource": r, "search": {"mode": "include"}} for r in included]
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(found),
                                  "entry": entries, "link": [{"relation": "self", "url": str(request.url)}]}
        if start + size < len(found) or fault in ("endless", "offsite"):
            following = [(k, v) for k, vs in query.items() if k != "_page" for v in vs] + [("_page", str(page + 1))]
            host = "https://elsewhere.invalid" if fault == "offsite" else self.url
            bundle["link"].append({"relation": "next", "url": f"{host}{BASE_PATH}/{kind}?{urlencode(following)}"})
        if fault == "oversized":
            bundle["padding"] = "x" * 5_000_000
        return web.Response(body=json.dumps(bundle).encode(), content_type="application/fhir+json")

    async def _admin(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return _outcome(401, "security", "Missing or wrong ESANTE-API-KEY.")
        try:
            body = await request.json()
            self.inject(str(body["mode"]), int(body.get("count", 1)))
        except (ValueError, KeyError, TypeError) as exc:
            return _outcome(400, "invalid", str(exc))
        return web.json_response({"faults": self.faults, "requests": self.requests})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(BASE_PATH + "/{kind}", self._search)
        app.router.add_post("/_admin/fault", self._admin)
        return app

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> str:
        self.runner = web.AppRunner(self.app(), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port, ssl_context=ssl_context, shutdown_timeout=0.5)
        await site.start()
        sockets = site._server.sockets if site._server is not None else []  # type: ignore[union-attr,attr-defined]
        bound = sockets[0].getsockname()[1] if sockets else port
        self.url = f"{'https' if ssl_context else 'http'}://{host}:{bound}"
        return self.url

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def _outcome(status: int, code: str, text: str) -> web.Response:
    body = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/fhir+json")


def server_ssl_context(certificate: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(certificate), str(key))
    return ctx


def main(argv: Sequence[str] | None = None) -> int:
    """``gateway directory-simulator``: serve until interrupted."""
    parser = argparse.ArgumentParser(prog="gateway directory-simulator", description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:8444", help="host:port (default 127.0.0.1:8444; port 0: any)")
    parser.add_argument("--certificate", type=Path, required=True, help="server certificate (PEM, with chain)")
    parser.add_argument("--key", type=Path, required=True, help="server private key (PEM)")
    parser.add_argument("--api-key", required=True, help="the ESANTE-API-KEY clients must send")
    parser.add_argument("--data", type=Path, help="TOML file of organisations and professionals (default: three "
                                                  "test professionals)")
    parser.add_argument("--page-size", type=int, default=50, help="entries per Bundle page (default 50)")
    parser.add_argument("--fault", action="append", default=[], metavar="MODE[:COUNT]",
                        help=f"fail the next COUNT searches ({', '.join(FAULT_MODES)})")
    args = parser.parse_args(argv)
    try:
        text = args.data.read_text(encoding="utf-8") if args.data else DEFAULT_DATA
        directory = Directory.from_toml(text)
    except (OSError, DataError) as exc:
        parser.error(str(exc))
    simulator = DirectorySimulator(directory, args.api_key, max(1, args.page_size))
    for spec in args.fault:
        mode, _, count = spec.partition(":")
        try:
            simulator.inject(mode, int(count or 1))
        except ValueError as exc:
            parser.error(f"--fault {spec}: {exc}")
    host, _, port = args.listen.rpartition(":")

    async def run() -> None:
        url = await simulator.start(host or "127.0.0.1", int(port), server_ssl_context(args.certificate, args.key))
        print(f"Annuaire Santé simulator listening on {url}{BASE_PATH}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await simulator.stop()

    return run_until_interrupted(run())
