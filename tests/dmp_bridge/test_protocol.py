"""ITI-41 / ITI-18 between our client and the DMP simulator over real HTTPS with client certificates (R15–R17)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from dmp_bridge.dmp_support import (
    BIOLOGIST,
    GP,
    MATRICULE,
    SCHEMA_DIR,
    TEST_OID,
    DmpPKI,
    endpoint,
    policy,
    sample,
    variant,
)
from lxml import etree

from gateway.dmp_bridge import constants as c
from gateway.dmp_bridge import metadata, saml, soap
from gateway.dmp_bridge.deposit import Depositor, prepare
from gateway.dmp_bridge.simulator import DmpState, Simulator
from gateway.dmp_bridge.soap import DmpClient, DmpTransportError

PDF_CDA = "DOC_NON_STRUCTURE_CDA-R2-N1.xml"
LAB_CDA = "BIO-CR-BIO_2024.01_TSH_1.xml"


def _prepared(cda: bytes, author=BIOLOGIST, uid: str = "1.2.250.1.999.42.1.1", visibility=(), title: str = ""):
    return prepare(cda, title=title, visibility=visibility, author=author, submission_uid=uid, policy=policy())


async def test_r15_deposited_pdf_cda_is_found_by_iti18_with_its_metadata(depositor: Depositor,
                                                                         simulator: Simulator) -> None:
    cda = sample(PDF_CDA)
    result = await depositor.send(_prepared(cda))
    assert result.success, result.message
    found = await depositor.find(BIOLOGIST, MATRICULE, TEST_OID)
    assert len(found) == 1
    entry = found[0]
    assert entry["uniqueId"] == "1.3.6.1.4.1.19376.1.2.20.12345.1.1"
    assert entry["typeCode"] == "11502-2"
    assert entry["formatCode"] == c.FORMAT_PDF_WRAPPED
    assert entry["patientId"] == f"{MATRICULE}^^^&{TEST_OID}&ISO^NH"
    assert entry["title"] == "Compte rendu d'examens biologiques"
    assert entry["confidentialityCode"] == ["N"]
    assert entry["practiceSettingCode"] == "AMBULATOIRE"
    assert entry["healthcareFacilityTypeCode"] == "SA07"
    assert entry["creationTime"] == "20210401124745"  # 13:47:45+01:00 in UTC
    assert entry["serviceStartTime"] == "20210104124700"
    assert entry["size"] == str(len(cda))
    assert entry["authorPerson"] == [BIOLOGIST.xcn()]
    assert entry["version"] == "1" and entry["status"] == c.STATUS_APPROVED
    assert simulator.documents[entry["uniqueId"]].content == cda


async def test_r15_structured_lab_report_gets_the_xd_lab_format(depositor: Depositor) -> None:
    result = await depositor.send(_prepared(sample(LAB_CDA)))
    assert result.success, result.message
    [entry] = await depositor.find(BIOLOGIST, MATRICULE, TEST_OID)
    assert entry["formatCode"] == c.FORMAT_LAB


async def test_r15_wrapped_pdf_is_deposited_as_xds_sd(depositor: Depositor, simulator: Simulator) -> None:
    pdf = b"%PDF-1.4\n% scanned letter\n" + bytes(range(256)) * 40
    patient = metadata.WrappedPatient(MATRICULE, TEST_OID, "PAT-TROIS", "DOMINIQUE MARIE-LOUISE", "DOMINIQUE",
                                      "1979-03-28", "F", "51215")
    cda = metadata.wrap_document(pdf, "application/pdf", unique_id="1.2.250.1.999.42.7.1", title="Courrier scanné",
                                 type_code=metadata.Code("11488-4", c.OID_LOINC, "Compte rendu de consultation"),
                                 patient=patient, author=GP, structure=policy().structure,
                                 created=datetime.now(UTC) - timedelta(hours=1))
    result = await depositor.send(_prepared(cda, author=GP))
    assert result.success, result.message
    [entry] = await depositor.find(GP, MATRICULE, TEST_OID)
    assert entry["formatCode"] == c.FORMAT_PDF_WRAPPED and entry["typeCode"] == "11488-4"
    stored = simulator.documents["1.2.250.1.999.42.7.1"].content
    text = etree.fromstring(stored).find("{urn:hl7-org:v3}component/{urn:hl7-org:v3}nonXMLBody/{urn:hl7-org:v3}text")
    assert text is not None and base64.b64decode(text.text or "") == pdf


async def test_r16_invisible_patient_code_reaches_the_dmp(depositor: Depositor) -> None:
    result = await depositor.send(_prepared(sample(PDF_CDA), visibility=[c.INVISIBLE_PATIENT, c.MASQUE_PS]))
    assert result.success, result.message
    [entry] = await depositor.find(BIOLOGIST, MATRICULE, TEST_OID)
    assert sorted(entry["confidentialityCode"]) == sorted(["N", c.INVISIBLE_PATIENT, c.MASQUE_PS])


async def test_r17_closed_dmp_refuses_with_the_dmps_message(depositor: Depositor, simulator: Simulator) -> None:
    simulator.set_patient(MATRICULE, state=DmpState.CLOSED)
    result = await depositor.send(_prepared(sample(PDF_CDA)))
    assert not result.success
    assert result.has(c.ERR_DMP_CLOSED) and "fermé" in result.message
    assert simulator.documents == {}


async def test_r17_dmp_not_created_is_refused(depositor: Depositor, simulator: Simulator) -> None:
    simulator.set_patient(MATRICULE, state=DmpState.NOT_CREATED)
    result = await depositor.send(_prepared(sample(PDF_CDA)))
    assert result.has(c.ERR_DMP_NOT_CREATED)


async def test_r17_unauthorised_then_blocked_professional(depositor: Depositor, simulator: Simulator) -> None:
    simulator.set_patient(MATRICULE, require_authorisation=True)
    result = await depositor.send(_prepared(sample(PDF_CDA)))
    assert result.has(c.ERR_NOT_AUTHORISED) and "autoris" in result.message
    simulator.set_patient(MATRICULE, authorise=[BIOLOGIST.national_id])
    assert (await depositor.send(_prepared(sample(PDF_CDA)))).success
    simulator.set_patient(MATRICULE, block=[BIOLOGIST.national_id])
    lab = await depositor.send(_prepared(sample(LAB_CDA), uid="1.2.250.1.999.42.1.2"))
    assert lab.has(c.ERR_PS_BLOCKED)


async def test_r17_authorisation_lapses_after_six_months(depositor: Depositor, simulator: Simulator) -> None:
    earlier = datetime.now(UTC) - timedelta(days=200)
    real_clock = simulator.clock
    simulator.clock = lambda: earlier  # the last access was 200 days ago
    simulator.set_patient(MATRICULE, require_authorisation=True, authorise=[BIOLOGIST.national_id])
    simulator.clock = real_clock
    result = await depositor.send(_prepared(sample(PDF_CDA)))
    assert result.has(c.ERR_NOT_AUTHORISED) and "six mois" in result.message


async def test_r15_replacement_creates_version_2_and_deprecates_the_first(depositor: Depositor) -> None:
    first = sample(PDF_CDA)
    assert (await depositor.send(_prepared(first))).success
    second = variant(first, unique_id="1.3.6.1.4.1.19376.1.2.20.12345.1.2",
                     replaces="1.3.6.1.4.1.19376.1.2.20.12345.1.1")
    result = await depositor.send(_prepared(second, uid="1.2.250.1.999.42.1.2"))
    assert result.success, result.message
    entries = await depositor.find(BIOLOGIST, MATRICULE, TEST_OID, statuses=(c.STATUS_APPROVED, c.STATUS_DEPRECATED))
    by_uid = {e["uniqueId"]: e for e in entries}
    old, new = by_uid["1.3.6.1.4.1.19376.1.2.20.12345.1.1"], by_uid["1.3.6.1.4.1.19376.1.2.20.12345.1.2"]
    assert old["status"] == c.STATUS_DEPRECATED and new["status"] == c.STATUS_APPROVED
    assert new["version"] == "2" and new["lid"] == old["lid"]
    approved = await depositor.find(BIOLOGIST, MATRICULE, TEST_OID)
    assert [e["uniqueId"] for e in approved] == ["1.3.6.1.4.1.19376.1.2.20.12345.1.2"]


async def test_replacing_an_unknown_document_is_refused(depositor: Depositor) -> None:
    cda = variant(sample(PDF_CDA), replaces="1.2.3.4.404")
    result = await depositor.send(_prepared(cda))
    assert result.has(c.ERR_REPLACED_UNKNOWN)


async def test_second_deposit_of_a_unique_id_gets_the_duplicate_error(depositor: Depositor,
                                                                    simulator: Simulator) -> None:
    prepared = _prepared(sample(PDF_CDA))
    assert (await depositor.send(prepared)).success
    again = await depositor.send(prepared)
    assert again.has(c.ERR_DUPLICATE_UNIQUE_ID)
    assert await depositor.already_deposited(prepared)
    assert len(simulator.documents) == 1


async def test_r15_document_over_5_mb_is_refused_by_the_dmp(depositor: Depositor, simulator: Simulator) -> None:
    pdf = b"%PDF-1.4\n" + b"\x00" * (4 * 1024 * 1024)  # 4 MB of PDF is about 5.3 MB of CDA once in base64
    patient = metadata.WrappedPatient(MATRICULE, TEST_OID, "PAT-TROIS", "DOMINIQUE", "DOMINIQUE", "1979-03-28", "F",
                                      "51215")
    cda = metadata.wrap_document(pdf, "application/pdf", unique_id="1.2.250.1.999.42.7.9", title="Gros scan",
                                 type_code=metadata.Code("11488-4", c.OID_LOINC, "CR"), patient=patient, author=GP,
                                 structure=policy().structure, created=datetime.now(UTC) - timedelta(hours=1))
    assert len(cda) > c.MAX_DOCUMENT_SIZE
    result = await depositor.send(_prepared(cda, author=GP))
    assert result.has(c.ERR_TOO_LARGE)
    assert simulator.documents == {}


async def test_assertion_from_an_untrusted_signer_is_refused(dmp_pki: DmpPKI, simulator: Simulator) -> None:
    from gateway.pki import DevelopmentPKI

    rogue = DevelopmentPKI.create("Rogue").signing("rogue")
    client = DmpClient(endpoint(dmp_pki, simulator.url), rogue)
    try:
        result = await Depositor(client, rogue, policy()).send(_prepared(sample(PDF_CDA)))
    finally:
        await client.close()
    assert result.has(c.ERR_ASSERTION)
    assert simulator.documents == {}


async def test_assertion_naming_another_patient_is_refused(depositor: Depositor, simulator: Simulator) -> None:
    prepared = _prepared(sample(PDF_CDA))
    assertion = depositor.assertion(BIOLOGIST, "123456789012345", TEST_OID)
    result = await depositor.client.provide_and_register(prepared.request(), prepared.parts(), assertion)
    assert result.has("XDSPatientIdDoesNotMatch")


async def test_tls_without_client_certificate_is_a_transport_error(dmp_pki: DmpPKI, simulator: Simulator) -> None:
    ctx = soap.client_ssl_context(None, dmp_pki.ca_bundle.read_bytes())
    client = DmpClient(soap.Endpoint(f"{simulator.url}/repository", f"{simulator.url}/registry", ctx, 5.0),
                       dmp_pki.signer)
    try:
        with pytest.raises(DmpTransportError):
            await Depositor(client, dmp_pki.signer, policy()).send(_prepared(sample(PDF_CDA)))
    finally:
        await client.close()
    assert simulator.documents == {}


async def test_non_mtom_request_is_refused(depositor: Depositor, simulator: Simulator) -> None:
    prepared = _prepared(sample(PDF_CDA))
    env = soap.envelope(c.ACTION_ITI41, "x", prepared.request(inline=True),
                        depositor.assertion(BIOLOGIST, MATRICULE, TEST_OID))
    answer = await depositor.client._post(depositor.client.endpoint.repository_url,
                                          "application/soap+xml; charset=UTF-8",
                                          etree.tostring(env, xml_declaration=True, encoding="UTF-8"))
    assert soap.parse_registry_response(answer).has(c.ERR_REPOSITORY)
    assert simulator.documents == {}


def test_request_validates_against_the_xds_b_schema_and_breaks_when_altered() -> None:
    request = _prepared(sample(LAB_CDA)).request(inline=True)
    assert metadata.validate(request, SCHEMA_DIR) == []
    request.append(etree.Element("{urn:ihe:iti:xds-b:2007}Unexpected"))
    assert metadata.validate(request, SCHEMA_DIR) != []


def test_vihf_assertion_validates_against_the_saml_schema(dmp_pki: DmpPKI) -> None:
    schema = etree.XMLSchema(etree.parse(str(SCHEMA_DIR / "saml-schema-assertion-2.0.xsd")))
    ctx = saml.VihfContext(BIOLOGIST, policy().structure, MATRICULE, TEST_OID)
    assertion = saml.build_assertion(ctx, dmp_pki.signer)
    # The role and purpose values are HL7 CE elements typed with xsi:type="CE" as the real DMP request has them;
    # the SAML schema alone cannot resolve HL7 types, so a copy without that attribute checks the SAML structure.
    copy = etree.fromstring(etree.tostring(assertion))
    for element in copy.iter("{urn:hl7-org:v3}*"):
        element.attrib.pop("{http://www.w3.org/2001/XMLSchema-instance}type", None)
    assert schema.validate(copy), schema.error_log
    verified = saml.verify_assertion(etree.fromstring(etree.tostring(assertion)),
                                     [dmp_pki.pki.intermediate.certificate])
    assert verified.subject == BIOLOGIST.national_id and verified.patient == MATRICULE
    assert verified.one("Identifiant_Structure") == policy().structure.identifier


def test_tampered_assertion_is_refused(dmp_pki: DmpPKI) -> None:
    ctx = saml.VihfContext(BIOLOGIST, policy().structure, MATRICULE, TEST_OID)
    xml = etree.tostring(saml.build_assertion(ctx, dmp_pki.signer)).replace(MATRICULE.encode(), b"123456789012345")
    with pytest.raises(saml.AssertionError_):
        saml.verify_assertion(etree.fromstring(xml), [dmp_pki.pki.intermediate.certificate])


def test_mtom_round_trip_and_bounds() -> None:
    env = soap.envelope(c.ACTION_ITI41, "x", etree.Element("a"), None)
    content_type, body = soap.mtom_encode(env, [("p1@x", b"\r\n--binary--\r\n")], c.ACTION_ITI41)
    decoded = soap.mtom_decode(content_type, body)
    assert decoded.mtom and decoded.parts == {"p1@x": b"\r\n--binary--\r\n"}
    with pytest.raises(soap.SoapError):
        soap.mtom_decode(content_type, body, max_size=100)
    with pytest.raises(soap.SoapError):
        soap.mtom_decode(content_type, body[:-10])  # no closing boundary
    many = [(f"p{i}@x", b"x") for i in range(30)]
    ct, data = soap.mtom_encode(env, many, c.ACTION_ITI41)
    with pytest.raises(soap.SoapError):
        soap.mtom_decode(ct, data)
