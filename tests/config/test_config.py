"""Configuration: a bad file stops the daemon with one sentence naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import ConfigError, load

GOOD = """
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
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "c.pem").write_text("x")
    (tmp_path / "k.pem").write_text("x")
    return tmp_path


def write(folder: Path, text: str) -> Path:
    path = folder / "gateway.toml"
    path.write_text(text)
    return path


def test_a_good_file_loads_with_paths_resolved(folder: Path):
    cfg = load(write(folder, GOOD))
    assert cfg.database_url == f"sqlite+aiosqlite:///{folder / 'gw.sqlite3'}"
    assert cfg.tls.certificate == folder / "c.pem" and cfg.submission is not None and cfg.submission.port == 2587
    assert cfg.serves("PATIENT.test") and not cfg.serves("example.org")


@pytest.mark.parametrize("change, key", [
    (('submission = "127.0.0.1:2587"', 'submission = "127.0.0.1"'), "smtp.submission"),
    (('domains = ["pro.test"]', "domains = []"), "gateway.domains"),
    (('patient_domain = "patient.test"', 'patient_domain = "pro.test"'), "gateway.patient_domain"),
    (('url = "sqlite+aiosqlite:///gw.sqlite3"', 'url = "mysql://x"'), "database.url"),
    (('private_key = "k.pem"', 'private_key = "missing.pem"'), "tls.private_key"),
    (("[smtp]", "[smtp]\nport = 25"), "smtp.port"),
    (("[tls]", '[tls]\nminimum_version = "1.0"'), "tls.minimum_version"),
    (("[smtp]", "[limits]\nmessage_size = -1\n[smtp]"), "limits.message_size"),
    (("[smtp]", "[rules]\nallow_test_identities = \"yes\"\n[smtp]"), "rules.allow_test_identities"),
    (("[smtp]", '[card]\nlisten = "127.0.0.1"\n[smtp]'), "card.listen"),
    (("[smtp]", '[card]\nlisten = "127.0.0.1:8443"\n[smtp]'), "card.client_ca"),
    (("[smtp]", '[documents]\nfiling_mailboxes = ["nobody"]\n[smtp]'), "documents.filing_mailboxes"),
    (("[smtp]", '[[upstream]]\nname = "x"\n[smtp]'), "upstream[0].host"),
])
def test_each_bad_key_is_named_in_one_sentence(folder: Path, change: tuple[str, str], key: str):
    with pytest.raises(ConfigError) as info:
        load(write(folder, GOOD.replace(*change)))
    message = str(info.value)
    assert f"'{key}'" in message and message.count(". ") == 0 and "\n" not in message


@pytest.mark.slow  # starts a process
def test_the_daemon_refuses_to_start_on_a_bad_file(folder: Path):
    path = write(folder, GOOD.replace('hostname = "mx.test"', "hostname = 3"))
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "serve", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "gateway: Configuration key 'gateway.hostname' must be a str, not int."]


def test_dmp_retry_settings_are_checked_by_name(tmp_path):
    """[dmp] retry_base, retry_ceiling and lease: positive seconds, the ceiling not below the base."""
    import pytest as _pytest

    from gateway.config import ConfigError, load

    files = {}
    for name in ("ca.pem", "client.pem", "client.key", "signing.pem", "signing.key"):
        files[name] = tmp_path / name
        files[name].write_text("x")
    base = f"""
[gateway]
hostname = "mail.gateway.test"
domains = ["pro.gateway.test"]
patient_domain = "patient.gateway.test"

[database]
url = "sqlite+aiosqlite:///{tmp_path / 'g.sqlite3'}"

[tls]
certificate = "{files['client.pem']}"
private_key = "{files['client.key']}"

[smtp]
submission = "127.0.0.1:2587"

[dmp]
repository_url = "https://dmp.test/repository"
registry_url = "https://dmp.test/registry"
ca_file = "{files['ca.pem']}"
client_certificate = "{files['client.pem']}"
client_key = "{files['client.key']}"
signing_certificate = "{files['signing.pem']}"
signing_key = "{files['signing.key']}"
structure_id = "1120459876"
structure_name = "Cabinet"
source_id = "1.2.250.1.999.42"
"""
    path = tmp_path / "gateway.toml"
    path.write_text(base + "retry_base = 5\nlease = 60\n")
    settings = load(path).dmp
    assert settings is not None
    assert (settings.retry_base, settings.retry_ceiling, settings.lease) == (5.0, 3600.0, 60.0)
    path.write_text(base + "retry_base = 10\nretry_ceiling = 5\n")
    with _pytest.raises(ConfigError, match=r"'dmp\.retry_ceiling'"):
        load(path)
    path.write_text(base + "lease = 0\n")
    with _pytest.raises(ConfigError, match=r"'dmp\.lease' must be greater than zero"):
        load(path)
