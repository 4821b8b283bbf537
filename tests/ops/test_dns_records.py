"""``gateway dns-records``: RFC 6186 / RFC 8314 SRV records and autoconfig CNAMEs for every domain we serve."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.pki import HOSTNAME, PKIFiles

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

PRO, LAB, PATIENT = "pro.gateway.test", "lab.gateway.test", "patient.gateway.test"


def _write(tmp_path: Path, pki: PKIFiles, listeners: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(f"""
[gateway]
hostname = "{HOSTNAME}"
domains = ["{PRO}", "{LAB}"]
patient_domain = "{PATIENT}"
[database]
url = "sqlite+aiosqlite:///{tmp_path}/g.sqlite3"
[tls]
certificate = "{pki.server_cert}"
private_key = "{pki.server_key}"
{listeners}
""", encoding="utf-8")
    return path


def _gateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True, timeout=120)


ALL = """
[smtp]
submission = "0.0.0.0:587"
submissions = "0.0.0.0:465"
[imap]
listen = "0.0.0.0:143"
listen_tls = "0.0.0.0:993"
"""


def test_dns_records_prints_srv_and_cname_lines_for_each_domain(tmp_path: Path, pki: PKIFiles) -> None:
    done = _gateway("dns-records", "--config", str(_write(tmp_path, pki, ALL)))
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line and not line.startswith(";")]
    host = HOSTNAME + "."
    for domain in (PRO, LAB, PATIENT):
        assert f"_submissions._tcp.{domain}. 3600 IN SRV 0 1 465 {host}" in lines
        assert f"_submission._tcp.{domain}. 3600 IN SRV 10 1 587 {host}" in lines
        assert f"_imaps._tcp.{domain}. 3600 IN SRV 0 1 993 {host}" in lines
        assert f"_imap._tcp.{domain}. 3600 IN SRV 10 1 143 {host}" in lines
        assert f"autoconfig.{domain}. 3600 IN CNAME {host}" in lines
        assert f"autodiscover.{domain}. 3600 IN CNAME {host}" in lines
    assert len(lines) == 3 * 6
    comments = [line for line in done.stdout.splitlines() if line.startswith(";")]
    assert [c.split()[1] for c in comments] == [f"{LAB}:", f"{PRO}:", f"{PATIENT}:"]


def test_dns_records_json_marks_services_not_offered_with_a_dot_target(tmp_path: Path, pki: PKIFiles) -> None:
    config = _write(tmp_path, pki, '[smtp]\nsubmissions = "0.0.0.0:465"\n[imap]\nlisten_tls = "0.0.0.0:993"\n')
    done = _gateway("dns-records", "--config", str(config), "--json", "--ttl", "300")
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)
    by_name = {r["name"]: r for r in records}
    assert by_name[f"_submission._tcp.{PRO}."] == {  # RFC 6186 section 4: decidedly not available
        "domain": PRO, "name": f"_submission._tcp.{PRO}.", "type": "SRV", "ttl": 300, "target": ".",
        "priority": 0, "weight": 0, "port": 0}
    assert by_name[f"_imap._tcp.{PATIENT}."]["target"] == "."
    assert by_name[f"_imaps._tcp.{PATIENT}."] == {
        "domain": PATIENT, "name": f"_imaps._tcp.{PATIENT}.", "type": "SRV", "ttl": 300,
        "target": HOSTNAME + ".", "priority": 0, "weight": 1, "port": 993}
    assert by_name[f"autoconfig.{LAB}."] == {"domain": LAB, "name": f"autoconfig.{LAB}.", "type": "CNAME",
                                             "ttl": 300, "target": HOSTNAME + "."}
    assert len(records) == 18


def test_dns_records_refuses_a_bad_ttl_and_a_bad_configuration_in_one_sentence(
        tmp_path: Path, pki: PKIFiles) -> None:
    done = _gateway("dns-records", "--config", str(_write(tmp_path, pki, ALL)), "--ttl", "0")
    assert done.returncode == 1
    assert done.stderr == "gateway: --ttl must be between 1 and 2147483647 seconds, not 0.\n"
    done = _gateway("dns-records", "--config", str(_write(tmp_path, pki, ALL + '[metrics]\nlisten = "x"\n')))
    assert done.returncode == 2
    assert done.stderr.startswith("gateway: Configuration key 'metrics.listen' must look like 'host:port'")
