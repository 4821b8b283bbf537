"""``gateway man --output DIR``: manual pages (roff, section 1) written from the command line's own parser.

One page per command group (``gateway-mailbox.1``, ``gateway-mail.1``...) and ``gateway.1`` listing them, so the
pages say exactly what ``--help`` says and cannot drift from the code. Install them with
``install -m 644 DIR/*.1 /usr/local/share/man/man1/``.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def register(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    man = sub.add_parser("man", help="write the manual pages (roff) of every command group",
                         description="Write one manual page per command group, from the parser itself.")
    man.add_argument("--output", type=Path, required=True, metavar="DIR",
                     help="folder to write gateway.1 and gateway-COMMAND.1 into (created if missing)")
    man.set_defaults(func=cmd_man)


def escape(text: str) -> str:
    """Text safe in roff: backslashes and hyphens escaped, non-ASCII as ``\\[uXXXX]``, no line taken for a
    request."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    out = "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in out)
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in out.splitlines())


def _subparsers(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, help, parser) of each subcommand, in the order they were added."""
    found: list[tuple[str, str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            found.extend((name, helps.get(name, ""), sub) for name, sub in action.choices.items())
    return found


def _options(parser: argparse.ArgumentParser) -> list[str]:
    lines: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction | argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        if action.option_strings:
            metavar = "" if action.nargs == 0 else f" {action.metavar or action.dest.upper()}"
            term = ", ".join(f"\\fB{escape(option)}\\fR{escape(metavar)}" for option in action.option_strings)
        else:
            term = f"\\fI{escape(str(action.metavar or action.dest))}\\fR"
            if action.choices:
                term += " (" + escape(" | ".join(str(choice) for choice in action.choices)) + ")"
        lines += [".TP", term, escape(action.help or "")]
    return lines


def _usage(parser: argparse.ArgumentParser) -> str:
    return " ".join(parser.format_usage().removeprefix("usage: ").split())


def _header(name: str, summary: str, version: str) -> list[str]:
    date = time.strftime("%Y-%m-%d", time.gmtime(int(os.environ.get("SOURCE_DATE_EPOCH", time.time()))))
    return [f'.TH "{name.upper()}" 1 "{date}" "gateway {version}" "Gateway Manual"', ".SH NAME",
            f"{escape(name)} \\- {escape(summary)}"]


def group_page(command: str, summary: str, parser: argparse.ArgumentParser, version: str) -> str:
    lines = _header(f"gateway-{command}", summary, version)
    lines += [".SH SYNOPSIS", escape(_usage(parser))]
    if parser.description:
        lines += [".SH DESCRIPTION", escape(parser.description)]
    options = _options(parser)
    if options:
        lines += [".SH OPTIONS", *options]
    for name, help_text, sub in _subparsers(parser):
        lines += [f'.SH "{escape(command.upper())} {escape(name.upper())}"', escape(help_text), ".PP",
                  escape(_usage(sub))]
        if sub.description and sub.description != help_text:
            lines += [".PP", escape(sub.description)]
        lines += _options(sub)
    lines += [".SH SEE ALSO", "\\fBgateway\\fR(1)", ""]
    return "\n".join(lines)


def delegated_page(command: str, summary: str, module: str, version: str) -> str:
    """A command group with its own parser: its ``--help`` text, as it prints it."""
    import importlib

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        importlib.import_module(module).main(["--help"])
    lines = _header(f"gateway-{command}", summary, version)
    lines += [".SH DESCRIPTION", ".nf", escape(out.getvalue()), ".fi", ".SH SEE ALSO", "\\fBgateway\\fR(1)", ""]
    return "\n".join(lines)


def main_page(parser: argparse.ArgumentParser, groups: list[tuple[str, str]], version: str) -> str:
    lines = _header("gateway", parser.description or "", version)
    lines += [".SH SYNOPSIS", "\\fBgateway\\fR [\\fB\\-\\-version\\fR] \\fICOMMAND\\fR [\\fIoptions\\fR]",
              ".SH DESCRIPTION", escape(parser.description or ""),
              ".PP", escape("Every command reads the configuration file given with --config, or $GATEWAY_CONFIG, or "
                            "data/gateway.toml. Errors are one sentence on standard error; the exit status is 2 "
                            "for a bad configuration or argument, 1 for a refused operation, 0 otherwise."),
              ".SH COMMANDS"]
    for name, summary in groups:
        lines += [".TP", f"\\fBgateway\\-{escape(name)}\\fR(1)", escape(summary)]
    lines += [".SH SEE ALSO", ", ".join(f"\\fBgateway\\-{escape(name)}\\fR(1)" for name, _ in groups), ""]
    return "\n".join(lines)


def write_pages(folder: Path, version: str, parser: argparse.ArgumentParser,
                delegated: dict[str, tuple[str, str]]) -> list[Path]:
    """Write every page of ``parser`` into ``folder`` (``delegated``: groups with a parser of their own, by
    command name: module and help); their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    groups: list[tuple[str, str]] = []
    for name, help_text, sub in _subparsers(parser):
        if name in ("worker", "man"):
            continue
        summary = help_text.split(";")[0]
        if name in delegated:
            text = delegated_page(name, summary, delegated[name][0], version)
        else:
            text = group_page(name, summary, sub, version)
        path = folder / f"gateway-{name}.1"
        path.write_text(text, encoding="utf-8")
        written.append(path)
        groups.append((name, summary))
    path = folder / "gateway.1"
    path.write_text(main_page(parser, groups, version), encoding="utf-8")
    return [path, *written]


def cmd_man(args: argparse.Namespace) -> int:
    from gateway.commands.common import version

    # The parser this command was parsed by and the delegated table, handed in by gateway/cli.py's dispatch.
    pages = write_pages(args.output, version(), args.root_parser, args.delegated)
    print(f"{len(pages)} manual pages written to {args.output}.")
    return 0
