"""``gateway directory search`` and ``gateway directory mailbox`` as an administrator runs them, against the
simulator process over HTTPS: tables for people, JSON for scripts, sentences and exit statuses on errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from directory.directory_support import SimulatorProcess
from support.pki import PKIFiles

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

CONFIG = """\
[gateway]
hostname = "mail.gateway.test"
domains = ["pro.gateway.test"]
patient_domain = "patient.gateway.test"

[database]
url = "sqlite+aiosqlite:///{folder}/gateway.sqlite3"

[tls]
certificate = "{cert}"
private_key = "{key}"

[smtp]
submission = "127.0.0.1:2587"
{directory}
"""


@pytest.fixture
def config(tmp_path: Path, pki: PKIFiles, annuaire: SimulatorProcess) -> Path:
    path = tmp_path / "gateway.toml"
    directory = (f'[directory]\nbase_url = "{annuaire.base_url}"\napi_key_file = "{annuaire.key_path}"\n'
                 f'ca_file = "{pki.ca_bundle}"\n')
    path.write_text(CONFIG.format(folder=tmp_path, cert=pki.server_cert, key=pki.server_key, directory=directory),
                    encoding="utf-8")
    return path


def gateway(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "directory", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_search_by_rpps_prints_json_with_specialty_and_structure(config: Path) -> None:
    done = gateway(config, "search", "--rpps", "01234534765", "--json")
    assert done.returncode == 0, done.stderr
    [found] = json.loads(done.stdout)
    assert found["national_id"] == "801234534765" and found["specialty"] == {"code": "SM03",
                                                                             "display": "Biologie médicale"}
    assert found["roles"][0]["organisation"]["name"] == "Laboratoire des charmes"
    assert found["mailboxes"] == [{"address": "marcel.camparini@labo-charmes.mssante.test", "type": "PER"}]


def test_search_by_name_prints_a_table_of_several(config: Path) -> None:
    done = gateway(config, "search", "--name", "Martin")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["national_id", "name", "profession"]
    assert any("MARTIN Sophie" in line and "Lyon" in line for line in lines)
    assert any("MARTIN Paul" in line and "Paris" in line for line in lines)


def test_search_by_city_json(config: Path) -> None:
    done = gateway(config, "search", "--city", "Lyon", "--json")
    assert sorted(p["family"] for p in json.loads(done.stdout)) == ["MARTIN", "SOIGNANT"]


def test_mailbox_published_and_not_published(config: Path) -> None:
    done = gateway(config, "mailbox", "sophie.martin@pro.b.test")
    assert done.returncode == 0 and "Sophie MARTIN (810000000101)" in done.stdout and "[PER]" in done.stdout
    as_json = json.loads(gateway(config, "mailbox", "accueil@labo-charmes.mssante.test", "--json").stdout)
    assert as_json["type"] == "ORG" and as_json["organisation"]["name"] == "Laboratoire des charmes"
    missing = gateway(config, "mailbox", "nobody@pro.b.test")
    assert missing.returncode == 1 and "is not published" in missing.stdout


def test_errors_are_one_sentence(config: Path, annuaire: SimulatorProcess, tmp_path: Path) -> None:
    assert "needs --name, --rpps or --city" in gateway(config, "search").stderr
    assert "not an RPPS number" in gateway(config, "search", "--rpps", "12ab").stderr
    annuaire.fault("down", 3)
    try:
        down = gateway(config, "search", "--name", "Martin")
    finally:
        annuaire.fault("down", 0)
    assert down.returncode == 1 and "HTTP 503" in down.stderr and "Traceback" not in down.stderr
    bare = tmp_path / "bare.toml"
    bare.write_text(config.read_text(encoding="utf-8").split("[directory]")[0], encoding="utf-8")
    no_section = gateway(bare, "search", "--name", "x")
    assert no_section.returncode == 1 and "no [directory] section" in no_section.stderr
