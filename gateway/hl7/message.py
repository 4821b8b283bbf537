"""Reading one HL7 v2 document message (ORU^R01, MDM^T02, MDM^T10) of the ANS volet, and why it is refused.

Pure and bounded: the frame was capped by :mod:`gateway.hl7.mllp`; here the header and encoding characters are
checked on the raw bytes, the charset of MSH-18 applied, the segments counted, and only then is the text
split (:mod:`gateway.hl7.er7`: segments and fields once, a repetition, component or sub-component cut out only
when read, every split bounded, no recursion the input can drive). The CDA of the OBX ``ED`` is decoded once,
within ``max_document_bytes``, and read by the documents readers (gateway/documents/cda, the hardened ones): a
zip, an entity or a non-CDA is refused.

A refusal is a value naming the field (HL7 v2.5 ERR-2 location ``SEG^seq^field``, ERR-3 table 0357 code):
``AR`` when the message cannot be read as HL7 at all, ``AE`` when it can but its content is wrong.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field
from typing import Any

import pybase64

from gateway.codes.oids import INS_OIDS, TEST_OIDS
from gateway.documents.cda import CdaHeader, read_header, read_header_and_content
from gateway.documents.errors import DocumentRefused
from gateway.documents.limits import CdaLimits
from gateway.hl7 import codes, er7
from gateway.ins_matching.nir import is_well_formed, key_ok

CHARSETS = {"": "utf-8", "UNICODE UTF-8": "utf-8", "UTF-8": "utf-8", "8859/15": "iso-8859-15",
            "8859/1": "iso-8859-1", "ASCII": "ascii"}


class Refusal(Exception):
    """Why a message is not accepted: the ACK code, the ERR-2 location, the ERR-3 code, a sentence (ERR-8)."""

    def __init__(self, ack: str, location: str, condition: tuple[str, str], text: str) -> None:
        super().__init__(text)
        self.ack, self.location, self.condition, self.text = ack, location, condition, text
        #: The MSH read before the refusal (the ACK answers its MSH-10), when it could be read.
        self.header: Header | None = None
        #: The rule refused under (R4, R8, R16...), for the trail (R18).
        self.rule: str | None = None

    def of(self, header: Header) -> Refusal:
        self.header = header
        return self

    def under(self, rule: str) -> Refusal:
        self.rule = rule
        return self


@dataclass(frozen=True)
class Header:
    """MSH as the ACK needs it, read from the raw bytes so that even an unparseable message can be answered."""

    control_id: str = ""
    message_type: str = ""
    version: str = ""
    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    charset: str = ""


@dataclass(frozen=True)
class Recipient:
    address: str
    #: The PRT segment it came from (1-based among PRT segments), for ERR-2.
    prt: int


@dataclass(frozen=True)
class Hl7Document:
    """What an accepted ORU/MDM message asks for: one CDA, one patient, its destinations and options."""

    header: Header
    matricule: str
    oid: str
    cda: bytes
    cda_header: CdaHeader
    cda_obx: int
    destinations: frozenset[str]
    #: MetaDMPMSS yes/no flags other than the destinations (visibility, acknowledgements).
    flags: frozenset[str] = frozenset()
    recipients: tuple[Recipient, ...] = ()
    reply_to: str | None = None
    bodies: dict[str, str] = field(default_factory=dict)
    #: MDM only: TXA-12 (this document) and TXA-13 (the document a T10 replaces).
    document_id: str | None = None
    replaces: str | None = None
    #: The author: OBR-32 / OBR-16 (ORU) or TXA-9 / TXA-5 (MDM), first component (RPPS national id).
    author: str | None = None
    #: IPP and other local identifiers of PID-3 (identifier, assigning authority OID).
    local_ids: tuple[tuple[str, str], ...] = ()
    #: DESTMSSANTEPAT's NTE-4 "FIN": the patient may not answer (X-MSS-MES, R2/R3).
    no_reply: bool = False
    #: The message as received without the document's base64 (OBX-5.5 emptied), in the charset it came in: what
    #: the record of the message keeps, the document itself being stored once, in the message built from it.
    envelope: bytes = b""
    #: The content a level-1 CDA wraps (``nonXMLBody``, a PDF for a lab report), read with its header.
    wrapped: bytes | None = None


def _ar(location: str, condition: tuple[str, str], text: str) -> Refusal:
    return Refusal(codes.AR, location, condition, text)


def _ae(location: str, condition: tuple[str, str], text: str) -> Refusal:
    return Refusal(codes.AE, location, condition, text)


def normalise(frame: bytes) -> bytes:
    """Segments end with CR (HL7 v2.5 2.5.4); LF and CRLF from lax senders are read as CR."""
    if b"\n" in frame:  # most senders use CR alone: no copy of the frame then
        frame = frame.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    return frame.strip(b"\r")


def read_msh(frame: bytes) -> tuple[Header, bytes, bytes]:
    """The MSH fields of the raw frame, its field separator and encoding characters; Refusal when MSH is unusable.

    HL7 v2.5 2.5.2: MSH-1 is the field separator, MSH-2 four encoding characters (component, repetition,
    escape, sub-component), all different and none a letter, a digit or white space."""
    first = frame.split(b"\r", 1)[0][:4096]
    if not first.startswith(b"MSH") or len(first) < 8:
        raise _ar("MSH^1", codes.SEGMENT_SEQUENCE, "Le message ne commence pas par un segment MSH.")
    sep = first[3:4]
    fields = first.split(sep)
    header = Header(control_id=_text(fields, 9), message_type=_type(fields, first), version=_text(fields, 11),
                    sending_application=_text(fields, 2), sending_facility=_text(fields, 3),
                    receiving_application=_text(fields, 4), receiving_facility=_text(fields, 5),
                    charset=_text(fields, 17))
    encoding = fields[1] if len(fields) > 1 else b""
    chars = sep + encoding
    if (len(encoding) != 4 or len(set(chars)) != 5
            or any(chr(c).isalnum() or chr(c).isspace() or c < 0x20 or c > 0x7e for c in chars)):
        raise Refusal(codes.AR, "MSH^1^2", codes.DATA_TYPE, "Les caractères d'encodage de MSH-1 et MSH-2 sont "
                      "invalides : quatre caractères distincts, ni lettres ni chiffres, sont attendus.").of(header)
    return header, sep, encoding


def _text(fields: list[bytes], index: int) -> str:
    """Field ``index`` of MSH as split on the raw bytes (``fields[0]`` is "MSH", so MSH-n is ``fields[n-1]``)."""
    if index >= len(fields):
        return ""
    return fields[index][:200].decode("ascii", "replace").strip()


def _type(fields: list[bytes], first: bytes) -> str:
    value = _text(fields, 8)
    comp = first[4:5] or b"^"
    parts = value.split(comp.decode("ascii", "replace"))
    return "^".join(parts[:2])


def _get(message: Any, segment: er7.Segment, field_: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str:
    """One value of a segment, '' when absent."""
    return er7.value(segment, field_, rep, comp, sub)


def _repetitions(segment: er7.Segment, field_: int) -> int:
    return er7.repetitions(segment, field_)


def parse(frame: bytes, *, max_segments: int, max_document_bytes: int, allow_test_identities: bool) -> Hl7Document:
    """The document message in ``frame`` (MLLP content), or :class:`Refusal` naming the field at fault."""
    frame = normalise(frame)
    header, separator, encoding = read_msh(frame)
    charset = CHARSETS.get(header.charset.upper())
    if charset is None:
        raise _ar("MSH^1^18", codes.TABLE_VALUE, f"Jeu de caractères MSH-18 non pris en charge : {header.charset!r}."
                  ).of(header)
    segments = frame.count(b"\r") + 1
    if segments > max_segments:
        raise _ar("MSH^1", codes.OTHER, f"Le message compte {segments} segments ; au plus {max_segments} sont "
                  "acceptés.").of(header)
    try:
        text = frame.decode(charset)
    except UnicodeDecodeError:
        raise _ar("MSH^1^18", codes.DATA_TYPE, "Le message n'est pas encodé dans le jeu de caractères annoncé en "
                  "MSH-18.").of(header) from None
    message = er7.segments(text, er7.Delimiters.of(separator.decode("ascii"), encoding.decode("ascii")))
    try:
        return _document(message, header, max_document_bytes, allow_test_identities, charset)
    except Refusal as refusal:
        raise refusal.of(header) from None


def _segments(message: list[er7.Segment], name: str) -> list[er7.Segment]:
    return [s for s in message if s.name == name]


def _document(message: list[er7.Segment], header: Header, max_document_bytes: int, allow_test: bool,
              charset: str = "utf-8") -> Hl7Document:
    if not header.control_id:
        raise _ar("MSH^1^10", codes.REQUIRED_FIELD, "MSH-10 (identifiant du message) est obligatoire.")
    kind = header.message_type
    if kind not in codes.MESSAGE_TYPES:
        condition = codes.UNSUPPORTED_EVENT if kind.split("^")[0] in ("ORU", "MDM") else codes.UNSUPPORTED_TYPE
        raise _ar("MSH^1^9", condition, f"Type de message {kind!r} non pris en charge (ORU^R01, MDM^T02, MDM^T10).")
    if header.version not in codes.VERSIONS:
        raise _ae("MSH^1^12", codes.UNSUPPORTED_VERSION, f"Version HL7 {header.version!r} non prise en charge.")
    pids = _segments(message, "PID")
    if len(pids) != 1:
        raise _ae("PID", codes.SEGMENT_SEQUENCE, "Le message doit porter exactement un segment PID.")
    matricule, oid, local = _ins(message, pids[0], allow_test)
    author, document_id, replaces = _author(message, kind)
    obx = _segments(message, "OBX")
    if not obx:
        raise _ae("OBX", codes.SEGMENT_SEQUENCE, "Aucun segment OBX : le document CDA est attendu en OBX ED.")
    destinations: set[str] = set()
    flags: set[str] = set()
    bodies: dict[str, str] = {}
    cda: tuple[int, bytes] | None = None
    cda_segment: er7.Segment | None = None
    no_reply = False
    for index, segment in enumerate(obx, start=1):
        value_type = _get(message, segment, 2)
        code, system = _get(message, segment, 3, comp=1), _get(message, segment, 3, comp=3)
        where = f"OBX^{index}^5"
        if system == codes.META_SYSTEM:
            if code in codes.BODIES:
                bodies[code] = _decoded(message, segment, where, 64 * 1024).decode("utf-8", "replace")
                continue
            if code not in codes.YES_NO:
                raise _ae(f"OBX^{index}^3", codes.TABLE_VALUE, f"Code {code!r} absent de la table MetaDMPMSS.")
            answer = _get(message, segment, 5).strip().upper()
            if answer not in ("Y", "N"):
                raise _ae(where, codes.TABLE_VALUE, f"{code} attend Y ou N (expandedYes-NoIndicator).")
            if answer == "Y":
                (destinations if code.startswith("DEST") else flags).add(code)
            continue
        if value_type == "ED":
            if cda is not None:
                raise _ae(where, codes.OTHER, "Un seul document CDA par message est pris en charge.")
            cda = (index, _decoded(message, segment, where, max_document_bytes))
            cda_segment = segment
    for nte in _segments(message, "NTE"):
        if _get(message, nte, 4).strip().upper() == "FIN":
            no_reply = True
    if cda is None:
        raise _ae("OBX", codes.REQUIRED_FIELD, "Aucun OBX de type ED ne porte le document CDA.")
    if not destinations:
        raise _ae("OBX", codes.REQUIRED_FIELD, "Aucune destination demandée (DESTDMP, DESTMSSANTEPS, "
                  "DESTMSSANTEPAT à Y).")
    index, data = cda
    try:
        limits = CdaLimits(max_bytes=max_document_bytes)
        if b"nonXMLBody" in data:  # the CDA parsed once for its header and the content it wraps
            cda_header, wrapped = read_header_and_content(data, limits=limits)
        else:
            cda_header, wrapped = read_header(data, validate=False, limits=limits), None
    except DocumentRefused as exc:
        raise _ae(f"OBX^{index}^5", codes.APPLICATION, f"Le document CDA est refusé : {exc}") from None
    if cda_header.patient.matricule != matricule:
        raise _ae("PID^1^3", codes.APPLICATION, "L'INS de PID-3 diffère de celui du document CDA "
                  "(recordTarget/patientRole/id).")
    if kind == codes.MDM_T10 and cda_header.replaces is None:
        raise _ae(f"OBX^{index}^5", codes.APPLICATION, "Un MDM^T10 remplace un document : le CDA doit porter "
                  "relatedDocument[@typeCode='RPLC'].")
    recipients, reply_to = _participants(message)
    return Hl7Document(header, matricule, oid, data, cda_header, index, frozenset(destinations), frozenset(flags),
                       recipients, reply_to, bodies, document_id, replaces, author, local, no_reply,
                       _envelope(message, cda_segment, charset), wrapped)


def _envelope(message: list[er7.Segment], document: er7.Segment | None, charset: str) -> bytes:
    """The segments again, CR-separated, with the document's OBX-5.5 left empty (its other components kept)."""
    lines = []
    for segment in message:
        fields = segment.fields
        if segment is document:
            marks = segment.delimiters
            kept = fields[5].split(marks.component, 4)[:4]
            fields = [*fields[:5], marks.component.join(kept) + marks.component, *fields[6:]]
        lines.append(segment.delimiters.field.join(fields))
    return "\r".join(lines).encode(charset, "replace")


def _ins(message: Any, pid: Any, allow_test: bool) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    """PID-3: the INS (identifier type ``INS``, or an INS OID as assigning authority, R8) and the local ids."""
    found: tuple[str, str] | None = None
    local = []
    for rep in range(1, min(_repetitions(pid, 3), 20) + 1):
        value = _get(message, pid, 3, rep, 1).strip()
        oid = _get(message, pid, 3, rep, 4, 2).strip()
        kind = _get(message, pid, 3, rep, 5).strip().upper()
        if oid in INS_OIDS or kind in ("INS", "INS-NIR", "INS-NIA"):
            if found is None:
                found = (value.upper(), oid)
        elif value:
            local.append((value[:64], oid[:64]))
    if found is None:
        raise _ae("PID^1^3", codes.REQUIRED_FIELD, "PID-3 ne porte pas d'INS (matricule avec l'OID INS-NIR ou "
                  "INS-NIA).")
    matricule, oid = found
    if oid not in INS_OIDS:
        raise _ae("PID^1^3", codes.TABLE_VALUE, "L'INS de PID-3 n'a pas l'OID d'autorité INS-NIR ou INS-NIA.")
    if oid in TEST_OIDS and not allow_test:
        raise _ae("PID^1^3", codes.TABLE_VALUE, "L'INS de PID-3 porte un OID de test, refusé ici.")
    if len(matricule) != 15 or not is_well_formed(matricule) or not key_ok(matricule):
        raise _ae("PID^1^3", codes.DATA_TYPE, "Le matricule INS de PID-3 est invalide (15 caractères, clé R8)."
                  ).under("R8")
    return matricule, oid, tuple(local)


def _author(message: Any, kind: str) -> tuple[str | None, str | None, str | None]:
    """The author and, for MDM, TXA-12/TXA-13; the volet requires TXA in MDM and OBR in ORU."""
    if kind == codes.ORU_R01:
        obr = _segments(message, "OBR")
        if not obr:
            raise _ae("OBR", codes.SEGMENT_SEQUENCE, "Un ORU^R01 doit porter un segment OBR.")
        author = _get(message, obr[0], 32) or _get(message, obr[0], 16)
        return author or None, None, None
    txa = _segments(message, "TXA")
    if len(txa) != 1:
        raise _ae("TXA", codes.SEGMENT_SEQUENCE, "Un MDM doit porter exactement un segment TXA.")
    author = _get(message, txa[0], 9) or _get(message, txa[0], 5)
    document_id = _get(message, txa[0], 12) or None
    replaces = _get(message, txa[0], 13) or None
    if kind == codes.MDM_T10 and replaces is None:
        raise _ae("TXA^1^13", codes.REQUIRED_FIELD, "Un MDM^T10 doit identifier en TXA-13 le document remplacé.")
    return author or None, document_id, replaces


def _decoded(message: Any, segment: er7.Segment, where: str, cap: int) -> bytes:
    """OBX-5 of type ED: ``^TEXT^XML^Base64^<data>``; the size is checked before decoding, and the base64 is
    checked and decoded in one vectorised pass (pybase64, strict: nothing outside the alphabet, padding only at
    the end), ~0.01 ms for a 135 KB CDA where binascii's per-character loop takes 0.6-1 ms."""
    encoding = _get(message, segment, 5, comp=4).strip().upper()
    data = _get(message, segment, 5, comp=5)
    if encoding != "BASE64":
        raise _ae(where, codes.DATA_TYPE, "OBX-5 (ED) doit être encodé en Base64 (OBX-5.4).")
    if len(data) // 4 * 3 > cap + 3:
        raise _ae(where, codes.APPLICATION, f"Le document dépasse {cap} octets.")
    for attempt in (data, None):  # most senders write one line; folded base64 is read without its spaces
        try:
            return pybase64.b64decode(attempt if attempt is not None else "".join(data.split()), validate=True)
        except (binascii.Error, ValueError, TypeError):
            continue
    raise _ae(where, codes.DATA_TYPE, "OBX-5.5 n'est pas du Base64 valide.")


def _participants(message: Any) -> tuple[tuple[Recipient, ...], str | None]:
    """PRT-4 RCT: a recipient's MSSanté address in PRT-15.4; PRT-4 REPLY: the reply address (ANS mapping)."""
    recipients: list[Recipient] = []
    reply: str | None = None
    for index, prt in enumerate(_segments(message, "PRT"), start=1):
        role = _get(message, prt, 4).strip().upper()
        address = _get(message, prt, 15, comp=4).strip().lower()
        if not address:
            continue
        if ("@" not in address or len(address) > 254 or not address.isascii() or not address.isprintable()
                or any(c.isspace() or c in ",;<>\"" for c in address)):
            raise _ae(f"PRT^{index}^15", codes.DATA_TYPE, "PRT-15.4 n'est pas une adresse MSSanté.")
        if role == codes.PRT_RECIPIENT and all(r.address != address for r in recipients):
            recipients.append(Recipient(address, index))
        elif role == codes.PRT_REPLY:
            reply = address
    return tuple(recipients[:100]), reply
