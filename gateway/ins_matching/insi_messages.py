"""The INSi teleservice's messages (R9): rechercherInsAvecTraitsIdentite, rechercherInsAvecCarteVitale and the
verification of an INS, as SOAP 1.2 bodies, read and written here for both the client and the simulator.

The CNAM's WSDL is distributed to approved software vendors only. The operation names, the fields (birth name,
first names, sex, birth date, birth place; the NIR and its key; the OID; the INS history) and the answer codes
(CR 00 one identity, 01 none, 02 several) are modelled on what the CNAM INSi implementation guide publishes; the
namespace and the element spelling are this gateway's. Every reader is bounded (sizes, counts) and never resolves
entities.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from lxml import etree

from gateway.ins_matching.identities import Traits

NS_SOAP = "http://www.w3.org/2003/05/soap-envelope"
NS_INSI = "urn:gateway:insi:1"
OP_TRAITS = "rechercherInsAvecTraitsIdentite"
OP_CARD = "rechercherInsAvecCarteVitale"
OP_VERIFY = "verifierIns"
OPERATIONS = (OP_TRAITS, OP_CARD, OP_VERIFY)
#: The answer codes (compte rendu) of the guide.
CR_FOUND = "00"
CR_NONE = "01"
CR_SEVERAL = "02"
CR_LABELS = {CR_FOUND: "OK", CR_NONE: "Aucune identité trouvée", CR_SEVERAL: "Plusieurs identités trouvées"}
OUTCOMES = {CR_FOUND: "found", CR_NONE: "none", CR_SEVERAL: "several"}
MAX_MESSAGE = 64 * 1024
MAX_FIELD = 200
MAX_HISTORY = 20


class InsiMessageError(ValueError):
    """A message that is not one of the INSi operations or answers; the text says what is wrong."""


def _i(tag: str) -> str:
    return f"{{{NS_INSI}}}{tag}"


def _s(tag: str) -> str:
    return f"{{{NS_SOAP}}}{tag}"


def envelope(body: etree._Element) -> bytes:
    env = etree.Element(_s("Envelope"), nsmap={"soap": NS_SOAP, "insi": NS_INSI})
    header = etree.SubElement(env, _s("Header"))
    etree.SubElement(header, _i("IdentifiantEchange")).text = str(uuid.uuid4())
    etree.SubElement(env, _s("Body")).append(body)
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def parse(data: bytes) -> etree._Element:
    """The one element of a SOAP 1.2 body, bounded and without entities."""
    if len(data) > MAX_MESSAGE:
        raise InsiMessageError(f"The message is {len(data)} bytes; the limit is {MAX_MESSAGE}.")
    try:
        env = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                                     huge_tree=False))
    except etree.XMLSyntaxError as exc:
        raise InsiMessageError(f"The message is not XML: {exc}.") from exc
    body = env.find(_s("Body")) if env.tag == _s("Envelope") else None
    if body is None or len(body) != 1:
        raise InsiMessageError("The message is not a SOAP 1.2 envelope with one body element.")
    return body[0]


def _text(parent: etree._Element, tag: str, required: bool = True) -> str:
    value = (parent.findtext(_i(tag)) or "").strip()
    if len(value) > MAX_FIELD or any(ch in value for ch in "\r\n\x00"):
        raise InsiMessageError(f"{tag} is not one line of at most {MAX_FIELD} characters.")
    if required and not value:
        raise InsiMessageError(f"{tag} is missing.")
    return value


def _put(parent: etree._Element, tag: str, value: str) -> None:
    etree.SubElement(parent, _i(tag)).text = value


def _put_traits(parent: etree._Element, traits: Traits) -> None:
    _put(parent, "NomNaissance", traits.birth_name)
    _put(parent, "Prenoms", traits.first_names)
    _put(parent, "Sexe", traits.sex)
    _put(parent, "DateNaissance", traits.birth_date)
    _put(parent, "LieuNaissance", traits.birth_place or "")


def _read_traits(parent: etree._Element) -> Traits:
    return Traits(_text(parent, "NomNaissance"), _text(parent, "Prenoms"), _text(parent, "DateNaissance"),
                  _text(parent, "Sexe"), _text(parent, "LieuNaissance", required=False))


# --- Requests ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    """One INSi question: by traits, by Carte Vitale (the holder's NIR and birth date), or the verification of a
    matricule against traits."""

    operation: str
    traits: Traits | None = None
    matricule: str = ""
    birth_date: str = ""
    rank: str = "1"


def request(req: Request) -> bytes:
    root = etree.Element(_i(req.operation))
    if req.operation == OP_CARD:
        card = etree.SubElement(root, _i("CarteVitale"))
        _put(card, "NirPorteur", req.matricule)
        _put(card, "DateNaissance", req.birth_date)
        _put(card, "RangNaissance", req.rank)
    else:
        if req.traits is None:
            raise ValueError(f"{req.operation} needs the traits.")
        if req.operation == OP_VERIFY:
            _put(root, "Matricule", req.matricule)
        _put_traits(etree.SubElement(root, _i("Traits")), req.traits)
    return envelope(root)


def read_request(element: etree._Element) -> Request:
    name = etree.QName(element)
    if name.namespace != NS_INSI or name.localname not in OPERATIONS:
        raise InsiMessageError(f"Unknown INSi operation {name.localname[:60]}.")
    if name.localname == OP_CARD:
        card = element.find(_i("CarteVitale"))
        if card is None:
            raise InsiMessageError("CarteVitale is missing.")
        return Request(OP_CARD, matricule=_text(card, "NirPorteur"), birth_date=_text(card, "DateNaissance"),
                       rank=_text(card, "RangNaissance", required=False) or "1")
    traits = element.find(_i("Traits"))
    if traits is None:
        raise InsiMessageError("Traits is missing.")
    matricule = _text(element, "Matricule") if name.localname == OP_VERIFY else ""
    return Request(name.localname, _read_traits(traits), matricule)


# --- Answers -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Person:
    """An identity as INSi returns it: the INS (matricule and OID) and the reference traits."""

    matricule: str
    oid: str
    traits: Traits


@dataclass(frozen=True)
class Answer:
    code: str
    person: Person | None = None
    #: Earlier matricules of this person (obsolete NIA or NIR), most recent first.
    history: tuple[str, ...] = ()

    @property
    def outcome(self) -> str:
        return OUTCOMES.get(self.code, "none")


def answer(operation: str, ans: Answer) -> bytes:
    root = etree.Element(_i(f"{operation}Reponse"))
    cr = etree.SubElement(root, _i("CR"))
    _put(cr, "CodeCR", ans.code)
    _put(cr, "LibelleCR", CR_LABELS.get(ans.code, ""))
    if ans.person is not None:
        person = etree.SubElement(root, _i("Individu"))
        ins = etree.SubElement(person, _i("INS"))
        _put(ins, "Matricule", ans.person.matricule)
        _put(ins, "OID", ans.person.oid)
        _put_traits(etree.SubElement(person, _i("Traits")), ans.person.traits)
        if ans.history:
            history = etree.SubElement(person, _i("HistoriqueINS"))
            for old in ans.history:
                _put(history, "Matricule", old)
    return envelope(root)


def read_answer(element: etree._Element, operation: str) -> Answer:
    if element.tag == _s("Fault"):
        reason = element.findtext(f"{_s('Reason')}/{_s('Text')}") or "SOAP fault"
        raise InsiMessageError(f"INSi answered a fault: {reason.strip()[:200]}")
    if element.tag != _i(f"{operation}Reponse"):
        raise InsiMessageError(f"Expected the answer to {operation}, got {etree.QName(element).localname[:60]}.")
    cr = element.find(_i("CR"))
    if cr is None:
        raise InsiMessageError("The answer has no CR.")
    code = _text(cr, "CodeCR")
    if code not in OUTCOMES:
        raise InsiMessageError(f"Unknown INSi answer code {code[:10]}.")
    person_el = element.find(_i("Individu"))
    person = None
    history: tuple[str, ...] = ()
    if person_el is not None:
        ins, traits = person_el.find(_i("INS")), person_el.find(_i("Traits"))
        if ins is None or traits is None:
            raise InsiMessageError("An Individu needs its INS and its traits.")
        person = Person(_text(ins, "Matricule"), _text(ins, "OID"), _read_traits(traits))
        olds = person_el.findall(f"{_i('HistoriqueINS')}/{_i('Matricule')}")
        if len(olds) > MAX_HISTORY:
            raise InsiMessageError("The INS history is too long.")
        history = tuple((o.text or "").strip()[:MAX_FIELD] for o in olds)
    if code == CR_FOUND and person is None:
        raise InsiMessageError("CR 00 without the identity found.")
    return Answer(code, person, history)


def fault(reason: str) -> bytes:
    env = etree.Element(_s("Envelope"), nsmap={"soap": NS_SOAP})
    f = etree.SubElement(etree.SubElement(env, _s("Body")), _s("Fault"))
    etree.SubElement(etree.SubElement(f, _s("Code")), _s("Value")).text = "soap:Sender"
    etree.SubElement(etree.SubElement(f, _s("Reason")), _s("Text")).text = reason
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")
