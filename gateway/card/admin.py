"""``gateway card``: the gateway administrator's side of the card agents (register, list, deactivate).

An agent is trusted because its client certificate was registered here for one workstation and one
professional mailbox; the certificate alone (even from the right CA) is not enough.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from sqlalchemy import select

from gateway.card import presence
from gateway.card.agent import certificate_fingerprint


async def _register(url: str, fingerprint: str, workstation: str, professional: str, actor: str) -> int:
    from gateway.store import db

    await db.migrate(url)
    engine = db.create_engine(url)
    try:
        async with db.sessionmaker(engine)() as session, session.begin():
            return await presence.register_agent(session, fingerprint, workstation, professional, actor)
    finally:
        await engine.dispose()


async def _list(url: str) -> list[tuple[int, str, str, bool]]:
    from gateway.store import db
    from gateway.store.models import Mailbox

    engine = db.create_engine(url)
    try:
        async with db.sessionmaker(engine)() as session:
            rows = await session.execute(
                select(presence.CardAgent.id, presence.CardAgent.workstation, Mailbox.address,
                       presence.CardAgent.active)
                .join(Mailbox, Mailbox.id == presence.CardAgent.professional_mailbox_id)
                .order_by(presence.CardAgent.id))
            return [(r[0], r[1], r[2], r[3]) for r in rows.all()]
    finally:
        await engine.dispose()


async def _deactivate(url: str, agent_id: int, actor: str) -> None:
    from gateway.store import db

    engine = db.create_engine(url)
    try:
        async with db.sessionmaker(engine)() as session, session.begin():
            await presence.deactivate_agent(session, agent_id, actor)
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway card", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=Path("data/gateway.toml"))
    sub = parser.add_subparsers(dest="command", required=True)
    reg = sub.add_parser("register", help="trust a card agent's certificate for a workstation and a mailbox")
    source = reg.add_mutually_exclusive_group(required=True)
    source.add_argument("--certificate", type=Path, help="the agent's certificate (PEM)")
    source.add_argument("--fingerprint", help="its SHA-256 fingerprint, as `gateway card-agent fingerprint` prints")
    reg.add_argument("--workstation", required=True)
    reg.add_argument("--professional", required=True, help="the professional mailbox the workstation serves")
    sub.add_parser("list", help="list the registered agents")
    off = sub.add_parser("deactivate", help="stop trusting an agent; its cards count as removed")
    off.add_argument("--id", type=int, required=True)
    args = parser.parse_args(argv)
    from gateway.config import ConfigError, load

    try:
        url = load(args.config).database_url
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    actor = "admin:cli"
    try:
        if args.command == "register":
            fingerprint = args.fingerprint or certificate_fingerprint(args.certificate)
            agent_id = asyncio.run(_register(url, fingerprint, args.workstation, args.professional, actor))
            print(f"Card agent {agent_id} registered for {args.workstation} ({args.professional}).")
        elif args.command == "list":
            for agent_id, workstation, address, active in asyncio.run(_list(url)):
                print(f"{agent_id}\t{workstation}\t{address}\t{'active' if active else 'deactivated'}")
        else:
            asyncio.run(_deactivate(url, args.id, actor))
            print(f"Card agent {args.id} deactivated.")
    except (ValueError, OSError) as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
