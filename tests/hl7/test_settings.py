"""``[hl7]`` is validated at start: each mistake is one sentence naming the key (config.py's contract)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.pki import PKIFiles

from gateway.config import Config, ConfigError, parse

BASE: dict[str, object] = {
    "gateway": {"hostname": "mail.gateway.test", "domains": ["pro.gateway.test"],
                "patient_domain": "patient.gateway.test"},
    "database": {"url": "sqlite+aiosqlite:///x.sqlite3"},
    "smtp": {"submission": "127.0.0.1:2587"},
}
PEER = {"name": "dpi", "addresses": ["10.1.2.0/24"], "sender": "dpi@pro.gateway.test"}


@pytest.fixture(autouse=True)
def _tls(pki: PKIFiles) -> None:
    BASE["tls"] = {"certificate": str(pki.server_cert), "private_key": str(pki.server_key)}


def config(hl7: dict[str, object]) -> Config:
    return parse({**BASE, "hl7": hl7}, Path("."))


def test_a_peer_by_address_and_its_defaults():
    settings = config({"listen": "0.0.0.0:2575", "peer": [{**PEER, "return_address": "10.1.2.3:2576"}]}).hl7
    assert settings is not None and settings.max_frame_bytes == 16 * 1024 * 1024
    peer = settings.peer_for("10.1.2.9", None)
    assert peer is not None and peer.sender == "dpi@pro.gateway.test" and str(peer.return_address) == "10.1.2.3:2576"
    assert settings.peer_for("10.9.9.9", None) is None


def test_a_certificate_peer_wins_and_is_not_matched_by_address():
    fingerprint = "AB:" * 31 + "AB"
    settings = config({"listen": "0.0.0.0:2575", "tls": True,
                       "peer": [{"name": "lis", "certificate_sha256": fingerprint, "addresses": ["127.0.0.1"],
                                 "sender": "lis@pro.gateway.test"}]}).hl7
    assert settings is not None
    assert settings.peer_for("127.0.0.1", None) is None  # a certificate peer needs its certificate
    found = settings.peer_for("10.0.0.1", "ab" * 32)
    assert found is not None and found.name == "lis"


@pytest.mark.parametrize(("hl7", "key"), [
    ({"peer": [PEER]}, "hl7.listen"),
    ({"listen": "2575", "peer": [PEER]}, "hl7.listen"),
    ({"listen": "0.0.0.0:2575", "peer": [{**PEER, "addresses": ["not-an-ip"]}]}, "hl7.peer[0].addresses"),
    ({"listen": "0.0.0.0:2575", "peer": [{**PEER, "sender": "nobody"}]}, "hl7.peer[0].sender"),
    ({"listen": "0.0.0.0:2575", "peer": [{"name": "x", "sender": "a@b.test"}]}, "hl7.peer[0].addresses"),
    ({"listen": "0.0.0.0:2575", "peer": [{**PEER, "certificate_sha256": "ab" * 32}]},
     "hl7.peer[0].certificate_sha256"),  # without tls
    ({"listen": "0.0.0.0:2575", "max_frame_bytes": 0, "peer": [PEER]}, "hl7.max_frame_bytes"),
    ({"listen": "0.0.0.0:2575", "max_document_bytes": 32 * 1024 * 1024, "peer": [PEER]}, "hl7.max_document_bytes"),
    ({"listen": "0.0.0.0:2575", "peer": [PEER, PEER]}, "hl7.peer"),
    ({"listen": "0.0.0.0:2575", "peers": [PEER]}, "hl7.peers"),
    ({"listen": "0.0.0.0:2575", "documents_peer": "dpi", "peer": [PEER]}, "hl7.documents_peer"),  # no return
])
def test_a_mistake_names_its_key(hl7: dict[str, object], key: str):
    with pytest.raises(ConfigError) as caught:
        config(hl7)
    assert f"'{key}'" in str(caught.value)
