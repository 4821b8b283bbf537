"""Every log line is one JSON object: structlog events, stdlib loggers (aiosmtpd, asyncio), warnings, exceptions."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: Every test here starts gateway processes (or other programs): not in make test-fast.
pytestmark = pytest.mark.slow

SCRIPT = r"""
import asyncio, logging, threading, warnings
import structlog
from gateway import logs

logs.configure("info")
structlog.get_logger("gateway.test").info("ours", mailbox_id=7)
logging.getLogger("mail.log").warning("Peer: %r", ("127.0.0.1", 4242))
logging.getLogger("mail.log").info("below the libraries' threshold")
try:
    {}["missing"]
except KeyError:
    logging.getLogger("asyncio").exception("Task exception was never retrieved")
warnings.warn("Session.login_data is deprecated and will be removed in version 2.0", DeprecationWarning)
logging.getLogger("mail.log").warning("Session.login_data is deprecated and will be removed in version 2.0")
warnings.warn("something else", UserWarning)

async def crash():
    raise RuntimeError("in a task")

async def main():
    loop = asyncio.get_running_loop()
    default = loop.get_exception_handler()
    loop.set_exception_handler(logs.asyncio_exception_handler)
    try:
        raise ConnectionResetError("peer went away")
    except ConnectionResetError as exc:
        loop.call_exception_handler({"message": "Fatal error on transport", "exception": exc})
    loop.set_exception_handler(default)
    task = loop.create_task(crash())
    await asyncio.sleep(0)
    del task

asyncio.run(main())
import gc; gc.collect()
t = threading.Thread(target=lambda: 1 / 0, name="worker"); t.start(); t.join()
raise SystemError("uncaught")
"""


def test_stdlib_aiosmtpd_asyncio_and_uncaught_lines_are_json() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    lines = result.stderr.splitlines()
    events = [json.loads(line) for line in lines]  # raises on the first line that is not JSON
    by_event = {e["event"]: e for e in events}
    assert by_event["ours"]["mailbox_id"] == 7 and by_event["ours"]["level"] == "info"
    assert by_event["Peer: ('127.0.0.1', 4242)"]["logger"] == "mail.log"
    assert "below the libraries' threshold" not in by_event
    task = by_event["Task exception was never retrieved"]
    assert "KeyError" in task["exception"] and "Traceback" in task["exception"]
    assert not any("login_data" in line for line in lines)
    assert any("something else" in e["event"] and e["logger"] == "py.warnings" for e in events)
    asyncio_task = [e for e in events if e.get("logger") == "asyncio" and "RuntimeError" in e.get("exception", "")]
    assert len(asyncio_task) == 1
    handled = [e for e in events if e["event"] == "asyncio_error"]
    assert len(handled) == 1 and handled[0]["detail"] == "Fatal error on transport"
    assert "ConnectionResetError: peer went away" in handled[0]["exception"]
    uncaught = [e for e in events if e["event"] == "uncaught_exception"]
    assert len(uncaught) == 2 and "ZeroDivisionError" in uncaught[0]["exception"]
    assert "SystemError: uncaught" in uncaught[1]["exception"]
