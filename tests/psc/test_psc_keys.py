"""The key cache of :class:`gateway.psc.tokens.TokenVerifier` against the simulator over real HTTPS: one fetch
serves every login, a rotation seen right after a fetch is followed, an unknown ``kid`` refreshes once however
many logins ask at the same time, a forged kid is not looked for again before ``refresh_interval``, and a
discovery document naming another issuer is not trusted."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from support.pki import PKIFiles

from gateway.config.psc import PscSettings
from gateway.psc.simulator import DEFAULT_DATA, OIDC, Simulator, load_data, server_context
from gateway.psc.tokens import Rejected, TokenVerifier, Unavailable

CERTS = OIDC + "/certs"


async def _simulator(pki: PKIFiles) -> Simulator:
    sim = Simulator(*load_data(DEFAULT_DATA))
    await sim.start("127.0.0.1", 0, server_context(pki.server_cert, pki.server_key))
    return sim


def _settings(sim: Simulator, ca: Path, **changes: object) -> PscSettings:
    values: dict[str, object] = {"audiences": ("mail-client",), "ca_file": ca, "refresh_interval": 30.0}
    values.update(changes)
    return PscSettings(sim.issuer, "gateway", **values)  # type: ignore[arg-type]


def _token(sim: Simulator, key: RSAKey | None = None) -> str:
    pro = sim.professional("marcel")
    assert pro is not None
    return sim.sign(sim.access_claims(pro, "mail-client", "openid scope_all"), key)


async def test_keys_are_fetched_once_for_many_logins(pki: PKIFiles) -> None:
    sim = await _simulator(pki)
    verifier = TokenVerifier(_settings(sim, pki.ca_bundle))
    try:
        token = _token(sim)
        results = await asyncio.gather(*(verifier.verify(token) for _ in range(50)))
        assert {r.national_id for r in results} == {"801234534765"}
        assert sim.hits[CERTS] == 1 and verifier.fetches == 1
    finally:
        await verifier.close()
        await sim.stop()


async def test_unknown_kid_refreshes_once_then_is_rate_limited(pki: PKIFiles) -> None:
    sim = await _simulator(pki)
    verifier = TokenVerifier(_settings(sim, pki.ca_bundle))
    try:
        await verifier.verify(_token(sim))
        sim.rotate()
        rotated = _token(sim)  # signed with the new key: one refresh finds it, for every concurrent login
        results = await asyncio.gather(*(verifier.verify(rotated) for _ in range(20)))
        assert len(results) == 20 and sim.hits[CERTS] == 2
        foreign = RSAKey.generate_key(2048, parameters={"kid": "foreign"})
        forged = jwt.encode({"alg": "RS256", "kid": "foreign"}, {"iss": sim.issuer}, foreign)
        for _ in range(10):  # one look at most (not within a second of the last), then none for refresh_interval
            with pytest.raises(Rejected, match="unknown_key"):
                await verifier.verify(forged)
        assert sim.hits[CERTS] <= 3
    finally:
        await verifier.close()
        await sim.stop()


async def test_a_discovery_document_of_another_issuer_is_not_trusted(pki: PKIFiles) -> None:
    sim = await _simulator(pki)
    settings = _settings(sim, pki.ca_bundle)
    verifier = TokenVerifier(PscSettings("https://idp.example/realm", "gateway", audiences=("mail-client",),
                                         discovery_url=settings.configuration_url, ca_file=pki.ca_bundle))
    try:
        with pytest.raises(Unavailable):
            await verifier.verify(_token(sim))
        assert CERTS not in sim.hits
    finally:
        await verifier.close()
        await sim.stop()


async def test_a_provider_with_an_untrusted_certificate_is_unreachable(pki: PKIFiles, tmp_path: Path) -> None:
    from gateway.pki import DevelopmentPKI

    other = DevelopmentPKI.create("Other")
    other.save(tmp_path)
    sim = await _simulator(pki)
    verifier = TokenVerifier(_settings(sim, tmp_path / "ca-bundle.crt"))
    try:
        with pytest.raises(Unavailable):
            await verifier.verify(_token(sim))
    finally:
        await verifier.close()
        await sim.stop()
