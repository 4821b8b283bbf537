"""A scripted session with a real mail client from Debian: curl (installed by .ci/setup.d/30-imap-clients.sh)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from imap.imap_support import ALICE, PASSWORD, ImapHarness, message

CURL = shutil.which("curl")
pytestmark = pytest.mark.skipif(CURL is None, reason="curl is not installed (.ci/setup.d/30-imap-clients.sh)")


def curl(imap: ImapHarness, url: str, *args: str, user: str = ALICE, password: str = PASSWORD
         ) -> subprocess.CompletedProcess[bytes]:
    assert CURL is not None
    return subprocess.run(
        [CURL, "--silent", "--show-error", "--max-time", "20", "--cacert", str(imap.pki.ca_bundle),
         "--tlsv1.2", "--user", f"{user}:{password}", *args, url],
        capture_output=True, timeout=60, check=False)


def test_curl_lists_reads_searches_and_appends_over_tls(imap: ImapHarness, tmp_path: Path):
    raw = message("Lu par curl", "Contenu exact.")
    imap.deliver(ALICE, raw)
    base = f"imaps://127.0.0.1:{imap.imaps_port}"

    listing = curl(imap, base + "/")
    assert listing.returncode == 0, listing.stderr
    for name in (b"INBOX", b"Sent", b"Drafts", b"Trash", b"Archive"):
        assert name in listing.stdout

    fetched = curl(imap, base + "/INBOX;UID=1")
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout == raw

    unseen = curl(imap, base + "/INBOX", "--request", "UID SEARCH UNSEEN")
    assert unseen.returncode == 0 and b"SEARCH" in unseen.stdout  # curl's FETCH used BODY[]: now \Seen
    assert unseen.stdout.split(b"SEARCH")[1].split() == []

    draft = tmp_path / "draft.eml"
    draft.write_bytes(message("Brouillon curl", "Envoye par curl."))
    uploaded = curl(imap, base + "/Drafts", "--upload-file", str(draft))
    assert uploaded.returncode == 0, uploaded.stderr
    stored = curl(imap, base + "/Drafts;UID=1")
    assert stored.stdout == draft.read_bytes()

    starttls = curl(imap, f"imap://127.0.0.1:{imap.imap_port}/INBOX;UID=1", "--ssl-reqd")
    assert starttls.returncode == 0, starttls.stderr
    assert starttls.stdout == raw


def test_curl_wrong_password_is_refused(imap: ImapHarness):
    refused = curl(imap, f"imaps://127.0.0.1:{imap.imaps_port}/INBOX", password="not the password")
    assert refused.returncode == 67, (refused.returncode, refused.stderr)  # CURLE_LOGIN_DENIED
