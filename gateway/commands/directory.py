"""``gateway directory``: look professionals and MSSanté addresses up in the Annuaire Santé.

``search --name/--rpps/--city`` lists the professionals that match (criteria given together must all match),
with their profession, specialty, structures and published mailboxes; ``mailbox ADDRESS`` says who publishes
an address, or that it is not published (exit status 1). ``--json`` prints JSON only, for scripts. Both use
``[directory]`` (base URL, API key file) of the configuration.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from typing import Any


def register(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    directory = with_config(sub.add_parser("directory", help="professionals and MSSanté addresses in the "
                                                            "Annuaire Santé"))
    directory.add_argument("action", choices=["search", "mailbox"],
                           help="search professionals, or tell who publishes a mailbox address")
    directory.add_argument("address", nargs="?", help="mailbox: the MSSanté address")
    directory.add_argument("--name", help="search: family or given name (part of it)")
    directory.add_argument("--rpps", help="search: RPPS number (11 digits) or national id (8 + RPPS)")
    directory.add_argument("--city", help="search: city of the structure they practise in")
    directory.set_defaults(func=cmd_directory)


def _coded(value: dict[str, str] | None) -> str:
    return "" if value is None else f"{value['code']} {value['display']}".strip()


def cmd_directory(args: argparse.Namespace) -> int:
    from gateway.commands.common import CommandError, load_config, print_rows
    from gateway.directory.client import DirectoryError, client_for

    cfg = load_config(args)
    if cfg.directory is None:
        raise CommandError("The configuration has no [directory] section; add base_url and api_key_file (see "
                           "deploy/gateway.example.toml).")
    settings = cfg.directory
    if args.action == "mailbox" and not args.address:
        raise CommandError("'directory mailbox' needs the address to look up.")
    if args.action == "search" and not (args.name or args.rpps or args.city):
        raise CommandError("'directory search' needs --name, --rpps or --city.")
    if args.rpps and not (args.rpps.isdigit() and len(args.rpps) in (11, 12)):
        raise CommandError(f"{args.rpps!r} is not an RPPS number (11 digits) nor a national id (8 + RPPS).")

    async def work() -> Any:
        async with client_for(settings) as client:
            if args.action == "mailbox":
                return await client.mailbox(args.address)
            return await client.search(name=args.name, rpps=args.rpps, city=args.city)

    try:
        result = asyncio.run(work())
    except DirectoryError as exc:
        raise CommandError(str(exc)) from None
    if args.action == "mailbox":
        if result is None:
            if args.json:
                print(json.dumps(None))
            else:
                print(f"{args.address} is not published in the Annuaire Santé (or is red-listed).")
            return 1
        if args.json:
            print(json.dumps(result.as_json(), ensure_ascii=False, indent=1))
            return 0
        who = result.practitioner
        org = result.organisation
        owner = f"{who.given} {who.family} ({who.national_id})" if who else (org.name if org else "")
        kind = f" [{result.mailbox.kind}]" if result.mailbox.kind else ""
        where = f", {org.name}" if org is not None and who is not None else ""
        print(f"{result.mailbox.address}{kind}: {owner}{where}")
        return 0
    found = [p.as_json() for p in result]
    if args.json:
        print(json.dumps(found, ensure_ascii=False, indent=1))
        return 0
    rows = [{"national_id": p["national_id"], "name": f"{p['family']} {p['given']}".strip(),
             "profession": _coded(p["profession"] or next((r["profession"] for r in p["roles"] if r["profession"]),
                                                          None)),
             "specialty": _coded(p["specialty"] or next((r["specialty"] for r in p["roles"] if r["specialty"]),
                                                        None)),
             "structures": "; ".join(f"{r['organisation']['name']} ({r['organisation']['city']})"
                                     for r in p["roles"] if r["organisation"]),
             "mailboxes": " ".join(b["address"] for b in p["mailboxes"])} for p in found]
    print_rows(rows, False)
    if result.truncated:
        print(f"(the first {len(rows)} only: the directory has more; narrow the search with --name and --city)")
    return 0
