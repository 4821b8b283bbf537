"""Trait normalisation and document-to-patient matching (R8, R10, R11) with the ANS integration codes."""

from __future__ import annotations

import pytest
from documents.helpers import TEST_MATRICULE, TEST_OID, identity, variant

from gateway.documents.cda import CdaHeader, read_header
from gateway.ins_matching.matching import (
    AUTHOR_NOT_ALLOWED,
    INS_MISMATCH,
    NO_INS,
    OTHER,
    TRAITS_INCOMPLETE,
    UNKNOWN_PATIENT,
    VERSION_PROBLEM,
    FileTo,
    IdentityRecord,
    Review,
    match,
)
from gateway.ins_matching.normalise import birth_date, first_of, fold, normalise, sex


def test_fold_ignores_case_accents_hyphens_apostrophes_and_spaces() -> None:
    assert fold("Pat-Trois") == fold("PAT TROIS") == fold(" pat  trois ") == "PAT TROIS"
    assert fold("Hélène") == fold("HELENE")
    assert fold("D'Arc") == fold("D’ARC") == fold("d arc")
    assert fold("Lætitia Œdipe") == "LAETITIA OEDIPE"
    assert fold("Müller") == "MULLER"
    assert fold(None) == "" and fold("") == ""


def test_fold_does_not_forgive_real_differences() -> None:
    assert fold("MARTIN") != fold("MARTINE")
    assert fold("DARC") != fold("D'ARC")  # a missing separator is another spelling, not noise


def test_first_birth_first_name_is_the_first_of_the_list() -> None:
    assert first_of("MARIE-LOUISE ANNE") == "MARIE LOUISE"
    assert first_of("Jean") == "JEAN" and first_of("") == "" and first_of(None) == ""


def test_birth_dates_and_sexes_normalise() -> None:
    assert birth_date("19790328") == birth_date("1979-03-28") == birth_date("28/03/1979") == "1979-03-28"
    assert birth_date("1979-00-00") == "1979-00-00"
    assert birth_date("mars 1979") is None and birth_date(None) is None
    assert sex("f") == "F" and sex("1") == "M" and sex("X") is None and sex(None) is None


def test_normalise_falls_back_on_the_first_of_the_first_names() -> None:
    person = identity(first_name="")
    assert normalise(person).first_name == "DOMINIQUE"


def _header(data: bytes) -> CdaHeader:
    return read_header(data, validate=False)


def _lookup(*people: IdentityRecord) -> dict[str, IdentityRecord]:
    return {p.matricule: p for p in people}


def test_r10_qualified_identity_with_agreeing_traits_is_filed(bio: bytes) -> None:
    person = identity(birth_name="Pat Trois", first_name="Dominique", first_names="Dominique Marie Louise")
    decision = match(_header(bio), _lookup(person), allow_test_oids=True)
    assert isinstance(decision, FileTo) and decision.identity is person and decision.rule == "R10"


def test_r10_lookup_may_be_a_function(bio: bytes) -> None:
    person = identity()
    decision = match(_header(bio), lambda m: person if m == TEST_MATRICULE else None, allow_test_oids=True)
    assert isinstance(decision, FileTo)


@pytest.mark.parametrize("status", ["provisoire", "récupérée", "validée"])
def test_r11_identity_not_qualified_goes_to_review_as_candidate(bio: bytes, status: str) -> None:
    person = identity(status)
    decision = match(_header(bio), _lookup(person), allow_test_oids=True)
    assert isinstance(decision, Review)
    assert decision.code == OTHER and decision.rule == "R11" and decision.candidate is person
    assert "INSi" in decision.reason


def test_r10_unknown_patient_is_902(bio: bytes) -> None:
    decision = match(_header(bio), {}, allow_test_oids=True)
    assert isinstance(decision, Review) and decision.code == UNKNOWN_PATIENT and decision.label == "unknown patient"


def test_r10_no_ins_is_903(bio: bytes) -> None:
    without = variant(bio, ('<id extension="279035121518989" root="1.2.250.1.213.1.4.10"/>', ""))
    decision = match(_header(without), _lookup(identity()), allow_test_oids=True)
    assert isinstance(decision, Review) and decision.code == NO_INS


def test_r8_wrong_matricule_key_is_904(bio: bytes) -> None:
    wrong = variant(bio, ('extension="279035121518989"', 'extension="279035121518988"'))
    decision = match(_header(wrong), _lookup(identity(matricule="279035121518988")), allow_test_oids=True)
    assert isinstance(decision, Review) and decision.code == INS_MISMATCH and "key" in decision.reason


@pytest.mark.parametrize(("changes", "trait"), [
    (dict(birth_name="PAT-QUATRE"), "birth name"),
    (dict(first_name="CLAIRE", first_names="CLAIRE"), "first birth first name"),
    (dict(birth_date="1979-03-29"), "birth date"),
    (dict(sex="M"), "sex"),
])
def test_r10_traits_differing_from_the_stored_identity_is_904(bio: bytes, changes: dict[str, str],
                                                              trait: str) -> None:
    person = identity(**changes)
    decision = match(_header(bio), _lookup(person), allow_test_oids=True)
    assert isinstance(decision, Review) and decision.code == INS_MISMATCH
    assert trait in decision.reason and decision.candidate is person


def test_r10_birth_place_is_not_compared_when_relaxed(bio: bytes) -> None:
    decision = match(_header(bio), _lookup(identity(birth_place="75056")), allow_test_oids=True,
                     compare_birth_place=False)
    assert isinstance(decision, FileTo)


def test_r8_nir_and_nia_namespaces_differ_is_904(bio: bytes) -> None:
    decision = match(_header(bio), _lookup(identity(oid="1.2.250.1.213.1.4.9")), allow_test_oids=True)
    assert isinstance(decision, Review) and decision.code == INS_MISMATCH


def test_r10_incomplete_traits_is_905(bio: bytes) -> None:
    partial = variant(bio, ('<birthTime value="19790328"/>', ""))
    decision = match(_header(partial), _lookup(identity()), allow_test_oids=True)
    assert isinstance(decision, Review) and decision.code == TRAITS_INCOMPLETE and "birth date" in decision.reason


def test_r8_test_oid_refused_unless_allowed(bio: bytes) -> None:
    decision = match(_header(bio), _lookup(identity()))
    assert isinstance(decision, Review) and decision.code == OTHER and "test" in decision.reason
    assert isinstance(match(_header(bio), _lookup(identity()), allow_test_oids=True), FileTo)


def test_r10_version_problems_are_900(bio: bytes) -> None:
    no_version = variant(bio, ('<versionNumber value="1"/>', ""))
    decision = match(_header(no_version), _lookup(identity()), allow_test_oids=True)
    assert isinstance(decision, Review) and decision.code == VERSION_PROBLEM
    older = match(_header(bio), _lookup(identity()), allow_test_oids=True, filed_version=lambda set_id: 3)
    assert isinstance(older, Review) and older.code == VERSION_PROBLEM
    same = match(_header(bio), _lookup(identity()), allow_test_oids=True, filed_version=lambda set_id: 1)
    assert isinstance(same, FileTo)


def test_r10_author_not_allowed_is_901(bio: bytes) -> None:
    decision = match(_header(bio), _lookup(identity()), allow_test_oids=True,
                     author_allowed=lambda header: header.authors[0].rpps == "99999999999")
    assert isinstance(decision, Review) and decision.code == AUTHOR_NOT_ALLOWED


def test_r10_several_ins_or_patients_is_906(bio: bytes) -> None:
    two_ins = variant(bio, ('<id extension="279035121518989" root="1.2.250.1.213.1.4.10"/>',
                            '<id extension="279035121518989" root="1.2.250.1.213.1.4.10"/>'
                            '<id extension="180077511200168" root="1.2.250.1.213.1.4.10"/>'))
    decision = match(_header(two_ins), _lookup(identity()), allow_test_oids=True)
    assert isinstance(decision, Review) and decision.code == OTHER and "several" in decision.reason


def test_r8_obsolete_matricule_filed_under_principal_identity_with_a_note(bio: bytes) -> None:
    principal = identity(matricule="285126906900144", oid=TEST_OID)
    decision = match(_header(bio), {TEST_MATRICULE: principal}, allow_test_oids=True)
    assert isinstance(decision, FileTo) and decision.note and "principal" in decision.note


def test_store_identity_model_satisfies_the_protocol(bio: bytes) -> None:
    from gateway.store.models import Identity

    row = Identity(matricule=TEST_MATRICULE, oid=TEST_OID, birth_name="PAT-TROIS", first_names="DOMINIQUE",
                   first_name="DOMINIQUE", birth_date="1979-03-28", sex="F", birth_place="51215", status="qualifiée")
    assert isinstance(match(_header(bio), {TEST_MATRICULE: row}, allow_test_oids=True), FileTo)
