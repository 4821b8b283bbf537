"""What the bridge sends to the DMP, compared field by field with the ANS ITI-41 sample (DRIM-M publication),
and the [dmp] settings that fill the VIHF and the metadata (LPS, sector, content type, role and specialty)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dmp_bridge.dmp_support import DmpPKI, endpoint, sample
from lxml import etree

from gateway.config import ConfigError, DmpProfessional, DmpSettings, load
from gateway.dmp_bridge import constants as c
from gateway.dmp_bridge import signature
from gateway.dmp_bridge.daemon import package_version, policy_from, software_from
from gateway.dmp_bridge.deposit import Depositor, prepare
from gateway.dmp_bridge.simulator import Simulator
from gateway.dmp_bridge.soap import DmpClient

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "samples" / "dmp"
NS = {"rim": c.NS_RIM, "saml2": c.NS_SAML, "soap": c.NS_SOAP, "wsa": c.NS_WSA, "wsse": c.NS_WSSE,
      "xdsb": c.NS_XDSB, "lcm": c.NS_LCM, "hl7": c.NS_HL7}
#: The sample's KOS and signature entries also carry the imaging-only referenceIdList (accession, study) and the
#: KOS the eventCodeList (anatomy, modality). Everything else of the sample must be in what we send, the set's
#: XAdES signature document and its "signs" association included.
SIGNATURE_ONLY = {"urn:ihe:iti:xds:2013:referenceIdList"}
EVENT_CODE = c.DE_EVENT_CODE


def ans_envelope() -> etree._Element:
    """The SOAP envelope of the ANS sample's first MTOM part (the sample is illustrative: indented headers)."""
    text = (FIXTURES / "ITI-41_publication_DRIM-M.xml").read_text("utf-8")
    match = re.search(r"<soap:Envelope\b.*?</soap:Envelope>", text, re.S)
    assert match is not None
    return etree.fromstring(match.group(0).encode(), etree.XMLParser(resolve_entities=False, no_network=True))


def settings(**overrides: object) -> DmpSettings:
    values: dict[str, object] = dict(
        repository_url="https://dmp.test/repository", registry_url="https://dmp.test/registry",
        ca_file=Path("ca"), client_certificate=Path("c"), client_key=Path("k"), signing_certificate=Path("s"),
        signing_key=Path("sk"), structure_id="1120459876", structure_name="Laboratoire des charmes",
        source_id="1.2.250.1.999.42",
        professionals=(DmpProfessional("801234534765", "CAMPARINI", "Marcel", "marcel.camparini@gw.test",
                                       role="21", role_name="Pharmacien", specialty="SM05"),),
        lps_homologation="HOMOLOG-2026-042", lps_name="Passerelle MSS", lps_version="",
        activity_sector="SA07", content_type_code="04")
    values.update(overrides)
    return DmpSettings(**values)  # type: ignore[arg-type]


def _slots(obj: etree._Element) -> list[str]:
    return [s.get("name", "") for s in obj.findall("rim:Slot", NS)]


def _schemes(obj: etree._Element) -> list[str]:
    return [cl.get("classificationScheme", "") for cl in obj.findall("rim:Classification[@classificationScheme]",
                                                                       NS)]


def _ids(obj: etree._Element) -> list[str]:
    return [ei.get("identificationScheme", "") for ei in obj.findall("rim:ExternalIdentifier", NS)]


def _attributes(env: etree._Element) -> dict[str, list[etree._Element]]:
    found: dict[str, list[etree._Element]] = {}
    for attr in env.iterfind(".//saml2:AttributeStatement/saml2:Attribute", NS):
        found[attr.get("Name", "")] = attr.findall("saml2:AttributeValue", NS)
    return found


@pytest.fixture
async def captured(dmp_pki: DmpPKI, simulator: Simulator) -> etree._Element:
    """Our ITI-41 request for the ANS level-1 PDF CDA, as the simulator received it over HTTPS."""
    configured = settings()
    pol = policy_from(configured)
    client = DmpClient(endpoint(dmp_pki, simulator.url), dmp_pki.signer)
    try:
        depositor = Depositor(client, dmp_pki.signer, pol, software_from(configured))
        prepared = prepare(sample("DOC_NON_STRUCTURE_CDA-R2-N1.xml"), title="", visibility=(),
                           author=pol.professionals[0], submission_uid="1.2.250.1.999.42.7.1", policy=pol)
        result = await depositor.send(prepared)
        assert result.success, result
    finally:
        await client.close()
    assert simulator.last_request is not None
    return simulator.last_request.envelope


async def test_iti41_header_has_the_samples_addressing_and_vihf_attributes_in_order(captured) -> None:
    ans = ans_envelope()
    for tag in ("MessageID", "To", "Action"):
        assert captured.find(f"soap:Header/wsa:{tag}", NS) is not None, tag
    assert captured.findtext("soap:Header/wsa:Action", namespaces=NS) == ans.findtext(
        "soap:Header/wsa:Action", namespaces=NS)
    assert captured.find("soap:Header/wsse:Security/saml2:Assertion", NS) is not None
    assert list(_attributes(captured)) == list(_attributes(ans))


async def test_vihf_carries_the_configured_lps_sector_role_and_specialty(captured) -> None:
    attrs = _attributes(captured)
    text = {name: (values[0].text or "").strip() for name, values in attrs.items()}
    assert text["LPS_ID_HOMOLOGATION_DMP"] == "HOMOLOG-2026-042"
    assert text["LPS_Nom"] == "Passerelle MSS"
    assert text["LPS_Version"] == package_version()
    assert text["Secteur_Activite"] == f"SA07^{c.OID_FACILITY_TYPE}"
    roles = [(v[0].get("code"), v[0].get("codeSystem"), v[0].get("displayName"))
             for v in attrs["urn:oasis:names:tc:xacml:2.0:subject:role"]]
    ans_attrs = _attributes(ans_envelope())
    ans_roles = [v[0].get("codeSystem") for v in ans_attrs["urn:oasis:names:tc:xacml:2.0:subject:role"]]
    assert [r[1] for r in roles] == ans_roles
    assert roles == [("21", c.OID_PROFESSION, "Pharmacien"), ("SM05", c.OID_SPECIALTY, "Biologie médicale")]


async def test_iti41_body_has_the_samples_objects_slots_classifications_and_associations(captured) -> None:
    ans = ans_envelope()
    ours_list = captured.find(".//lcm:SubmitObjectsRequest/rim:RegistryObjectList", NS)
    ans_list = ans.find(".//lcm:SubmitObjectsRequest/rim:RegistryObjectList", NS)
    assert ours_list is not None and ans_list is not None
    ours_ss, ans_ss = ours_list.find("rim:RegistryPackage", NS), ans_list.find("rim:RegistryPackage", NS)
    assert ours_ss is not None and ans_ss is not None
    assert _slots(ours_ss) == _slots(ans_ss)
    assert sorted(_schemes(ours_ss)) == sorted(_schemes(ans_ss))
    assert sorted(_ids(ours_ss)) == sorted(_ids(ans_ss))
    ss_node = ".//rim:Classification[@classificationNode]"
    assert [n.get("classificationNode") for n in captured.iterfind(ss_node, NS)] == [
        n.get("classificationNode") for n in ans.iterfind(ss_node, NS)]
    content = ours_ss.find(f"rim:Classification[@classificationScheme='{c.SS_CONTENT_TYPE}']", NS)
    ans_content = ans_ss.find(f"rim:Classification[@classificationScheme='{c.SS_CONTENT_TYPE}']", NS)
    assert content is not None and ans_content is not None
    assert content.get("nodeRepresentation") == ans_content.get("nodeRepresentation") == "04"
    assert content.findtext("rim:Slot/rim:ValueList/rim:Value", namespaces=NS) == ans_content.findtext(
        "rim:Slot/rim:ValueList/rim:Value", namespaces=NS)

    (ours_doc,) = [eo for eo in ours_list.findall("rim:ExtrinsicObject", NS) if not signature.is_signature_entry(eo)]
    ans_doc = ans_list.find("rim:ExtrinsicObject[@id='DocumentKOS']", NS)
    assert ans_doc is not None
    assert ours_doc.get("objectType") == ans_doc.get("objectType")
    assert set(_slots(ans_doc)) - SIGNATURE_ONLY <= set(_slots(ours_doc))
    assert set(_schemes(ans_doc)) - {EVENT_CODE} <= set(_schemes(ours_doc))
    assert sorted(_ids(ours_doc)) == sorted(_ids(ans_doc))
    for scheme in set(_schemes(ans_doc)) - {EVENT_CODE, c.DE_AUTHOR}:  # same coding scheme for each code
        ours_cl = ours_doc.find(f"rim:Classification[@classificationScheme='{scheme}']", NS)
        ans_cl = ans_doc.find(f"rim:Classification[@classificationScheme='{scheme}']", NS)
        assert ours_cl is not None and ans_cl is not None
        if scheme in (c.DE_FORMAT_CODE, c.DE_TYPE_CODE, c.DE_CLASS_CODE):
            continue  # a KOS differs from a PDF report in these codes and their systems
        assert ours_cl.findtext("rim:Slot/rim:ValueList/rim:Value", namespaces=NS) == ans_cl.findtext(
            "rim:Slot/rim:ValueList/rim:Value", namespaces=NS), scheme
    author = ours_doc.find(f"rim:Classification[@classificationScheme='{c.DE_AUTHOR}']", NS)
    assert author is not None and {"authorPerson", "authorInstitution"} <= set(_slots(author))
    person = author.findtext("rim:Slot[@name='authorPerson']/rim:ValueList/rim:Value", namespaces=NS) or ""
    assert person.split("^")[8] == f"&{c.OID_RPPS}&ISO"
    info = [v.text for v in ours_doc.iterfind("rim:Slot[@name='sourcePatientInfo']/rim:ValueList/rim:Value", NS)]
    assert [i.split("|")[0] for i in info] == ["PID-5", "PID-7", "PID-8", "PID-11"]

    facility = ours_doc.find(f"rim:Classification[@classificationScheme='{c.DE_FACILITY_TYPE}']", NS)
    assert facility is not None
    sector = (_attributes(captured)["Secteur_Activite"][0].text or "").split("^")[0]
    assert facility.get("nodeRepresentation") == sector  # the VIHF sector agrees with the facility type

    def associations(root: etree._Element) -> list[tuple[str, str]]:
        return [(a.get("associationType", ""), slot) for a in root.iterfind("rim:Association", NS)
                for slot in _slots(a)]
    assert associations(ours_list) == associations(ans_list)


def _roles(objects: etree._Element) -> dict[str, str]:
    """Each registry object's id → what it is: the set, the signature or a document."""
    roles = {pkg.get("id", ""): "set" for pkg in objects.iterfind("rim:RegistryPackage", NS)}
    for eo in objects.iterfind("rim:ExtrinsicObject", NS):
        roles[eo.get("id", "")] = "signature" if signature.is_signature_entry(eo) else "document"
    return roles


def _codes(obj: etree._Element) -> list[tuple[str, str, str]]:
    return sorted((cl.get("classificationScheme", ""), cl.get("nodeRepresentation", ""),
                   cl.findtext("rim:Slot[@name='codingScheme']/rim:ValueList/rim:Value", namespaces=NS) or "")
                  for cl in obj.findall("rim:Classification[@classificationScheme]", NS))


def _signature_entry(root: etree._Element) -> etree._Element:
    (found,) = [eo for eo in root.iterfind(".//rim:ExtrinsicObject", NS) if signature.is_signature_entry(eo)]
    return found


async def test_iti41_carries_the_samples_signature_entry_and_signs_association(captured) -> None:
    ans = ans_envelope()
    ours_list = captured.find(".//lcm:SubmitObjectsRequest/rim:RegistryObjectList", NS)
    ans_list = ans.find(".//lcm:SubmitObjectsRequest/rim:RegistryObjectList", NS)
    assert ours_list is not None and ans_list is not None
    ours, theirs = _signature_entry(ours_list), _signature_entry(ans_list)
    assert theirs.get("id") == "Signature01"
    assert (ours.get("mimeType"), ours.get("objectType")) == (theirs.get("mimeType"), theirs.get("objectType"))
    assert _slots(ours) == [s for s in _slots(theirs) if s not in SIGNATURE_ONLY]
    assert ours.findtext("rim:Slot[@name='languageCode']/rim:ValueList/rim:Value", namespaces=NS) == "art"
    assert sorted(_ids(ours)) == sorted(_ids(theirs))
    assert ours.find("rim:Name/rim:LocalizedString", NS).get("value") == theirs.find(
        "rim:Name/rim:LocalizedString", NS).get("value")
    # Same classifications; the codes themselves too, except the structure's own facility and practice setting.
    structure_codes = {c.DE_FACILITY_TYPE, c.DE_PRACTICE_SETTING, c.DE_AUTHOR}
    assert [s for s, _, _ in _codes(ours)] == [s for s, _, _ in _codes(theirs)]
    assert [x for x in _codes(ours) if x[0] not in structure_codes] == [
        x for x in _codes(theirs) if x[0] not in structure_codes]
    format_code = ours.find(f"rim:Classification[@classificationScheme='{c.DE_FORMAT_CODE}']", NS)
    assert format_code is not None and format_code.get("nodeRepresentation") == "http://www.w3.org/2000/09/xmldsig#"
    author = ours.find(f"rim:Classification[@classificationScheme='{c.DE_AUTHOR}']", NS)
    assert author is not None and {"authorPerson", "authorInstitution"} <= set(_slots(author))
    # The same associations: the set has the document and the signature, the signature signs the set.
    def links(objects: etree._Element) -> list[tuple[str, str, str, list[str]]]:
        roles = _roles(objects)
        return [(a.get("associationType", ""), roles[a.get("sourceObject", "")], roles[a.get("targetObject", "")],
                 _slots(a)) for a in objects.iterfind("rim:Association", NS)]
    assert links(ours_list) == links(ans_list)
    assert ("urn:ihe:iti:2007:AssociationType:signs", "signature", "set", ["SubmissionSetStatus"]) in links(ours_list)
    documents = [d.get("id") for d in captured.iterfind(".//xdsb:Document", NS)]
    assert ours.get("id") in documents and len(documents) == 2


def _sent(captured: etree._Element) -> tuple[bytes, dict[str, bytes]]:
    """The signature document and the set's documents (uniqueId → bytes) as the simulator received them."""
    import base64

    objects = captured.find(".//lcm:SubmitObjectsRequest/rim:RegistryObjectList", NS)
    assert objects is not None
    content = {d.get("id"): base64.b64decode(d.text or "") for d in captured.iterfind(".//xdsb:Document", NS)}
    uid = {eo.get("id"): eo.find(f"rim:ExternalIdentifier[@identificationScheme='{c.DE_UNIQUE_ID}']", NS).get(
        "value") for eo in objects.iterfind("rim:ExtrinsicObject", NS)}
    sig = _signature_entry(objects).get("id")
    return content[sig], {uid[i]: data for i, data in content.items() if i != sig}


async def test_the_sets_signature_verifies_with_the_structures_signing_certificate(captured, dmp_pki) -> None:
    signed, documents = _sent(captured)
    signature.verify_set(signed, documents, dmp_pki.signer.certificate)  # signxml's XAdES verifier inside
    assert len(documents) == 1
    # The signature has the sample's shape: SignedInfo covers a Manifest of urn:oid: references and the XAdES
    # SignedProperties, which name the signing time and certificate.
    text = (FIXTURES / "ITI-41_publication_DRIM-M.xml").read_text("utf-8")
    match = re.search(r"<Signature xmlns=.*?</Signature>", text, re.S)
    assert match is not None
    ans_sig = etree.fromstring(match.group(0).encode())
    ours_sig = etree.fromstring(signed)

    def shape(sig: etree._Element) -> dict[str, object]:
        local = etree.QName
        types = sorted(r.get("Type", "").rsplit("#", 1)[-1] for r in sig.iterfind(
            f"{{{signature.NS_DS}}}SignedInfo/{{{signature.NS_DS}}}Reference") if r.get("Type"))
        # XAdES 1.4.1's SigningCertificateV2 (ours) is the successor of the sample's SigningCertificate.
        props = {local(e).localname.removesuffix("V2") for e in sig.iter() if isinstance(e.tag, str)}
        return {"root": local(sig).localname, "types": types,
                "xades": {"SigningTime", "SigningCertificate", "CertDigest", "QualifyingProperties"} & props,
                "manifest": sorted(r.get("URI", "")[:8] for r in sig.iterfind(
                    f".//{{{signature.NS_DS}}}Manifest/{{{signature.NS_DS}}}Reference"))[:1]}
    assert shape(ours_sig) == shape(ans_sig)
    uris = [r.get("URI") for r in ours_sig.iterfind(f".//{{{signature.NS_DS}}}Manifest/{{{signature.NS_DS}}}Reference")]
    assert uris == [f"urn:oid:{uid}" for uid in documents]
    other = dmp_pki.pki.signing("another-structure")
    with pytest.raises(signature.SignatureInvalid):
        signature.verify_set(signed, documents, other.certificate)
    with pytest.raises(signature.SignatureInvalid):
        signature.verify_set(signed, {uid: data + b" " for uid, data in documents.items()}, dmp_pki.signer.certificate)


async def test_the_dmp_refuses_a_set_signed_by_another_certificate_or_over_other_bytes(
        dmp_pki: DmpPKI, simulator: Simulator) -> None:
    configured = settings()
    pol = policy_from(configured)
    client = DmpClient(endpoint(dmp_pki, simulator.url), dmp_pki.signer)
    try:
        depositor = Depositor(client, dmp_pki.signer, pol, software_from(configured))
        prepared = prepare(sample("DOC_NON_STRUCTURE_CDA-R2-N1.xml"), title="", visibility=(),
                           author=pol.professionals[0], submission_uid="1.2.250.1.999.42.7.2", policy=pol)
        assertion = depositor.assertion(prepared.entry.author, prepared.entry.matricule, prepared.entry.patient_oid)
        rogue = prepared.sign(dmp_pki.pki.signing("rogue-structure"))
        forged = signature.sign_set(prepared.submission.unique_id, {prepared.entry.unique_id: b"other bytes"},
                                    dmp_pki.signer)
        for bad, reason in ((rogue, "VIHF"), (forged, "digest")):
            result = await client.provide_and_register(prepared.request(signed=bad), prepared.parts(bad), assertion)
            assert not result.success and result.has(c.ERR_METADATA) and reason in result.message, result
        assert simulator.documents == {}
        simulator.require_signature = True
        result = await client.provide_and_register(prepared.request(), prepared.parts(), assertion)
        assert not result.success and "signé" in result.message
        assert (await depositor.send(prepared)).success
        assert list(simulator.signatures) == [prepared.submission.unique_id]
        kept = Simulator(simulator.anchors, state_file=simulator.state_file).signatures  # survives a restart
        assert kept == simulator.signatures
    finally:
        await client.close()


def _toml(folder: Path, dmp_extra: str = "", pro_extra: str = 'role = "10"\nspecialty = "SM26"\n') -> Path:
    for name in ("c.pem", "k.pem"):
        (folder / name).write_text("x")
    path = folder / "gateway.toml"
    path.write_text(f"""
[gateway]
hostname = "mx.test"
domains = ["pro.test"]
patient_domain = "patient.test"
[database]
url = "sqlite+aiosqlite:///gw.sqlite3"
[tls]
certificate = "c.pem"
private_key = "k.pem"
[smtp]
submission = "127.0.0.1:2587"
[dmp]
repository_url = "https://dmp.test/repository"
registry_url = "https://dmp.test/registry"
ca_file = "c.pem"
client_certificate = "c.pem"
client_key = "k.pem"
signing_certificate = "c.pem"
signing_key = "k.pem"
structure_id = "1120459876"
structure_name = "Cabinet"
source_id = "1.2.250.1.999.42"
{dmp_extra}
[[dmp.professional]]
national_id = "801234567897"
family = "MEDECIN"
given = "Jean"
mailbox = "jean@pro.test"
{pro_extra}
""")
    return path


def test_dmp_settings_name_homologation_sector_content_type_role_and_specialty(tmp_path: Path) -> None:
    cfg = load(_toml(tmp_path, 'lps_homologation = "H-42"\nlps_name = "Passerelle"\nlps_version = "2.1"\n'
                               'activity_sector = "SA25"\ncontent_type_code = "07"\ncontent_type_name = "Consultation"',
                     'role = "21"\nspecialty = "SM05"\nspecialty_name = "Biologie"'))
    assert cfg.dmp is not None
    software, pol = software_from(cfg.dmp), policy_from(cfg.dmp)
    assert (software.homologation, software.name, software.version) == ("H-42", "Passerelle", "2.1")
    assert pol.structure.activity_sector == pol.structure.facility_type
    assert pol.structure.activity_sector.code == "SA25"
    assert (pol.structure.content_type.code, pol.structure.content_type.display) == ("07", "Consultation")
    pro = pol.professionals[0]
    assert (pro.profession.code, pro.profession.display) == ("21", "Pharmacien")
    assert (pro.specialty.code, pro.specialty.display) == ("SM05", "Biologie")


def test_lps_version_defaults_to_the_package_version(tmp_path: Path) -> None:
    cfg = load(_toml(tmp_path))
    assert cfg.dmp is not None and software_from(cfg.dmp).version == package_version()


@pytest.mark.parametrize("dmp_extra, pro_extra, key", [
    ('activity_sector = "07"', 'role = "10"\nspecialty = "SM26"', "dmp.activity_sector"),
    ('lps_homologation = ""', 'role = "10"\nspecialty = "SM26"', "dmp.lps_homologation"),
    ('lps_name = "a^b"', 'role = "10"\nspecialty = "SM26"', "dmp.lps_name"),
    ('content_type_code = "0 4"', 'role = "10"\nspecialty = "SM26"', "dmp.content_type_code"),
    # role and specialty may be left out (the Annuaire Santé gives them, gateway/dmp_bridge/authors.py), not wrong
    ("", 'role = "1 0"\nspecialty = "SM26"', "dmp.professional[0].role"),
    ("", 'role = "10"\nspecialty = "S M"', "dmp.professional[0].specialty"),
    ("", 'role = "médecin"\nspecialty = "SM26"', "dmp.professional[0].role"),
])
def test_a_wrong_dmp_value_stops_the_start_with_one_sentence_naming_its_key(
        tmp_path: Path, dmp_extra: str, pro_extra: str, key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load(_toml(tmp_path, dmp_extra, pro_extra))
    message = str(raised.value)
    assert f"'{key}'" in message and message.count(". ") == 0, message
