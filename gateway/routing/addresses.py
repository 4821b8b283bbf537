"""Recipient addresses: ours (professional or patient domain) or remote, and the relay tricks we refuse."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.config import Config
from gateway.ins_matching.nir import is_well_formed, key_ok
from gateway.routing import replies
from gateway.routing.replies import Reply

# RFC 5321 dot-atom local part, without the characters older MTAs treat as routing (% and !).
# RFC 6531 3.3 extends atext with UTF-8 (surrogates, which stand for undecodable bytes, are not UTF-8).
_LOCAL = re.compile("^[A-Za-z0-9#$&'*+/=?^_`{|}~\u00a1-\ud7ff\ue000-\U0010ffff-]+"
                    "(\\.[A-Za-z0-9#$&'*+/=?^_`{|}~\u00a1-\ud7ff\ue000-\U0010ffff-]+)*$")
_DOMAIN = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9-]{2,63}$")


@dataclass(frozen=True)
class Parsed:
    """A syntactically valid address: ``local@domain`` with the domain lower-cased."""

    local: str
    domain: str

    @property
    def address(self) -> str:
        return f"{self.local.lower()}@{self.domain}"


def parse(address: str) -> Parsed | Reply:
    """Split a path into local part and domain, or the reply refusing it.

    Source routes (``@a,@b:user@c``), quoted local parts, ``%`` and ``!`` are refused as relay attempts
    before any lookup: the gateway is never an open relay.
    """
    address = address.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    if address.startswith("@") or ":" in address or address.startswith('"') or "%" in address or "!" in address:
        return replies.ADDRESS_TRICK
    local, sep, domain = address.rpartition("@")
    if not sep or not local or not domain or "@" in local:
        return replies.BAD_ADDRESS
    if not _LOCAL.match(local) or not _DOMAIN.match(domain) or len(local) > 64 or len(domain) > 255:
        return replies.BAD_ADDRESS
    if not local.isascii() and (len(local.encode()) > 64 or not all(c.isprintable() and not c.isspace()
                                                                     for c in local)):
        return replies.BAD_ADDRESS  # RFC 6531: 64 octets, and no invisible or space characters
    return Parsed(local, domain.lower())


@dataclass(frozen=True)
class Local:
    """An address at one of our professional domains."""

    address: str


@dataclass(frozen=True)
class PatientAddress:
    """An address at the patient domain: the patient's INS matricule (R8 checked)."""

    address: str
    matricule: str


@dataclass(frozen=True)
class Remote:
    address: str
    domain: str


Destination = Local | PatientAddress | Remote


def classify(address: str, config: Config) -> Destination | Reply:
    """What kind of destination an RCPT TO address is, or the reply that refuses it outright."""
    parsed = parse(address)
    if isinstance(parsed, Reply):
        return parsed
    if parsed.domain == config.patient_domain:
        matricule = parsed.local.upper()
        if len(matricule) != 15 or not is_well_formed(matricule):
            return replies.BAD_INS_SHAPE
        if not key_ok(matricule):
            return replies.BAD_INS_KEY
        return PatientAddress(parsed.address, matricule)
    if parsed.domain in config.domains:
        return Local(parsed.address)
    return Remote(parsed.address, parsed.domain)
