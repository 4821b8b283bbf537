"""``gateway dns-records [--json] [--ttl N]``: the DNS records that let mail clients find the gateway.

Prints, for each professional domain and the patient domain, the SRV records of RFC 6186 and RFC 8314
(submission, submissions, IMAP, IMAPS, from the configured listeners) and the ``autoconfig`` / ``autodiscover``
CNAMEs of the gateway's host name, as zone-file lines to paste into the structure's zones (or as JSON).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any


def register(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    records = with_config(sub.add_parser("dns-records", help="DNS records for mail-client discovery (RFC 6186)"))
    records.add_argument("--ttl", type=int, default=3600, help="time to live of the records, in seconds")
    records.set_defaults(func=cmd_dns_records)


def cmd_dns_records(args: argparse.Namespace) -> int:
    from gateway.commands.common import CommandError, load_config
    from gateway.ops import dns

    if not 0 < args.ttl <= 2_147_483_647:  # RFC 2181 section 8
        raise CommandError(f"--ttl must be between 1 and 2147483647 seconds, not {args.ttl}.")
    cfg = load_config(args)
    if args.json:
        print(json.dumps([r.as_dict() for r in dns.records(cfg, args.ttl)], ensure_ascii=False, indent=1))
    else:
        print(dns.zone_text(cfg, args.ttl), end="")
    return 0
