"""A virtual card for the PC/SC tests, run by Debian's python3 with the ``python3-virtualsmartcard`` library.

Usage: ``virtual_card.py --port 35963 --atr <hex> [--aid <hex> ...]``. It connects to the virtual reader
(``vsmartcard-vpcd``) on 127.0.0.1 -- never the library's reversed mode, which listens and connects outward --,
answers as an ISO 7816 card with the given ATR and one DF per application identifier, and is "removed" when the
process ends. Two Debian wrinkles are handled here: the library lives outside the default ``sys.path`` and
imports ``Crypto`` while Debian ships ``Cryptodome``; and without ``TCP_QUICKACK`` each APDU waits ~40 ms for a
delayed ACK.
"""

from __future__ import annotations

import argparse
import importlib
import socket
import sys
from typing import Any

LIBRARY = "/usr/lib/python3/site-packages/virtualsmartcard"


def _import_library() -> tuple[Any, Any]:
    sys.path.insert(0, LIBRARY)
    cryptodome = importlib.import_module("Cryptodome")
    sys.modules.setdefault("Crypto", cryptodome)
    for sub in ("Cipher", "Hash", "PublicKey", "Random", "Util", "Signature", "Protocol"):
        try:
            sys.modules.setdefault(f"Crypto.{sub}", importlib.import_module(f"Cryptodome.{sub}"))
        except ImportError:
            pass
    from virtualsmartcard.SmartcardFilesystem import DF
    from virtualsmartcard.VirtualSmartcard import VirtualICC

    return VirtualICC, DF


class QuickAck:
    """The card's socket, asking the kernel to acknowledge at once before each read (Linux resets the flag)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def recv(self, size: int) -> bytes:
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        return self._sock.recv(size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--atr", required=True)
    parser.add_argument("--aid", action="append", default=[])
    parser.add_argument("--no-quickack", action="store_true", help="keep delayed ACKs (for the benchmark)")
    args = parser.parse_args()
    virtual_icc, df = _import_library()
    icc = virtual_icc(None, "iso7816", "127.0.0.1", args.port)  # a host name: normal (not reversed) mode
    icc.os.atr = bytes.fromhex(args.atr)
    for number, aid in enumerate(args.aid):
        icc.os.mf.append(df(icc.os.mf, 0xD100 + number, dfname=bytes.fromhex(aid)))
    if not args.no_quickack:
        icc.sock = QuickAck(icc.sock)
    print("card ready", flush=True)
    icc.run()


if __name__ == "__main__":
    main()
