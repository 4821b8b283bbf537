"""Pure rules without sockets: INS matricule keys (R8), address classification and relay tricks."""

from __future__ import annotations

import pytest

from gateway.config import Config, Listen, TLSSettings
from gateway.ins_matching.nir import is_well_formed, key_ok, nir_key
from gateway.routing import replies
from gateway.routing.addresses import Local, PatientAddress, Remote, classify, parse
from gateway.routing.headers import summarise
from gateway.smtp.enhanced_codes import with_enhanced_code


def test_r8_key_of_the_samples_test_patient():
    assert nir_key("2790351215189") == 89
    assert key_ok("279035121518989")
    assert not key_ok("279035121518988")


@pytest.mark.parametrize("department, substitute", [("2A", "19"), ("2B", "18")])
def test_r8_corsican_departments_count_as_19_and_18(department: str, substitute: str):
    nir = f"18502{department}123456"
    key = 97 - int(nir.replace(department, substitute)) % 97
    assert key_ok(f"{nir}{key:02d}")
    assert not key_ok(f"{nir}{(key % 97) + 1:02d}")


@pytest.mark.parametrize("value", ["27903512151898", "2790351215189899", "A79035121518989", "279035121518 89", ""])
def test_r8_malformed_matricules(value: str):
    assert not key_ok(value)
    assert not is_well_formed(value) or len(value) != 15


def config() -> Config:
    tls = TLSSettings(certificate=None, private_key=None)  # type: ignore[arg-type]
    return Config("mx.test", frozenset({"pro.test"}), "patient.test", "sqlite+aiosqlite:///x", tls,
                  Listen("127.0.0.1", 1), None, None, None)


def test_classify_destinations():
    cfg = config()
    assert classify("Dr.House@PRO.test", cfg) == Local("dr.house@pro.test")
    assert classify("279035121518989@patient.test", cfg) == PatientAddress("279035121518989@patient.test",
                                                                          "279035121518989")
    assert classify("someone@example.org", cfg) == Remote("someone@example.org", "example.org")
    assert classify("279035121518988@patient.test", cfg) is replies.BAD_INS_KEY
    assert classify("dr.house@patient.test", cfg) is replies.BAD_INS_SHAPE


@pytest.mark.parametrize("address", ["a%b@pro.test", "@r.example:a@b.example", '"a@b"@pro.test', "b!a@pro.test"])
def test_relay_tricks_are_refused(address: str):
    assert parse(address) is replies.ADDRESS_TRICK


def test_enhanced_codes_are_added_to_library_replies():
    assert with_enhanced_code("552 Error: Too much mail data").startswith("552 5.3.4 ")
    assert with_enhanced_code("250 OK") == "250 2.0.0 OK"
    assert with_enhanced_code("250 2.1.5 Recipient OK") == "250 2.1.5 Recipient OK"
    assert with_enhanced_code("250-SIZE 100") == "250-SIZE 100"


def test_r2_fin_marker_and_header_are_read_from_headers():
    raw = b"From: a@pro.test\r\nSubject: =?utf-8?q?Suivi_termin=C3=A9_=5BFIN=5D?=\r\n\r\nbody [FIN]\r\n"
    summary = summarise(raw)
    assert summary.fin_in_subject and not summary.fin_header and summary.ends_conversation
    assert summary.from_addresses == ("a@pro.test",)
    assert not summarise(b"From: a@pro.test\r\nSubject: fin\r\n\r\n[FIN]\r\n").ends_conversation
    assert summarise(b"From: a@pro.test\r\nX-MSS-MES: fin\r\n\r\n").fin_header


def test_replies_are_ascii():
    with pytest.raises(ValueError):
        replies.Reply(550, "5.7.1", "qualifiée")
