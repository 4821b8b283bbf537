"""Shared helpers of the DMP bridge tests (the fixtures live in conftest.py)."""


from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.dmp_bridge.rules import AccessMode, DepositPolicy, Professional, Structure
from gateway.dmp_bridge.soap import Endpoint, client_ssl_context
from gateway.pki import DevelopmentPKI, Issued
from gateway.samples import samples_dir

SAMPLES = samples_dir()
CDA = SAMPLES / "cda"
SCHEMA_DIR = SAMPLES / "xds-schema"
MATRICULE = "279035121518989"
TEST_OID = "1.2.250.1.213.1.4.10"

#: The authors of the ANS samples, as professionals of our test structure.
BIOLOGIST = Professional("801234534765", "CAMPARINI", "Marcel", mailbox="marcel.camparini@gw.test")
GP = Professional("801234567897", "MEDECIN", "Jean", mailbox="jean.medecin@gw.test")
RADIOLOGIST = Professional("801234560801", "RADIO", "Paul", mailbox="paul.radio@gw.test")
STRUCTURE = Structure("1120459876", "Laboratoire des charmes", "1.2.250.1.999.42")


def policy(**overrides: object) -> DepositPolicy:
    values: dict[str, object] = {"structure": STRUCTURE, "professionals": (BIOLOGIST, GP, RADIOLOGIST),
                                 "default_mode": AccessMode.SYSTEMATIC}
    values.update(overrides)
    return DepositPolicy(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class DmpPKI:
    pki: DevelopmentPKI
    folder: Path
    ca_bundle: Path
    server_cert: Path
    server_key: Path
    client: Issued
    signer: Issued


def endpoint(dmp_pki: DmpPKI, url: str, timeout: float = 10.0, client: Issued | None = None) -> Endpoint:
    ctx = client_ssl_context(client or dmp_pki.client, dmp_pki.ca_bundle.read_bytes())
    return Endpoint(f"{url}/repository", f"{url}/registry", ctx, timeout)


def make_dmp_pki(folder: Path) -> DmpPKI:
    pki = DevelopmentPKI.create("DMP Test")
    pki.save(folder)
    pki.server("dmp.test").write(folder / "dmp.crt", folder / "dmp.key")
    client, signer = pki.software("structure-tls"), pki.signing("structure-signing")
    client.write(folder / "structure-tls.crt", folder / "structure-tls.key")
    signer.write(folder / "structure-signing.crt", folder / "structure-signing.key")
    return DmpPKI(pki, folder, folder / "ca-bundle.crt", folder / "dmp.crt", folder / "dmp.key", client, signer)


def sample(name: str) -> bytes:
    return (CDA / name).read_bytes()



def variant(cda: bytes, *, unique_id: str | None = None, replaces: str | None = None,
            effective_time: str | None = None) -> bytes:
    """A copy of a sample CDA with another id, an RPLC relatedDocument, or another document date."""
    from lxml import etree

    ns = {"h": "urn:hl7-org:v3"}
    root = etree.fromstring(cda, etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True))
    if unique_id is not None:
        doc_id = root.find("h:id", ns)
        doc_id.attrib.clear()
        doc_id.set("root", unique_id)
    if effective_time is not None:
        root.find("h:effectiveTime", ns).set("value", effective_time)
    if replaces is not None:
        for old in root.findall("h:relatedDocument", ns):
            root.remove(old)
        related = etree.Element("{urn:hl7-org:v3}relatedDocument", typeCode="RPLC")
        etree.SubElement(etree.SubElement(related, "{urn:hl7-org:v3}parentDocument"), "{urn:hl7-org:v3}id",
                         root=replaces)
        anchor = root.find("h:componentOf", ns)
        anchor.addprevious(related)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
