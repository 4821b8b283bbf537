"""``gateway mailbox import accounts.csv``: thousands of accounts, every line checked first, errors by line
number, an account created whole or not at all, passwords hashed with the configured Argon2id cost."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from cli.cli_support import config_file, gateway_cli
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from support.pki import PKIFiles
from support.store import Store

from gateway.auth.hashing import Argon2Params, hash_sync, verify_sync
from gateway.ins_matching.nir import nir_key
from gateway.store.models import Folder, Mailbox

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

LOW = Argon2Params(memory_kib=8, time_cost=1, parallelism=1)
BAD_LINE = 1001  # the header is line 1: row 1000 of the data


def matricule(n: int) -> str:
    base = f"1{80 + n % 20:02d}{1 + n % 12:02d}75{n:06d}"[:13]
    return f"{base}{nir_key(base):02d}"


def write_csv(path: Path, count: int) -> tuple[list[dict[str, str]], str]:
    """``count`` accounts, one with a bad domain on BAD_LINE, some pre-hashed, some patients, some ';'-free names."""
    prehashed = hash_sync("migrated-password", LOW)
    rows: list[dict[str, str]] = []
    for n in range(count):
        if n % 50 == 7:
            row = {"address": f"{matricule(n)}@patient.gateway.test", "kind": "PAT", "password": f"pw-{n}",
                   "password_hash": "", "display_name": ""}
        elif n % 10 == 3:
            row = {"address": f"migrated{n}@pro.gateway.test", "kind": "PER", "password": "",
                   "password_hash": prehashed, "display_name": f"Dr Migré {n}"}
        else:
            row = {"address": f"user{n}@pro.gateway.test", "kind": ("PER", "ORG", "APP")[n % 3],
                   "password": f"pw-{n}", "password_hash": "", "display_name": f"Dupont, Jean {n}"}
        rows.append(row)
    rows[BAD_LINE - 2]["address"] = "intruder@elsewhere.test"
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=["address", "kind", "password", "password_hash", "display_name"])
        writer.writeheader()
        writer.writerows(rows)
    return rows, prehashed


def accounts(url: str) -> dict[str, Mailbox]:
    async def work(session: AsyncSession) -> dict[str, Mailbox]:
        return {m.address: m for m in (await session.execute(select(Mailbox))).scalars()}
    return Store(url).run(work)


def folder_count(url: str) -> int:
    async def work(session: AsyncSession) -> int:
        return int((await session.execute(select(func.count()).select_from(Folder))).scalar_one())
    return Store(url).run(work)


def test_csv_of_2000_accounts_with_a_bad_line_imports_nothing_and_names_the_line(
        tmp_path: Path, pki: PKIFiles, sqlite_url: str) -> None:
    config = config_file(tmp_path / "gw", pki, sqlite_url)
    write_csv(tmp_path / "accounts.csv", 2000)
    result = gateway_cli(config, "mailbox", "import", str(tmp_path / "accounts.csv"))
    assert result.returncode == 1
    assert f"accounts.csv:{BAD_LINE}: elsewhere.test is not one of this gateway's domains" in result.stderr
    assert "nothing imported" in result.stderr and "Traceback" not in result.stderr
    assert accounts(sqlite_url) == {}


def test_csv_of_2000_accounts_with_skip_bad_creates_the_others_whole(
        tmp_path: Path, pki: PKIFiles, store_url: str) -> None:
    config = config_file(tmp_path / "gw", pki, store_url)
    rows, prehashed = write_csv(tmp_path / "accounts.csv", 2000)
    result = gateway_cli(config, "mailbox", "import", str(tmp_path / "accounts.csv"), "--skip-bad",
                         "--workers", "2")
    assert result.returncode == 1, result.stderr
    assert "1999 account(s) created" in result.stdout and "1 line(s) not imported" in result.stdout
    assert f"accounts.csv:{BAD_LINE}:" in result.stderr
    assert "Creating accounts: 1999/1999 accounts" in result.stderr

    created = accounts(store_url)
    assert len(created) == 1999 and "intruder@elsewhere.test" not in created
    assert folder_count(store_url) == 1999 * 5  # every account whole: its five folders
    for n in (0, 1, 2, 7, 1500):
        row = rows[n]
        account = created[row["address"]]
        assert account.kind == row["kind"] and account.display_name == row["display_name"]
        assert account.password_hash and account.password_hash.startswith("$argon2id$v=19$m=8,t=1,p=1$")
        assert verify_sync(account.password_hash, row["password"])
    assert created["migrated3@pro.gateway.test"].password_hash == prehashed
    assert created[f"{matricule(7)}@patient.gateway.test"].matricule == matricule(7)
    added = Store(store_url).events("mailbox.added")
    assert len(added) == 1999 and all(e.detail["source"] == "import" for e in added)

    again = gateway_cli(config, "mailbox", "import", str(tmp_path / "accounts.csv"), "--skip-bad")
    assert again.returncode == 1 and "0 account(s) created" in again.stdout
    assert "accounts.csv:2: a mailbox with the address user0@pro.gateway.test already exists" in again.stderr


def test_csv_lines_checked_one_by_one_with_their_reasons(tmp_path: Path, pki: PKIFiles, sqlite_url: str) -> None:
    config = config_file(tmp_path / "gw", pki, sqlite_url)
    text = ("address;kind;password;password_hash;display_name\n"
            "ok@pro.gateway.test;PER;secret;;Ok\n"
            "ok@pro.gateway.test;PER;secret;;Twice\n"
            "123@patient.gateway.test;PAT;secret;;\n"
            "x@pro.gateway.test;BOSS;secret;;\n"
            "y@pro.gateway.test;PER;secret;$argon2id$v=19$m=8,t=1,p=1$xx$yy;\n"
            "z@pro.gateway.test;PER;;$2b$12$notargon;\n"
            "only-two;fields\n")
    (tmp_path / "a.csv").write_text(text, encoding="utf-8")
    result = gateway_cli(config, "mailbox", "import", str(tmp_path / "a.csv"))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if "a.csv:" in line]
    assert [line.split("a.csv:")[1].split(":")[0] for line in lines] == ["3", "4", "5", "6", "7", "8"]
    assert "already on line 2" in lines[0] and "INS matricule (R8)" in lines[1] and "BOSS" in lines[2]
    assert "not both" in lines[3] and "Argon2" in lines[4] and "2 fields" in lines[5]
    assert accounts(sqlite_url) == {}
