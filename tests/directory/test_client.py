"""The Annuaire Santé client against the simulator process over real HTTPS: found, not found, several, the
simulator down, answers out of bounds, the API key, pagination and the cache."""

from __future__ import annotations

import pytest
from directory.directory_support import SimulatorProcess

from gateway.directory.client import DirectoryClient, DirectoryRefused, DirectoryUnavailable, Limits
from gateway.directory.fhir import SYSTEM_PROFESSION, SYSTEM_SPECIALTY

#: Every test here starts the directory simulator (another program): not in make test-fast.
pytestmark = pytest.mark.slow


async def test_practitioner_found_by_national_id_with_profession_specialty_and_structure(
        annuaire: SimulatorProcess) -> None:
    async with annuaire.client() as client:
        found = await client.practitioner("801234534765")
    assert found is not None
    assert (found.family, found.given, found.rpps) == ("CAMPARINI", "Marcel", "01234534765")
    assert found.specialty is not None and (found.specialty.code, found.specialty.system) == ("SM03",
                                                                                            SYSTEM_SPECIALTY)
    assert found.profession is not None and (found.profession.code, found.profession.system) == ("21",
                                                                                               SYSTEM_PROFESSION)
    role = found.role_in("1120459876")
    assert role is not None and role.organisation is not None
    assert (role.organisation.name, role.organisation.city) == ("Laboratoire des charmes", "Paris")
    assert role.specialty is not None and role.specialty.code == "SM03"
    assert [b.address for b in found.all_mailboxes()] == ["marcel.camparini@labo-charmes.mssante.test"]


async def test_practitioner_not_found_is_none(annuaire: SimulatorProcess) -> None:
    async with annuaire.client() as client:
        assert await client.practitioner("899999999999") is None
        assert await client.search(rpps="99999999999") == []


async def test_search_by_name_returns_several(annuaire: SimulatorProcess) -> None:
    async with annuaire.client() as client:
        found = await client.search(name="martin")
    assert sorted(p.given for p in found) == ["Paul", "Sophie"]
    assert {p.given: p.roles[0].organisation.city for p in found if p.roles[0].organisation} == {
        "Paul": "Paris", "Sophie": "Lyon"}


async def test_search_by_city_and_name_must_both_match(annuaire: SimulatorProcess) -> None:
    async with annuaire.client() as client:
        in_lyon = await client.search(city="Lyon")
        martin_in_paris = await client.search(name="Martin", city="Paris")
    assert sorted(p.family for p in in_lyon) == ["MARTIN", "SOIGNANT"]
    assert [p.given for p in martin_in_paris] == ["Paul"]


async def test_mailbox_of_a_professional_and_of_an_organisation(annuaire: SimulatorProcess) -> None:
    async with annuaire.client() as client:
        personal = await client.mailbox("Sophie.Martin@pro.b.test")
        organisation = await client.mailbox("accueil@labo-charmes.mssante.test")
        unknown = await client.mailbox("nobody@pro.b.test")
    assert personal is not None and personal.practitioner is not None
    assert (personal.mailbox.kind, personal.practitioner.national_id) == ("PER", "810000000101")
    assert organisation is not None and organisation.practitioner is None
    assert organisation.organisation is not None and organisation.mailbox.kind == "ORG"
    assert organisation.organisation.name == "Laboratoire des charmes"
    assert unknown is None


async def test_red_listed_mailbox_is_not_published(annuaire: SimulatorProcess) -> None:
    async with annuaire.client() as client:
        assert await client.mailbox("claire.soignant@pro.b.test") is None
        nurse = await client.practitioner("810000000303")
    assert nurse is not None and nurse.all_mailboxes() == ()


async def test_wrong_api_key_is_refused_with_a_sentence(annuaire: SimulatorProcess) -> None:
    async with DirectoryClient(annuaire.base_url, "not-the-key", ssl_context=annuaire.context()) as client:
        with pytest.raises(DirectoryRefused, match="API key"):
            await client.practitioner("801234534765")


@pytest.mark.parametrize("mode", ["down", "hang"])
async def test_simulator_down_or_silent_is_unavailable_and_not_cached(annuaire: SimulatorProcess,
                                                                       mode: str) -> None:
    async with annuaire.client(timeout=1.0) as client:
        annuaire.fault(mode)
        with pytest.raises(DirectoryUnavailable):
            await client.practitioner("801234534765")
        assert await client.practitioner("801234534765") is not None  # the error was not cached


async def test_stopped_simulator_is_unavailable(tmp_path, pki) -> None:  # type: ignore[no-untyped-def]
    sim = SimulatorProcess(tmp_path / "gone", pki).start()
    url = sim.base_url
    sim.stop()
    async with DirectoryClient(url, "k", ssl_context=sim.context(), timeout=2.0) as client:
        with pytest.raises(DirectoryUnavailable, match="cannot be reached"):
            await client.practitioner("801234534765")


@pytest.mark.parametrize(("mode", "reason"), [
    ("oversized", "larger than"), ("deep", "nests deeper"), ("many", "more than"), ("garbage", "not JSON"),
    ("endless", "pages"), ("offsite", "another origin")])
async def test_answers_out_of_bounds_are_refused(annuaire: SimulatorProcess, mode: str, reason: str) -> None:
    async with annuaire.client(limits=Limits(max_answer_bytes=1_000_000, max_entries=100, max_pages=3)) as client:
        annuaire.fault(mode, 5)
        try:
            with pytest.raises(DirectoryRefused, match=reason):
                await client.practitioner("801234534765")
        finally:
            annuaire.fault("down", 0)
    async with annuaire.client() as fresh:  # faults used up or cleared: the simulator answers again
        while True:
            try:
                await fresh.practitioner("801234534765")
                break
            except (DirectoryRefused, DirectoryUnavailable):
                continue


async def test_pages_are_followed_on_the_same_origin(paged_annuaire: SimulatorProcess) -> None:
    async with paged_annuaire.client() as client:
        found = await client.search(name="martin")
        assert sorted(p.given for p in found) == ["Paul", "Sophie"]
        assert client.requests >= 3  # two Practitioner pages, then their roles


async def test_cache_answers_again_without_asking_until_the_ttl(annuaire: SimulatorProcess) -> None:
    now = [0.0]
    async with annuaire.client(cache_ttl=60.0, negative_cache_ttl=5.0, clock=lambda: now[0]) as client:
        assert await client.practitioner("801234534765") is not None
        assert await client.practitioner("899999999999") is None
        asked = client.requests
        assert await client.practitioner("801234534765") is not None
        assert await client.practitioner("899999999999") is None
        assert client.requests == asked
        now[0] = 10.0  # the negative answer expired, the positive one did not
        await client.practitioner("899999999999")
        await client.practitioner("801234534765")
        assert client.requests == asked + 1


async def test_a_wide_search_stops_after_max_pages_and_says_so(paged_annuaire: SimulatorProcess) -> None:
    async with paged_annuaire.client(limits=Limits(max_pages=1)) as client:
        found = await client.search(name="martin")
        assert found.truncated and len(found) == 1
    async with paged_annuaire.client(limits=Limits(max_pages=5)) as client:
        found = await client.search(name="martin")
        assert not found.truncated and len(found) == 2
