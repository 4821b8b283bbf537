"""``gateway pki`` (development PKI) and ``gateway queue`` (outbound queue) from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from support.mail import message
from support.pki import PKIFiles
from support.relay import make_pair, queue_rows, wait_for

from gateway.trust.certificates import RelayCertificateVerifier

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow


def gateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True,
                          timeout=60, check=False)


def test_pki_commands_issue_operator_and_software_certificates_and_revoke(tmp_path: Path):
    folder = str(tmp_path / "pki")
    assert gateway("pki", "init", "--dir", folder).returncode == 0
    assert gateway("pki", "init", "--dir", folder).returncode == 1  # never overwritten by accident
    done = gateway("pki", "operator", "mx.a.test", "--domain", "pro.a.test", "--dir", folder)
    assert done.returncode == 0, done.stderr
    operator = x509.load_pem_x509_certificates((tmp_path / "pki" / "mx.a.test.crt").read_bytes())
    assert len(operator) == 2  # leaf and intermediate, as a TLS peer presents them
    names = operator[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"mx.a.test", "pro.a.test"} <= set(names.get_values_for_type(x509.DNSName))
    client = gateway("pki", "client", "LGC Cabinet", "--out", "lgc", "--dir", folder)
    fingerprint = client.stdout.strip().rsplit(" ", 1)[-1]
    assert gateway("pki", "fingerprint", str(tmp_path / "pki" / "lgc.crt")).stdout.strip() == fingerprint
    assert gateway("pki", "revoke", str(tmp_path / "pki" / "lgc.crt"), "--dir", folder).returncode == 0
    verifier = RelayCertificateVerifier(tmp_path / "pki" / "ca-bundle.crt", tmp_path / "pki" / "crl.pem")
    lgc = x509.load_pem_x509_certificates((tmp_path / "pki" / "lgc.crt").read_bytes())[0]
    from cryptography.hazmat.primitives.serialization import Encoding

    assert verifier.check(lgc.public_bytes(Encoding.DER)).reason == "revoked"
    assert verifier.check(operator[0].public_bytes(Encoding.DER)).ok


def test_queue_list_and_retry(tmp_path: Path, pki: PKIFiles):
    urls = [f"sqlite+aiosqlite:///{tmp_path / f'{n}.sqlite3'}" for n in ("a", "b")]
    pair = make_pair(tmp_path, pki, urls, start_b=False, retry="[3600]")
    try:
        dr_a, dr_b = pair.a.address("dr.alpha"), pair.b.address("dr.beta")
        pair.store_a.add_mailbox(dr_a)
        pair.store_b.add_mailbox(dr_b)
        with pair.a.smtp(dr_a) as client:
            client.sendmail(dr_a, [dr_b], message(dr_a, dr_b))
        wait_for(lambda: [r for r in queue_rows(pair.store_a) if r.attempts == 1 and r.last_reply])
        listed = gateway("queue", "list", "--json", "--config", str(pair.a.config_path))
        rows = json.loads(listed.stdout)
        assert [(r["recipient"], r["state"], r["attempts"]) for r in rows] == [(dr_b, "queued", 1)]
        pair.b.start()
        retried = gateway("queue", "retry", "--config", str(pair.a.config_path))
        assert retried.stdout.startswith("1 queued recipient")
        wait_for(lambda: [r for r in queue_rows(pair.store_a) if r.state == "sent"])  # not an hour later
    finally:
        pair.stop()
