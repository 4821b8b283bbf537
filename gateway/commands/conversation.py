"""``gateway conversation``: patient conversations, their history, blocking replies (R1-R5).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.commands.common import CommandError, load_config, print_json, print_rows, run_in_store


def register(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    """The parsers of this group, added to ``gateway``'s subcommands."""
    conversation = with_config(sub.add_parser("conversation", help="patient conversations (R1–R5)"))
    conversation.add_argument("action", choices=["list", "show", "block", "unblock"],
                              help="block, unblock: the patient's replies in the conversation (R3)")
    conversation.add_argument("id", nargs="?", type=int, help="the conversation (show, block, unblock)")
    conversation.add_argument("--mailbox", help="only this professional mailbox's conversations")
    conversation.set_defaults(func=cmd_conversation)
    # What each action needs beyond argparse's own checks (cli.py reports the first one missing).
    conversation.set_defaults(needs={"show": ["id"], "block": ["id"], "unblock": ["id"]})


def cmd_conversation(args: argparse.Namespace) -> int:
    from gateway.routing import conversations
    from gateway.store import mailstore
    from gateway.store.models import Conversation

    cfg = load_config(args)

    async def list_(session: AsyncSession) -> None:
        professional_id = None
        if args.mailbox:
            mailbox = await mailstore.mailbox_by_address(session, args.mailbox)
            if mailbox is None:
                raise CommandError("No mailbox has this address.")
            professional_id = mailbox.id
        rows = await conversations.list_conversations(session, professional_id)
        print_rows([{"id": c.id, "professional_id": c.professional_id, "matricule": c.matricule,
                      "state": c.state, "replies_blocked": c.replies_blocked, "updated_at": c.updated_at}
                     for c in rows], args.json)

    async def show(session: AsyncSession) -> None:
        conversation = await session.get(Conversation, args.id)
        if conversation is None:
            raise CommandError(f"No conversation has id {args.id}.")
        events = await conversations.history(session, args.id)
        history = [{"at": e.at, "event": e.kind, "rule": e.rule, "outcome": e.outcome,
                    "message_id": e.message_id or ""} for e in events]
        if args.json:
            print_json({"id": conversation.id, "professional_id": conversation.professional_id,
                        "remote_professional": conversation.remote_professional,
                        "matricule": conversation.matricule, "state": conversation.state,
                        "replies_blocked": conversation.replies_blocked, "opened_at": conversation.opened_at,
                        "updated_at": conversation.updated_at, "events": history})
            return
        print(f"Conversation {conversation.id}: state {conversation.state}, replies "
              f"{'blocked' if conversation.replies_blocked else 'allowed'}")
        print_rows(history, False)

    async def block(session: AsyncSession, blocked: bool) -> str:
        conversation = await session.get(Conversation, args.id)
        if conversation is None:
            raise CommandError(f"No conversation has id {args.id}.")
        await conversations.set_replies_blocked(session, conversation, blocked, args.actor)
        return f"Replies {'blocked' if blocked else 'allowed'} in conversation {args.id} (R3)."

    action: Callable[[AsyncSession], Awaitable[Any]] = {
        "list": list_, "show": show,
        "block": lambda s: block(s, True), "unblock": lambda s: block(s, False),
    }[args.action]
    message = run_in_store(cfg, action)
    if message:
        print(message)
    return 0
