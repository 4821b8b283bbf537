"""The XDM reader and writer: round trip on the ANS samples, and zip attacks (bombs, slips, nesting)."""

from __future__ import annotations

import hashlib
import io
import re
import time
import tracemalloc
import zipfile
import zlib
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from documents.helpers import SAMPLES, TEST_MATRICULE, TEST_OID, entry, raw_zip, sample, zeros_bomb
from lxml import etree

from gateway.documents.cda import read_header
from gateway.documents.errors import XdmRefused
from gateway.documents.limits import XdmLimits
from gateway.documents.xdm import read_xdm
from gateway.documents.xdm_writer import build_xdm, hl7_to_utc, mss_headers

SAME_PATIENT = ["BIO-CR-BIO_2024.01_TSH_1.xml", "DOC_NON_STRUCTURE_CDA-R2-N1.xml", "IMG_CR_IMG_2024.01.xml",
                "VSM_1.4_2022.01.xml", "eP-MED-DM_2024.01_PosoStruct.xml"]


def _files(archive: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        return {name: opened.read(name) for name in opened.namelist()}


def _metadata_for(document: bytes, uri: str = "DOC0001.XML") -> bytes:
    """METADATA.XML of the writer for one document, with the URI slot rewritten when a test needs it."""
    archive, _ = build_xdm([document])
    metadata = _files(archive)["IHE_XDM/SUBSET01/METADATA.XML"]
    return metadata.replace(b"<rim:Value>DOC0001.XML</rim:Value>", f"<rim:Value>{uri}</rim:Value>".encode())


def test_round_trip_writer_output_is_read_back() -> None:
    documents = [sample(name) for name in SAME_PATIENT]
    archive, written = build_xdm(documents)
    read = read_xdm(archive)
    assert [d.content for d in read.documents] == documents
    for document, original, info in zip(read.documents, documents, written, strict=True):
        header = read_header(original, validate=False)
        assert document.hash_ok and document.size_ok and document.problems == ()
        assert document.sha1 == hashlib.sha1(original, usedforsecurity=False).hexdigest() == info.sha1
        assert document.unique_id == header.unique_id
        assert document.patient == (TEST_MATRICULE, TEST_OID)
        assert document.type_code is not None and header.code is not None
        assert document.type_code.code == header.code.code
        assert document.format_code is not None and document.format_code.code == header.format_code
        assert document.title == header.title
    subset = read.subsets[0]
    assert subset.name == "SUBSET01" and subset.patient_id == f"{TEST_MATRICULE}^^^&{TEST_OID}&ISO"
    names = set(_files(archive))
    assert {"README.TXT", "INDEX.HTM", "IHE_XDM/SUBSET01/METADATA.XML"} <= names


def test_written_metadata_is_valid_ebrim() -> None:
    schema = etree.XMLSchema(etree.parse(str(SAMPLES / "xds-schema" / "ebRS" / "lcm.xsd")))
    archive, _ = build_xdm([sample("BIO-CR-BIO_2024.01_TSH_1.xml"), sample("IMG_CR_IMG_2024.01.xml")])
    metadata = etree.fromstring(_files(archive)["IHE_XDM/SUBSET01/METADATA.XML"])
    assert schema.validate(metadata), schema.error_log


def test_metadata_values_with_markup_characters_are_escaped_and_read_back() -> None:
    """The metadata is written as text: a title holding ``& < > " '``, tabs and line breaks stays one valid
    value, read back as it was (in an attribute, white space other than spaces is written as references)."""
    title = "R&D <x> \"q\" 'p' é\n\tsuite\r"
    document = sample("BIO-CR-BIO_2024.01_TSH_1.xml")
    header = replace(read_header(document, validate=False), title=title)
    archive, _ = build_xdm([document], headers=[header])
    metadata = etree.fromstring(_files(archive)["IHE_XDM/SUBSET01/METADATA.XML"])
    schema = etree.XMLSchema(etree.parse(str(SAMPLES / "xds-schema" / "ebRS" / "lcm.xsd")))
    assert schema.validate(metadata), schema.error_log
    rim = "{urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0}"
    names = [e.get("value") for e in metadata.iter(f"{rim}LocalizedString")
             if e.getparent().getparent().tag == f"{rim}ExtrinsicObject"]
    assert names == [title]


def test_metadata_refuses_a_character_xml_does_not_allow() -> None:
    header = read_header(sample("BIO-CR-BIO_2024.01_TSH_1.xml"), validate=False)
    with pytest.raises(ValueError, match="XML does not allow"):
        build_xdm([sample("BIO-CR-BIO_2024.01_TSH_1.xml")], headers=[replace(header, title="bell\x07")])


def test_mss_headers_follow_the_ans_client_specification() -> None:
    headers = [read_header(sample(n), validate=False) for n in ("BIO-CR-BIO_2024.01_TSH_1.xml", "VSM_1.4_2022.01.xml")]
    assert mss_headers(headers, ins_qualified=True) == {"X-MSS-CODECDA": "11502-2,SYNTH", "X-MSS-INS": "O"}
    assert mss_headers(headers, ins_qualified=False)["X-MSS-INS"] == "N"


def test_writer_refuses_documents_of_two_patients() -> None:
    with pytest.raises(ValueError, match="different patients"):
        build_xdm([sample("BIO-CR-BIO_2024.01_TSH_1.xml"), sample("CSE-CS8_2024.01.xml")])


def test_hl7_times_become_utc() -> None:
    assert hl7_to_utc("20210401171000+0100") == "20210401161000"
    assert hl7_to_utc("20210104") == "20210104"
    assert hl7_to_utc("202101041200-0230") == "20210104143000"
    assert hl7_to_utc(None) is None and hl7_to_utc("2021") is None


def test_names_are_read_case_insensitively_and_subset_names_vary(bio: bytes) -> None:
    metadata = _metadata_for(bio, uri="cr.xml")
    archive = raw_zip([entry("ihe_xdm/ss000001/metadata.xml", metadata), entry("IHE_XDM/SS000001/CR.XML", bio)])
    (document,) = read_xdm(archive).documents
    assert document.content == bio and document.hash_ok
    assert read_xdm(archive).subsets[0].name == "ss000001"


def test_uri_relative_to_ihe_xdm_folder_as_some_writers_do(bio: bytes) -> None:
    metadata = _metadata_for(bio, uri="SS000001/DOC.XML")
    archive = raw_zip([entry("IHE_XDM/SS000001/METADATA.XML", metadata), entry("IHE_XDM/SS000001/DOC.XML", bio)])
    assert read_xdm(archive).documents[0].content == bio


def test_hash_or_size_mismatch_is_reported(bio: bytes) -> None:
    altered = bio.replace(b"PAT-TROIS", b"PAT-QUATR", 1)
    archive = raw_zip([entry("IHE_XDM/SUBSET01/METADATA.XML", _metadata_for(bio)),
                       entry("IHE_XDM/SUBSET01/DOC0001.XML", altered)])
    (document,) = read_xdm(archive).documents
    assert not document.hash_ok and document.size_ok
    assert "SHA-1" in document.problems[0]


def test_zip_bomb_with_honest_header_refused_before_inflating(bio: bytes) -> None:
    stream, size = zeros_bomb(3.5)
    archive = raw_zip([entry("IHE_XDM/SUBSET01/METADATA.XML", _metadata_for(bio)),
                       dict(name="IHE_XDM/SUBSET01/DOC0001.XML", data=stream, method=8, crc=0, size=size & 0xFFFFFFFF)])
    assert len(archive) < 5 << 20
    started = time.perf_counter()
    with pytest.raises(XdmRefused) as refused:
        read_xdm(archive)
    assert refused.value.reason in {"entry-too-large", "ratio", "too-large"}
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("declared", [1000, 30 << 20], ids=["declares-1kB", "declares-30MB"])
def test_zip_bomb_with_lying_header_refused_within_bounded_memory(bio: bytes, declared: int) -> None:
    """A 3.6 MB zip that inflates to 3.5 GB while declaring a small size: inflating stops at a cap."""
    stream, _ = zeros_bomb(3.5)
    archive = raw_zip([entry("IHE_XDM/SUBSET01/METADATA.XML", _metadata_for(bio)),
                       dict(name="IHE_XDM/SUBSET01/DOC0001.XML", data=stream, method=8, crc=0, size=declared)])
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(XdmRefused) as refused:
        read_xdm(archive, XdmLimits(max_ratio=1000))  # ratio 30MB/3.6MB passes: the streaming caps must hold
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert refused.value.reason in {"entry-too-large", "ratio", "corrupt"}
    assert elapsed < 3.0
    assert peak < declared * 3 + (16 << 20)


def test_many_small_bombs_hit_the_total_cap(bio: bytes) -> None:
    blob = bytes(9 << 20)
    entries = [entry("IHE_XDM/SUBSET01/METADATA.XML", _metadata_for(bio))]
    entries += [entry(f"IHE_XDM/SUBSET01/F{i}.BIN", blob) for i in range(10)]
    with pytest.raises(XdmRefused) as refused:
        read_xdm(raw_zip(entries))
    assert refused.value.reason in {"too-large", "ratio"}


@pytest.mark.parametrize("name", ["../evil.xml", "/etc/cron.d/evil", "IHE_XDM/SUBSET01/../../../evil",
                                  "C:\\Windows\\evil.xml", "IHE_XDM\\..\\..\\evil.xml"])
def test_zip_slip_names_are_refused(bio: bytes, name: str) -> None:
    archive = raw_zip([entry("IHE_XDM/SUBSET01/METADATA.XML", _metadata_for(bio)),
                       entry("IHE_XDM/SUBSET01/DOC0001.XML", bio), entry(name, b"owned")])
    with pytest.raises(XdmRefused) as refused:
        read_xdm(archive)
    assert refused.value.reason in {"path-traversal", "absolute-path"}


def test_uri_slot_with_traversal_is_refused(bio: bytes) -> None:
    archive = raw_zip([entry("IHE_XDM/SUBSET01/METADATA.XML", _metadata_for(bio, uri="../../../etc/passwd")),
                       entry("IHE_XDM/SUBSET01/DOC0001.XML", bio)])
    with pytest.raises(XdmRefused) as refused:
        read_xdm(archive)
    assert refused.value.reason == "path-traversal"


def test_duplicate_names_even_differing_in_case_are_refused(bio: bytes) -> None:
    archive = raw_zip([entry("IHE_XDM/SUBSET01/METADATA.XML", _metadata_for(bio)),
                       entry("IHE_XDM/SUBSET01/DOC0001.XML", bio), entry("ihe_xdm/subset01/doc0001.xml", b"<x/>")])
    with pytest.raises(XdmRefused) as refused:
        read_xdm(archive)
    assert refused.value.reason == "duplicate-name"


def test_nested_archives_are_refused_by_name_and_by_content(bio: bytes) -> None:
    inner, _ = build_xdm([bio])
    by_name = raw_zip([entry("IHE_XDM/SUBSET01/METADATA.XML", _metadata_for(bio)),
                       entry("IHE_XDM/SUBSET01/DOC0001.XML", bio), entry("IHE_XDM/SUBSET01/MORE.ZIP", inner)])
    by_content = raw_zip([entry("IHE_XDM/SUBSET01/METADATA.XML", _metadata_for(bio)),
                          entry("IHE_XDM/SUBSET01/DOC0001.XML", inner)])
    for archive in (by_name, by_content):
        with pytest.raises(XdmRefused) as refused:
            read_xdm(archive)
        assert refused.value.reason == "nested-archive"


def test_too_many_entries_refused_before_the_directory_is_parsed() -> None:
    archive = raw_zip([entry(f"F{i:05d}", b"") for i in range(5000)])
    started = time.perf_counter()
    with pytest.raises(XdmRefused) as refused:
        read_xdm(archive)
    assert refused.value.reason == "too-many-entries"
    assert time.perf_counter() - started < 0.5


def test_links_encryption_and_odd_compression_are_refused(bio: bytes) -> None:
    base = [entry("IHE_XDM/SUBSET01/METADATA.XML", _metadata_for(bio)), entry("IHE_XDM/SUBSET01/DOC0001.XML", bio)]
    link = entry("IHE_XDM/SUBSET01/LINK", b"/etc/passwd", external_attr=0o120777 << 16)
    encrypted = entry("IHE_XDM/SUBSET01/SECRET.XML", b"x", flags=0x801)
    bzip = entry("IHE_XDM/SUBSET01/B.XML", b"x", method=12)
    for extra, reason in ((link, "symlink"), (encrypted, "encrypted"), (bzip, "compression")):
        with pytest.raises(XdmRefused) as refused:
            read_xdm(raw_zip([*base, extra]))
        assert refused.value.reason == reason


def test_broken_archives_are_refused_with_a_reason(bio: bytes) -> None:
    good, _ = build_xdm([bio])
    cases = [
        (b"not a zip at all", "not-zip"),
        (good[: len(good) // 2], "corrupt"),
        (raw_zip([entry("README.TXT", b"hello")]), "no-metadata"),
        (raw_zip([entry("IHE_XDM/SUBSET01/METADATA.XML", _metadata_for(bio))]), "missing-document"),
        (raw_zip([entry("IHE_XDM/SUBSET01/METADATA.XML", b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>")]), "dtd"),
        (raw_zip([entry("IHE_XDM/SUBSET01/METADATA.XML", _metadata_for(bio)),
                  entry("IHE_XDM/SUBSET01/DOC0001.XML", bio, crc=zlib.crc32(b"other"))]), "corrupt"),
    ]
    for archive, reason in cases:
        with pytest.raises(XdmRefused) as refused:
            read_xdm(archive)
        assert refused.value.reason == reason, reason


def test_writer_is_deterministic_for_a_given_time(bio: bytes) -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    first, _ = build_xdm([bio], source_id="1.2.3", now=moment)
    metadata = _files(first)["IHE_XDM/SUBSET01/METADATA.XML"]
    assert b"20260102030405" in metadata and b"1.2.3" in metadata


def test_metadata_without_namespace_prefixes_is_read(bio: bytes) -> None:
    """Some writers emit ebRIM with a default namespace or none at all (as in the ANS DRIM-M examples)."""
    metadata = re.sub(rb'\sxmlns:\w+="[^"]*"', b"", _metadata_for(bio))
    for prefix in (b"rim:", b"lcm:"):
        metadata = metadata.replace(b"<" + prefix, b"<").replace(b"</" + prefix, b"</")
    assert b"xmlns" not in metadata
    archive = raw_zip([entry("IHE_XDM/SS000001/METADATA.XML", metadata), entry("IHE_XDM/SS000001/DOC0001.XML", bio)])
    (document,) = read_xdm(archive).documents
    assert document.hash_ok and document.patient == (TEST_MATRICULE, TEST_OID)
    assert document.type_code is not None and document.type_code.code == "11502-2"
