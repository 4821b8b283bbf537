"""The ``gateway`` command: builds the parser from the command groups of gateway/commands and dispatches.

Every subcommand reads the same configuration file (``--config``, or ``$GATEWAY_CONFIG``, or
``data/gateway.toml``). Errors a person will read are one sentence; the exit status is 2 for a bad
configuration or argument and 1 for a refused operation. Each group is a module of gateway/commands with
``register(sub, with_config)``; what they share (``CommandError``, ``load_config``, ``run_in_store``,
``print_rows``) is gateway/commands/common.py, also importable from here.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import os
import sys

from gateway import logs
from gateway.commands.common import (
    DEFAULT_CONFIG,
    CommandError,
    load_config,
    print_json,
    print_rows,
    run_in_store,
    version,
)
from gateway.commands.common import config_path as _config_path
from gateway.config import ConfigError

__all__ = ["DEFAULT_CONFIG", "DELEGATED", "CommandError", "ConfigError", "_config_path", "build_parser",
           "load_config", "main", "print_json", "print_rows", "run_in_store", "version"]


# --- parser ---------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="Secure health-messaging gateway (MSSanté).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}",
                        help="print the gateway's version and exit")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", help=f"configuration file (default $GATEWAY_CONFIG or {DEFAULT_CONFIG})")
        p.add_argument("--actor", default=os.environ.get("USER", "admin"), help="who does this (for the trail)")
        p.add_argument("--json", action="store_true", help="list, show: print JSON only (for scripts)")
        return p

    from gateway.commands import conversation, identity, mailbox, pki, queue, serve

    serve.register(sub, with_config)
    mailbox.register(sub, with_config)
    identity.register(sub, with_config)
    conversation.register(sub, with_config)
    pki.register(sub, with_config)
    queue.register(sub, with_config)
    from gateway.commands import dmp, dns_records, documents, throttle

    documents.register(sub, with_config)
    dns_records.register(sub, with_config)
    dmp.register(sub, with_config)
    throttle.register(sub, with_config)
    from gateway.commands import directory

    directory.register(sub, with_config)
    from gateway.commands import console

    console.register(sub, with_config)
    from gateway.commands import psc

    psc.register(sub, with_config)
    from gateway.commands import backup, mail_transfer, manpages, migrate

    migrate.register(sub, with_config)
    mail_transfer.register(sub, with_config)
    backup.register(sub, with_config)
    manpages.register(sub, with_config)
    for name, (_, help_text) in DELEGATED.items():
        sub.add_parser(name, help=f"{help_text}; see 'gateway {name} --help'", add_help=False)
    return parser


#: Command groups with their own parser, handed the rest of the command line as is.
DELEGATED = {
    "card-agent": ("gateway.card.agent", "the workstation's smart-card agent"),
    "card": ("gateway.card.admin", "register, list, deactivate card agents"),
    "dmp-simulator": ("gateway.dmp_bridge.simulator", "a local DMP speaking ITI-41/ITI-18 for development and tests"),
    "insi-simulator": ("gateway.ins_matching.insi_simulator", "a local INSi over mutual TLS, from test identities"),
    "psc-simulator": ("gateway.psc.simulator", "a local Pro Sante Connect (OpenID Connect) for development and tests"),
    "directory-simulator": ("gateway.directory.simulator", "a local Annuaire Santé (FHIR) for development and tests"),
    "hl7-simulator": ("gateway.hl7.simulator", "a hospital system (DPI) peer sending and receiving HL7 over MLLP"),
    "dev-stack": ("gateway.devstack", "the development stack: DMP simulator, gateway and demo (make run)"),
}


def main(argv: list[str] | None = None) -> int:
    """Run one command; a reader that closed the pipe (``gateway mailbox list | head -1``) ends it quietly."""
    try:
        code = _main(argv)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # Nothing more can be written; point stdout at /dev/null so the interpreter's final flush is silent.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0


def _main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in DELEGATED:
        import importlib

        module = importlib.import_module(DELEGATED[argv[0]][0])
        return int(module.main(argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command not in ("serve", "worker"):
        logs.configure("warning")  # the trail is in the store; the command prints its own one-line result
    for name in getattr(args, "needs", {}).get(getattr(args, "action", None), []):  # set by each group's parser
        if getattr(args, name, None) in (None, ""):
            parser.error(f"'{args.command} {args.action}' needs {name.replace('_', '-')}")
    args.root_parser, args.delegated = parser, DELEGATED  # for commands that describe the whole parser (man)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    # The importable module's main, so that ``python -m gateway.cli`` and the ``gateway`` script are one module.
    from gateway import cli

    sys.exit(cli.main())
