"""The CDA header reader on the six ANS samples, and on XML attacks (XXE, billion laughs, external DTD)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from documents.helpers import CDA_DIR, TEST_MATRICULE, TEST_OID, sample, variant

from gateway.documents.cda import FORMAT_LAB, FORMAT_PDF, FORMAT_VSM, non_xml_body, read_header, read_header_and_content
from gateway.documents.cda_schema import load_schema
from gateway.documents.errors import CdaRefused
from gateway.documents.limits import CdaLimits

SAMPLES = sorted(p.name for p in CDA_DIR.glob("*.xml"))
CODES = {
    "BIO-CR-BIO_2024.01_TSH_1.xml": "11502-2",
    "CSE-CS8_2024.01.xml": "CERT_DECL",
    "DOC_NON_STRUCTURE_CDA-R2-N1.xml": "11502-2",
    "IMG_CR_IMG_2024.01.xml": "18748-4",
    "VSM_1.4_2022.01.xml": "SYNTH",
    "eP-MED-DM_2024.01_PosoStruct.xml": "57833-6",
}


def test_all_six_samples_are_present() -> None:
    assert set(SAMPLES) == set(CODES)


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_header_is_read_and_schema_valid(name: str) -> None:
    header = read_header(sample(name))
    assert header.code is not None and header.code.code == CODES[name]
    assert header.schema_valid is True, header.schema_errors
    assert header.id.root and header.set_id is not None and header.version is not None and header.version >= 1
    assert header.title and header.effective_time and header.confidentiality is not None
    assert header.patients == 1
    patient = header.patient
    assert patient.matricule and len(patient.matricule) == 15
    assert patient.birth_name and patient.first_name and patient.birth_date and patient.sex in {"M", "F", "U"}
    assert patient.birth_place and len(patient.birth_place) == 5
    assert patient.local_ids, "the samples carry an IPP beside the INS"
    assert header.authors and header.authors[0].national_id and header.authors[0].national_id.startswith("8")
    assert header.custodian is not None and header.custodian.name
    assert header.legal_authenticator is not None and header.legal_authenticator.national_id


def test_lab_report_header_fields() -> None:
    header = read_header(sample("BIO-CR-BIO_2024.01_TSH_1.xml"))
    assert header.unique_id == "1.2.250.1.213.1.1.1.55.2024.9.1"
    assert str(header.set_id) == "1.2.250.1.213.1.1.1.55.2024.9" and header.version == 1
    assert (header.code.code_system, header.code.display_name) == ("2.16.840.1.113883.6.1",  # type: ignore[union-attr]
                                                                   "CR d'examens biologiques")
    assert header.effective_time == "20210401171000+0100"
    assert header.confidentiality is not None and header.confidentiality.code == "N"
    patient = header.patient
    assert (patient.matricule, patient.oid) == (TEST_MATRICULE, TEST_OID)
    assert (patient.birth_name, patient.first_names, patient.first_name) == ("PAT-TROIS", "DOMINIQUE MARIE-LOUISE",
                                                                             "DOMINIQUE")
    assert (patient.birth_date, patient.sex, patient.birth_place) == ("1979-03-28", "F", "51215")
    assert [str(i) for i in patient.local_ids] == ["1.2.3.4.567.8.9.10^1234567890121"]
    author = header.authors[0]
    assert author.national_id == "801234534765" and author.rpps == "01234534765"
    assert author.organisation is not None and author.organisation.name == "Laboratoire des charmes"
    assert header.custodian is not None and header.custodian.id is not None
    assert header.format_code == FORMAT_LAB and header.body == "structured"
    assert header.replaces is None


def test_replacement_and_unstructured_body() -> None:
    imaging = read_header(sample("IMG_CR_IMG_2024.01.xml"))
    assert imaging.version == 2
    assert imaging.replaces is not None and imaging.replaces.root == "90E1C8EC-F951-4B26-A305-A34848818DD6"
    assert imaging.related[0].type_code == "RPLC"
    level1 = read_header(sample("DOC_NON_STRUCTURE_CDA-R2-N1.xml"))
    assert level1.body == "nonXML" and level1.body_media_type == "application/pdf"
    assert level1.format_code == FORMAT_PDF
    assert read_header(sample("VSM_1.4_2022.01.xml")).format_code == FORMAT_VSM


def test_schema_is_compiled_once_and_cached() -> None:
    assert load_schema() is load_schema()


def test_schema_error_is_recorded_but_header_still_read(bio: bytes) -> None:
    broken = variant(bio, ("<title>Compte rendu d'examens biologiques</title>",
                           "<title>Compte rendu d'examens biologiques</title><unexpected/>"))
    header = read_header(broken)
    assert header.schema_valid is False
    assert header.schema_errors and "unexpected" in header.schema_errors[0]
    assert header.patient.matricule == TEST_MATRICULE


def test_validation_can_be_skipped(bio: bytes) -> None:
    header = read_header(bio, validate=False)
    assert header.schema_valid is None and header.schema_errors == ()


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE ClinicalDocument [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<ClinicalDocument xmlns="urn:hl7-org:v3"><id root="1.2.3"/><title>&secret;</title></ClinicalDocument>"""

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>
<ClinicalDocument xmlns="urn:hl7-org:v3"><id root="1.2.3"/><title>&lol9;</title></ClinicalDocument>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE ClinicalDocument SYSTEM "http://127.0.0.1:9/cda.dtd">
<ClinicalDocument xmlns="urn:hl7-org:v3"><id root="1.2.3"/></ClinicalDocument>"""


@pytest.mark.parametrize("attack", [XXE, LAUGHS, EXTERNAL_DTD], ids=["xxe", "billion-laughs", "external-dtd"])
def test_xml_attacks_are_refused_fast(attack: bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(CdaRefused) as refused:
        read_header(attack)
    assert refused.value.reason == "dtd"
    assert "root:" not in str(refused.value)
    assert time.perf_counter() - started < 1.0


def test_xxe_inside_a_real_sample_never_reads_the_file(bio: bytes) -> None:
    attack = variant(bio, ('<ClinicalDocument ', '<!DOCTYPE ClinicalDocument [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                                                  '<ClinicalDocument '),
                     ("<family qualifier=\"BR\">PAT-TROIS</family>", "<family qualifier=\"BR\">&x;</family>"))
    with pytest.raises(CdaRefused) as refused:
        read_header(attack)
    assert refused.value.reason == "dtd"


def test_not_xml_not_cda_too_large_and_no_id_are_refused(bio: bytes) -> None:
    cases = [
        (b"%PDF-1.4 not xml", "not-xml"),
        (b"<html><body/></html>", "not-cda"),
        (b'<ClinicalDocument xmlns="urn:hl7-org:v3"><title>x</title></ClinicalDocument>', "no-id"),
        (b"<ClinicalDocument", "not-xml"),
    ]
    for data, reason in cases:
        with pytest.raises(CdaRefused) as refused:
            read_header(data)
        assert refused.value.reason == reason, data
    with pytest.raises(CdaRefused) as refused:
        read_header(bio, limits=CdaLimits(max_bytes=1000))
    assert refused.value.reason == "too-large"


def test_deeply_nested_xml_is_refused_not_crashing() -> None:
    deep = b'<ClinicalDocument xmlns="urn:hl7-org:v3"><id root="1"/>' + b"<a>" * 300_000 + b"</a>" * 300_000 \
        + b"</ClinicalDocument>"
    started = time.perf_counter()
    with pytest.raises(CdaRefused):
        read_header(deep)
    assert time.perf_counter() - started < 2.0


def test_missing_traits_read_as_none(bio: bytes) -> None:
    partial = variant(bio, ('<birthTime value="19790328"/>', ""),
                      ('<administrativeGenderCode code="F"', '<administrativeGenderCode nullFlavor="UNK"'))
    header = read_header(partial, validate=False)
    assert header.patient.birth_date is None and header.patient.sex is None
    assert header.patient.birth_name == "PAT-TROIS"


def test_configured_schema_path_is_used(tmp_path: Path, bio: bytes) -> None:
    from gateway.documents.cda_schema import SchemaUnavailable, use_schema

    missing = tmp_path / "nowhere.xsd"
    use_schema(missing)
    try:
        with pytest.raises(SchemaUnavailable, match="cda_schema"):
            read_header(bio)
    finally:
        use_schema(None)
    assert read_header(bio).schema_valid is True


@pytest.mark.parametrize("name", SAMPLES)
def test_the_header_and_wrapped_content_read_in_one_parse_are_those_read_apart(name: str) -> None:
    data = sample(name)
    header, content = read_header_and_content(data)
    assert header == read_header(data, validate=False)
    assert content == non_xml_body(data)


def _rewrapped(data: bytes, fold: Callable[[str], str]) -> bytes:
    start = data.index(b'representation="B64">') + len(b'representation="B64">')
    end = data.index(b"</text>", start)
    return data[:start] + fold(data[start:end].decode("ascii")).encode("utf-8") + data[end:]


def test_wrapped_content_is_read_whatever_its_folding_and_refused_when_it_is_not_base64() -> None:
    data = sample("DOC_NON_STRUCTURE_CDA-R2-N1.xml")
    pdf = non_xml_body(data)
    assert pdf is not None and pdf.startswith(b"%PDF")

    def folded(text: str) -> str:
        flat = "".join(text.split())
        return "\r\n\t ".join(flat[i:i + 64] for i in range(0, len(flat), 64)) + "\n"

    def unicode_space(text: str) -> str:  # a no-break space is whitespace to str.split, not ASCII folding
        return text[:40] + "\u00a0" + text[40:]

    def starred(text: str) -> str:
        return text[:40] + "*" + text[40:]

    for fold, expected in ((folded, pdf), (unicode_space, pdf), (starred, None)):
        changed = _rewrapped(data, fold)
        assert read_header_and_content(changed)[1] == expected == non_xml_body(changed), fold.__name__
