"""A DMP simulator: the same ITI-41 / ITI-18 protocol as the real DMP, over HTTPS with client certificates.

It checks what the real platform checks (MTOM structure, the XDS.b schema, the VIHF signature and attributes,
required metadata, value sets, formats, the 5 MB limit, the submission set's signature when one is sent), models
the DMP states and authorisations of R17 (also answered before a deposit by the TD0.2 pre-check), answers with
real XDS RegistryResponse forms, keeps what it accepts (memory, optionally a JSON file) and can be told to fail
(HTTP 503, hanging, slow answers, answers lost after storing) to exercise the deposit outbox.

``gateway dmp-simulator`` runs :func:`main`; tests use :func:`serve` in-process. model.py holds the records,
core.py the checks and answers, web.py the HTTP front and the command.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from gateway.dmp_bridge.simulator.core import Simulator
from gateway.dmp_bridge.simulator.model import (
    AUTHORISATION_LAPSE,
    FAULT_MODES,
    DmpState,
    Fault,
    PatientRecord,
    Rejected,
    StoredDocument,
)
from gateway.dmp_bridge.simulator.web import load_anchors, main, serve, server_ssl_context

__all__ = ["AUTHORISATION_LAPSE", "FAULT_MODES", "DmpState", "Fault", "PatientRecord", "Rejected", "Simulator",
           "StoredDocument", "load_anchors", "main", "serve", "server_ssl_context"]
