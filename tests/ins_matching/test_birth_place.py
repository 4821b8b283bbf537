"""R7's fifth trait: the INSEE code of the birth place is compared whenever both the document and the stored
identity carry it (904 when they differ); ``[documents] compare_birth_place = false`` relaxes it."""

from __future__ import annotations

from pathlib import Path

from documents.helpers import identity, variant

from gateway.config import load
from gateway.documents.cda import read_header
from gateway.ins_matching.matching import INS_MISMATCH, FileTo, Review, match

BORN_IN_PARIS = ("<county>51215</county>", "<county>75056</county>")


def test_r7_a_birth_place_differing_from_the_identitys_is_904(bio: bytes) -> None:
    person = identity(birth_place="75056")
    decision = match(read_header(bio, validate=False), {person.matricule: person}, allow_test_oids=True)
    assert isinstance(decision, Review) and decision.code == INS_MISMATCH
    assert "birth place" in decision.reason and decision.candidate is person


def test_r7_the_same_birth_place_is_filed(bio: bytes) -> None:
    person = identity(birth_place="51215")
    decision = match(read_header(bio, validate=False), {person.matricule: person}, allow_test_oids=True)
    assert isinstance(decision, FileTo)


def test_r7_a_birth_place_carried_by_one_side_only_is_not_compared(bio: bytes) -> None:
    without = read_header(variant(bio, ("<county>51215</county>", "<county></county>")), validate=False)
    assert not without.patient.birth_place
    person = identity()
    assert isinstance(match(without, {person.matricule: person}, allow_test_oids=True), FileTo)
    unknown_place = identity(birth_place="")
    decision = match(read_header(bio, validate=False), {person.matricule: unknown_place}, allow_test_oids=True)
    assert isinstance(decision, FileTo)


def test_r7_the_birth_place_of_the_document_is_normalised_before_comparing(bio: bytes) -> None:
    spaced = read_header(variant(bio, ("<county>51215</county>", "<county> 51215 </county>")), validate=False)
    person = identity()
    assert isinstance(match(spaced, {person.matricule: person}, allow_test_oids=True), FileTo)


def test_compare_birth_place_setting_defaults_to_true_and_can_relax(tmp_path: Path, bio: bytes) -> None:
    base = """
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
[documents]
filing_mailboxes = ["results@pro.test"]
"""
    for name in ("c.pem", "k.pem"):
        (tmp_path / name).write_text("x")
    path = tmp_path / "gateway.toml"
    path.write_text(base)
    strict = load(path).documents
    path.write_text(base + "compare_birth_place = false\n")
    relaxed = load(path).documents
    assert strict is not None and strict.compare_birth_place
    assert relaxed is not None and not relaxed.compare_birth_place
    person = identity(birth_place="75056")
    header = read_header(variant(bio, BORN_IN_PARIS), validate=False)  # born in Paris per the CDA
    assert isinstance(match(header, {person.matricule: person}, allow_test_oids=True,
                            compare_birth_place=relaxed.compare_birth_place), FileTo)
    other = identity(birth_place="51215")
    assert isinstance(match(header, {person.matricule: other}, allow_test_oids=True,
                            compare_birth_place=strict.compare_birth_place), Review)
