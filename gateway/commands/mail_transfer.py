"""``gateway mail import`` and ``gateway mail export``: an account's mail from and to Maildir and mbox trees.

Import reads a Maildir++ tree (folders ``.Sent``, ``.Archive.2024``; flags from the ``:2,`` info and Dovecot's
``dovecot-keywords``; internal date from each file's mtime) or an mbox file or tree (internal date from the
From_ line, flags from ``Status``/``X-Status``/``X-Keywords``) and stores it batch by batch while the daemon
runs: folders are created, flags kept, UIDs fresh. Export writes every folder to a new Maildir++ tree.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Largest message an import reads when the configuration's SMTP limit is smaller (mail kept for years).
IMPORT_SIZE_FLOOR = 64 * 1024 * 1024


def register(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    mail = sub.add_parser("mail", help="import an account's mail from Maildir or mbox, export it to Maildir",
                          description="Move an account's mail in and out of the store while the gateway runs.")
    actions = mail.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = with_config(actions.add_parser(
        "import", help="store a Maildir++ tree or an mbox file or tree into an account",
        description="Store a Maildir++ tree, or an mbox file or tree, into an account's folders: folders are "
                    "created, flags kept, UIDs fresh; one transaction per batch, progress on stderr."))
    imp.add_argument("path", type=Path, help="the Maildir++ root, an mbox file, or a folder of mbox files")
    imp.add_argument("--mailbox", required=True, metavar="ADDRESS", help="the account to store the mail into")
    imp.add_argument("--format", choices=["auto", "maildir", "mbox"], default="auto",
                     help="what PATH is (default: guessed from its contents)")
    imp.add_argument("--folder", metavar="NAME",
                     help="store everything under this folder (e.g. 'Imported/2024') instead of at the top")
    imp.add_argument("--max-size", type=int, metavar="BYTES",
                     help=f"skip larger messages (default: the larger of [limits] message_size and "
                          f"{IMPORT_SIZE_FLOOR} bytes)")
    imp.add_argument("--batch", type=int, default=500, metavar="N", help="messages per transaction (default 500)")
    imp.set_defaults(func=cmd_mail_import)
    exp = with_config(actions.add_parser(
        "export", help="write an account's folders to a new Maildir++ tree",
        description="Write every folder of an account to a new Maildir++ tree, flags in the file names, "
                    "keywords in dovecot-keywords, internal dates as file times."))
    exp.add_argument("path", type=Path, help="the Maildir++ root to create (must not exist or be empty)")
    exp.add_argument("--mailbox", required=True, metavar="ADDRESS", help="the account to export")
    exp.set_defaults(func=cmd_mail_export)


def _guess(path: Path) -> str:
    from gateway.transfer import maildir

    if path.is_file():
        return "mbox"
    if maildir.is_maildir(path) or any(maildir.is_maildir(p) for p in path.glob(".*") if p.is_dir()):
        return "maildir"
    return "mbox"


async def _account(cfg: Any, address: str) -> tuple[Any, int]:
    from gateway.commands.common import CommandError
    from gateway.store import db, mailstore

    await db.migrate(cfg.database_url)
    engine = db.create_engine(cfg.database_url)
    async with db.sessionmaker(engine)() as session, session.begin():
        mailbox = await mailstore.mailbox_by_address(session, address)
    if mailbox is None:
        await engine.dispose()
        raise CommandError(f"No mailbox has the address {address}; create it first with 'gateway mailbox add'.")
    return engine, int(mailbox.id)


def cmd_mail_import(args: argparse.Namespace) -> int:
    from gateway.commands.common import CommandError, load_config
    from gateway.transfer.names import canonical

    cfg = load_config(args)
    path: Path = args.path
    if not path.exists():
        raise CommandError(f"{path} does not exist.")
    if args.batch < 1:
        raise CommandError("--batch must be at least 1.")
    prefix = None
    if args.folder:
        prefix = canonical(args.folder.strip("/"))
        if prefix is None:
            raise CommandError(f"{args.folder!r} is not a folder name the store accepts.")
    kind = args.format if args.format != "auto" else _guess(path)
    max_size = args.max_size or max(cfg.limits.message_size, IMPORT_SIZE_FLOOR)
    return asyncio.run(_import(cfg, args, path, kind, max_size, prefix))


async def _import(cfg: Any, args: argparse.Namespace, path: Path, kind: str, max_size: int,
                  prefix: str | None) -> int:
    from gateway.commands.common import CommandError
    from gateway.store import db
    from gateway.transfer import maildir, mbox
    from gateway.transfer.loader import ImportRefused, Item, MailLoader
    from gateway.transfer.progress import Progress

    engine, mailbox_id = await _account(cfg, args.mailbox)
    progress = Progress(f"Importing into {args.mailbox}", "messages")
    loader = MailLoader(db.sessionmaker(engine), mailbox_id, actor=args.actor, source=kind,
                        batch_messages=args.batch, progress=progress.update)
    skipped: list[str] = []

    def place(name: str) -> str:
        if prefix is None:
            return name
        return prefix if name == "INBOX" else f"{prefix}/{name}"

    try:
        if kind == "maildir":
            folders = maildir.scan(path)
            if not folders:
                raise CommandError(f"{path} is not a Maildir tree: no cur/ or new/ folder, no .Folder in it.")
            for folder in folders:
                await loader.ensure_folder(place(folder.name))
                for message in folder.messages():
                    if message.path.stat().st_size > max_size:
                        skipped.append(f"{message.path}: larger than {max_size} bytes")
                        continue
                    try:
                        raw = message.path.read_bytes()
                    except OSError as exc:
                        skipped.append(f"{message.path}: {exc.strerror}")
                        continue
                    await loader.add(place(folder.name), Item(maildir.to_crlf(raw), message.flags, message.date))
        else:
            files = mbox.scan(path)
            if not files:
                raise CommandError(f"{path} holds no mbox file (a file starting with 'From ').")
            for name, file in files:
                await loader.ensure_folder(place(name))
                fallback = _mtime(file)
                try:
                    for found in mbox.read(file, max_size):
                        await loader.add(place(name), Item(found.raw, found.flags, found.date or fallback))
                except mbox.MessageTooLarge as exc:
                    skipped.append(f"{exc}; the rest of that file was not read")
        await loader.flush()
    except (ImportRefused, maildir.TooManyFolders) as exc:
        raise CommandError(f"{exc} {loader.report.messages} message(s) were stored before.") from None
    finally:
        await engine.dispose()
    progress.finish()
    for line in skipped:
        print(f"gateway: skipped {line}", file=sys.stderr)
    report = loader.report
    created = f"; folders created: {', '.join(report.created)}" if report.created else ""
    print(f"{report.messages} message(s) imported into {args.mailbox} in {len(report.per_folder)} folder(s)"
          f"{created}.")
    return 1 if skipped else 0


def _mtime(path: Path) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def cmd_mail_export(args: argparse.Namespace) -> int:
    from gateway.commands.common import CommandError, load_config

    cfg = load_config(args)
    path: Path = args.path
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise CommandError(f"{path} exists and is not an empty folder; export into a new folder.")
    return asyncio.run(_export(cfg, args, path))


async def _export(cfg: Any, args: argparse.Namespace, path: Path) -> int:
    from gateway.store import db
    from gateway.transfer.export import export_mailbox
    from gateway.transfer.progress import Progress

    engine, mailbox_id = await _account(cfg, args.mailbox)
    progress = Progress(f"Exporting {args.mailbox}", "messages")
    try:
        report = await export_mailbox(db.read_sessionmaker(engine), mailbox_id, path, progress=progress.update)
    finally:
        await engine.dispose()
    progress.finish()
    if report.dropped_keywords:
        print(f"gateway: a Maildir folder names at most 26 keywords; not written: "
              f"{', '.join(sorted(report.dropped_keywords))}", file=sys.stderr)
    print(f"{report.messages} message(s) in {len(report.per_folder)} folder(s) exported to {path}.")
    return 0
