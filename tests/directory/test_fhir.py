"""The FHIR readers and the [directory] settings without sockets: hostile or odd answers are refused or
ignored field by field, never trusted; every configuration error names its key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config import ConfigError
from gateway.config.directory import parse_section
from gateway.directory import fhir


def _mss(address: str, kind: str = "PER", red: bool = False) -> dict[str, Any]:
    return {"system": "email", "value": address, "extension": [{"url": fhir.EXT_MAILBOX_METADATA, "extension": [
        {"url": "type", "valueCodeableConcept": {"coding": [{"system": fhir.SYSTEM_MAILBOX_TYPE, "code": kind}]}},
        {"url": "listeRouge", "valueBoolean": red}]}]}


def test_json_nested_too_deep_is_refused_before_parsing() -> None:
    with pytest.raises(fhir.AnswerRefused, match="nests deeper"):
        fhir.load_json(b"[" * 10_000 + b"]" * 10_000, 1_000_000)
    assert fhir.load_json(b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', 1000) == {"a": "[" * 40}


def test_json_over_the_size_cap_or_not_json_is_refused() -> None:
    with pytest.raises(fhir.AnswerRefused, match="larger than"):
        fhir.load_json(b"{}" * 10, 5)
    with pytest.raises(fhir.AnswerRefused, match="not JSON"):
        fhir.load_json(b"<html>", 100)


def test_only_published_mssante_mailboxes_are_read() -> None:
    telecoms = [_mss("A@pro.test"), _mss("red@pro.test", red=True), {"system": "email", "value": "plain@x.test"},
                {"system": "phone", "value": "0102030405"}, "junk", _mss("org@pro.test", "ORG"),
                _mss("odd@pro.test", "XYZ")]
    assert fhir.mailboxes(telecoms) == (fhir.Mailbox("a@pro.test", "PER"), fhir.Mailbox("org@pro.test", "ORG"),
                                        fhir.Mailbox("odd@pro.test", ""))


def test_bundle_that_is_not_a_bundle_or_has_too_many_entries_is_refused() -> None:
    with pytest.raises(fhir.AnswerRefused, match="not a Bundle"):
        fhir.bundle_resources({"resourceType": "OperationOutcome"}, 10)
    with pytest.raises(fhir.AnswerRefused, match="more than 2"):
        fhir.bundle_resources({"resourceType": "Bundle", "entry": [{}, {}, {}]}, 2)


def test_assemble_keys_on_the_national_id_and_skips_inactive_or_wrongly_typed_fields() -> None:
    resources: list[dict[str, Any]] = [
        {"resourceType": "Practitioner", "id": "p1", "name": [{"family": 12, "given": ["Ann", None]}],
         "identifier": [{"system": fhir.SYSTEM_RPPS, "value": "10000000001"}], "telecom": "not a list"},
        {"resourceType": "Practitioner", "id": "p2", "name": [{"family": "NOID"}]},
        {"resourceType": "Practitioner", "id": "p3", "active": False,
         "identifier": [{"system": fhir.SYSTEM_IDNAT_PS, "value": "810000000003"}]},
        {"resourceType": "PractitionerRole", "id": "r1", "practitioner": {"reference": "Practitioner/p1"},
         "organization": {"reference": "Organization/o1"},
         "code": [{"coding": [{"system": fhir.SYSTEM_PROFESSION, "code": "60"}]}]},
        {"resourceType": "PractitionerRole", "id": "r2", "active": False,
         "practitioner": {"reference": "Practitioner/p1"}},
        {"resourceType": "Organization", "id": "o1", "name": "Cabinet",
         "identifier": [{"system": fhir.SYSTEM_IDNAT_STRUCTURE, "value": "1750000001"}],
         "address": [{"city": "Lyon"}]},
    ]
    [only] = fhir.assemble(resources)
    assert (only.national_id, only.family, only.given) == ("810000000001", "", "Ann")
    assert len(only.roles) == 1 and only.roles[0].profession == fhir.Coded("60", fhir.SYSTEM_PROFESSION,
                                                                           "Infirmier")
    assert only.role_in("1750000001") is only.roles[0]
    assert only.roles[0].organisation is not None and only.roles[0].organisation.city == "Lyon"


def _parse(tmp_path: Path, **values: Any) -> Any:
    from gateway.config import _Reader

    def path(reader: Any, name: str, required: bool = True) -> Path | None:
        if not required and name not in reader._data:
            reader._seen.add(name)
            return None
        return tmp_path / reader.get(name, str, required=True)

    return parse_section(_Reader({"directory": values}), path)


@pytest.mark.parametrize(("values", "key"), [
    ({"base_url": "http://annuaire.test/fhir", "api_key_file": "key"}, "directory.base_url"),
    ({}, "directory.api_key_file"),
    ({"api_key_file": "missing"}, "directory.api_key_file"),
    ({"api_key_file": "key", "timeout": 0}, "directory.timeout"),
    ({"api_key_file": "key", "check_recipients": "yes"}, "directory.check_recipients"),
    ({"api_key_file": "key", "cache": 3}, "directory.cache"),
])
def test_directory_settings_errors_name_their_key(tmp_path: Path, values: dict[str, Any], key: str) -> None:
    (tmp_path / "key").write_text("k-123\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=f"'{key}'"):
        _parse(tmp_path, **values)


def test_directory_settings_defaults(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("k-123\n", encoding="utf-8")
    settings = _parse(tmp_path, api_key_file="key")
    assert settings.base_url == "https://gateway.api.esante.gouv.fr/fhir/v2" and settings.api_key == "k-123"
    assert settings.check_recipients is False and "k-123" not in repr(settings)


@pytest.mark.parametrize("body", [b'"\\' * 500_000, b'"' + b"a" * 1_000_000, b"\\" * 1_000_000,
                                  b'["' * 500_000, b'"a",' * 250_000])
def test_depth_check_is_linear_on_hostile_text(body: bytes) -> None:
    """Strings are skipped by a possessive pattern from a fixed start: no search restarts, no backtracking."""
    import time

    started = time.process_time()
    with pytest.raises(fhir.AnswerRefused):
        fhir.load_json(body, 2_000_000)
    assert time.process_time() - started < 5.0


def test_depth_ignores_brackets_inside_strings_and_escaped_quotes() -> None:
    assert fhir.json_depth(b'{"a": "[[[\\"[[", "b": [[1]]}', 50) == 3
    assert fhir.json_depth(b'["\\\\", [[]]]', 50) == 3
