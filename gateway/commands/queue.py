"""``gateway queue``: the outbound queue to other operators, and retrying it now.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.commands.common import load_config, print_rows, run_in_store


def register(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    """The parsers of this group, added to ``gateway``'s subcommands."""
    queue = with_config(sub.add_parser("queue", help="outbound queue to other operators"))
    queue.add_argument("action", choices=["list", "retry"], help="retry: try queued recipients again now")
    queue.add_argument("ids", nargs="*", type=int, help="retry: only these queue ids")
    queue.add_argument("--state", choices=["queued", "sent", "failed"], help="list: only this state")
    queue.set_defaults(func=cmd_queue)


def cmd_queue(args: argparse.Namespace) -> int:
    from gateway.smtp import outbound

    cfg = load_config(args)

    async def list_(session: AsyncSession) -> None:
        rows = await outbound.list_queue(session, args.state)
        print_rows([{"id": r.id, "message_id": r.message_id, "recipient": r.recipient, "state": r.state,
                      "attempts": r.attempts, "next_attempt_at": r.next_attempt_at,
                      "last_reply": (r.last_reply or "")[:60]} for r in rows], args.json)

    async def retry(session: AsyncSession) -> str:
        count = await outbound.retry_now(session, args.ids or None)
        return f"{count} queued recipient(s) will be tried again at once."

    action: Callable[[AsyncSession], Awaitable[Any]] = {"list": list_, "retry": retry}[args.action]
    message = run_in_store(cfg, action)
    if message:
        print(message)
    return 0
