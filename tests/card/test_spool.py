"""The agent's on-disk queue: order kept, nothing lost when the gateway is away, bounded, several writers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.card.spool import Delivery, Spool, SpoolFull


def test_events_leave_in_the_order_they_came(tmp_path: Path):
    spool = Spool(tmp_path / "spool")
    for n in range(12):
        spool.append({"n": n})
    sent: list[int] = []
    assert spool.flush(lambda e: sent.append(e["n"]) or Delivery.DELIVERED) is True
    assert sent == list(range(12)) and len(spool) == 0


def test_gateway_away_keeps_everything_then_resumes_at_the_same_event(tmp_path: Path):
    spool = Spool(tmp_path / "spool")
    for n in range(5):
        spool.append({"n": n})
    seen: list[int] = []

    def flaky(event: dict[str, Any]) -> Delivery:
        seen.append(event["n"])
        return Delivery.RETRY if event["n"] == 2 and seen.count(2) == 1 else Delivery.DELIVERED

    assert spool.flush(flaky) is False
    assert len(spool) == 3
    reopened = Spool(tmp_path / "spool")  # as after an agent restart
    assert reopened.flush(flaky) is True
    assert seen == [0, 1, 2, 2, 3, 4]


def test_sequence_keeps_growing_after_the_queue_empties(tmp_path: Path):
    spool = Spool(tmp_path / "spool")
    first = spool.append({"n": 1})
    spool.flush(lambda e: Delivery.DELIVERED)
    second = spool.append({"n": 2})
    assert second.name > first.name


def test_rejected_event_is_set_aside_and_the_next_one_sent(tmp_path: Path):
    spool = Spool(tmp_path / "spool")
    for n in range(3):
        spool.append({"n": n})
    sent: list[int] = []

    def judge(event: dict[str, Any]) -> Delivery:
        sent.append(event["n"])
        return Delivery.REJECTED if event["n"] == 1 else Delivery.DELIVERED

    assert spool.flush(judge) is True
    assert sent == [0, 1, 2]
    assert len(list(spool.rejected.iterdir())) == 1


def test_corrupt_file_is_set_aside_not_sent(tmp_path: Path):
    spool = Spool(tmp_path / "spool")
    spool.append({"n": 0})
    (spool.folder / f"{5:020d}.json").write_bytes(b"{not json")
    spool.append({"n": 1})
    sent: list[int] = []
    assert spool.flush(lambda e: sent.append(e["n"]) or Delivery.DELIVERED) is True
    assert sent == [0, 1]
    assert [p.name for p in spool.rejected.iterdir()] == [f"{5:020d}.json"]


def test_full_queue_refuses_new_events(tmp_path: Path):
    spool = Spool(tmp_path / "spool", max_events=3)
    for n in range(3):
        spool.append({"n": n})
    with pytest.raises(SpoolFull):
        spool.append({"n": 3})


def test_oversized_event_is_refused(tmp_path: Path):
    with pytest.raises(ValueError):
        Spool(tmp_path / "spool").append({"x": "y" * 10000})


def test_only_one_sender_at_a_time(tmp_path: Path):
    spool = Spool(tmp_path / "spool")
    spool.append({"n": 0})
    inner: list[bool | None] = []

    def send(event: dict[str, Any]) -> Delivery:
        inner.append(Spool(tmp_path / "spool").flush(lambda e: Delivery.DELIVERED))
        return Delivery.DELIVERED

    assert spool.flush(send) is True
    assert inner == [None], "a second sender stands back while the first one works"


APPEND_MANY = """
import sys
from pathlib import Path
from gateway.card.spool import Spool
spool = Spool(Path(sys.argv[1]))
for n in range(25):
    spool.append({"tag": int(sys.argv[2]), "n": n})
"""


@pytest.mark.slow  # starts a process
def test_several_processes_append_without_losing_or_reordering(tmp_path: Path):
    folder = tmp_path / "spool"
    Spool(folder)
    procs = [subprocess.Popen([sys.executable, "-c", APPEND_MANY, str(folder), str(t)]) for t in range(3)]
    assert [p.wait(60) for p in procs] == [0, 0, 0]
    sent: list[tuple[int, int]] = []
    Spool(folder).flush(lambda e: sent.append((e["tag"], e["n"])) or Delivery.DELIVERED)
    assert len(sent) == 75
    for tag in range(3):
        assert [n for t, n in sent if t == tag] == list(range(25))
