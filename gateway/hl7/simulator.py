"""``gateway hl7-simulator``: a hospital system (DPI) peer for development and tests.

``send`` builds ORU^R01 / MDM^T02 / MDM^T10 messages of the ANS volet around a CDA (the ANS samples by default)
and sends them over MLLP with python-hl7's asyncio client, printing each ACK; ``serve`` is the DPI's own MLLP
server: it acknowledges (``AA``) and records as JSON lines every message the gateway sends it.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import ssl
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import hl7
from hl7.mllp import open_hl7_connection

from gateway.hl7 import codes
from gateway.hl7.ack import escape
from gateway.hl7.message import normalise, read_msh
from gateway.hl7.mllp import FrameError, FrameReader, frame

LABELS = {codes.DESTDMP: "Destinataire DMP", codes.DESTMSSANTEPS: "Destinataire PS",
          codes.DESTMSSANTEPAT: "Destinataire Patient", codes.ACK_RECEPTION: "Accusé de réception",
          codes.ACK_LECTURE: "Accusé de lecture", codes.MASQUE_PS: "Masqué aux professionnels de Santé",
          codes.INVISIBLE_PATIENT: "Document Non Visible par le patient",
          codes.INVISIBLE_REP_LEGAUX: "Non visible par les représentants Légaux du patient"}


def document_message(cda: bytes, *, kind: str = codes.ORU_R01, control_id: str, matricule: str, oid: str,
                     recipients: Sequence[str] = (), destinations: Sequence[str] = (), flags: Sequence[str] = (),
                     author: str = "801234534765^CAMPARINI^Marcel", document_id: str = "",
                     replaces: str = "", ipp: str = "IPP0001", body_ps: str | None = None,
                     sending_application: str = "DPI", facility: str = "CH_TEST") -> bytes:
    """One message of the volet carrying ``cda`` (base64 in OBX ED) and its MetaDMPMSS OBX."""
    event = kind.split("^")[1]
    version = "2.5" if kind == codes.ORU_R01 else "2.6"
    structure = "ORU_R01" if kind == codes.ORU_R01 else "MDM_T02"
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    segments = [
        f"MSH|^~\\&|{sending_application}|{facility}|MSSANTE|{facility}|{stamp}||{kind}^{structure}|{control_id}|P|"
        f"{version}|||||FRA|UNICODE UTF-8|||2.1^CISIS_CDA_HL7_V2",
    ]
    if kind != codes.ORU_R01:
        segments.append(f"EVN|{event}|{stamp}")
    segments.append(f"PID|1||{matricule}^^^ASIP-SANTE-INS-NIR&{oid}&ISO^INS~{ipp}^^^{facility}&1.2.250.1.999.1&ISO^PI"
                    "||PATIENT^TEST")
    segments.append("PV1|1|O")
    if kind == codes.ORU_R01:
        segments.append("ORC|RE")
        segments.append(f"OBR|1|||11502-2^CR d'examens biologiques^LN|||{stamp}||||||||{author}"
                        f"||||||||||F|||||||{author}")
    else:
        segments.append(f"TXA|1|11502-2^CR d'examens biologiques^LN|TEXT|{stamp}|{author}||||{author}|||"
                        f"{document_id}|{replaces}||||AU")
    data = base64.b64encode(cda).decode("ascii")
    segments.append(f"OBX|1|ED|11502-2^CR d'examens biologiques^LN||^TEXT^XML^Base64^{data}||||||F")
    for address in recipients:
        segments.append(f"PRT||UC||RCT^Results Copies To^participation|||||||||||^^X.400^{escape(address)}")
    n = 1
    for code in [*destinations, *flags]:
        n += 1
        segments.append(f"OBX|{n}|CE|{code}^{LABELS.get(code, code)}^MetaDMPMSS||Y^^expandedYes-NoIndicator||||||F")
    if body_ps is not None:
        n += 1
        encoded = base64.b64encode(body_ps.encode()).decode("ascii")
        segments.append(f"OBX|{n}|ED|{codes.CORPSMAIL_PS}^Corps du mail pour un PS^MetaDMPMSS||^TEXT^^Base64^"
                        f"{encoded}||||||F")
    return "\r".join(segments).encode("utf-8")


def ack_code(answer: bytes | str) -> tuple[str, str | None]:
    """MSA-1 and ERR-2 of an ACK, read with python-hl7."""
    text = answer.decode("utf-8") if isinstance(answer, bytes) else answer
    message = hl7.parse(text.replace("\n", "\r"))
    msa = message.segment("MSA")
    location = None
    for segment in message:
        if str(segment[0]) == "ERR":
            location = str(segment(2))
    return str(msa(1)), location


async def send(host: str, port: int, messages: Sequence[bytes], context: ssl.SSLContext | None = None,
               ack_seconds: float = 60.0) -> list[str]:
    """Send ``messages`` one after the other over one MLLP connection; the ACKs in order."""
    reader, writer = await open_hl7_connection(host, port, ssl=context, encoding="utf-8")
    answers = []
    try:
        for message in messages:
            writer.writemessage(hl7.parse(message.decode("utf-8")))
            await writer.drain()
            answers.append(str(await asyncio.wait_for(reader.readmessage(), ack_seconds)))
    finally:
        writer.close()
        await writer.wait_closed()
    return answers


def _refusal(code: str, error: str) -> str:
    """The ERR of a refusing DPI: 207 with the volet's applicationErrorCondition (``900^label``) in ERR-5."""
    number, _, label = error.partition("^")
    return (f"\rERR|||207^Application error^messageErrorCondition|E|{escape(number)}^{escape(label)}^"
            f"applicationErrorCondition|||{escape(label or number)}")


async def serve(host: str, port: int, record: Path, ready: asyncio.Event | None = None,
                context: ssl.SSLContext | None = None, answer_code: str = codes.AA, error: str = "") -> None:
    """The DPI's MLLP server: each message is recorded (JSON line) then acknowledged (``answer_code``, AA by
    default; AE/AR carry ``error`` = ``code^label`` in ERR, as a DPI that cannot file the document)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        frames = FrameReader(reader, max_bytes=64 * 1024 * 1024, read_timeout=300, frame_timeout=300)
        try:
            while (content := await frames.read()) is not None:
                header = read_msh(normalise(content))[0]
                with record.open("a", encoding="utf-8") as out:
                    out.write(json.dumps({"received_at": time.time(), "type": header.message_type,
                                          "control_id": header.control_id,
                                          "message": content.decode("utf-8", "replace")}) + "\n")
                answer = (f"MSH|^~\\&|DPI|CH_TEST|{escape(header.sending_application)}||"
                          f"{datetime.now(UTC):%Y%m%d%H%M%S}||ACK|A{escape(header.control_id)}|P|2.6\r"
                          f"MSA|{answer_code}|{escape(header.control_id)}"
                          + ("" if answer_code == codes.AA else _refusal(answer_code, error)))
                writer.write(frame(answer.encode("utf-8")))
                await writer.drain()
        except (FrameError, ConnectionError, ValueError) as exc:
            print(f"hl7-simulator: connection ended: {exc}", file=sys.stderr)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, port, ssl=context)
    print(f"hl7-simulator listening on {host}:{server.sockets[0].getsockname()[1]}", flush=True)
    if ready is not None:
        ready.set()
    async with server:
        await server.serve_forever()


def _address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host or "127.0.0.1", int(port)


def _context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.tls:
        return None
    context = ssl.create_default_context(cafile=args.ca)
    if args.certificate:
        context.load_cert_chain(args.certificate, args.key)
    return context


def main(argv: Sequence[str] | None = None) -> int:
    from gateway.samples import samples_dir

    parser = argparse.ArgumentParser(prog="gateway hl7-simulator", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("send", help="send document messages to the gateway's MLLP listener, print the ACKs")
    s.add_argument("--to", required=True, help="host:port of [hl7] listen")
    s.add_argument("--cda", default=str(samples_dir() / "cda" / "BIO-CR-BIO_2024.01_TSH_1.xml"))
    s.add_argument("--type", default="ORU^R01", choices=sorted(codes.MESSAGE_TYPES))
    s.add_argument("--control-id", default=None, help="MSH-10 (default: a fresh one per message)")
    s.add_argument("--matricule", default="279035121518989")
    s.add_argument("--oid", default="1.2.250.1.213.1.4.10")
    s.add_argument("--recipient", action="append", default=[], help="a professional's MSSanté address (PRT RCT)")
    s.add_argument("--dest", default="DESTDMP,DESTMSSANTEPS,DESTMSSANTEPAT", help="MetaDMPMSS destinations")
    s.add_argument("--count", type=int, default=1)
    for p in (s,):
        p.add_argument("--tls", action="store_true")
        p.add_argument("--ca")
        p.add_argument("--certificate")
        p.add_argument("--key")
    r = sub.add_parser("serve", help="be the DPI: acknowledge and record what the gateway sends")
    r.add_argument("--listen", default="127.0.0.1:27575")
    r.add_argument("--record", default="hl7-received.jsonl")
    r.add_argument("--answer", default=codes.AA, choices=[codes.AA, codes.AE, codes.AR],
                   help="MSA-1 answered to every message (AE/AR: a DPI refusing the documents)")
    r.add_argument("--error", default="902^Identifiant patient inconnu",
                   help="with --answer AE/AR: the applicationErrorCondition code^label put in ERR-5")
    args = parser.parse_args(argv)
    if args.mode == "serve":
        host, port = _address(args.listen)
        try:
            asyncio.run(serve(host, port, Path(args.record), answer_code=args.answer, error=args.error))
        except KeyboardInterrupt:
            pass
        return 0
    cda = Path(args.cda).read_bytes()
    destinations = [d for d in args.dest.split(",") if d]
    base = args.control_id or f"SIM{time.time_ns()}"
    messages = [document_message(cda, kind=args.type, control_id=base if args.count == 1 else f"{base}-{i}",
                                 matricule=args.matricule, oid=args.oid, recipients=args.recipient,
                                 destinations=destinations) for i in range(args.count)]
    host, port = _address(args.to)
    answers = asyncio.run(send(host, port, messages, _context(args)))
    for answer in answers:
        print(answer.replace("\r", "\n"), end="\n\n")
    return 0 if all(ack_code(a)[0] == codes.AA for a in answers) else 1


if __name__ == "__main__":
    sys.exit(main())
