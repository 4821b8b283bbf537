"""deploy/: the production example configuration validates, and the systemd unit keeps its hardening."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest
from support.pki import PKIFiles

from gateway.config import Listen, parse

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_the_production_example_validates_with_metrics_on_loopback(tmp_path: Path, pki: PKIFiles) -> None:
    import tomllib

    text = (DEPLOY / "gateway.example.toml").read_text(encoding="utf-8")
    for name, real in (("server.crt", pki.server_cert), ("server.key", pki.server_key),
                       ("ca-bundle.crt", pki.ca_bundle)):
        text = text.replace(f"/etc/gateway/tls/{name}", str(real))
    config = parse(tomllib.loads(text), tmp_path)
    assert config.metrics is not None and config.metrics.listen == Listen("127.0.0.1", 9187)
    assert config.autoconfig is not None and config.autoconfig.tls
    everywhere = "0.0.0.0"  # noqa: S104 (what the production file asks for)
    assert config.submission == Listen(everywhere, 587) and config.imaps == Listen(everywhere, 993)
    assert not config.rules.allow_test_identities


def _unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "gateway.service", encoding="utf-8")
    return unit


def test_the_unit_runs_unprivileged_read_only_with_only_the_low_port_capability() -> None:
    service = _unit()["Service"]
    assert service["User"] == "gateway" and service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict" and service["ProtectHome"] == "yes"
    assert service["PrivateTmp"] == "yes"
    assert service["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
    assert service["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    assert service["ReadWritePaths"] == "/var/lib/gateway"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["Restart"] == "on-failure"
    assert service["Environment"].startswith("PROMETHEUS_MULTIPROC_DIR=/run/gateway/")  # the last one
    assert service["RuntimeDirectory"] == "gateway"


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    text = (DEPLOY / "gateway.service").read_text(encoding="utf-8")
    unit = tmp_path / "gateway.service"
    unit.write_text(text.replace("/opt/gateway/bin/gateway serve", "/bin/true"), encoding="utf-8")
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr.strip()) == (0, "")
