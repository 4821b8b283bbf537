"""``[psc] introspection = true``: the provider says whether the token is active (RFC 7662), and the gateway
applies the same claims checks to its answer; a token revoked at the provider (RFC 7009) is refused at once."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from support.mail import PRO
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

from gateway.psc.simulator import OIDC

#: Every test here starts gateway processes: not in make test-fast.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def gateway(provider: Provider, pki: PKIFiles, store_url_module: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    process = start_gateway(tmp_path_factory.mktemp("gw"), pki, store_url_module,
                            psc_config(provider, pki, introspection=True))
    yield process
    process.stop()
    print("\n".join(process.log_lines[-40:]))


def _revoke(provider: Provider, token: str) -> None:
    form = urlencode({"token": token, "client_id": "mail-client"}).encode()
    request = urllib.request.Request(provider.sim.url + OIDC + "/revoke", data=form, method="POST")  # noqa: S310
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=provider.context))
    with opener.open(request, timeout=10) as answer:
        assert answer.status == 200


def test_introspected_token_logs_in_until_revoked(gateway: GatewayProcess, provider: Provider) -> None:
    before = provider.sim.hits.get(OIDC + "/token/introspect", 0)
    token = provider.token("marcel")
    with smtp_client(gateway) as client:
        assert smtp_auth(client, "OAUTHBEARER", token)[0] == 235
    imap = imap_client(gateway)
    try:
        assert imap_auth(imap, "XOAUTH2", token, PRO)[0] == "OK"
    finally:
        imap.logout()
    assert provider.sim.hits[OIDC + "/token/introspect"] == before + 2  # asked at each login
    _revoke(provider, token)
    with smtp_client(gateway) as client:
        code, challenge = smtp_auth(client, "OAUTHBEARER", token)
        assert code == 535 and challenge is not None and challenge["status"] == "invalid_token"
    assert wait_reason(gateway, "inactive")["outcome"] == "invalid"


def test_introspected_token_of_another_audience_is_refused(gateway: GatewayProcess, provider: Provider) -> None:
    with smtp_client(gateway) as client:
        assert smtp_auth(client, "OAUTHBEARER", provider.mint(client_id="other-software"))[0] == 535
    assert wait_reason(gateway, "audience")["outcome"] == "invalid"


def test_introspection_endpoint_down_is_a_temporary_failure(gateway: GatewayProcess, provider: Provider) -> None:
    token = provider.token("marcel")
    provider.fault("down")
    try:
        with smtp_client(gateway) as client:
            assert smtp_auth(client, "OAUTHBEARER", token)[0] == 454
    finally:
        provider.fault("up")
