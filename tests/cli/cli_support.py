"""Running the ``gateway`` command as a person does, and Maildir trees written and read independently of the
gateway's own Maildir code (so the tests check it against the format, not against itself)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from support.pki import PKIFiles
from support.process import GatewayProcess

#: Argon2id at its lowest cost: tests hash thousands of passwords.
LOW_COST_AUTH = "[auth]\nargon2_memory_kib = 8\nargon2_time_cost = 1\n"
LETTERS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted"}


def gateway_cli(config: Path | None, *args: str, stdin: str | None = None,
                timeout: float = 600) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gateway.cli", *args]
    if config is not None:
        command += ["--config", str(config)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, input=stdin)


def config_file(folder: Path, pki: PKIFiles, store_url: str) -> Path:
    """A gateway configuration for ``store_url`` (the process is not started)."""
    return GatewayProcess(folder, pki, store_url, extra_config=LOW_COST_AUTH).config_path


@dataclass(frozen=True)
class Mail:
    content: bytes
    flags: frozenset[str]
    mtime: int


def write_maildir(root: Path, folders: dict[str, dict[str, str]], per_folder: dict[str, int],
                  seed: int = 7) -> dict[str, list[Mail]]:
    """A Maildir++ tree: ``folders`` maps a Maildir++ directory ('' for INBOX, '.Archive.2024') to its keyword
    letters; ``per_folder`` how many messages each gets. Some land in ``new/``. Returns what was written."""
    rng = random.Random(seed)
    written: dict[str, list[Mail]] = {}
    stamp = 1_700_000_000
    for directory, letters in folders.items():
        path = root / directory if directory else root
        for sub in ("cur", "new", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        if letters:
            (path / "dovecot-keywords").write_text(
                "".join(f"{ord(letter) - ord('a')} {keyword}\n" for letter, keyword in sorted(letters.items())))
        mails = written.setdefault(directory, [])
        for index in range(per_folder[directory]):
            stamp += 1
            content = (f"From: sender{index}@pro.gateway.test\nTo: dr.house@pro.gateway.test\n"
                       f"Subject: {directory or 'INBOX'} {index}\nMessage-ID: <{stamp}.{index}@test>\n\n"
                       f"Compte rendu {index}.\nFrom here on, line two.\n").encode()
            new = rng.random() < 0.05
            chosen = "" if new else "".join(sorted(rng.sample("DFRST", rng.randint(0, 3))))
            keys = "" if new else "".join(sorted(letter for letter in letters if rng.random() < 0.3))
            name = f"{stamp}.M{index}P42.old-server,S={len(content)}" + ("" if new else f":2,{chosen}{keys}")
            file = path / ("new" if new else "cur") / name
            file.write_bytes(content)
            os.utime(file, (stamp, stamp))
            flags = frozenset([LETTERS[c] for c in chosen] + [letters[c] for c in keys])
            mails.append(Mail(content, flags, stamp))
    return written


def read_maildir(root: Path) -> dict[str, list[Mail]]:
    """Every message of a Maildir++ tree by directory, with the flags its name and dovecot-keywords give."""
    found: dict[str, list[Mail]] = {}
    directories = ["", *sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("."))]
    for directory in directories:
        path = root / directory if directory else root
        keywords: dict[str, str] = {}
        if (path / "dovecot-keywords").exists():
            for line in (path / "dovecot-keywords").read_text().splitlines():
                number, keyword = line.split(" ", 1)
                keywords[chr(ord("a") + int(number))] = keyword
        mails = found.setdefault(directory, [])
        for sub in ("cur", "new"):
            for file in sorted((path / sub).iterdir()) if (path / sub).is_dir() else []:
                info = file.name.split(":2,", 1)[1] if ":2," in file.name else ""
                flags = frozenset(LETTERS[c] if c.isupper() else keywords[c] for c in info)
                mails.append(Mail(file.read_bytes(), flags, int(file.stat().st_mtime)))
    return found


def as_sets(tree: dict[str, list[Mail]]) -> dict[str, set[tuple[bytes, frozenset[str], int]]]:
    return {name: {(m.content, m.flags, m.mtime) for m in mails} for name, mails in tree.items()}
