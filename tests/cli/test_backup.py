"""``gateway backup`` while mail is being written, and ``gateway restore`` into a new data folder: the copy is
one consistent moment of the store and the same mail reads back from it."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cli.cli_support import config_file, gateway_cli, read_maildir, write_maildir
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from support.pki import PKIFiles
from support.store import Store
from support.wait import wait_until

from gateway.store.models import Delivery, Folder

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

ALICE = "alice@pro.gateway.test"


def counters_match(url: str) -> list[tuple[str, int, int]]:
    """Folders whose UIDNEXT does not follow their deliveries: a batch torn in two would show here."""
    async def work(session: AsyncSession) -> list[tuple[str, int, int]]:
        rows = await session.execute(
            select(Folder.name, Folder.uidnext, func.count(Delivery.id))
            .outerjoin(Delivery, Delivery.folder_id == Folder.id).group_by(Folder.id))
        return [(row[0], int(row[1]), int(row[2])) for row in rows if int(row[1]) != int(row[2]) + 1]
    return Store(url).run(work)


def test_backup_taken_while_mail_is_imported_restores_into_a_new_data_folder_with_the_same_mail(
        tmp_path: Path, pki: PKIFiles, sqlite_url: str) -> None:
    config = config_file(tmp_path / "gw", pki, sqlite_url)
    store = Store(sqlite_url)
    store.add_mailbox(ALICE)
    known = write_maildir(tmp_path / "known", {"": {"a": "Important"}}, {"": 20})
    assert gateway_cli(config, "mail", "import", "--mailbox", ALICE, str(tmp_path / "known")).returncode == 0
    original = store.messages_in(ALICE)
    write_maildir(tmp_path / "big", {"": {}, ".Archive": {}}, {"": 2000, ".Archive": 2000}, seed=3)

    writer = subprocess.Popen([sys.executable, "-m", "gateway.cli", "mail", "import", "--mailbox", ALICE,
                               str(tmp_path / "big"), "--batch", "20", "--config", str(config)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: store.count_messages() > 100 or writer.poll() is not None, 120,
                   "a hundred messages imported", interval=0.05)
        # The import is held where it is (between its batches or inside one, its write lock taken) while the
        # backup runs, so the copy is always taken in the middle of it, however fast either is.
        writer.send_signal(signal.SIGSTOP)
        try:
            still_writing = writer.poll() is None
            backup = gateway_cli(config, "backup", str(tmp_path / "store.backup"))
        finally:
            writer.send_signal(signal.SIGCONT)
    finally:
        _out, err = writer.communicate(timeout=600)
    assert backup.returncode == 0, backup.stderr
    assert writer.returncode == 0, err
    assert still_writing, "the import ended before the backup was taken"
    assert "Store copied to" in backup.stdout

    file = tmp_path / "store.backup"
    with sqlite3.connect(file) as check:
        assert check.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        assert check.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one file, no -wal beside it
        backed_up = check.execute("SELECT count(*) FROM messages").fetchone()[0]
    assert 20 < backed_up < 4020 and (backed_up - 20) % 20 == 0  # whole batches only

    data = tmp_path / "restored-data"
    restored = gateway_cli(None, "restore", str(file), "--data", str(data))
    assert restored.returncode == 0, restored.stderr
    restored_url = f"sqlite+aiosqlite:///{data / 'gateway.sqlite3'}"
    assert f'url = "{restored_url}"' in restored.stdout
    assert counters_match(restored_url) == []
    assert Store(restored_url).messages_in(ALICE)[:20] == original

    # The restored folder serves as a gateway's store: the same mail reads back through the command line.
    restored_config = config_file(tmp_path / "gw2", pki, restored_url)
    exported = gateway_cli(restored_config, "mail", "export", "--mailbox", ALICE, str(tmp_path / "out"))
    assert exported.returncode == 0, exported.stderr
    inbox = {(m.content, m.flags, m.mtime) for m in read_maildir(tmp_path / "out")[""]}
    assert {(m.content, m.flags, m.mtime) for m in known[""]} <= inbox

    again = gateway_cli(None, "restore", str(file), "--data", str(data))
    assert again.returncode == 1 and "not empty" in again.stderr
    twice = gateway_cli(config, "backup", str(file))
    assert twice.returncode == 1 and "--force" in twice.stderr


def test_backup_of_each_store_sqlite_copied_postgresql_pointed_to_pg_dump(
        tmp_path: Path, pki: PKIFiles, store_url: str) -> None:
    config = config_file(tmp_path / "gw", pki, store_url)
    Store(store_url).add_mailbox(ALICE)
    result = gateway_cli(config, "backup", str(tmp_path / "b"))
    if store_url.startswith("sqlite"):
        assert result.returncode == 0 and (tmp_path / "b").is_file()
        assert "1 mailbox(es), 0 message(s)" in result.stdout
    else:
        assert result.returncode == 1 and not (tmp_path / "b").exists()
        database = store_url.rsplit("/", 1)[1]
        assert f"pg_dump --format=custom --file={tmp_path / 'b'} postgresql://gateway@127.0.0.1:55432/{database}" \
            in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_restore_refuses_what_is_not_a_backup(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a database")
    result = gateway_cli(None, "restore", str(tmp_path / "notes.txt"), "--data", str(tmp_path / "d"))
    assert result.returncode == 1 and "not a backup made by 'gateway backup'" in result.stderr
    (tmp_path / "dump").write_bytes(b"PGDMP\x01\x0e")
    result = gateway_cli(None, "restore", str(tmp_path / "dump"), "--data", str(tmp_path / "d"))
    assert result.returncode == 1 and "pg_restore --no-owner" in result.stderr
    assert not (tmp_path / "d").exists()
