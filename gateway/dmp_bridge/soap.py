"""SOAP 1.2 with MTOM/XOP, WS-Addressing and WS-Security (VIHF) for ITI-41 and ITI-18, and the HTTPS client.

Both the client and the simulator use these functions, so the two ends agree on one reading of the protocol;
the simulator's tests check it against the XDS.b schema and the real DMP capture's structure.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import base64
import ssl
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from typing import Any

import aiohttp
import structlog
from lxml import etree

from gateway.dmp_bridge import constants as c
from gateway.documents.cda import parse_xml
from gateway.documents.errors import DocumentRefused
from gateway.pki import Issued

log = structlog.get_logger("gateway.dmp_bridge.soap")

ROOT_CID = "root.message@gateway"


class SoapError(ValueError):
    """A message that is not the SOAP/MTOM we speak; the text says what is wrong."""


class DmpTransportError(Exception):
    """The DMP could not be reached or did not answer properly: worth retrying later."""


# --- Envelope ---------------------------------------------------------------------------------------------------

def envelope(action: str, to: str, body: etree._Element, assertion: etree._Element | None,
             message_id: str | None = None) -> etree._Element:
    """A SOAP 1.2 envelope with WS-Addressing headers and a WS-Security header carrying ``assertion``."""
    env = etree.Element(f"{{{c.NS_SOAP}}}Envelope", nsmap={"soap": c.NS_SOAP, "wsa": c.NS_WSA})
    header = etree.SubElement(env, f"{{{c.NS_SOAP}}}Header")
    etree.SubElement(header, f"{{{c.NS_WSA}}}MessageID").text = message_id or f"urn:uuid:{uuid.uuid4()}"
    etree.SubElement(header, f"{{{c.NS_WSA}}}To").text = to
    act = etree.SubElement(header, f"{{{c.NS_WSA}}}Action")
    act.set(f"{{{c.NS_SOAP}}}mustUnderstand", "true")
    act.text = action
    if assertion is not None:
        security = etree.SubElement(header, f"{{{c.NS_WSSE}}}Security", nsmap={"wsse": c.NS_WSSE})
        security.set(f"{{{c.NS_SOAP}}}mustUnderstand", "true")
        security.append(assertion)
    etree.SubElement(env, f"{{{c.NS_SOAP}}}Body").append(body)
    return env


def body_of(env: etree._Element) -> etree._Element:
    if env.tag != f"{{{c.NS_SOAP}}}Envelope":
        raise SoapError("The message is not a SOAP 1.2 envelope.")
    body = env.find(f"{{{c.NS_SOAP}}}Body")
    if body is None or len(body) != 1:
        raise SoapError("The SOAP body must hold exactly one element.")
    return body[0]


def header_value(env: etree._Element, tag: str) -> str:
    return (env.findtext(f"{{{c.NS_SOAP}}}Header/{{{c.NS_WSA}}}{tag}") or "").strip()


def assertion_of(env: etree._Element) -> etree._Element | None:
    return env.find(f"{{{c.NS_SOAP}}}Header/{{{c.NS_WSSE}}}Security/{{{c.NS_SAML}}}Assertion")


# --- MTOM/XOP ---------------------------------------------------------------------------------------------------

def mtom_encode(env: etree._Element, parts: Sequence[tuple[str, bytes]], action: str) -> tuple[str, bytes]:
    """The multipart/related body of an MTOM message and its Content-Type (root part first, then binaries)."""
    boundary = f"MIMEBoundary_{uuid.uuid4().hex}"
    root = etree.tostring(env, xml_declaration=True, encoding="UTF-8")
    chunks = [
        f"--{boundary}\r\n".encode(),
        (f'Content-Type: application/xop+xml; charset=UTF-8; type="application/soap+xml"; action="{action}"\r\n'
         f"Content-Transfer-Encoding: binary\r\nContent-ID: <{ROOT_CID}>\r\n\r\n").encode(),
        root, b"\r\n",
    ]
    for cid, data in parts:
        chunks += [f"--{boundary}\r\n".encode(),
                   (f"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n"
                    f"Content-ID: <{cid}>\r\n\r\n").encode(), data, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    content_type = (f'multipart/related; boundary="{boundary}"; type="application/xop+xml"; '
                    f'start="<{ROOT_CID}>"; start-info="application/soap+xml"; action="{action}"')
    return content_type, b"".join(chunks)


def _params(content_type: str) -> tuple[str, dict[str, str]]:
    msg = Message()
    msg["Content-Type"] = content_type
    params = {k.lower(): v for k, v in (msg.get_params() or [])[1:]}
    return msg.get_content_type(), {k: str(v) for k, v in params.items()}


@dataclass
class MtomMessage:
    """A decoded message: the envelope and the binary parts by Content-ID (without angle brackets)."""

    envelope: etree._Element
    parts: dict[str, bytes] = field(default_factory=dict)
    mtom: bool = False


def mtom_decode(content_type: str, body: bytes, *, max_size: int = c.MAX_SOAP_SIZE,
                max_parts: int = c.MAX_MIME_PARTS) -> MtomMessage:
    """Parse an MTOM (multipart/related) or plain SOAP 1.2 message, bounded in size and part count."""
    if len(body) > max_size:
        raise SoapError(f"The message is {len(body)} bytes; the limit is {max_size}.")
    kind, params = _params(content_type)
    if kind == "application/soap+xml":
        return MtomMessage(_xml(body))
    if kind != "multipart/related":
        raise SoapError(f"Unexpected content type {kind}; expected multipart/related (MTOM) or "
                        "application/soap+xml.")
    if params.get("type", "").lower() != "application/xop+xml":
        raise SoapError("An MTOM message must have type=application/xop+xml.")
    boundary = params.get("boundary", "")
    if not boundary or len(boundary) > 200:
        raise SoapError("The multipart message has no usable boundary.")
    delimiter = b"--" + boundary.encode("latin-1")
    pieces = body.split(delimiter)
    if len(pieces) < 3 or not pieces[-1].startswith(b"--"):
        raise SoapError("The multipart message is not terminated by its closing boundary.")
    if len(pieces) - 2 > max_parts:
        raise SoapError(f"The message has more than {max_parts} parts.")
    start = params.get("start", "").strip("<>")
    root: bytes | None = None
    parts: dict[str, bytes] = {}
    for index, piece in enumerate(pieces[1:-1]):
        piece = piece.removeprefix(b"\r\n")
        head, sep, data = piece.partition(b"\r\n\r\n")
        if not sep or len(head) > 4096:
            raise SoapError("A MIME part has no header/body separator.")
        data = data.removesuffix(b"\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        cid = headers.get("content-id", "").strip("<>")
        is_root = cid == start if start else index == 0
        if is_root:
            if not headers.get("content-type", "").lower().startswith("application/xop+xml"):
                raise SoapError("The root part must be application/xop+xml.")
            root = data
        else:
            if not cid:
                raise SoapError("A binary part has no Content-ID.")
            if cid in parts:
                raise SoapError(f"Two parts share the Content-ID {cid}.")
            parts[cid] = data
    if root is None:
        raise SoapError("The MTOM message has no root part.")
    return MtomMessage(_xml(root), parts, mtom=True)


def _xml(data: bytes) -> etree._Element:
    try:
        return parse_xml(data.strip(), c.MAX_SOAP_SIZE, "XML document")
    except DocumentRefused as exc:
        raise SoapError(str(exc)) from exc


def resolve_xop(request: etree._Element, parts: dict[str, bytes]) -> dict[str, bytes]:
    """Replace every ``xop:Include`` of the ITI-41 request by the base64 of its part, in place (what the schema
    validates), and return the documents by their ``id``."""
    documents: dict[str, bytes] = {}
    for doc in request.findall(f"{{{c.NS_XDSB}}}Document"):
        include = doc.find(f"{{{c.NS_XOP}}}Include")
        if include is not None:
            href = include.get("href", "")
            if not href.startswith("cid:"):
                raise SoapError("xop:Include must reference a part by cid:.")
            cid = href[4:].replace("%40", "@")
            if cid not in parts:
                raise SoapError(f"The part {cid} referenced by the document {doc.get('id')} is missing.")
            data = parts[cid]
            doc.remove(include)
            doc.text = base64.b64encode(data).decode("ascii")
        else:
            try:
                data = base64.b64decode((doc.text or "").strip(), validate=True)
            except ValueError as exc:
                raise SoapError(f"The document {doc.get('id')} is not valid base64.") from exc
        documents[doc.get("id", "")] = data
    return documents


# --- Registry responses -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RegistryError:
    code: str
    context: str
    severity: str = c.SEVERITY_ERROR
    location: str = ""


@dataclass(frozen=True)
class RegistryResult:
    """The DMP's answer to ITI-41: success, or failure with the registry errors."""

    success: bool
    errors: tuple[RegistryError, ...] = ()

    @property
    def message(self) -> str:
        return "; ".join(f"{e.code}: {e.context}" for e in self.errors)

    def has(self, code: str) -> bool:
        return any(e.code == code for e in self.errors)


def registry_response(errors: Sequence[RegistryError] = ()) -> etree._Element:
    status = c.RESPONSE_FAILURE if errors else c.RESPONSE_SUCCESS
    response = etree.Element(f"{{{c.NS_RS}}}RegistryResponse", nsmap={"rs": c.NS_RS}, status=status)
    if errors:
        error_list = etree.SubElement(response, f"{{{c.NS_RS}}}RegistryErrorList")
        for error in errors:
            etree.SubElement(error_list, f"{{{c.NS_RS}}}RegistryError", errorCode=error.code,
                             codeContext=error.context, severity=error.severity, location=error.location)
    return response


def parse_registry_response(element: etree._Element) -> RegistryResult:
    """Read a RegistryResponse (or AdhocQueryResponse); a SOAP Fault is a refusal of a malformed request."""
    if element.tag == f"{{{c.NS_SOAP}}}Fault":
        reason = element.findtext(f"{{{c.NS_SOAP}}}Reason/{{{c.NS_SOAP}}}Text") or "SOAP fault"
        return RegistryResult(False, (RegistryError("SOAPFault", reason.strip()[:500]),))
    if element.tag not in (f"{{{c.NS_RS}}}RegistryResponse", f"{{{c.NS_QUERY}}}AdhocQueryResponse"):
        raise SoapError(f"Expected a RegistryResponse, got {element.tag}.")
    errors = tuple(
        RegistryError(e.get("errorCode", ""), e.get("codeContext", ""), e.get("severity", c.SEVERITY_ERROR),
                      e.get("location", ""))
        for e in element.iterfind(f"{{{c.NS_RS}}}RegistryErrorList/{{{c.NS_RS}}}RegistryError"))
    status = element.get("status", "")
    return RegistryResult(status.endswith(":Success") and not any(
        e.severity == c.SEVERITY_ERROR for e in errors), errors)


# --- ITI-18 --------------------------------------------------------------------------------------------------------

def stored_query(query_id: str, parameters: dict[str, list[str]], return_type: str = "LeafClass") -> etree._Element:
    """An AdhocQueryRequest for a registry stored query (FindDocuments, GetDocuments)."""
    nsmap = {"query": c.NS_QUERY, "rim": c.NS_RIM}
    request = etree.Element(f"{{{c.NS_QUERY}}}AdhocQueryRequest", nsmap=nsmap)
    etree.SubElement(request, f"{{{c.NS_QUERY}}}ResponseOption", returnComposedObjects="true",
                     returnType=return_type)
    query = etree.SubElement(request, f"{{{c.NS_RIM}}}AdhocQuery", id=query_id)
    for name, values in parameters.items():
        slot = etree.SubElement(query, f"{{{c.NS_RIM}}}Slot", name=name)
        value_list = etree.SubElement(slot, f"{{{c.NS_RIM}}}ValueList")
        for value in values:
            etree.SubElement(value_list, f"{{{c.NS_RIM}}}Value").text = value
    return request


def query_parameters(request: etree._Element) -> tuple[str, dict[str, list[str]]]:
    query = request.find(f"{{{c.NS_RIM}}}AdhocQuery")
    if request.tag != f"{{{c.NS_QUERY}}}AdhocQueryRequest" or query is None:
        raise SoapError("Expected an AdhocQueryRequest with an AdhocQuery.")
    params: dict[str, list[str]] = {}
    for slot in query.findall(f"{{{c.NS_RIM}}}Slot")[:50]:
        values = [(v.text or "").strip() for v in slot.iterfind(f"{{{c.NS_RIM}}}ValueList/{{{c.NS_RIM}}}Value")]
        params[slot.get("name", "")] = values[:100]
    return query.get("id", ""), params


def unquote(value: str) -> list[str]:
    """ITI-18 values are SQL-ish literals: ``'a'`` or ``('a','b')``."""
    value = value.strip()
    if value.startswith("(") and value.endswith(")"):
        value = value[1:-1]
    return [v.strip().strip("'") for v in value.split(",") if v.strip()]


def read_entry(eo: etree._Element) -> dict[str, Any]:
    """An ExtrinsicObject as a plain dict: what tests and the outbox compare."""
    rim = c.NS_RIM
    entry: dict[str, Any] = {"entryUUID": eo.get("id"), "mimeType": eo.get("mimeType"),
                             "status": eo.get("status", c.STATUS_APPROVED), "lid": eo.get("lid", eo.get("id"))}
    version = eo.find(f"{{{rim}}}VersionInfo")
    entry["version"] = version.get("versionName", "1") if version is not None else "1"
    for slot in eo.findall(f"{{{rim}}}Slot"):
        values = [(v.text or "") for v in slot.iterfind(f"{{{rim}}}ValueList/{{{rim}}}Value")]
        entry[slot.get("name", "")] = values[0] if len(values) == 1 else values
    name = eo.find(f"{{{rim}}}Name/{{{rim}}}LocalizedString")
    entry["title"] = name.get("value") if name is not None else ""
    schemes = {c.DE_CLASS_CODE: "classCode", c.DE_FORMAT_CODE: "formatCode", c.DE_TYPE_CODE: "typeCode",
               c.DE_FACILITY_TYPE: "healthcareFacilityTypeCode", c.DE_PRACTICE_SETTING: "practiceSettingCode"}
    entry["confidentialityCode"] = []
    for cl in eo.findall(f"{{{rim}}}Classification"):
        scheme = cl.get("classificationScheme", "")
        if scheme == c.DE_CONFIDENTIALITY:
            entry["confidentialityCode"].append(cl.get("nodeRepresentation"))
        elif scheme in schemes:
            entry[schemes[scheme]] = cl.get("nodeRepresentation")
        elif scheme == c.DE_AUTHOR:
            for slot in cl.findall(f"{{{rim}}}Slot"):
                entry[slot.get("name", "")] = [(v.text or "") for v in slot.iterfind(
                    f"{{{rim}}}ValueList/{{{rim}}}Value")]
    for ei in eo.findall(f"{{{rim}}}ExternalIdentifier"):
        if ei.get("identificationScheme") == c.DE_UNIQUE_ID:
            entry["uniqueId"] = ei.get("value")
        elif ei.get("identificationScheme") == c.DE_PATIENT_ID:
            entry["patientId"] = ei.get("value")
    return entry


# --- Client ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Endpoint:
    """Where the DMP is and how we authenticate: repository and registry URLs, client TLS, trust anchors."""

    repository_url: str
    registry_url: str
    ssl_context: ssl.SSLContext
    timeout: float = 30.0
    #: The DMP's patient services (TD0.2); by default the ``patients`` sibling of the registry's URL.
    patients_url: str = ""

    @property
    def patients(self) -> str:
        return self.patients_url or self.registry_url.rstrip("/").rsplit("/", 1)[0] + "/patients"


def client_ssl_context(client: Issued | None, ca_bundle: bytes | str, minimum: ssl.TLSVersion =
                       ssl.TLSVersion.TLSv1_2) -> ssl.SSLContext:
    """TLS 1.2+ client context with the structure's certificate (written to a temp file only while loading)."""
    import os
    import tempfile

    from cryptography.hazmat.primitives import serialization

    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                     cadata=ca_bundle.decode() if isinstance(ca_bundle, bytes) else None,
                                     cafile=ca_bundle if isinstance(ca_bundle, str) else None)
    ctx.minimum_version = minimum
    if client is not None:
        with tempfile.TemporaryDirectory() as folder:
            cert_path = os.path.join(folder, "c.pem")
            key_path = os.path.join(folder, "k.pem")
            with open(cert_path, "wb") as f:
                f.write(b"".join(x.public_bytes(serialization.Encoding.PEM)
                                 for x in (client.certificate, *client.chain)))
            with open(key_path, "wb") as f:
                f.write(client.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
            ctx.load_cert_chain(cert_path, key_path)
    return ctx


class DmpClient:
    """ITI-41 and ITI-18 over HTTPS with a client certificate; one aiohttp session per client.

    Transport problems (connection refused, TLS failure, timeout, HTTP 5xx, an unreadable answer) raise
    :class:`DmpTransportError`; business answers (success or registry errors) are returned as values.
    """

    def __init__(self, endpoint: Endpoint, signer: Issued, *, max_connections: int = 16) -> None:
        self.endpoint = endpoint
        self.signer = signer
        self._max = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> DmpClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self.endpoint.ssl_context, limit=self._max)
            self._session = aiohttp.ClientSession(connector=connector,
                                                  timeout=aiohttp.ClientTimeout(total=self.endpoint.timeout))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, url: str, content_type: str, data: bytes) -> etree._Element:
        try:
            async with self.session().post(url, data=data, headers={"Content-Type": content_type}) as resp:
                payload = await resp.content.read(c.MAX_SOAP_SIZE + 1)
                if resp.status >= 500 or resp.status in (408, 429):
                    raise DmpTransportError(f"The DMP answered HTTP {resp.status}.")
                if resp.status >= 400 and not payload:
                    raise DmpTransportError(f"The DMP answered HTTP {resp.status} with no body.")
                message = mtom_decode(resp.headers.get("Content-Type", "application/soap+xml"), payload)
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError, OSError) as exc:
            raise DmpTransportError(f"The DMP could not be reached: {exc.__class__.__name__} {exc}.") from exc
        except SoapError as exc:
            raise DmpTransportError(f"The DMP's answer could not be read: {exc}") from exc
        try:
            return body_of(message.envelope)
        except SoapError as exc:
            raise DmpTransportError(f"The DMP's answer could not be read: {exc}") from exc

    async def provide_and_register(self, request: etree._Element, documents: Sequence[tuple[str, bytes]],
                                   assertion: etree._Element) -> RegistryResult:
        """ITI-41: send the request (documents as MTOM parts) and return the registry's answer."""
        env = envelope(c.ACTION_ITI41, self.endpoint.repository_url, request, assertion)
        content_type, data = mtom_encode(env, documents, c.ACTION_ITI41)
        answer = await self._post(self.endpoint.repository_url, content_type, data)
        try:
            return parse_registry_response(answer)
        except SoapError as exc:
            raise DmpTransportError(str(exc)) from exc

    async def stored_query(self, query_id: str, parameters: dict[str, list[str]],
                           assertion: etree._Element) -> tuple[RegistryResult, list[dict[str, Any]]]:
        """ITI-18: run a registry stored query and return the result and the document entries found."""
        env = envelope(c.ACTION_ITI18, self.endpoint.registry_url, stored_query(query_id, parameters), assertion)
        data = etree.tostring(env, xml_declaration=True, encoding="UTF-8")
        answer = await self._post(self.endpoint.registry_url,
                                  f'application/soap+xml; charset=UTF-8; action="{c.ACTION_ITI18}"', data)
        try:
            result = parse_registry_response(answer)
        except SoapError as exc:
            raise DmpTransportError(str(exc)) from exc
        entries = [read_entry(eo) for eo in answer.iterfind(
            f"{{{c.NS_RIM}}}RegistryObjectList/{{{c.NS_RIM}}}ExtrinsicObject")]
        return result, entries

    async def check_access(self, matricule: str, oid: str, structure_id: str, assertion: etree._Element) -> Any:
        """TD0.2 (precheck.py): does the patient's DMP exist, is it open, is the assertion's professional
        authorised? Returns a :class:`~gateway.dmp_bridge.precheck.AccessCheck`."""
        from gateway.dmp_bridge import precheck

        url = self.endpoint.patients
        env = envelope(precheck.ACTION_TD02, url, precheck.query(matricule, oid, structure_id), assertion)
        data = etree.tostring(env, xml_declaration=True, encoding="UTF-8")
        answer = await self._post(url, f'application/soap+xml; charset=UTF-8; action="{precheck.ACTION_TD02}"', data)
        try:
            return precheck.read_answer(answer)
        except SoapError as exc:
            raise DmpTransportError(f"The DMP's TD0.2 answer could not be read: {exc}") from exc

    async def find_documents(self, matricule: str, oid: str, assertion: etree._Element,
                             statuses: Sequence[str] = (c.STATUS_APPROVED,)) -> list[dict[str, Any]]:
        params = {"$XDSDocumentEntryPatientId": [f"'{matricule}^^^&{oid}&ISO^NH'"],
                  "$XDSDocumentEntryStatus": ["(" + ",".join(f"'{s}'" for s in statuses) + ")"]}
        result, entries = await self.stored_query(c.QUERY_FIND_DOCUMENTS, params, assertion)
        if not result.success:
            raise DmpTransportError(f"FindDocuments failed: {result.message}")
        return entries

    async def get_documents(self, unique_ids: Sequence[str], assertion: etree._Element) -> list[dict[str, Any]]:
        params = {"$XDSDocumentEntryUniqueId": ["(" + ",".join(f"'{u}'" for u in unique_ids) + ")"]}
        result, entries = await self.stored_query(c.QUERY_GET_DOCUMENTS, params, assertion)
        if not result.success:
            raise DmpTransportError(f"GetDocuments failed: {result.message}")
        return entries


def now() -> datetime:
    return datetime.now(UTC)
