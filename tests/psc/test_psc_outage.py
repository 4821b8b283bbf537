"""The key cache's lifecycle on a one-worker gateway (one cache): keys dropped by the provider are refused once
the gateway has refreshed, and with the provider out of reach cached keys keep serving until ``keys_ttl`` runs
out, then a temporary refusal.

A gateway with one worker process (one key cache) and ``keys_ttl = 8``; the simulator's fault mode answers 503
to every provider request. Logins go on with the cached keys, then get ``454 4.7.0`` on SMTP and
``NO [UNAVAILABLE]`` on IMAP (never a 535: the token may be fine), and succeed again once the provider is back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from support.pki import PKIFiles
from support.process import GatewayProcess
from support.psc import (
    Provider,
    imap_auth,
    imap_client,
    psc_config,
    smtp_auth,
    smtp_client,
    start_gateway,
    wait_reason,
)

#: Every test here starts gateway processes: not in make test-fast.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
KEYS_TTL = 8


@pytest.fixture(scope="module")
def gateway(provider: Provider, pki: PKIFiles, store_url_module: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    process = start_gateway(tmp_path_factory.mktemp("gw"), pki, store_url_module,
                            psc_config(provider, pki, keys_ttl=KEYS_TTL), workers=1)
    yield process
    process.stop()
    print("\n".join(process.log_lines[-40:]))


def _smtp_code(gateway: GatewayProcess, token: str) -> int:
    with smtp_client(gateway) as client:
        return smtp_auth(client, "OAUTHBEARER", token)[0]


def test_cached_keys_serve_while_the_provider_is_down_then_454_and_unavailable(gateway: GatewayProcess,
                                                                              provider: Provider) -> None:
    token = provider.token("marcel")
    assert _smtp_code(gateway, token) == 235  # keys fetched now
    fetched = provider.sim.hits.get("/auth/realms/esante-wallet/protocol/openid-connect/certs", 0)
    provider.fault("down")
    try:
        assert _smtp_code(gateway, token) == 235  # within keys_ttl: the cached keys verify it
        deadline = time.monotonic() + 60
        codes = []
        while time.monotonic() < deadline:
            codes.append(_smtp_code(gateway, token))
            if codes[-1] != 235:
                break
            time.sleep(0.2)
        assert codes[-1] == 454, codes
        assert set(codes[:-1]) <= {235}
        imap = imap_client(gateway)
        try:
            status, challenges = imap_auth(imap, "XOAUTH2", token)
            assert "[UNAVAILABLE]" in status and challenges == []
        finally:
            imap.logout()
        assert wait_reason(gateway, "provider_unreachable")["outcome"] == "unavailable"
    finally:
        provider.fault("up")
    assert _smtp_code(gateway, token) == 235  # the provider is back: keys fetched again
    assert provider.sim.hits["/auth/realms/esante-wallet/protocol/openid-connect/certs"] > fetched


def test_keys_dropped_by_the_provider_are_refused_after_the_refresh(gateway: GatewayProcess,
                                                                    provider: Provider) -> None:
    old = provider.token("marcel")
    assert _smtp_code(gateway, old) == 235
    provider.rotate(drop=True)
    new = provider.token("marcel")
    assert _smtp_code(gateway, new) == 235  # unknown kid: one refresh, the new key found
    with smtp_client(gateway) as client:
        code, challenge = smtp_auth(client, "OAUTHBEARER", old)
        assert code == 535 and challenge is not None and challenge["status"] == "invalid_token"
    assert wait_reason(gateway, "unknown_key")["outcome"] == "invalid"
