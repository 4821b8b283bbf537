"""Where the outbound worker delivers a domain: static route, MX by preference, implicit MX, null MX."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from support.pki import PKIFiles

from gateway.config import parse
from gateway.smtp.outbound import OutboundWorker
from gateway.store.changes import ChangeHub


def worker(pki: PKIFiles, tmp_path: Path, **outbound: Any) -> OutboundWorker:
    cfg = parse({
        "gateway": {"hostname": "mx.a.test", "domains": ["pro.a.test"], "patient_domain": "patient.a.test"},
        "database": {"url": "sqlite+aiosqlite:////tmp/unused.sqlite3"},
        "tls": {"certificate": str(pki.server_cert), "private_key": str(pki.server_key),
                "client_ca": str(pki.ca_bundle)},
        "smtp": {"submission": "127.0.0.1:2587"},
        "whitelist": {"source": "wl.xml"},
        "outbound": {"routes": {"routed.test": "relay.routed.test:2525"}, **outbound},
    }, tmp_path)
    return OutboundWorker(cfg, None, ChangeHub())  # type: ignore[arg-type]


def fake_mx(records: list[tuple[int, str]] | Exception) -> Any:
    async def resolve(domain: str, kind: str, lifetime: float) -> Any:
        assert kind == "MX"
        if isinstance(records, Exception):
            raise records
        return [SimpleNamespace(preference=p, exchange=f"{h}.") for p, h in records]
    return resolve


async def test_static_route_wins(pki: PKIFiles, tmp_path: Path):
    assert await worker(pki, tmp_path).next_hops("routed.test") == [("relay.routed.test", 2525)]


async def test_mx_hosts_by_preference(pki: PKIFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import dns.asyncresolver

    monkeypatch.setattr(dns.asyncresolver, "resolve", fake_mx([(20, "mx2.b.test"), (10, "mx1.b.test")]))
    assert await worker(pki, tmp_path).next_hops("b.test") == [("mx1.b.test", 25), ("mx2.b.test", 25)]


async def test_no_mx_means_the_domain_itself(pki: PKIFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import dns.asyncresolver
    import dns.resolver

    monkeypatch.setattr(dns.asyncresolver, "resolve", fake_mx(dns.resolver.NoAnswer()))
    assert await worker(pki, tmp_path, port=2525).next_hops("b.test") == [("b.test", 2525)]


async def test_null_mx_is_a_permanent_failure(pki: PKIFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import dns.asyncresolver

    monkeypatch.setattr(dns.asyncresolver, "resolve", fake_mx([(0, "")]))
    hops = await worker(pki, tmp_path).next_hops("nomail.test")
    assert isinstance(hops, str) and hops.startswith("550 5.1.10")


async def test_dns_failure_is_temporary(pki: PKIFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import dns.asyncresolver
    import dns.exception

    monkeypatch.setattr(dns.asyncresolver, "resolve", fake_mx(dns.exception.Timeout()))
    with pytest.raises(OSError, match="MX lookup"):
        await worker(pki, tmp_path).next_hops("b.test")


async def test_mx_can_be_turned_off(pki: PKIFiles, tmp_path: Path):
    assert await worker(pki, tmp_path, use_mx=False).next_hops("b.test") == [("b.test", 25)]
