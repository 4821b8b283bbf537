"""Pure parts of Pro Santé Connect logins: SASL responses (RFC 7628 3.1, XOAUTH2), claims (RFC 7519 4.1), JWS
headers, JWKS import, the [psc] section and mailbox login methods. No sockets."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.auth.methods import allows, normalise
from gateway.config import ConfigError, _Reader
from gateway.config.psc import PscSettings, parse_section
from gateway.psc.sasl import (
    SaslError,
    error_challenge,
    oauthbearer_response,
    parse_oauthbearer,
    parse_xoauth2,
    xoauth2_response,
)
from gateway.psc.tokens import Rejected, check_claims, import_jwks, read_header

ISSUER = "https://psc.test/auth/realms/esante-wallet"
SETTINGS = PscSettings(ISSUER, "gateway", audiences=("gateway", "mail-client"), required_scope="scope_all",
                       leeway=30)
NOW = 1_800_000_000.0


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"iss": ISSUER, "aud": "mail-client", "azp": "mail-client", "exp": NOW + 300,
                            "nbf": NOW - 1, "iat": NOW - 1, "scope": "openid scope_all",
                            "SubjectNameID": "801234534765", "preferred_username": "801234534765"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


# --- SASL ---------------------------------------------------------------------------------------------------------
def test_rfc7628_oauthbearer_example_is_read() -> None:
    data = (b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01"
            b"auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01")
    response = parse_oauthbearer(data)
    assert response.authzid == "user@example.com" and response.token == "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="


def test_oauthbearer_without_authzid_and_escaped_authzid() -> None:
    assert parse_oauthbearer(b"n,,\x01auth=Bearer abc\x01\x01").authzid == ""
    assert parse_oauthbearer(b"n,a=a=3Db=2Cc@x.test,\x01auth=Bearer abc\x01\x01").authzid == "a=b,c@x.test"


def test_xoauth2_response_is_read_and_round_trips() -> None:
    assert parse_xoauth2(xoauth2_response("t.o.k", "Dr@Pro.Test")).authzid == "dr@pro.test"
    assert parse_oauthbearer(oauthbearer_response("t.o.k", "dr@pro.test")).token == "t.o.k"


@pytest.mark.parametrize("data", [
    b"", b"n,,", b"p=tls-unique,,\x01auth=Bearer x\x01\x01", b"n,user,\x01auth=Bearer x\x01\x01",
    b"n,,\x01auth=Bearer x\x01", b"n,,\x01auth=Basic x\x01\x01", b"n,,\x01auth=Bearer \x01\x01",
    b"n,,\x01auth=Bearer a\x01auth=Bearer b\x01\x01", b"n,,\x01=x\x01\x01", b"n,,\x01auth=Bearer x y\x01\x01",
    b"n,,\x01auth=Bearer " + b"a" * 9000 + b"\x01\x01",
])
def test_malformed_oauthbearer_responses_are_refused(data: bytes) -> None:
    with pytest.raises(SaslError):
        parse_oauthbearer(data)


@pytest.mark.parametrize("data", [b"user=\x01auth=Bearer x\x01\x01", b"auth=Bearer x\x01\x01",
                                  b"user=a@b\x01\x01", b"user=\xff@b\x01auth=Bearer x\x01\x01"])
def test_malformed_xoauth2_responses_are_refused(data: bytes) -> None:
    with pytest.raises(SaslError):
        parse_xoauth2(data)


@given(st.binary(max_size=400))
def test_any_bytes_give_a_response_or_a_sasl_error(data: bytes) -> None:
    for parse in (parse_oauthbearer, parse_xoauth2):
        try:
            parse(data)
        except SaslError:
            pass


def test_error_challenge_is_the_rfc7628_json() -> None:
    assert json.loads(error_challenge("invalid_token", "scope_all", ISSUER + "/.well-known/openid-configuration")) \
        == {"status": "invalid_token", "scope": "scope_all",
            "openid-configuration": ISSUER + "/.well-known/openid-configuration"}


# --- claims and headers ------------------------------------------------------------------------------------------
def test_valid_claims_give_the_national_id() -> None:
    verified = check_claims(claims(), SETTINGS, NOW)
    assert verified.national_id == "801234534765" and verified.client_id == "mail-client"
    assert check_claims(claims(SubjectNameID=None), SETTINGS, NOW).national_id == "801234534765"
    assert check_claims(claims(aud=["account", "gateway"], azp="other"), SETTINGS, NOW)


@pytest.mark.parametrize(("changes", "reason"), [
    ({"iss": "https://other.test"}, "issuer"),
    ({"aud": "other", "azp": "other"}, "audience"),
    ({"aud": None, "azp": None}, "audience"),
    ({"exp": NOW - 31}, "expired"),
    ({"exp": None}, "expired"),
    ({"exp": "tomorrow"}, "malformed"),
    ({"nbf": NOW + 31}, "not_yet_valid"),
    ({"iat": NOW + 31}, "not_yet_valid"),
    ({"scope": "openid"}, "scope"),
    ({"scope": None}, "scope"),
    ({"SubjectNameID": None, "preferred_username": None}, "no_national_id"),
    ({"SubjectNameID": "8012 3453", "preferred_username": None}, "no_national_id"),
])
def test_refused_claims_name_their_reason(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(Rejected) as refused:
        check_claims(claims(**changes), SETTINGS, NOW)
    assert refused.value.reason == reason


def test_leeway_accepts_a_small_clock_skew() -> None:
    assert check_claims(claims(exp=NOW - 29, nbf=NOW + 29), SETTINGS, NOW)


def _jws(header: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode() + ".e30.c2ln"


@pytest.mark.parametrize(("token", "reason"), [
    (_jws({"alg": "none"}), "algorithm"), (_jws({"alg": "HS256"}), "algorithm"), (_jws({}), "algorithm"),
    (_jws({"alg": "RS256", "crit": ["x"]}), "malformed"), ("a.b", "malformed"), ("!!.e30.x", "malformed"),
    ("x" * 9000, "too_long"),
])
def test_headers_other_than_an_allowed_asymmetric_jws_are_refused(token: str, reason: str) -> None:
    with pytest.raises(Rejected) as refused:
        read_header(token, SETTINGS.algorithms)
    assert refused.value.reason == reason


def test_jwks_import_keeps_public_signature_keys_only() -> None:
    from joserfc.jwk import OctKey, RSAKey

    rsa = RSAKey.generate_key(2048, parameters={"kid": "sig"}).as_dict(private=False)
    enc = {**rsa, "kid": "enc", "use": "enc"}
    secret = OctKey.generate_key(256, parameters={"kid": "oct"}).as_dict()
    assert set(import_jwks({"keys": [rsa, enc, secret, "junk", {"kty": "RSA", "kid": "broken"}]})) == {"sig"}
    with pytest.raises(ValueError):
        import_jwks({"nokeys": []})


# --- [psc] and login methods -------------------------------------------------------------------------------------
def _section(tmp_path: Path, **values: Any) -> PscSettings | None:
    def path(reader: _Reader, name: str, required: bool = True) -> Path | None:
        value = reader.get(name, str, "" if not required else None)
        return tmp_path / value if value else None

    return parse_section(_Reader({"psc": values}), path)


def test_psc_section_defaults_and_errors_name_the_key(tmp_path: Path) -> None:
    settings = _section(tmp_path, issuer=ISSUER + "/", client_id="gateway")
    assert settings is not None and settings.issuer == ISSUER
    assert settings.configuration_url == ISSUER + "/.well-known/openid-configuration"
    assert settings.accepted_audiences == ("gateway",) and "HS256" not in settings.algorithms
    for values, key in [({"issuer": "http://psc.test", "client_id": "g"}, "psc.issuer"),
                        ({"issuer": ISSUER}, "psc.client_id"),
                        ({"issuer": ISSUER, "client_id": "g", "algorithms": ["HS256"]}, "psc.algorithms"),
                        ({"issuer": ISSUER, "client_id": "g", "introspection": True}, "psc.client_secret"),
                        ({"issuer": ISSUER, "client_id": "g", "leeway": 3600}, "psc.leeway"),
                        ({"issuer": ISSUER, "client_id": "g", "tokens": 1}, "psc.tokens")]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            _section(tmp_path, **values)


def test_mailbox_login_methods() -> None:
    assert allows(None, "password") and allows("", "psc")
    assert allows("psc,certificate", "psc") and not allows("psc,certificate", "password")
    assert normalise(["psc, Certificate"]) == "psc,certificate"
    assert normalise(["psc,password,certificate"]) is None
    with pytest.raises(ValueError, match="'sms' is not a login method"):
        normalise(["sms"])
