"""Issue 6 end to end through real sockets: SMTP submission → deposit job → outbox → DMP simulator → ITI-18.

A biologist's practice software submits a message with the lab report CDA to the qualified test patient; the
running gateway considers it (R12–R16), deposits it over ITI-41 (SOAP/MTOM, signed VIHF, TLS client certificate)
to a `gateway dmp-simulator` process, and an ITI-18 FindDocuments query returns it with the expected metadata.
"""

from __future__ import annotations

import asyncio
import email.policy
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from dmp_bridge.dmp_support import BIOLOGIST, MATRICULE, TEST_OID, policy
from sqlalchemy import select
from support.pki import PKIFiles
from support.process import GatewayProcess, free_port
from support.store import Store

from gateway.dmp_bridge.deposit import Depositor
from gateway.dmp_bridge.outbox import ACCEPTED, DmpDeposit
from gateway.dmp_bridge.soap import DmpClient, Endpoint, client_ssl_context
from gateway.samples import samples_dir

BIO = samples_dir() / "cda" / "BIO-CR-BIO_2024.01_TSH_1.xml"
SENDER = "marcel.camparini@pro.gateway.test"
PATIENT = f"{MATRICULE}@patient.gateway.test"


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def dmp(tmp_path: Path, pki: PKIFiles) -> Iterator[dict[str, Any]]:
    """A `gateway dmp-simulator` process with certificates of the test PKI."""
    folder = tmp_path / "dmp"
    folder.mkdir()
    pki.pki.server("localhost").write(folder / "dmp.crt", folder / "dmp.key")
    client, signer = pki.pki.software("structure-tls"), pki.pki.signing("structure-signing")
    client.write(folder / "client.crt", folder / "client.key")
    signer.write(folder / "signing.crt", folder / "signing.key")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "dmp-simulator", "--listen", f"127.0.0.1:{port}",
         "--certificate", str(folder / "dmp.crt"), "--key", str(folder / "dmp.key"), "--ca", str(pki.ca_bundle)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not _accepts(port) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert _accepts(port), "the DMP simulator did not start"
    yield {"url": f"https://localhost:{port}", "folder": folder, "client": client, "signer": signer}
    process.terminate()
    process.wait(10)


def dmp_config(dmp: dict[str, Any], ca: Path) -> str:
    folder = dmp["folder"]
    return f"""
[dmp]
repository_url = "{dmp['url']}/repository"
registry_url = "{dmp['url']}/registry"
ca_file = "{ca}"
client_certificate = "{folder / 'client.crt'}"
client_key = "{folder / 'client.key'}"
signing_certificate = "{folder / 'signing.crt'}"
signing_key = "{folder / 'signing.key'}"
structure_id = "1120459876"
structure_name = "Laboratoire des charmes"
source_id = "1.2.250.1.999.42"
default_mode = "systematic"

[[dmp.professional]]
national_id = "{BIOLOGIST.national_id}"
family = "{BIOLOGIST.family}"
given = "{BIOLOGIST.given}"
mailbox = "{SENDER}"
"""


def submission(cda: bytes) -> bytes:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"], message["To"], message["Subject"] = SENDER, PATIENT, "Votre compte rendu"
    message["Message-ID"] = f"<{time.monotonic_ns()}@lgc.test>"
    message.set_content("Bonjour, voici votre compte rendu d'examens.")
    message.add_attachment(cda, maintype="text", subtype="xml", filename="CR-BIO.xml")
    return message.as_bytes()


def deposits(store: Store) -> list[DmpDeposit]:
    async def work(session: Any) -> list[DmpDeposit]:
        return list((await session.execute(select(DmpDeposit))).scalars())
    return store.run(work)


def test_r12_a_submitted_lab_report_reaches_the_dmp_and_iti18_finds_it(
        tmp_path: Path, pki: PKIFiles, store_url: str, dmp: dict[str, Any]):
    store = Store(store_url)
    store.add_mailbox(SENDER, "PER")
    store.add_mailbox(PATIENT, "PAT")
    store.add_identity()  # qualifiée (R4, R7)
    gateway = GatewayProcess(tmp_path / "gw", pki, store_url, message_size=5_000_000,
                             extra_config=dmp_config(dmp, pki.ca_bundle))
    gateway.start()
    try:
        with gateway.smtp(SENDER) as client:
            client.sendmail(SENDER, [PATIENT], submission(BIO.read_bytes()))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(d.state == ACCEPTED for d in deposits(store)):
            time.sleep(0.2)
        jobs = deposits(store)
        assert [d.state for d in jobs] == [ACCEPTED], ([(d.state, d.last_error) for d in jobs],
                                                       "\n".join(gateway.log_lines[-20:]))
        listing = subprocess.run([sys.executable, "-m", "gateway.cli", "dmp", "list", "--json", "--config",
                                  str(gateway.config_path)], capture_output=True, text=True, timeout=60)
        assert listing.returncode == 0 and '"accepted"' in listing.stdout, listing.stderr
        refused = subprocess.run([sys.executable, "-m", "gateway.cli", "dmp", "cancel", str(jobs[0].id),
                                  "--config", str(gateway.config_path)], capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1 and "accepted" in refused.stderr  # an accepted deposit cannot be cancelled
    finally:
        gateway.stop()

    async def query() -> list[dict[str, Any]]:
        endpoint = Endpoint(f"{dmp['url']}/repository", f"{dmp['url']}/registry",
                            client_ssl_context(dmp["client"], pki.ca_bundle.read_bytes()))
        async with DmpClient(endpoint, dmp["client"]) as client:
            depositor = Depositor(client, dmp["signer"], policy())
            return await depositor.find(BIOLOGIST, MATRICULE, TEST_OID)

    found = asyncio.run(query())
    assert len(found) == 1
    entry = found[0]
    assert entry["typeCode"] == "11502-2"  # lab report (LOINC), from the CDA code
    assert entry["formatCode"] == "urn:ihe:lab:xd-lab:2008"
    assert entry["patientId"] == f"{MATRICULE}^^^&{TEST_OID}&ISO^NH"  # the patient's INS
    assert entry["authorPerson"][0].startswith(f"{BIOLOGIST.national_id}^CAMPARINI")
    assert entry["uniqueId"] == "1.2.250.1.213.1.1.1.55.2024.9.1"  # the CDA id
    assert entry["confidentialityCode"] == ["N"]  # visible: no visibility code asked (R16)
    assert entry["title"] == "Compte rendu d'examens biologiques"
    assert [e.rule for e in store.events("dmp.considered")] == ["R12"]
