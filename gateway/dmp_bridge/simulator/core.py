"""The simulated DMP's checks and answers: ITI-41, ITI-18 and the TD0.2 pre-check, on the records of model.py.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import ssl
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from cryptography import x509
from lxml import etree

from gateway.dmp_bridge import constants as c
from gateway.dmp_bridge import metadata, precheck, signature, soap
from gateway.dmp_bridge.saml import AssertionError_, VerifiedAssertion, verify_assertion
from gateway.dmp_bridge.saml import _issued_by_trusted as issued_by_trusted
from gateway.dmp_bridge.simulator.model import (
    AUTHORISATION_LAPSE,
    FAULT_MODES,
    PRECHECK_FAULT_MODES,
    DmpState,
    Fault,
    PatientRecord,
    Rejected,
    StoredDocument,
    err,
    stored_entry,
    with_status,
)
from gateway.dmp_bridge.soap import RegistryError
from gateway.documents.cda import read_header
from gateway.documents.errors import CdaRefused

log = structlog.get_logger("gateway.dmp_bridge.simulator")

KNOWN_FORMATS = frozenset({c.FORMAT_PDF_WRAPPED, c.FORMAT_TEXT_WRAPPED, c.FORMAT_LAB, c.FORMAT_VSM,
                           c.FORMAT_CISIS_GENERIC})
KNOWN_TYPES = frozenset({c.TYPE_LAB_REPORT, c.TYPE_IMAGING_REPORT, c.TYPE_CONSULTATION_REPORT,
                         c.TYPE_PRESCRIPTION, c.TYPE_SUMMARY})
REQUIRED_SLOTS = ("creationTime", "languageCode", "serviceStartTime", "sourcePatientId")
REQUIRED_CLASSIFICATIONS = {c.DE_CLASS_CODE: "classCode", c.DE_FORMAT_CODE: "formatCode",
                            c.DE_TYPE_CODE: "typeCode", c.DE_FACILITY_TYPE: "healthcareFacilityTypeCode",
                            c.DE_PRACTICE_SETTING: "practiceSettingCode", c.DE_CONFIDENTIALITY:
                            "confidentialityCode", c.DE_AUTHOR: "author"}


class Simulator:
    """The simulated DMP: state, checks and the HTTP handlers."""

    def __init__(self, anchors: Sequence[x509.Certificate], *, schema_dir: Path | None = None,
                 state_file: Path | None = None, auto_create: bool = True,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.anchors = list(anchors)
        self.schema_dir = schema_dir
        self.state_file = state_file
        self.auto_create = auto_create
        self.clock = clock or (lambda: datetime.now(UTC))
        self.patients: dict[str, PatientRecord] = {}
        self.documents: dict[str, StoredDocument] = {}  # by uniqueId
        #: Submission set uniqueId → its signature document (IHE DSG), kept apart from the readable documents.
        self.signatures: dict[str, bytes] = {}
        #: When True, an unsigned submission set is refused (a signed one is always checked).
        self.require_signature = False
        self.faults: list[Fault] = []
        self.precheck_faults: list[Fault] = []
        #: TD0.2 queries answered (whatever the answer).
        self.prechecks = 0
        self.requests = 0
        #: The last ITI-41 request as received (its SOAP envelope and parts), for conformance checks.
        self.last_request: soap.MtomMessage | None = None
        self.accepted = 0
        self.lock = asyncio.Lock()
        self.url = ""
        self._closing = asyncio.Event()
        self._runner: Any = None  # aiohttp AppRunner while serving
        if state_file is not None and state_file.exists():
            self._load()

    # --- administration (Python API; the HTTP admin endpoints call these) -----------------------------------------

    def set_patient(self, matricule: str, *, state: str | None = None, require_authorisation: bool | None = None,
                    authorise: Sequence[str] = (), block: Sequence[str] = (), unblock: Sequence[str] = ()) -> None:
        record = self.patients.setdefault(matricule, PatientRecord(matricule))
        if state is not None:
            if state not in (DmpState.NOT_CREATED, DmpState.OPEN, DmpState.CLOSED):
                raise ValueError(f"Unknown DMP state {state}.")
            record.state = state
        if require_authorisation is not None:
            record.require_authorisation = require_authorisation
        for pro in authorise:
            record.authorised[pro] = self.clock().isoformat()
        record.blocked.update(block)
        record.blocked.difference_update(unblock)
        self._save()

    def inject(self, mode: str, count: int = 1, delay: float = 0.0) -> None:
        if mode not in (*FAULT_MODES, *PRECHECK_FAULT_MODES, "none"):
            raise ValueError(f"Unknown fault mode {mode}.")
        if mode == "none":
            self.faults.clear()
            self.precheck_faults.clear()
        elif mode in PRECHECK_FAULT_MODES:
            self.precheck_faults.append(Fault(mode, count, delay))
        else:
            self.faults.append(Fault(mode, count, delay))

    def entries(self, matricule: str | None = None) -> list[dict[str, Any]]:
        """Stored document entries as dicts (see soap.read_entry)."""
        found = []
        for doc in self.documents.values():
            if matricule is None or doc.matricule == matricule:
                entry = soap.read_entry(etree.fromstring(doc.entry_xml))
                found.append(entry)
        return found

    def _next_fault(self, queue: list[Fault] | None = None) -> Fault | None:
        faults = self.faults if queue is None else queue
        while faults:
            fault = faults[0]
            if fault.count <= 0:
                faults.pop(0)
                continue
            fault.count -= 1
            return fault
        return None

    # --- persistence ------------------------------------------------------------------------------------------------

    def _save(self) -> None:
        if self.state_file is None:
            return
        data = {
            "patients": {m: {"state": p.state, "require_authorisation": p.require_authorisation,
                             "authorised": p.authorised, "blocked": sorted(p.blocked)}
                         for m, p in self.patients.items()},
            "documents": [{"entry_xml": d.entry_xml.decode(), "content": base64.b64encode(d.content).decode(),
                           "unique_id": d.unique_id, "entry_uuid": d.entry_uuid, "matricule": d.matricule,
                           "status": d.status, "lid": d.lid, "version": d.version,
                           "submission_set": d.submission_set, "received_at": d.received_at}
                          for d in self.documents.values()],
            "signatures": {uid: base64.b64encode(content).decode() for uid, content in self.signatures.items()},
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.state_file)

    def _load(self) -> None:
        assert self.state_file is not None
        data = json.loads(self.state_file.read_text())
        for m, p in data.get("patients", {}).items():
            self.patients[m] = PatientRecord(m, p["state"], p["require_authorisation"], dict(p["authorised"]),
                                             set(p["blocked"]))
        for d in data.get("documents", []):
            doc = StoredDocument(d["entry_xml"].encode(), base64.b64decode(d["content"]), d["unique_id"],
                                 d["entry_uuid"], d["matricule"], d["status"], d["lid"], d["version"],
                                 d["submission_set"], d["received_at"])
            self.documents[doc.unique_id] = doc
        for uid, content in data.get("signatures", {}).items():
            self.signatures[uid] = base64.b64decode(content)

    # --- checks --------------------------------------------------------------------------------------------------

    def _assertion(self, env: etree._Element) -> VerifiedAssertion:
        element = soap.assertion_of(env)
        if element is None:
            raise Rejected(err(c.ERR_ASSERTION, "The request carries no VIHF assertion (WS-Security)."))
        try:
            return verify_assertion(element, self.anchors, self.clock())
        except AssertionError_ as exc:
            raise Rejected(err(c.ERR_ASSERTION, str(exc))) from exc

    def _access(self, matricule: str, professional: str, *, write: bool) -> PatientRecord:
        """R17: DMP state, blocked professionals, authorisation at first access and after 6 months."""
        record = self.patients.get(matricule)
        if record is None:
            if not self.auto_create:
                raise Rejected(err(c.ERR_DMP_NOT_CREATED, "Le DMP de ce patient n'existe pas."))
            record = self.patients.setdefault(matricule, PatientRecord(matricule))
        if record.state == DmpState.NOT_CREATED:
            raise Rejected(err(c.ERR_DMP_NOT_CREATED, "Le DMP de ce patient n'existe pas."))
        if record.state == DmpState.CLOSED and write:
            raise Rejected(err(c.ERR_DMP_CLOSED, "Le DMP de ce patient est fermé : il ne peut plus être alimenté."))
        if professional in record.blocked:
            raise Rejected(err(c.ERR_PS_BLOCKED, "Le patient a bloqué l'accès de ce professionnel à son DMP."))
        now = self.clock()
        last = record.authorised.get(professional)
        if last is None and record.require_authorisation:
            raise Rejected(err(c.ERR_NOT_AUTHORISED, "Ce professionnel n'est pas autorisé à accéder au DMP de ce "
                                "patient : recueillir l'autorisation du patient."))
        if last is not None and now - datetime.fromisoformat(last) > AUTHORISATION_LAPSE:
            raise Rejected(err(c.ERR_NOT_AUTHORISED, "L'autorisation d'accès a expiré après six mois sans accès : "
                                "recueillir à nouveau l'autorisation du patient."))
        record.authorised[professional] = now.isoformat()
        return record

    def _check_entry(self, eo: etree._Element, content: bytes | None, patient_id: str) -> dict[str, Any]:
        entry = soap.read_entry(eo)
        where = entry.get("uniqueId") or eo.get("id", "")
        problems = []
        if content is None:
            raise Rejected(err(c.ERR_MISSING_DOCUMENT, f"No document content for {eo.get('id')}.", where))
        for slot in REQUIRED_SLOTS:
            if not entry.get(slot):
                problems.append(f"slot {slot} missing")
        present = {cl.get("classificationScheme") for cl in eo.findall(f"{{{c.NS_RIM}}}Classification")}
        problems += [f"{name} missing" for scheme, name in REQUIRED_CLASSIFICATIONS.items() if scheme not in present]
        if not entry.get("title"):
            problems.append("title missing")
        if not entry.get("uniqueId"):
            problems.append("uniqueId missing")
        if entry.get("patientId") != patient_id:
            raise Rejected(err("XDSPatientIdDoesNotMatch", "The document's patientId differs from the submission "
                                "set's.", where))
        if entry.get("formatCode") and entry["formatCode"] not in KNOWN_FORMATS:
            problems.append(f"formatCode {entry['formatCode']} not in the value set")
        if entry.get("typeCode") and entry["typeCode"] not in KNOWN_TYPES:
            problems.append(f"typeCode {entry['typeCode']} not in the value set")
        for code in entry.get("confidentialityCode", []):
            if code not in ("N", *c.VISIBILITY_CODES):
                problems.append(f"confidentialityCode {code} not in the value set")
        if problems:
            raise Rejected(err(c.ERR_METADATA, "Metadata not acceptable: " + "; ".join(problems) + ".", where))
        if len(content) > c.MAX_DOCUMENT_SIZE:
            raise Rejected(err(c.ERR_TOO_LARGE, f"Le document dépasse 5 Mo ({len(content)} octets).", where))
        if entry.get("hash") and entry["hash"] != hashlib.sha1(content, usedforsecurity=False).hexdigest():
            raise Rejected(err(c.ERR_REPOSITORY_METADATA, "The hash does not match the document.", where))
        if entry.get("size") and entry["size"] != str(len(content)):
            raise Rejected(err(c.ERR_REPOSITORY_METADATA, "The size does not match the document.", where))
        if entry.get("mimeType") != "text/xml":
            raise Rejected(err(c.ERR_FORMAT, f"Le format {entry.get('mimeType')} n'est pas accepté (CDA attendu).",
                                where))
        try:
            header = read_header(content, validate=False, limits=c.CDA_LIMITS)
        except CdaRefused as exc:
            raise Rejected(err(c.ERR_FORMAT, f"Le document n'est pas un CDA lisible : {exc}", where)) from exc
        if header.body_media_type is not None and header.body_media_type not in c.ALLOWED_MEDIA_TYPES:
            raise Rejected(err(c.ERR_FORMAT, f"Le format {header.body_media_type} n'est pas accepté.", where))
        if header.unique_id != entry["uniqueId"]:
            raise Rejected(err(c.ERR_METADATA, "The uniqueId differs from the CDA id.", where))
        return entry

    def _check_signatures(self, signatures: list[etree._Element], objects: etree._Element, ss_id: str,
                          contents: dict[str, bytes], documents: dict[str, bytes],
                          assertion: VerifiedAssertion) -> bytes:
        """IHE DSG: at most one signature of the set, linked by ``signs``, signed by the VIHF's certificate (issued
        by a trusted authority), its Manifest listing exactly the set's documents with their digests."""
        if not signatures:
            return b""
        if len(signatures) > 1:
            raise Rejected(err(c.ERR_METADATA, "Une seule signature par lot de soumission."))
        eo = signatures[0]
        eid = eo.get("id", "")
        content = contents.get(eid)
        if content is None:
            raise Rejected(err(c.ERR_MISSING_DOCUMENT, f"No content for the signature {eid}."))
        links = {(a.get("associationType"), a.get("sourceObject"), a.get("targetObject"))
                 for a in objects.findall(f"{{{c.NS_RIM}}}Association")}
        if (signature.ASSOC_SIGNS, eid, ss_id) not in links or (c.ASSOC_HAS_MEMBER, ss_id, eid) not in links:
            raise Rejected(err(c.ERR_METADATA, "La signature doit être membre du lot et liée à lui par une "
                               "association signs."))
        entry = soap.read_entry(eo)
        if entry.get("formatCode") != signature.FORMAT_CODE.code or entry.get("mimeType") != "text/xml":
            raise Rejected(err(c.ERR_METADATA, "La signature doit être un document text/xml au format XML-DSig."))
        if entry.get("hash") != hashlib.sha1(content, usedforsecurity=False).hexdigest():
            raise Rejected(err(c.ERR_REPOSITORY_METADATA, "The hash does not match the signature document."))
        try:
            certificate = signature.signing_certificate(content)
            if not issued_by_trusted(certificate, self.anchors, self.clock()):
                raise signature.SignatureInvalid("The signing certificate is not issued by a trusted authority.")
            if certificate != assertion.certificate:
                raise signature.SignatureInvalid("The set is not signed by the certificate that signed the VIHF.")
            signature.verify_set(content, documents, certificate)
        except signature.SignatureInvalid as exc:
            raise Rejected(err(c.ERR_METADATA, f"Signature du lot invalide : {exc}")) from exc
        return content

    # --- ITI-41 -------------------------------------------------------------------------------------------------

    def provide_and_register(self, message: soap.MtomMessage) -> list[RegistryError]:
        """Check and store one submission; return the registry errors (empty on success)."""
        try:
            self._provide_and_register(message)
        except Rejected as exc:
            log.info("dmp_simulator.refused", codes=[e.code for e in exc.errors])
            return list(exc.errors)
        return []

    def _provide_and_register(self, message: soap.MtomMessage) -> None:
        env = message.envelope
        if not message.mtom:
            raise Rejected(err(c.ERR_REPOSITORY, "ITI-41 requires an MTOM/XOP message."))
        if soap.header_value(env, "Action") != c.ACTION_ITI41:
            raise Rejected(err(c.ERR_REPOSITORY, "WS-Addressing Action is not ProvideAndRegisterDocumentSet-b."))
        if not soap.header_value(env, "MessageID") or not soap.header_value(env, "To"):
            raise Rejected(err(c.ERR_REPOSITORY, "WS-Addressing MessageID and To are required."))
        assertion = self._assertion(env)
        try:
            request = soap.body_of(env)
            if request.tag != f"{{{c.NS_XDSB}}}ProvideAndRegisterDocumentSetRequest":
                raise Rejected(err(c.ERR_REPOSITORY, "The body is not a ProvideAndRegisterDocumentSetRequest."))
            contents = soap.resolve_xop(request, message.parts)
        except soap.SoapError as exc:
            raise Rejected(err(c.ERR_REPOSITORY, str(exc))) from exc
        if self.schema_dir is not None:
            errors = metadata.validate(request, self.schema_dir)
            if errors:
                raise Rejected(err(c.ERR_METADATA, "The request does not follow the XDS.b schema: " +
                                    " | ".join(errors[:3])))
        objects = request.find(f"{{{c.NS_LCM}}}SubmitObjectsRequest/{{{c.NS_RIM}}}RegistryObjectList")
        assert objects is not None  # the schema requires it
        packages = objects.findall(f"{{{c.NS_RIM}}}RegistryPackage")
        if len(packages) != 1:
            raise Rejected(err(c.ERR_METADATA, "Exactly one submission set is required."))
        package = packages[0]
        ss = {ei.get("identificationScheme"): ei.get("value") for ei in
              package.findall(f"{{{c.NS_RIM}}}ExternalIdentifier")}
        patient_id = ss.get(c.SS_PATIENT_ID) or ""
        if not patient_id or not ss.get(c.SS_UNIQUE_ID) or not ss.get(c.SS_SOURCE_ID):
            raise Rejected(err(c.ERR_METADATA, "The submission set needs patientId, uniqueId and sourceId."))
        matricule, _, rest = patient_id.partition("^^^&")
        if rest.split("&", 1)[0] not in c.INS_OIDS:
            raise Rejected(err(c.ERR_UNKNOWN_PATIENT, "The patient id is not an INS."))
        if assertion.patient != matricule:
            raise Rejected(err("XDSPatientIdDoesNotMatch", "The assertion's patient differs from the submission's."))
        record = self._access(matricule, assertion.subject, write=True)
        del record
        entries = []
        signatures = []
        for eo in objects.findall(f"{{{c.NS_RIM}}}ExtrinsicObject"):
            if signature.is_signature_entry(eo):
                signatures.append(eo)
            else:
                entries.append((eo, self._check_entry(eo, contents.get(eo.get("id", "")), patient_id)))
        if not entries:
            raise Rejected(err(c.ERR_METADATA, "The submission has no document."))
        signed = self._check_signatures(signatures, objects, package.get("id", ""), contents,
                                        {entry["uniqueId"]: contents[eo.get("id", "")] for eo, entry in entries},
                                        assertion)
        if self.require_signature and not signed:
            raise Rejected(err(c.ERR_METADATA, "Le lot de soumission doit être signé (signature XAdES absente)."))
        for _eo, entry in entries:
            if entry["uniqueId"] in self.documents:
                raise Rejected(err(c.ERR_DUPLICATE_UNIQUE_ID, f"Un document d'identifiant {entry['uniqueId']} "
                                    "existe déjà dans le DMP.", entry["uniqueId"]))
        replaced: dict[str, StoredDocument] = {}
        by_uuid = {d.entry_uuid: d for d in self.documents.values()}
        for assoc in objects.findall(f"{{{c.NS_RIM}}}Association"):
            if assoc.get("associationType") != c.ASSOC_RPLC:
                continue
            target = by_uuid.get(assoc.get("targetObject", ""))
            if target is None or target.status != c.STATUS_APPROVED or target.matricule != matricule:
                raise Rejected(err(c.ERR_REPLACED_UNKNOWN, "The document to replace is not an approved document of "
                                    "this patient."))
            replaced[assoc.get("sourceObject", "")] = target
        now = self.clock()
        for eo, entry in entries:
            old = replaced.get(eo.get("id", ""))
            version = old.version + 1 if old else 1
            lid = old.lid if old else entry["entryUUID"]
            stored = stored_entry(eo, lid, version)
            self.documents[entry["uniqueId"]] = StoredDocument(
                stored, contents[eo.get("id", "")], entry["uniqueId"], entry["entryUUID"], matricule,
                c.STATUS_APPROVED, lid, version, ss.get(c.SS_UNIQUE_ID) or "", now.isoformat())
            if old is not None:
                old.status = c.STATUS_DEPRECATED
                old.entry_xml = with_status(old.entry_xml, c.STATUS_DEPRECATED)
        self.accepted += len(entries)
        if signed:
            self.signatures[ss.get(c.SS_UNIQUE_ID) or ""] = signed
        self._save()
        log.info("dmp_simulator.accepted", documents=len(entries))

    # --- TD0.2 ----------------------------------------------------------------------------------------------------

    def check_access(self, env: etree._Element) -> tuple[etree._Element | None, str, str, precheck.AccessCheck]:
        """TD0.2: the patient's DMP state and the professional's authorisation (R17), read without recording an
        access (the deposit that follows records it)."""
        self.prechecks += 1
        request: etree._Element | None = None
        matricule = oid = ""
        try:
            if soap.header_value(env, "Action") != precheck.ACTION_TD02:
                raise Rejected(err(c.ERR_REPOSITORY, "WS-Addressing Action is not PRPA_IN201307UV02."))
            assertion = self._assertion(env)
            request = soap.body_of(env)
            matricule, oid = precheck.queried_patient(request)
            if oid not in c.INS_OIDS:
                raise Rejected(err(c.ERR_UNKNOWN_PATIENT, "The patient id is not an INS."))
            if assertion.patient != matricule:
                raise Rejected(err("XDSPatientIdDoesNotMatch", "The assertion's patient differs from the query's."))
        except Rejected as exc:
            return request, matricule, oid, precheck.AccessCheck(False, error=exc.errors[0])
        except soap.SoapError as exc:
            return request, matricule, oid, precheck.AccessCheck(False, error=err(c.ERR_REPOSITORY, str(exc)))
        record = self.patients.get(matricule)
        if (record is None and not self.auto_create) or (record is not None and record.state == DmpState.NOT_CREATED):
            return request, matricule, oid, precheck.AccessCheck(False)
        if record is None:
            return request, matricule, oid, precheck.AccessCheck(True)
        professional = assertion.subject
        last = record.authorised.get(professional)
        if professional in record.blocked:
            status = precheck.AUTH_FORBIDDEN
        elif last is not None and self.clock() - datetime.fromisoformat(last) > AUTHORISATION_LAPSE:
            status = precheck.AUTH_EXPIRED
        elif last is None and record.require_authorisation:
            status = precheck.AUTH_NONE
        else:
            status = precheck.AUTH_VALID
        return request, matricule, oid, precheck.AccessCheck(True, record.state == DmpState.OPEN, status)

    # --- ITI-18 -------------------------------------------------------------------------------------------------

    def stored_query(self, env: etree._Element) -> tuple[list[RegistryError], list[bytes]]:
        try:
            if soap.header_value(env, "Action") != c.ACTION_ITI18:
                raise Rejected(err(c.ERR_METADATA, "WS-Addressing Action is not RegistryStoredQuery."))
            assertion = self._assertion(env)
            query_id, params = soap.query_parameters(soap.body_of(env))
            if query_id == c.QUERY_FIND_DOCUMENTS:
                pid = soap.unquote(" ".join(params.get("$XDSDocumentEntryPatientId", [])))
                if len(pid) != 1:
                    raise Rejected(err("XDSRegistryError", "FindDocuments needs one $XDSDocumentEntryPatientId."))
                matricule = pid[0].split("^", 1)[0]
                if assertion.patient != matricule:
                    raise Rejected(err("XDSPatientIdDoesNotMatch", "The assertion's patient differs."))
                self._access(matricule, assertion.subject, write=False)
                statuses = set(soap.unquote(" ".join(params.get("$XDSDocumentEntryStatus", [])))) or {
                    c.STATUS_APPROVED}
                found = [d for d in self.documents.values() if d.matricule == matricule and d.status in statuses]
            elif query_id == c.QUERY_GET_DOCUMENTS:
                uids = set(soap.unquote(" ".join(params.get("$XDSDocumentEntryUniqueId", []))))
                uuids = set(soap.unquote(" ".join(params.get("$XDSDocumentEntryEntryUUID", []))))
                found = [d for d in self.documents.values() if d.unique_id in uids or d.entry_uuid in uuids]
                if any(d.matricule != assertion.patient for d in found):
                    raise Rejected(err("XDSPatientIdDoesNotMatch", "The assertion's patient differs."))
                if found:
                    self._access(assertion.patient, assertion.subject, write=False)
            else:
                raise Rejected(err("XDSUnknownStoredQuery", f"Unknown stored query {query_id}."))
        except Rejected as exc:
            return list(exc.errors), []
        except soap.SoapError as exc:
            return [err("XDSRegistryError", str(exc))], []
        return [], [d.entry_xml for d in found]

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext) -> str:
        from gateway.dmp_bridge.simulator import web as front

        self._runner = front.AppRunner(front.build_app(self), access_log=None)
        await self._runner.setup()
        site = front.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await site.start()
        sockets = site._server.sockets if site._server is not None else []  # type: ignore[union-attr,attr-defined]
        bound = sockets[0].getsockname()[1] if sockets else port
        self.url = f"https://{host}:{bound}"
        log.info("dmp_simulator.listening", url=self.url)
        return self.url

    async def _pause(self, delay: float) -> None:
        """Sleep for an injected fault, cut short when the simulator stops."""
        try:
            await asyncio.wait_for(self._closing.wait(), delay)
        except TimeoutError:
            pass

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
