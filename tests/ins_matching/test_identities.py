"""Identity repository (R7–R9): statuses from evidence, checked transitions, obsolete matricules, INSi simulator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.store import Store

from gateway.ins_matching import identities
from gateway.ins_matching.identities import IdentityError, Traits, status_from
from gateway.ins_matching.insi import HOMONYM_A, OBSOLETE_MATRICULE, PRINCIPAL, TEST_PATIENT, InsiSimulator
from gateway.store.models import Event


def test_r7_status_table():
    assert status_from(False, False) == "provisoire"
    assert status_from(True, False) == "récupérée"
    assert status_from(False, True) == "validée"
    assert status_from(True, True) == "qualifiée"


def test_r7_qualifiee_needs_both_insi_and_a_high_trust_document(sqlite_url: str):
    store = Store(sqlite_url)
    identity_id = store.add_identity(insi=False, document=False)

    async def steps(session):  # type: ignore[no-untyped-def]
        assert await identities.record_document(session, identity_id, "driving_licence", "t") == "provisoire"
        assert await identities.record_insi(session, identity_id, "none", "t") == "provisoire"
        assert await identities.record_insi(session, identity_id, "found", "t") == "récupérée"
        assert await identities.record_document(session, identity_id, "identity_card", "t") == "qualifiée"
        return [e.kind for e in await identities.evidence_of(session, identity_id)]
    assert store.run(steps) == ["document", "insi", "insi", "document"]
    assert [e.outcome for e in store.events("identity.status")] == ["récupérée", "qualifiée"]


def test_r8_wrong_key_and_test_oid_are_refused(sqlite_url: str):
    store = Store(sqlite_url)
    with pytest.raises(IdentityError, match="key"):
        store.run(lambda s: identities.add_identity(s, "279035121518988", TEST_PATIENT.oid, TEST_PATIENT.traits, "t",
                                                    allow_test=True))
    with pytest.raises(IdentityError, match="allow_test_identities"):
        store.run(lambda s: identities.add_identity(s, TEST_PATIENT.matricule, TEST_PATIENT.oid, TEST_PATIENT.traits,
                                                    "t"))


def test_traits_are_checked():
    with pytest.raises(IdentityError):
        Traits("X", "Y", "2999-01-01", "F", "75056").check()
    with pytest.raises(IdentityError):
        Traits("X", "Y", "1980-01-01", "Z", "75056").check()


async def test_r9_insi_simulator_answers_found_none_several_and_obsolete():
    insi = InsiSimulator()
    assert (await insi.search(TEST_PATIENT.traits)).outcome == "found"
    assert (await insi.search(HOMONYM_A.traits)).outcome == "several"
    assert (await insi.search(Traits("NOBODY", "X", "1970-01-01", "M", "75056"))).outcome == "none"
    accented = Traits("pat trois", "Dominique", "1979-03-28", "F", "51215")
    assert (await insi.verify(TEST_PATIENT.matricule, accented)).outcome == "found"
    moved = await insi.verify(OBSOLETE_MATRICULE, PRINCIPAL.traits)
    assert moved.outcome == "found" and moved.replaced == PRINCIPAL.matricule


@pytest.mark.slow  # starts a process
def test_r8_obsolete_matricule_is_replaced_by_the_principal_one_through_the_cli(tmp_path: Path):
    from gateway.devsetup import write_config, write_pki

    write_pki(tmp_path / "pki", "mail.gateway.test")
    config = write_config(tmp_path)
    cli = [sys.executable, "-m", "gateway.cli"]

    def run(*args: str) -> str:
        done = subprocess.run([*cli, *args, "--config", str(config)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    t = PRINCIPAL.traits
    run("identity", "add", "--matricule", OBSOLETE_MATRICULE, "--oid", "1.2.250.1.213.1.4.10", "--birth-name",
        t.birth_name, "--first-names", t.first_names, "--birth-date", t.birth_date, "--sex", t.sex,
        "--birth-place", t.birth_place)
    assert "obsolete" in run("identity", "insi", "1")
    assert "qualifiée" in run("identity", "document", "2", "--kind", "passport")
    listing = run("identity", "list", "--json")
    assert f'"replaced_by": "{PRINCIPAL.matricule}"' in listing
    refused = subprocess.run([*cli, "identity", "document", "1", "--kind", "passport", "--config", str(config)],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "obsolete" in refused.stderr

    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'gateway.sqlite3'}")
    kinds = [e.kind for e in store.events("identity.")]
    assert "identity.replaced" in kinds
    assert all(isinstance(e, Event) and e.rule in {"R7", "R8", "R9"} for e in store.events("identity."))


def test_r18_the_event_trail_is_append_only(store_url: str):
    from sqlalchemy import text

    store = Store(store_url)
    store.add_identity()
    with pytest.raises(Exception, match="append-only"):
        store.run(lambda s: s.execute(text("UPDATE events SET outcome = 'x'")))
    with pytest.raises(Exception, match="append-only"):
        store.run(lambda s: s.execute(text("DELETE FROM events")))
