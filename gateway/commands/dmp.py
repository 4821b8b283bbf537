"""``gateway dmp``: the deposit outbox — list, show, retry, cancel — and the deposits a person asks for:
``deposit`` a file (R14 manual mode, a title required) and ``confirm`` the authorship of a message's documents
(R12). Every action is traced (R18) with ``--actor``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession


def register(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    dmp = with_config(sub.add_parser("dmp", help="DMP deposits: the outbox (R12-R18)"))
    dmp.add_argument("action", choices=["list", "show", "retry", "cancel", "counts", "deposit", "confirm"],
                     help="counts: jobs per state; deposit: a file a person asks to deposit (R14); confirm: the "
                          "structure's authorship of a message's documents (R12)")
    dmp.add_argument("id", nargs="?", help="the deposit job (show, retry, cancel); confirm: the message's number "
                     "or the document's uniqueId")
    dmp.add_argument("--state", help="list: only jobs in this state (pending, sent, accepted, refused, retry, ...)")
    dmp.add_argument("--file", help="deposit: a CDA, or a pdf/jpeg/tiff/txt/rtf file to wrap in a CDA level 1")
    dmp.add_argument("--patient", help="deposit: the patient's INS matricule (a qualifiée identity, R7)")
    dmp.add_argument("--author", help="deposit, confirm: national id of the structure's professional who wrote it")
    dmp.add_argument("--title", help="deposit, confirm: the document's title (required, R14)")
    dmp.add_argument("--type", dest="type_code", help="deposit: LOINC type code of a wrapped file (default 11488-4)")
    dmp.add_argument("--visibility", help="deposit, confirm: R16 codes, e.g. INVISIBLE_PATIENT,MASQUE_PS")
    dmp.add_argument("--confirm-authorship", action="store_true",
                     help="deposit: --actor confirms the structure wrote a CDA whose author is not listed (R12)")
    dmp.set_defaults(func=cmd_dmp)


def cmd_dmp(args: argparse.Namespace) -> int:
    from gateway.commands.common import CommandError, load_config, print_rows, run_in_store
    from gateway.dmp_bridge import outbox

    cfg = load_config(args)
    if args.action in ("show", "retry", "cancel", "confirm") and args.id is None:
        what = "message's number or the document's uniqueId" if args.action == "confirm" else "deposit job's id"
        raise CommandError(f"'dmp {args.action}' needs the {what}.")
    if args.action in ("show", "retry", "cancel"):
        if not args.id.isdigit():
            raise CommandError(f"'{args.id}' is not a deposit job id; 'gateway dmp list' shows them.")
        args.id = int(args.id)
    if args.action in ("deposit", "confirm"):
        return _ask_deposit(args, cfg)

    async def work(session: AsyncSession) -> str | None:
        if args.action == "list":
            print_rows(await outbox.list_jobs(session, args.state), args.json)
        elif args.action == "counts":
            found = await outbox.counts(session)
            counts = {state: found.get(state, 0) for state in outbox.STATES} | found  # every state, even at 0
            if args.json:
                print(json.dumps(counts, indent=1))
            else:
                print_rows([{"state": state, "jobs": jobs} for state, jobs in counts.items()], False)
        elif args.action == "show":
            print(json.dumps(await outbox.show_job(session, args.id), default=str, ensure_ascii=False, indent=1))
        elif args.action == "retry":
            await outbox.retry_job(session, args.id, args.actor)
            return f"Deposit job {args.id} will be sent again."
        else:
            await outbox.cancel_job(session, args.id, args.actor)
            return f"Deposit job {args.id} cancelled."
        return None

    try:
        message = run_in_store(cfg, work)
    except (LookupError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    if message:
        print(message)
    return 0


def _ask_deposit(args: argparse.Namespace, cfg: Any) -> int:
    """``deposit`` and ``confirm``: the rules decide as for automatic deposits; each refusal is one sentence."""
    from gateway.commands.common import CommandError, run_in_store
    from gateway.dmp_bridge.bridge import Considered, consider_manual, consider_message
    from gateway.dmp_bridge.confirmation import confirmation_target
    from gateway.dmp_bridge.daemon import policy_from
    from gateway.store.models import Message

    if cfg.dmp is None:
        raise CommandError("The [dmp] section is not configured: there is no DMP to deposit to.")
    if not (args.title or "").strip():
        raise CommandError("A deposit a person asks for needs a title (R14): give --title.")
    policy = policy_from(cfg.dmp)
    author = policy.professional(args.author) if args.author else None
    if args.author and author is None:
        raise CommandError(f"{args.author} is not one of the structure's professionals ([[dmp.professional]]).")
    content = b""
    if args.action == "deposit":
        if not args.file:
            raise CommandError("'dmp deposit' needs the document: give --file.")
        try:
            with open(args.file, "rb") as handle:
                content = handle.read(policy.max_size * 2 + 1)
        except OSError as exc:
            raise CommandError(f"Cannot read {args.file}: {exc.strerror}.") from None

    async def work(session: AsyncSession) -> list[Considered]:
        if args.action == "deposit":
            return [await consider_manual(
                session, content, args.file, policy=policy, person=args.actor, title=args.title,
                matricule=args.patient, author_id=args.author, type_code=args.type_code,
                visibility=args.visibility, confirm_authorship=args.confirm_authorship)]
        message_id, only = await confirmation_target(session, args.id)
        message = await session.get(Message, message_id)
        if message is None:
            raise LookupError(f"There is no message {message_id}.")
        return await consider_message(session, message.id, bytes(message.raw), message.mail_from,
                                      list(message.rcpt_to), policy=policy, sender_mailbox_id=message.sender_mailbox_id,
                                      manual_request=True, confirmed_by=args.actor, author=author,
                                      title=args.title, visibility=args.visibility, only=only)

    try:
        results = run_in_store(cfg, work)
    except (LookupError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    if not results:
        raise CommandError("The message carries no document to deposit." if args.action == "deposit" or
                           str(args.id).isdigit() else f"The message of {args.id} no longer carries that document.")
    failed = False
    for considered in results:
        refusal = considered.plan.refusal
        if considered.job_id is not None:
            print(f"{considered.unique_id}: queued for the DMP as deposit job {considered.job_id}.")
        elif refusal is None:
            print(f"{considered.unique_id}: already in the outbox; nothing queued again.")
        else:
            failed = True
            print(f"{considered.unique_id}: not deposited ({refusal.rule}): {refusal.reason}")
    return 1 if failed else 0



