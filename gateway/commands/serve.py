"""``gateway serve``, its worker processes, and ``gateway init`` (a development configuration).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway import logs
from gateway.commands.common import config_path, load_config


def register(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    """The parsers of this group, added to ``gateway``'s subcommands."""
    serve = with_config(sub.add_parser("serve", help="run the gateway"))
    serve.add_argument("--banner", action="store_true", help="print how to connect once listening")
    serve.set_defaults(func=cmd_serve)
    worker = with_config(sub.add_parser("worker", help="(started by 'gateway serve': one worker process)"))
    worker.add_argument("--index", type=int, required=True, help="the worker's number (0 runs once-only work)")
    worker.add_argument("--channel", type=int, required=True, help="file descriptor of the supervisor's channel")
    worker.add_argument("--parent", type=int, required=True, help="the supervisor's process id")
    worker.add_argument("--listen", action="append", help="KEY=FD of an inherited listening socket")
    worker.set_defaults(func=cmd_worker)

    init = sub.add_parser("init", help="create a development configuration, PKI, database and demo accounts")
    init.add_argument("--data", default="data", help="data folder (git-ignored)")
    init.add_argument("--force", action="store_true", help="overwrite an existing configuration")
    init.set_defaults(func=cmd_init)


def cmd_serve(args: argparse.Namespace) -> int:
    """One process (``[gateway] workers = 1``) or a supervisor and its workers (gateway/process)."""
    from gateway.process.reload import read_config
    from gateway.process.worker import line_stderr

    path = config_path(args)
    if not path.is_file():
        load_config(args)  # the usual sentence for a missing file
    text, cfg = read_config(path)
    line_stderr()
    from gateway.ops import multiprocess

    multiprocess.prepare(cfg)  # metrics of every worker process add up in one scrape
    logs.configure(cfg.log_level, path=cfg.log_file)

    def banner(*_: Any) -> None:
        if args.banner:
            from gateway.devsetup import connection_banner

            print(connection_banner(cfg, path.parent), flush=True)

    try:
        from gateway.store import db

        asyncio.run(db.check_store(cfg.database_url))  # never create the store a mistyped key names
        if cfg.workers > 1:
            from gateway.process import supervisor

            return supervisor.serve(path, text, cfg, on_ready=banner)
        from gateway.app import serve
        from gateway.process.loop import DaemonLoop
        from gateway.process.worker import forget_in_children

        forget_in_children([])

        from gateway.process.loop import named_listeners

        with asyncio.Runner(loop_factory=lambda: DaemonLoop(names=named_listeners(cfg))) as runner:
            runner.run(serve(cfg, on_ready=banner, config_path=path))
    except OSError as exc:
        print(f"gateway: cannot start a listener: {exc.strerror or exc}.", file=sys.stderr)
        return 1
    finally:
        multiprocess.finish()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """A worker process of ``gateway serve`` (started by the supervisor with its sockets and channel)."""
    from gateway.app import Gateway
    from gateway.process import worker

    return worker.main(args.index, args.channel, args.listen or [], args.parent, Gateway)


def cmd_init(args: argparse.Namespace) -> int:
    from gateway.devsetup import initialise

    path = initialise(Path(args.data), force=args.force)
    print(f"Development configuration written to {path}; start the gateway with: gateway serve --config {path}")
    return 0
