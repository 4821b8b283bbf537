"""Socket-free pieces of the relay: configuration keys, DSN parameters and reports, certificate verdicts."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from support.pki import PKIFiles

from gateway.config import ConfigError, parse
from gateway.smtp import dsn
from gateway.smtp.dsn_params import _take_params, dsn_request
from gateway.trust.certificates import RelayCertificateVerifier, certificate_names

_DER = Encoding.DER


def base(pki: PKIFiles, **sections: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "gateway": {"hostname": "mx.a.test", "domains": ["pro.a.test"], "patient_domain": "patient.a.test"},
        "database": {"url": "sqlite+aiosqlite:////tmp/x.sqlite3"},
        "tls": {"certificate": str(pki.server_cert), "private_key": str(pki.server_key),
                "client_ca": str(pki.ca_bundle)},
        "smtp": {"submission": "127.0.0.1:2587"},
    }
    data.update(sections)
    return data


def test_relay_whitelist_and_outbound_sections(pki: PKIFiles, tmp_path: Path):
    cfg = parse(base(pki, relay={"listen": "0.0.0.0:25"}, whitelist={"source": "liste.xml", "cache": "wl.cache"},
                     outbound={"routes": {"pro.b.test": "mx.b.test:2525"}, "retry_schedule": [1, 2.5]}), tmp_path)
    assert cfg.relay is not None and cfg.relay.trust_anchors == pki.ca_bundle and cfg.relay.crl is None
    assert cfg.whitelist is not None and cfg.whitelist.source == str(tmp_path / "liste.xml")
    assert cfg.outbound is not None and cfg.outbound.routes == {"pro.b.test": ("mx.b.test", 2525)}
    assert cfg.outbound.retry_schedule == (1.0, 2.5) and cfg.outbound.certificate == pki.server_cert
    assert cfg.outbound.concurrency == 20 and cfg.outbound.use_mx


@pytest.mark.parametrize(("sections", "key"), [
    ({"relay": {}}, "relay.listen"),
    ({"relay": {"listen": "0.0.0.0:25", "crl": "missing.crl"}}, "relay.crl"),
    ({"outbound": {}}, "whitelist.source"),
    ({"whitelist": {"source": "http://example.test/lb.xml"}}, "whitelist.source"),
    ({"whitelist": {"source": "x.xml", "refresh_interval": 0}}, "whitelist.refresh_interval"),
    ({"whitelist": {"source": "x.xml"}, "outbound": {"routes": {"b.test": "nohost"}}}, "outbound.routes"),
    ({"whitelist": {"source": "x.xml"}, "outbound": {"retry_schedule": []}}, "outbound.retry_schedule"),
    ({"whitelist": {"source": "x.xml"}, "outbound": {"speed": 3}}, "outbound.speed"),
])
def test_configuration_errors_name_the_key(pki: PKIFiles, tmp_path: Path, sections: dict[str, Any], key: str):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        parse(base(pki, **sections), tmp_path)


def test_dsn_parameters_are_taken_off_the_command_with_their_case():
    rest, params = _take_params("<a@b.test> NOTIFY=success,Failure ORCPT=rfc822;A@B.test", ("NOTIFY", "ORCPT"))
    assert rest == "<a@b.test>" and params == {"NOTIFY": "success,Failure", "ORCPT": "rfc822;A@B.test"}
    request = dsn_request({"RET": "hdrs", "ENVID": "QQ+2Bx"}, params)
    assert request is not None and request.notify == "FAILURE,SUCCESS" and request.ret == "HDRS"
    assert dsn_request({}, {}) is None


@pytest.mark.parametrize(("mail", "rcpt"), [
    ({}, {"NOTIFY": "NEVER,SUCCESS"}), ({}, {"NOTIFY": "SOMETIMES"}), ({"RET": "BODY"}, {}),
    ({"ENVID": "a b"}, {}), ({}, {"ORCPT": "x" * 501}),
])
def test_bad_dsn_parameters_are_refused(mail: dict[str, str], rcpt: dict[str, str]):
    with pytest.raises(ValueError):
        dsn_request(mail, rcpt)


def test_dsn_report_follows_rfc_3464():
    original = b"From: a@pro.a.test\r\nTo: b@pro.b.test\r\nSubject: Secret\r\n\r\nBody text\r\n"
    raw = dsn.build(reporting_mta="mx.a.test", postmaster="mailer-daemon@pro.a.test", to="a@pro.a.test",
                    recipients=[dsn.RecipientStatus("b@pro.b.test", "failed", "5.1.1", "rfc822;b@pro.b.test",
                                                    "mx.b.test", "550 5.1.1 No such\r\nmailbox")],
                    original=original, arrival=dt.datetime(2026, 1, 2, tzinfo=dt.UTC), envid="ENV1")
    report = email.message_from_bytes(raw, policy=email.policy.default)
    assert report.get_content_type() == "multipart/report"
    human, status, returned = report.get_payload()
    assert "could not be delivered" in human.get_content()
    fields = status.as_string()
    for line in ("Original-Envelope-Id: ENV1", "Reporting-MTA: dns; mx.a.test", "Action: failed",
                 "Final-Recipient: rfc822; b@pro.b.test", "Status: 5.1.1", "Remote-MTA: dns; mx.b.test",
                 "Diagnostic-Code: smtp; 550 5.1.1 No such mailbox"):
        assert line in fields
    assert returned.get_content_type() == "text/rfc822-headers"
    assert b"Body text" not in raw and b"Subject: Secret" in raw
    full = dsn.build(reporting_mta="mx.a.test", postmaster="m@pro.a.test", to="a@pro.a.test",
                     recipients=[dsn.RecipientStatus("b@pro.b.test", "relayed", "2.0.0")], original=original,
                     arrival=dt.datetime.now(dt.UTC), ret="FULL")
    assert b"Content-Type: message/rfc822" in full and b"Body text" in full


def test_certificate_verdicts(pki: PKIFiles, tmp_path: Path):
    ok = pki.pki.operator("mx.b.test", ("pro.b.test",))
    revoked = pki.pki.operator("mx.c.test", ("pro.c.test",))
    server_only = pki.pki.issue("web.b.test", dns_names=("web.b.test",), server=True)
    crl = tmp_path / "ca.crl"
    crl.write_bytes(pki.pki.crl((revoked.certificate,)))
    verifier = RelayCertificateVerifier(pki.ca_bundle, crl)
    der = ok.certificate.public_bytes(_DER)
    verdict = verifier.check(der)
    assert verdict.ok and verdict.names == ("mx.b.test", "pro.b.test", "localhost")
    assert verifier.check(None).reason == "no_certificate"
    assert verifier.check(revoked.certificate.public_bytes(_DER)).reason == "revoked"
    assert verifier.check(server_only.certificate.public_bytes(_DER)).reason == "key_usage"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=900)
    assert verifier.check(der, now=later).reason == "expired"
    assert verifier.check(der, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=8)).reason == "crl_expired"
    crl.write_bytes(b"garbage")
    os.utime(crl, (1, 1))  # a new modification time: the verifier re-reads the list
    assert verifier.check(der).reason == "crl_unreadable"
    assert certificate_names(pki.pki.software("LGC").certificate) == ("lgc",)

