"""``gateway psc`` (grants, login methods) and ``gateway token`` as an operator and a tester run them.

Real commands in subprocesses, against the configuration of a running gateway and the PSC simulator; the
tokens they print log in over SMTP.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from support.mail import PRO
from support.process import GatewayProcess
from support.psc import CLAIRE, Provider, smtp_auth, smtp_client
from support.store import Store

#: Every test here starts gateway processes: not in make test-fast.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def gateway_command(gateway: GatewayProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args, "--config", str(gateway.config_path)],
                          capture_output=True, text=True, timeout=60)


def test_token_command_with_a_test_user_prints_a_token_that_logs_in(gateway: GatewayProcess) -> None:
    done = gateway_command(gateway, "token", "--user", "marcel", "--client-id", "mail-client",
                           "--client-secret", "")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert token.count(".") == 2
    with smtp_client(gateway) as client:
        assert smtp_auth(client, "XOAUTH2", token, PRO)[0] == 235


def test_token_command_waits_for_the_browser_on_a_loopback_redirect(gateway: GatewayProcess,
                                                                     provider: Provider) -> None:
    process = subprocess.Popen([sys.executable, "-m", "gateway.cli", "token", "--json", "--config",
                                str(gateway.config_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None and process.stdout is not None
        deadline = time.monotonic() + 30
        url = ""
        while time.monotonic() < deadline and not url.startswith("https://"):
            url = process.stderr.readline().strip()
        assert url.startswith("https://"), url
        # The browser: the person picks "marcel" on the provider's page (a form POST), then follows the redirect.
        params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        form = urlencode({**params, "user": "marcel"}).encode()
        request = urllib.request.Request(url.split("?")[0], data=form, method="POST")  # noqa: S310
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=provider.context))
        with opener.open(request, timeout=20) as answer:  # follows the 302 to the command's loopback listener
            assert b"this window can be closed" in answer.read()
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        token = json.loads(out)["access_token"]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    with smtp_client(gateway) as client:
        assert smtp_auth(client, "OAUTHBEARER", token, PRO)[0] == 235


def test_grant_list_methods_revoke_change_who_logs_in(gateway: GatewayProcess, provider: Provider) -> None:
    address = "cabinet.accueil@pro.gateway.test"
    Store(gateway.store_url).add_mailbox(address, "ORG")
    token = provider.token("claire")
    with smtp_client(gateway) as client:
        assert smtp_auth(client, "OAUTHBEARER", token, address)[0] == 535  # not granted yet
    done = gateway_command(gateway, "psc", "grant", address, "--psc-id", CLAIRE)
    assert done.returncode == 0 and "granted" in done.stdout, done.stderr
    assert "already granted" in gateway_command(gateway, "psc", "grant", address, "--psc-id", CLAIRE).stdout
    with smtp_client(gateway) as client:
        assert smtp_auth(client, "OAUTHBEARER", token, address)[0] == 235
    rows = json.loads(gateway_command(gateway, "psc", "list", address, "--json").stdout)
    assert [(r["psc_id"], r["mailbox"], r["methods"]) for r in rows] == [(CLAIRE, address, "all")]
    done = gateway_command(gateway, "psc", "methods", address, "password")
    assert done.returncode == 0, done.stderr
    with smtp_client(gateway) as client:
        assert smtp_auth(client, "OAUTHBEARER", token, address)[0] == 535  # PSC no longer accepted here
    assert gateway_command(gateway, "psc", "methods", address, "all").returncode == 0
    done = gateway_command(gateway, "psc", "revoke", address, "--psc-id", CLAIRE)
    assert done.returncode == 0 and "revoked" in done.stdout
    with smtp_client(gateway) as client:
        assert smtp_auth(client, "OAUTHBEARER", token, address)[0] == 535
    wrong = gateway_command(gateway, "psc", "methods", address, "sms")
    assert wrong.returncode == 1 and "'sms' is not a login method" in wrong.stderr
    assert gateway_command(gateway, "psc", "grant", address).returncode == 1
