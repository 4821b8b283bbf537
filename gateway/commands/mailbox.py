"""``gateway mailbox``: add, list, disable, enable mailboxes, set passwords, import accounts from CSV.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.commands.common import CommandError, load_config, print_rows, read_password, run_in_store
from gateway.config import Config


def register(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    """The parsers of this group, added to ``gateway``'s subcommands."""
    mailbox = with_config(sub.add_parser("mailbox", help="add, list, disable, import mailboxes, set passwords"))
    mailbox.add_argument("action", choices=["add", "list", "disable", "enable", "password", "import"],
                         help="import: create every account of a CSV file (columns address, kind, password or "
                              "password_hash, display_name)")
    mailbox.add_argument("address", nargs="?", help="the mailbox's address; import: the CSV file")
    mailbox.add_argument("--kind", choices=["PER", "ORG", "APP", "PAT"], default="PER",
                         help="add: professional, organisational, applicative or patient mailbox (default PER)")
    mailbox.add_argument("--name", help="add: display name")
    mailbox.add_argument("--password", help="password (prefer --password-stdin)")
    mailbox.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    mailbox.add_argument("--ask-password", action="store_true", help="ask for the password on the terminal")
    mailbox.add_argument("--skip-bad", action="store_true",
                         help="import: create the good lines even when others have errors (reported by line)")
    mailbox.add_argument("--workers", type=int, metavar="N",
                         help="import: processes hashing passwords (default one per core)")
    mailbox.add_argument("--certificate-fingerprint", help="SHA-256 of a client certificate (software login)")
    mailbox.set_defaults(func=cmd_mailbox)
    # What each action needs beyond argparse's own checks (cli.py reports the first one missing).
    mailbox.set_defaults(needs={"add": ["address"], "disable": ["address"], "enable": ["address"],
        "password": ["address"]})


def cmd_mailbox(args: argparse.Namespace) -> int:
    if args.action == "import":
        from gateway.commands import mailbox_import

        return mailbox_import.run(args)
    from gateway.auth.passwords import hash_password
    from gateway.store import mailstore
    from gateway.store.events import record
    from gateway.store.models import Mailbox

    cfg = load_config(args)
    actor = args.actor

    async def list_(session: AsyncSession) -> None:
        rows = (await session.execute(select(Mailbox).order_by(Mailbox.id))).scalars().all()
        print_rows([{"id": m.id, "address": m.address, "kind": m.kind, "active": m.active,
                      "password": bool(m.password_hash), "certificate": bool(m.certificate_fingerprint)}
                     for m in rows], args.json)

    async def set_active(session: AsyncSession, active: bool) -> str:
        mailbox = await mailstore.mailbox_by_address(session, args.address)
        if mailbox is None:
            raise CommandError("No mailbox has this address.")
        mailbox.active = active
        await record(session, "mailbox.enabled" if active else "mailbox.disabled", "ok", actor=actor,
                     mailbox_id=mailbox.id)
        return f"Mailbox {mailbox.id} {'enabled' if active else 'disabled'}."

    async def password(session: AsyncSession) -> str:
        mailbox = await mailstore.mailbox_by_address(session, args.address)
        if mailbox is None:
            raise CommandError("No mailbox has this address.")
        secret = read_password(args)
        if not secret:
            raise CommandError("Give the new password with --password-stdin or --ask-password.")
        mailbox.password_hash = hash_password(secret)
        await record(session, "mailbox.password", "changed", actor=actor, mailbox_id=mailbox.id)
        return f"Password of mailbox {mailbox.id} changed."

    action: Callable[[AsyncSession], Awaitable[Any]] = {
        "add": lambda s: _add(s, args, cfg), "list": list_, "password": password,
        "disable": lambda s: set_active(s, False), "enable": lambda s: set_active(s, True),
    }[args.action]
    message = run_in_store(cfg, action)
    if message:
        print(message)
    return 0


async def _add(session: AsyncSession, args: argparse.Namespace, cfg: Config) -> str:
    """A new mailbox: a patient one at the patient domain under a valid INS matricule (R8), any other at one of
    the gateway's domains; never a second one with the same address."""
    from gateway.auth.passwords import hash_password
    from gateway.ins_matching.nir import key_ok
    from gateway.store import mailstore
    from gateway.store.events import record

    address = args.address.lower()
    local, _, domain = address.partition("@")
    if args.kind == "PAT":
        if domain != cfg.patient_domain:
            raise CommandError(f"A patient mailbox must be at the patient domain {cfg.patient_domain}.")
        if not key_ok(local.upper()):
            raise CommandError("A patient address must be a valid 15-character INS matricule (R8).")
    elif domain not in cfg.domains:
        raise CommandError(f"{domain} is not one of this gateway's domains ({', '.join(sorted(cfg.domains))}).")
    if await mailstore.mailbox_by_address(session, address):
        raise CommandError("A mailbox with this address already exists.")
    password = read_password(args)
    mailbox_id = await mailstore.create_mailbox(
        session, address, args.kind, display_name=args.name or "",
        password_hash=hash_password(password) if password else None,
        matricule=local.upper() if args.kind == "PAT" else None,
        certificate_fingerprint=(args.certificate_fingerprint or "").lower().replace(":", "") or None,
    )
    await record(session, "mailbox.added", "ok", actor=args.actor, mailbox_id=mailbox_id, mailbox_kind=args.kind)
    return f"Mailbox {mailbox_id} created."
