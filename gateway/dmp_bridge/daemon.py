"""The DMP bridge as the daemon runs it: the deposit policy from configuration, the ITI-41 client, the outbox.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import asyncio
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.config import DmpSettings
from gateway.config.directory import DirectorySettings
from gateway.directory.client import client_for
from gateway.dmp_bridge import constants as c
from gateway.dmp_bridge.deposit import Depositor
from gateway.dmp_bridge.outbox_worker import OutboxWorker
from gateway.dmp_bridge.rules import (
    CONTENT_TYPE_LABELS,
    PROFESSION_LABELS,
    SECTOR_LABELS,
    SPECIALTY_LABELS,
    AccessMode,
    DepositPolicy,
    Professional,
    Structure,
    labelled,
)
from gateway.dmp_bridge.saml import Software
from gateway.dmp_bridge.soap import DmpClient, Endpoint, client_ssl_context
from gateway.pki import Issued
from gateway.store.changes import ChangeHub
from gateway.store.queue import Backoff
from gateway.tasks import Background


def load_issued(certificate: str, key: str) -> Issued:
    """A certificate (with its chain) and its private key, from PEM files."""
    with open(certificate, "rb") as cert_file, open(key, "rb") as key_file:
        chain = x509.load_pem_x509_certificates(cert_file.read())
        private = serialization.load_pem_private_key(key_file.read(), None)
    if not isinstance(private, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("the private key must be RSA or EC")
    return Issued(chain[0], private, tuple(chain[1:]))


def policy_from(settings: DmpSettings) -> DepositPolicy:
    """R13, R14, R16 as configured: the structure (its sector is both the VIHF Secteur_Activite and the
    healthcareFacilityTypeCode, so that they agree), its professionals with their role and specialty, access
    modes and default visibility."""
    sector = labelled(settings.activity_sector, c.OID_FACILITY_TYPE, settings.activity_sector_name, SECTOR_LABELS)
    content_type = labelled(settings.content_type_code, c.OID_CONTENT_TYPE, settings.content_type_name,
                            CONTENT_TYPE_LABELS)
    structure = Structure(settings.structure_id, settings.structure_name, settings.source_id,
                          facility_type=sector, activity_sector=sector, content_type=content_type)
    professionals = tuple(
        Professional(p.national_id, p.family, p.given, p.mailbox,
                     profession=labelled(p.role, c.OID_PROFESSION, p.role_name, PROFESSION_LABELS),
                     specialty=labelled(p.specialty, c.OID_SPECIALTY, p.specialty_name, SPECIALTY_LABELS))
        for p in settings.professionals)
    return DepositPolicy(structure, professionals, AccessMode(settings.default_mode),
                         {address: AccessMode(mode) for address, mode in settings.modes},
                         default_visibility=settings.default_visibility)


def package_version() -> str:
    """The installed distribution's version: LPS_Version when the configuration does not name one."""
    try:
        return dist_version("mss-gateway")
    except PackageNotFoundError:
        return "0+unknown"


def software_from(settings: DmpSettings) -> Software:
    """The VIHF LPS attributes as configured (LPS_ID_HOMOLOGATION_DMP, LPS_Nom, LPS_Version)."""
    return Software(name=settings.lps_name, version=settings.lps_version or package_version(),
                    homologation=settings.lps_homologation)


class DmpBridge(Background):
    """The outbox worker sending deposits to the configured DMP endpoint; given the store's change ``hub``, it
    starts a deposit as soon as the transaction that queued it commits."""

    name = "dmp-outbox"

    def __init__(self, settings: DmpSettings, sessions: async_sessionmaker[AsyncSession],
                 hub: ChangeHub | None = None, directory: DirectorySettings | None = None) -> None:
        super().__init__()
        self.settings = settings
        #: Authors' profession, specialty and structure come from the Annuaire Santé when configured (authors.py).
        self.directory = client_for(directory) if directory is not None else None
        self.policy = policy_from(settings)
        client_cert = load_issued(str(settings.client_certificate), str(settings.client_key))
        signer = load_issued(str(settings.signing_certificate), str(settings.signing_key))
        endpoint = Endpoint(settings.repository_url, settings.registry_url,
                            client_ssl_context(client_cert, str(settings.ca_file)))
        self.client = DmpClient(endpoint, client_cert)
        self.worker = OutboxWorker(sessions, Depositor(self.client, signer, self.policy, software_from(settings)),
                                   self.policy, concurrency=settings.concurrency, lease=settings.lease,
                                   backoff=Backoff(settings.retry_base, 2.0, settings.retry_ceiling), hub=hub,
                                   directory=self.directory)

    async def main(self) -> None:
        stop = asyncio.Event()
        try:
            await self.worker.run(stop)
        finally:
            stop.set()
            await self.client.close()
            if self.directory is not None:
                await self.directory.close()
