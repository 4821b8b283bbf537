"""Creating many accounts from a CSV file: every line checked first, passwords hashed on every core, one
transaction per batch.

Columns (a header line names them, in any order, comma, semicolon or tab separated): ``address``, ``kind``
(PER, ORG, APP, PAT), ``password`` or ``password_hash`` (an Argon2 PHC string, e.g. from another gateway), and
``display_name``. Each line is checked as ``gateway mailbox add`` checks one account: the domain is one of the
gateway's, a patient address is a valid INS matricule at the patient domain (R8), the address is new. Errors are
reported with their line number; an account is created whole (mailbox, default folders, trail event R18) or not
at all.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store import mailstore
from gateway.store.effects import record_events
from gateway.store.events import now
from gateway.store.models import Folder, Mailbox

#: Most lines read from one file, and longest field.
MAX_LINES = 500_000
MAX_FIELD = 4096
#: Accounts per transaction.
BATCH = 500
COLUMNS = ("address", "kind", "password", "password_hash", "display_name")
#: Lengths the ``mailboxes`` columns hold.
MAX_ADDRESS = 320
MAX_DISPLAY_NAME = 200
MAX_HASH = 200


@dataclass(frozen=True)
class AccountLine:
    """One account to create, as read from line ``line``."""

    line: int
    address: str
    kind: str
    display_name: str = ""
    password: str | None = None
    password_hash: str | None = None


@dataclass(frozen=True)
class LineError:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def address_problem(address: str, kind: str, domains: Iterable[str], patient_domain: str) -> str | None:
    """Why ``address`` cannot be an account of ``kind`` on this gateway, or None (the rules of ``mailbox add``)."""
    from gateway.ins_matching.nir import key_ok

    if kind not in mailstore.MAILBOX_KINDS:
        return f"kind {kind!r} is not one of {', '.join(mailstore.MAILBOX_KINDS)}"
    local, at, domain = address.partition("@")
    if not at or not local or not domain or len(address) > MAX_ADDRESS or any(c.isspace() for c in address):
        return f"{address!r} is not a mail address"
    if kind == "PAT":
        if domain != patient_domain:
            return f"a patient mailbox must be at the patient domain {patient_domain}"
        if not key_ok(local.upper()):
            return "a patient address must be a valid 15-character INS matricule (R8)"
    elif domain not in domains:
        return f"{domain} is not one of this gateway's domains ({', '.join(sorted(domains))})"
    return None


def hash_problem(stored: str) -> str | None:
    """Why ``stored`` is not a password hash the gateway can verify, or None."""
    from argon2 import extract_parameters
    from argon2.exceptions import InvalidHashError

    if len(stored) > MAX_HASH or not stored.startswith("$argon2"):
        return "password_hash must be an Argon2 hash ($argon2id$...)"
    try:
        extract_parameters(stored)
    except (InvalidHashError, ValueError):
        return "password_hash is not a well-formed Argon2 hash"
    return None


def read(path: Path, domains: Iterable[str], patient_domain: str) -> tuple[list[AccountLine], list[LineError]]:
    """Every line of the file checked (without the store): the accounts, and the errors with line numbers."""
    domain_set = frozenset(domains)
    csv.field_size_limit(MAX_FIELD)
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        header = handle.readline(MAX_FIELD)
        handle.seek(0)
        # The header names the columns: its most frequent separator is the file's (spreadsheets in French
        # locales write ';').
        delimiter = max(",;\t", key=header.count)
        return _lines(csv.reader(handle, delimiter=delimiter), domain_set, patient_domain)


def _lines(reader: Any, domains: frozenset[str], patient_domain: str) -> tuple[list[AccountLine], list[LineError]]:
    accounts: list[AccountLine] = []
    errors: list[LineError] = []
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        return [], [LineError(1, "the file is empty; the first line must name the columns")]
    except csv.Error as exc:
        return [], [LineError(1, f"not CSV: {exc}")]
    unknown = [name for name in header if name not in COLUMNS]
    if unknown or "address" not in header or "kind" not in header:
        return [], [LineError(1, f"the first line must name the columns address, kind, password or password_hash, "
                                 f"display_name (found {', '.join(header)})")]
    seen: dict[str, int] = {}
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(LineError(reader.line_num, f"not CSV ({exc}); the rest of the file was not read"))
            break
        number = reader.line_num
        if number > MAX_LINES:
            errors.append(LineError(number, f"more than {MAX_LINES} lines; split the file"))
            break
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            errors.append(LineError(number, f"{len(row)} fields where the first line names {len(header)}"))
            continue
        values = dict(zip(header, row, strict=True))
        address = values["address"].strip().lower()
        kind = values["kind"].strip().upper()
        password = values.get("password") or None
        stored = (values.get("password_hash") or "").strip() or None
        name = (values.get("display_name") or "").strip()
        problem = address_problem(address, kind, domains, patient_domain)
        if problem is None and password and stored:
            problem = "give password or password_hash, not both"
        if problem is None and stored:
            problem = hash_problem(stored)
        if problem is None and len(name) > MAX_DISPLAY_NAME:
            problem = f"display_name is longer than {MAX_DISPLAY_NAME} characters"
        if problem is None and address in seen:
            problem = f"{address} is already on line {seen[address]}"
        if problem is not None:
            errors.append(LineError(number, problem))
            continue
        seen[address] = number
        accounts.append(AccountLine(number, address, kind, name, password, stored))
    return accounts, errors


async def existing(session: AsyncSession, addresses: Sequence[str]) -> set[str]:
    """Which of ``addresses`` already have an account."""
    found: set[str] = set()
    for start in range(0, len(addresses), BATCH):
        part = addresses[start:start + BATCH]
        found.update((await session.execute(select(Mailbox.address).where(Mailbox.address.in_(part)))).scalars())
    return found


async def create(session: AsyncSession, accounts: Sequence[tuple[AccountLine, str | None]], actor: str) -> list[int]:
    """Create ``accounts`` (with their final hash) and their default folders in the caller's transaction."""
    at = now()
    result = await session.execute(insert(Mailbox).returning(Mailbox.id, sort_by_parameter_order=True), [
        dict(address=line.address, kind=line.kind, display_name=line.display_name, password_hash=hashed,
             active=True, matricule=line.address.partition("@")[0].upper() if line.kind == "PAT" else None,
             certificate_fingerprint=None, created_at=at) for line, hashed in accounts])
    ids = list(result.scalars().all())
    await session.execute(insert(Folder), [
        dict(mailbox_id=mailbox_id, name=name, special_use=special, uidvalidity=mailstore.new_uidvalidity(),
             uidnext=1, highestmodseq=1, subscribed=True)
        for mailbox_id in ids for name, special in mailstore.DEFAULT_FOLDERS])
    await record_events(session, [dict(
        at=at, kind="mailbox.added", rule=None, outcome="ok", actor=actor, mailbox_id=mailbox_id, message_id=None,
        conversation_id=None, identity_id=None, detail={"mailbox_kind": line.kind, "source": "import"})
        for mailbox_id, (line, _) in zip(ids, accounts, strict=True)])
    return ids


async def write_batches(sessions: async_sessionmaker[AsyncSession], accounts: Sequence[AccountLine],
                        hashes: Callable[[Sequence[AccountLine]], Any], actor: str, *, batch: int = BATCH,
                        progress: Callable[[int], None] | None = None) -> tuple[int, list[LineError]]:
    """Create ``accounts`` a batch per transaction; ``hashes(batch)`` awaits the batch's hashes (None: no
    password). Accounts that appeared meanwhile are reported, not created."""
    created = 0
    errors: list[LineError] = []
    for start in range(0, len(accounts), batch):
        part = list(accounts[start:start + batch])
        hashed: list[str | None] = list(await hashes(part))
        async with sessions() as session, session.begin():
            taken = await existing(session, [line.address for line in part])
            ready = [(line, value) for line, value in zip(part, hashed, strict=True) if line.address not in taken]
            errors.extend(LineError(line.line, f"a mailbox with the address {line.address} already exists")
                          for line in part if line.address in taken)
            if ready:
                await create(session, ready, actor)
        created += len(ready)
        if progress is not None:
            progress(start + len(part))
    return created, errors

