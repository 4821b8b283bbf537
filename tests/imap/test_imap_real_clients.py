"""Real mail clients from Debian on their default settings (only the CA added) against the IMAP service.

mbsync and offlineimap synchronise both ways with a local Maildir, neomutt reads a message in a terminal (tmux),
curl reads, lists, searches and appends. Each test reads the server's state back with imaplib, so a broken
command (e.g. CHECK ending the session, an APPEND whose UID a client cannot find again) fails it, and reads the
client's own protocol trace: a BAD or NO the client shrugged off fails it too.
The clients are installed by .ci/setup.d/30-imap-clients.sh.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from imap.imap_support import ALICE, PASSWORD, ImapHarness, message
from imap.real_clients import (
    maildir_flags,
    maildir_letter,
    maildir_messages,
    maildir_snapshot,
    refusals,
    server_folder,
    server_snapshot,
)


def _need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.skip(f"{program} is not installed (.ci/setup.d/30-imap-clients.sh)")
    return path


def _run(argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, (argv, result.returncode, result.stdout[-3000:], result.stderr[-3000:])
    return result


def _sync(argv: list[str], timeout: float = 40) -> subprocess.CompletedProcess[str]:
    """Run a synchronisation whose protocol trace is on its output; the server must have refused nothing."""
    result = _run(argv, timeout)
    assert refusals(result.stdout + result.stderr) == []
    return result


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 15,
              show: Callable[[], str] = lambda: "") -> None:
    """Poll with a deadline (a client's progress has no event to wait on); ``show`` tells what was seen instead."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{show()}"
        time.sleep(0.05)


def _seed(imap: ImapHarness) -> None:
    """INBOX with three messages, a user folder with one, Archive with one."""
    client = imap.imaps()
    typ, data = client.create("Projets")
    assert typ == "OK", data
    client.logout()
    for n in (1, 2, 3):
        imap.deliver(ALICE, message(f"Inbox {n}", f"Corps {n}."))
    imap.deliver(ALICE, message("Projet A", "Plan du projet."), folder="Projets")
    imap.deliver(ALICE, message("Archive A", "Ancien."), folder="Archive", flags="\\Seen")


def _server_raw(imap: ImapHarness, folder: str) -> bytes:
    """The one message of a folder, as stored."""
    client = imap.imaps()
    try:
        assert client.select(folder, readonly=True)[0] == "OK"
        typ, rows = client.fetch("1", "(BODY.PEEK[])")
        assert typ == "OK" and isinstance(rows[0], tuple), rows
        return rows[0][1]
    finally:
        client.logout()


def _subjects(imap: ImapHarness, folder: str) -> list[str]:
    return sorted(m.subject for m in server_folder(imap, folder))


# --- mbsync ---------------------------------------------------------------------------------------------------

def _mbsync_config(imap: ImapHarness, tmp_path: Path) -> tuple[Path, Path]:
    maildir = tmp_path / "mbsync-mail"
    maildir.mkdir()
    config = tmp_path / "mbsyncrc"
    config.write_text(f"""\
IMAPAccount gateway
Host localhost
Port {imap.imaps_port}
User {ALICE}
Pass "{PASSWORD}"
SSLType IMAPS
CertificateFile {imap.pki.ca_bundle}

IMAPStore remote
Account gateway

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel gateway
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
""")
    return config, maildir


def test_mbsync_two_way_sync_then_a_quiet_run_changes_nothing(imap_sqlite: ImapHarness, tmp_path: Path):
    """Flags, a move, a deletion and a new draft go up; new mail and flags come down; then nothing moves."""
    mbsync = _need("mbsync")
    imap = imap_sqlite
    _seed(imap)
    client = imap.imaps()
    assert client.create("Projets/2026")[0] == "OK"
    client.logout()
    imap.deliver(ALICE, message("Projet 2026", "Sous-dossier."), folder="Projets/2026")
    config, maildir = _mbsync_config(imap, tmp_path)
    sync = [mbsync, "-Dn", "-c", str(config), "-a"]  # -Dn: the protocol trace

    _sync(sync)
    assert len(maildir_messages(maildir / "Projets" / "2026")) == 1
    inbox = maildir_messages(maildir / "INBOX")
    assert len(inbox) == 3
    assert len(maildir_messages(maildir / "Projets")) == 1
    assert len(maildir_messages(maildir / "Archive")) == 1

    by_subject = {path.read_text().split("Subject: ", 1)[1].split("\r\n", 1)[0].split("\n", 1)[0]: path
                  for path in inbox}
    # A flag changed locally: "Inbox 1" flagged and seen.
    flagged = by_subject["Inbox 1"]
    base, _, _ = flagged.name.partition(":2,")
    flagged.rename(maildir / "INBOX" / "cur" / f"{base}:2,FS")
    # A message moved locally to the user folder (a new file there, without the UID mbsync gave it).
    moved = by_subject["Inbox 2"]
    moved_name = moved.name.split(",U=", 1)[0] + ":2,S"
    moved.rename(maildir / "Projets" / "cur" / moved_name)
    # One deleted locally.
    by_subject["Inbox 3"].unlink()
    # One written locally (a draft, as a local mail program stores it: LF, 8-bit, an attachment).
    draft = maildir_letter("Brouillon local")
    (maildir / "Drafts" / "new" / "1700000000.local.draft").write_bytes(draft)

    _sync(sync)
    inbox_now = server_folder(imap, "INBOX")
    assert [m.subject for m in inbox_now] == ["Inbox 1"]
    assert {"\\Flagged", "\\Seen"} <= inbox_now[0].flags
    assert _subjects(imap, "Projets") == ["Inbox 2", "Projet A"]
    assert _subjects(imap, "Drafts") == ["Brouillon local"]
    stored = re.sub(rb"(?m)^X-TUID: .*\r\n", b"", _server_raw(imap, "Drafts"))  # mbsync's tracking header
    assert stored == draft.replace(b"\n", b"\r\n")
    assert _subjects(imap, "Archive") == ["Archive A"]
    assert _subjects(imap, "Projets/2026") == ["Projet 2026"]

    # Changes on the server side reach the Maildir too: a new message and a flag.
    imap.deliver(ALICE, message("Nouveau serveur", "Arrive apres."))
    client = imap.imaps()
    client.select("INBOX")
    typ, data = client.uid("STORE", str(inbox_now[0].uid), "+FLAGS", "(\\Answered)")
    assert typ == "OK", data
    client.logout()
    _sync(sync)
    local_inbox = maildir_messages(maildir / "INBOX")
    assert len(local_inbox) == 2
    assert sorted(maildir_flags(path) for path in local_inbox) == ["", "FRS"]

    server_before, local_before = server_snapshot(imap), maildir_snapshot(maildir)
    _sync(sync)
    assert server_snapshot(imap) == server_before
    assert maildir_snapshot(maildir) == local_before


def test_mbsync_over_starttls_brings_server_side_moves_deletions_and_flags(imap_sqlite: ImapHarness, tmp_path: Path):
    """RFC 9051 6.2.1 STARTTLS on the imap port; what another client did on the server reaches the Maildir."""
    mbsync = _need("mbsync")
    imap = imap_sqlite
    _seed(imap)
    config, maildir = _mbsync_config(imap, tmp_path)
    config.write_text(config.read_text().replace(f"Port {imap.imaps_port}", f"Port {imap.imap_port}")
                      .replace("SSLType IMAPS", "SSLType STARTTLS"))
    sync = [mbsync, "-Dn", "-c", str(config), "-a"]  # -Dn: the protocol trace
    _sync(sync)
    assert len(maildir_messages(maildir / "INBOX")) == 3

    client = imap.imap_starttls()
    client.select("INBOX")
    uids = [m.uid for m in server_folder(imap, "INBOX")]
    assert client.uid("STORE", str(uids[0]), "+FLAGS", "(\\Seen \\Flagged)")[0] == "OK"
    assert client.uid("MOVE", str(uids[1]), "Archive")[0] == "OK"
    assert client.uid("STORE", str(uids[2]), "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert client.expunge()[0] == "OK"
    client.select("Archive")
    assert client.store("1", "-FLAGS", "(\\Seen)")[0] == "OK"
    client.logout()

    _sync(sync)
    local_inbox = maildir_messages(maildir / "INBOX")
    assert [maildir_flags(path) for path in local_inbox] == ["FS"]
    archive = sorted(maildir_messages(maildir / "Archive"), key=lambda path: b"Inbox 2" in path.read_bytes())
    assert [b"Inbox 2" in path.read_bytes() for path in archive] == [False, True]
    assert [maildir_flags(path) for path in archive] == ["", ""]
    assert _subjects(imap, "Archive") == ["Archive A", "Inbox 2"]

    server_before, local_before = server_snapshot(imap), maildir_snapshot(maildir)
    _sync(sync)
    assert server_snapshot(imap) == server_before
    assert maildir_snapshot(maildir) == local_before


# --- offlineimap ----------------------------------------------------------------------------------------------

def _offlineimap_config(imap: ImapHarness, tmp_path: Path) -> tuple[Path, Path]:
    maildir = tmp_path / "offlineimap-mail"
    maildir.mkdir()
    config = tmp_path / "offlineimaprc"
    config.write_text(f"""\
[general]
accounts = gateway
metadata = {tmp_path / "offlineimap-meta"}

[Account gateway]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {maildir}

[Repository remote]
type = IMAP
remotehost = localhost
remoteport = {imap.imaps_port}
remoteuser = {ALICE}
remotepass = {PASSWORD}
ssl = yes
sslcacertfile = {imap.pki.ca_bundle}
""")
    return config, maildir


def test_offlineimap_three_runs_leave_exactly_one_copy_of_each_message(imap_sqlite: ImapHarness, tmp_path: Path):
    """A local draft is uploaded once (offlineimap finds it again by its APPENDUID, RFC 4315), never re-sent."""
    offlineimap = _need("offlineimap")
    imap = imap_sqlite
    _seed(imap)
    config, maildir = _offlineimap_config(imap, tmp_path)
    sync = [offlineimap, "-c", str(config), "-o", "-u", "basic", "-d", "imap"]

    _sync(sync)
    assert len(maildir_messages(maildir / "INBOX")) == 3
    drafts = maildir / "Drafts"
    draft = maildir_letter("Brouillon local")
    (drafts / "new" / "1700000000.local.draft").write_bytes(draft)
    flagged = maildir_messages(maildir / "INBOX")[0]
    flagged.rename(flagged.parent.parent / "cur" / (flagged.name.partition(":2,")[0] + ":2,FS"))

    snapshots = []
    for _ in range(3):
        output = _sync(sync)
        assert "ERROR" not in output.stdout + output.stderr
        assert _subjects(imap, "Drafts") == ["Brouillon local"]
        stored = _server_raw(imap, "Drafts")
        assert b"\xc3\xa9chographie" in stored
        assert b"X-OfflineIMAP" not in stored  # the header it adds only when the server's APPENDUID is missing
        assert len(maildir_messages(drafts)) == 1
        assert _subjects(imap, "INBOX") == ["Inbox 1", "Inbox 2", "Inbox 3"]
        assert len(maildir_messages(maildir / "INBOX")) == 3
        assert _subjects(imap, "Projets") == ["Projet A"]
        assert len(maildir_messages(maildir / "Projets")) == 1
        snapshots.append((server_snapshot(imap), maildir_snapshot(maildir)))
    assert snapshots[2] == snapshots[1]  # the third run had nothing to do and did nothing
    inbox = server_folder(imap, "INBOX")
    assert sum({"\\Flagged", "\\Seen"} <= m.flags for m in inbox) == 1

    # Then a deletion on each side and a flag taken off on the server.
    flagged_uid = next(m.uid for m in inbox if "\\Flagged" in m.flags)
    other = next(m for m in inbox if "\\Flagged" not in m.flags)
    client = imap.imaps()
    client.select("INBOX")
    assert client.uid("STORE", str(flagged_uid), "-FLAGS", "(\\Flagged)")[0] == "OK"
    assert client.uid("STORE", str(other.uid), "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert client.expunge()[0] == "OK"
    client.logout()
    next(path for path in maildir_messages(maildir / "Projets")).unlink()
    _sync(sync)
    assert _subjects(imap, "Projets") == []
    local_inbox = maildir_messages(maildir / "INBOX")
    assert len(local_inbox) == 2
    assert sorted(maildir_flags(path) for path in local_inbox) == ["", "S"]


# --- neomutt in tmux ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["imaps", "imap"])  # implicit TLS, then STARTTLS (neomutt's default on imap://)
def test_neomutt_reads_saves_and_deletes_then_the_server_has_its_changes(imap_sqlite: ImapHarness, tmp_path: Path,
                                                                          scheme: str):
    """An interactive client: the index, a message on screen, a save, a purge, a non-ASCII folder; state on quit."""
    neomutt, tmux = _need("neomutt"), _need("tmux")
    imap = imap_sqlite
    imap.deliver(ALICE, message("Compte rendu", "Tension 12/8, revoir dans un mois."))
    imap.deliver(ALICE, message("Rendez-vous", "Mardi 10 h."))
    imap.deliver(ALICE, message("Publicite", "Offre speciale."))
    client = imap.imaps()
    assert client.create('"M&AOk-decins"')[0] == "OK"  # "Médecins", RFC 3501 5.1.3 modified UTF-7
    client.logout()
    imap.deliver(ALICE, message("Avis cardio", "Confrere."), folder="Médecins")
    config = tmp_path / "neomuttrc"
    config.write_text(f"""\
set folder = "{scheme}://localhost:{imap.imaps_port if scheme == 'imaps' else imap.imap_port}/"
set spoolfile = "+INBOX"
set imap_user = "{ALICE}"
set imap_pass = "{PASSWORD}"
set ssl_ca_certificates_file = "{imap.pki.ca_bundle}"
set certificate_file = "{tmp_path / 'certificates'}"
set quit = yes
""")
    home = tmp_path / "home"
    home.mkdir()
    socket_dir = Path(tempfile.mkdtemp(prefix="nm"))  # a short path: tmux sockets are limited to ~100 bytes
    socket = str(socket_dir / "s")
    control = [tmux, "-S", socket]

    def screen() -> str:
        return subprocess.run([*control, "capture-pane", "-p", "-t", "mutt"], capture_output=True, text=True,
                              timeout=10, check=False).stdout

    def keys(*sequence: str) -> None:
        _run([*control, "send-keys", "-t", "mutt", *sequence], timeout=10)

    def running() -> bool:
        return subprocess.run([*control, "has-session", "-t", "mutt"], capture_output=True,
                              timeout=10, check=False).returncode == 0

    command = f"LANG=C.UTF-8 HOME={home} TERM=screen {neomutt} -d 5 -l {tmp_path / 'neomutt.log'} -n -F {config}"
    _run([*control, "new-session", "-d", "-s", "mutt", "-x", "160", "-y", "40", command], timeout=10)
    try:
        _wait_for(lambda: all(subject in screen() for subject in ("Compte rendu", "Rendez-vous", "Publicite")),
                  "the index", show=screen)
        keys("/", "~s Compte", "Enter")
        keys("Enter")
        _wait_for(lambda: "Tension 12/8" in screen(), "the message body", show=screen)
        assert "Subject: Compte rendu" in screen()
        keys("q")
        _wait_for(lambda: "Tension 12/8" not in screen(), "the index again", show=screen)
        keys("/", "~s Rendez", "Enter", "s")
        _wait_for(lambda: "Save to mailbox" in screen(), "the save prompt", show=screen)
        keys("C-u", "=Archive", "Enter")
        keys("/", "~s Publicite", "Enter", "d")
        # To a folder with a non-ASCII name (neomutt has enabled UTF8=ACCEPT, RFC 6855), leaving INBOX purged.
        keys("c")
        _wait_for(lambda: "Open mailbox" in screen(), "the change-folder prompt", show=screen)
        keys("C-u", "=Médecins", "Enter")
        _wait_for(lambda: "Purge" in screen() or "Avis cardio" in screen(), "the purge question", show=screen)
        if "Purge" in screen():
            keys("y")
        _wait_for(lambda: "Avis cardio" in screen() and "Médecins" in screen(), "the Médecins folder", show=screen)
        keys("q")
        _wait_for(lambda: not running(), "neomutt to quit")
    finally:
        if running():
            subprocess.run([*control, "kill-server"], capture_output=True, timeout=10, check=False)
        shutil.rmtree(socket_dir, ignore_errors=True)
    assert [(m.subject, "\\Seen" in m.flags) for m in server_folder(imap, "INBOX")] == [("Compte rendu", True)]
    assert _subjects(imap, "Archive") == ["Rendez-vous"]
    trace = "".join(path.read_text(errors="replace") for path in tmp_path.glob("neomutt.log*"))
    assert "SELECT" in trace and refusals(trace) == []


# --- curl -----------------------------------------------------------------------------------------------------

def _curl(imap: ImapHarness, url: str, *args: str) -> bytes:
    curl = _need("curl")
    result = subprocess.run([curl, "--verbose", "--silent", "--show-error", "--max-time", "20", "--cacert",
                             str(imap.pki.ca_bundle), "--user", f"{ALICE}:{PASSWORD}", *args, url],
                            capture_output=True, timeout=30, check=False)
    assert result.returncode == 0, (url, args, result.returncode, result.stderr)
    assert refusals(result.stderr.decode(errors="replace")) == []
    return result.stdout


def test_curl_fetches_by_uid_lists_searches_and_appends(imap: ImapHarness, tmp_path: Path):
    """On both stores (SQLite and PostgreSQL): the cheapest client that covers FETCH, LIST, SEARCH and APPEND."""
    _seed(imap)
    base = f"imaps://localhost:{imap.imaps_port}"
    inbox = server_folder(imap, "INBOX")
    second = next(m for m in inbox if m.subject == "Inbox 2")

    fetched = _curl(imap, f"{base}/INBOX;UID={second.uid}")
    assert fetched == message("Inbox 2", "Corps 2.")
    body = _curl(imap, f"{base}/INBOX;UID={second.uid};SECTION=TEXT")
    assert body == b"Corps 2.\r\n"
    assert next(m for m in server_folder(imap, "INBOX") if m.uid == second.uid).flags == {"\\Seen"}

    listing = _curl(imap, f"{base}/")
    names = {line.rsplit(b" ", 1)[1].strip(b'"') for line in listing.splitlines() if line.startswith(b"* LIST")}
    assert names == {b"INBOX", b"Sent", b"Drafts", b"Trash", b"Archive", b"Projets"}

    found = _curl(imap, f"{base}/INBOX?SUBJECT%20%22Inbox%203%22")
    third = next(n for n, m in enumerate(inbox, 1) if m.subject == "Inbox 3")
    assert found.split() == [b"*", b"SEARCH", str(third).encode()]  # a URL's query is a SEARCH: sequence numbers
    unseen = _curl(imap, f"{base}/INBOX", "--request", "UID SEARCH UNSEEN")
    assert sorted(int(uid) for uid in unseen.split(b"SEARCH", 1)[1].split()) == sorted(
        m.uid for m in inbox if m.subject != "Inbox 2")

    upload = tmp_path / "note.eml"
    upload.write_bytes(message("Note curl", "Deposee par curl -T."))
    _curl(imap, f"{base}/Projets", "-T", str(upload))
    projets = server_folder(imap, "Projets")
    assert sorted(m.subject for m in projets) == ["Note curl", "Projet A"]
    uploaded = next(m for m in projets if m.subject == "Note curl")
    assert _curl(imap, f"{base}/Projets;UID={uploaded.uid}") == upload.read_bytes()

