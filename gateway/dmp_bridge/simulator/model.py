"""The simulated DMP's records: patients and their DMP states (R17), stored documents, injected faults.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from lxml import etree

from gateway.dmp_bridge import constants as c
from gateway.dmp_bridge.soap import RegistryError

#: R17: an authorisation lapses after six months without access.
AUTHORISATION_LAPSE = timedelta(days=183)


class DmpState:
    """R17 states."""

    NOT_CREATED = "not_created"
    OPEN = "open"
    CLOSED = "closed"


@dataclass
class PatientRecord:
    matricule: str
    state: str = DmpState.OPEN
    #: When True, a professional needs an explicit authorisation at first access (R17).
    require_authorisation: bool = False
    #: Professional national id → last access (ISO); an authorisation lapses after 6 months without access.
    authorised: dict[str, str] = field(default_factory=dict)
    blocked: set[str] = field(default_factory=set)


@dataclass
class StoredDocument:
    entry_xml: bytes  # the ExtrinsicObject as the registry returns it
    content: bytes
    unique_id: str
    entry_uuid: str
    matricule: str
    status: str = c.STATUS_APPROVED
    lid: str = ""
    version: int = 1
    submission_set: str = ""
    received_at: str = ""


@dataclass
class Fault:
    """An injected failure for the next ``count`` ITI-41 requests."""

    mode: str  # "unavailable" | "hang" | "slow" | "lost_answer" | "store_then_hang"
    count: int = 1
    delay: float = 0.0


#: The failures the simulator can be told to inject (``inject``, ``--fault``).
FAULT_MODES = ("unavailable", "hang", "slow", "lost_answer", "store_then_hang")
#: The failures of the TD0.2 pre-check (the patients endpoint): unreachable, or answering garbage.
PRECHECK_FAULT_MODES = ("precheck_unavailable", "precheck_hang", "precheck_garbled")


class Rejected(Exception):
    def __init__(self, *errors: RegistryError) -> None:
        super().__init__("; ".join(f"{e.code}: {e.context}" for e in errors))
        self.errors = errors


def err(code: str, context: str, location: str = "") -> RegistryError:
    return RegistryError(code, context, c.SEVERITY_ERROR, location)


def stored_entry(eo: etree._Element, lid: str, version: int) -> bytes:
    """The ExtrinsicObject as the registry keeps it: Approved, with its logical id and version."""
    copy = etree.fromstring(etree.tostring(eo))
    copy.set("status", c.STATUS_APPROVED)
    copy.set("lid", lid)
    info = etree.Element(f"{{{c.NS_RIM}}}VersionInfo", versionName=str(version))
    position = 0
    for index, child in enumerate(copy):
        if child.tag in (f"{{{c.NS_RIM}}}Slot", f"{{{c.NS_RIM}}}Name", f"{{{c.NS_RIM}}}Description"):
            position = index + 1
    copy.insert(position, info)
    return etree.tostring(copy)


def with_status(xml: bytes, status: str) -> bytes:
    element = etree.fromstring(xml)
    element.set("status", status)
    return etree.tostring(element)
