"""What the benches print of the gateway's group commits (its ``group_commit`` debug events).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import json


def commit_stats(lines: list[str]) -> str:
    """A summary of the gateway's ``group_commit`` debug events (gateway/store/committer.py), all rounds."""
    commits = [json.loads(line) for line in lines if '"group_commit"' in line]
    if not commits:
        return "group commits: none logged"

    def spread(key: str) -> str:
        values = sorted(float(c[key]) for c in commits)
        return (f"{key.removesuffix('_ms')} mean {sum(values) / len(values):.1f} / p50 {values[len(values) // 2]:.1f}"
                f" / p99 {values[max(0, int(len(values) * 0.99) - 1)]:.1f} ms")

    sizes = [int(c["size"]) for c in commits]
    return (f"group commits: {len(commits)}, {sum(sizes) / len(commits):.1f} units each (largest {max(sizes)}); "
            f"{spread('wait_ms')}; {spread('statements_ms')}; {spread('commit_ms')}")
