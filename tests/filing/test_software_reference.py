"""X-MSS-NIL (ANS client specification): the software reference on every message the gateway builds (MDN,
integration error notice, DSN) or rebuilds (outgoing CDA packaged in an XDM), from ``[gateway]
software_reference``; a sending software that names itself keeps its own."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from gateway.config import ConfigError, load
from gateway.documents.packaging import NIL_HEADER, package
from gateway.filing import mdn
from gateway.samples import samples_dir
from gateway.smtp import dsn

NIL = "Passerelle MSS 2.1 (homologation H-42)"
BASE = """
[gateway]
hostname = "mx.test"
domains = ["pro.test"]
patient_domain = "patient.test"
{extra}
[database]
url = "sqlite+aiosqlite:///gw.sqlite3"
[tls]
certificate = "c.pem"
private_key = "k.pem"
[smtp]
submission = "127.0.0.1:2587"
"""


def _config(folder: Path, extra: str = "") -> Path:
    for name in ("c.pem", "k.pem"):
        (folder / name).write_text("x")
    path = folder / "gateway.toml"
    path.write_text(BASE.format(extra=extra))
    return path


def _parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_software_reference_defaults_to_the_package_and_version(tmp_path: Path) -> None:
    assert load(_config(tmp_path)).software_reference.startswith("mss-gateway")
    assert load(_config(tmp_path, f'software_reference = "{NIL}"')).software_reference == NIL


@pytest.mark.parametrize("value", ['""', '"a\\nb"', f'"{"x" * 201}"'])
def test_a_bad_software_reference_names_its_key(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"'gateway\.software_reference'"):
        load(_config(tmp_path, f"software_reference = {value}"))


def test_mdn_and_error_notice_carry_x_mss_nil() -> None:
    request = mdn.MdnRequest("lab@pro.test", "<m@lab.test>", "results@pro.test")
    original = b"From: lab@pro.test\r\nSubject: CR\r\nMessage-ID: <m@lab.test>\r\n\r\nx\r\n"
    assert _parse(mdn.build(request, "results@pro.test", "mx.test", None, original, "CR", NIL))[NIL_HEADER] == NIL
    notice = mdn.error_notice("lab@pro.test", "results@pro.test", "mx.test", 902, [], None, "CR", NIL)
    assert _parse(notice)[NIL_HEADER] == NIL


def test_dsn_carries_x_mss_nil() -> None:
    raw = dsn.build(reporting_mta="mx.test", postmaster="mailer-daemon@pro.test", to="a@pro.test",
                    recipients=[dsn.RecipientStatus("b@pro.other.test", "failed", "5.1.1")],
                    original=b"Subject: x\r\n\r\nx\r\n", arrival=dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
                    software_reference=NIL)
    assert _parse(raw)[NIL_HEADER] == NIL


def _with_cda(nil: str | None = None) -> bytes:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"], message["To"], message["Subject"] = "a@pro.test", "b@pro.other.test", "CR"
    if nil:
        message[NIL_HEADER] = nil
    message.set_content("CR")
    cda = (samples_dir() / "cda" / "BIO-CR-BIO_2024.01_TSH_1.xml").read_bytes()
    message.add_attachment(cda, maintype="text", subtype="xml", filename="cr.xml")
    return message.as_bytes()


def test_a_packaged_message_names_the_gateway_unless_the_software_named_itself() -> None:
    packaged = package(_with_cda(), lambda _m: True, NIL)
    assert packaged is not None and _parse(packaged)[NIL_HEADER] == NIL
    own = package(_with_cda("LGC Cabinet 5.0"), lambda _m: True, NIL)
    assert own is not None and _parse(own).get_all(NIL_HEADER) == ["LGC Cabinet 5.0"]
