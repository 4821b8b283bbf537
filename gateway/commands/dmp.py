"""``gateway dmp``: the deposit outbox (issue 6) — list, show, retry, cancel; every action is traced (R18)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession


def register(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    dmp = with_config(sub.add_parser("dmp", help="DMP deposits: the outbox (R12-R18)"))
    dmp.add_argument("action", choices=["list", "show", "retry", "cancel", "counts"])
    dmp.add_argument("id", nargs="?", type=int)
    dmp.add_argument("--state", help="list: only jobs in this state (pending, sent, accepted, refused, retry, ...)")
    dmp.set_defaults(func=cmd_dmp)


def cmd_dmp(args: argparse.Namespace) -> int:
    from gateway.cli import CommandError, load_config, print_rows, run_in_store
    from gateway.dmp_bridge import outbox

    cfg = load_config(args)
    if args.action in ("show", "retry", "cancel") and args.id is None:
        raise CommandError(f"'dmp {args.action}' needs the deposit job's id.")

    async def work(session: AsyncSession) -> str | None:
        if args.action == "list":
            print_rows(await outbox.list_jobs(session, args.state), args.json)
        elif args.action == "counts":
            print(json.dumps(await outbox.counts(session), indent=1))
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
