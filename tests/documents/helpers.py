"""Helpers for the document readers' tests: the ANS samples, variants of them, and hostile zips."""

from __future__ import annotations

import struct
import zlib

from gateway.ins_matching.matching import IdentityRecord
from gateway.samples import samples_dir

SAMPLES = samples_dir()
CDA_DIR = SAMPLES / "cda"
BIO = CDA_DIR / "BIO-CR-BIO_2024.01_TSH_1.xml"
TEST_MATRICULE = "279035121518989"
TEST_OID = "1.2.250.1.213.1.4.10"


def sample(name: str) -> bytes:
    return (CDA_DIR / name).read_bytes()


def variant(data: bytes, *replacements: tuple[str, str]) -> bytes:
    """A copy of a sample with exact text replacements (each must occur), for a test's own variant."""
    text = data.decode("utf-8")
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text.encode("utf-8")


def identity(status: str = "qualifiée", **changes: str) -> IdentityRecord:
    """The samples' test patient as a repository identity (ANS test INS, OID INS-NIR test)."""
    fields = dict(matricule=TEST_MATRICULE, oid=TEST_OID, birth_name="PAT-TROIS", first_names="DOMINIQUE MARIE-LOUISE",
                  first_name="DOMINIQUE", birth_date="1979-03-28", sex="F", birth_place="51215", status=status)
    fields.update(changes)
    return IdentityRecord(**fields)  # type: ignore[arg-type]


def raw_zip(entries: list[dict[str, object]]) -> bytes:
    """A zip written byte by byte, so that tests can lie in headers (names, sizes, CRCs, flags).

    Each entry: ``name`` (str), ``data`` (bytes as stored), ``method`` (0 or 8), ``crc``, ``size`` (declared
    uncompressed size), optional ``flags`` and ``external_attr``.
    """
    local = bytearray()
    central = bytearray()
    for entry in entries:
        name = str(entry["name"]).encode("utf-8")
        data = bytes(entry["data"])  # type: ignore[call-overload]
        offset = len(local)
        fields = (20, int(entry.get("flags", 0x800)), int(entry.get("method", 8)), 0, 0x21,  # type: ignore[call-overload]
                  int(entry["crc"]), len(data), int(entry["size"]))  # type: ignore[call-overload]
        local += struct.pack("<4s5H3L2H", b"PK\x03\x04", *fields, len(name), 0) + name + data
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 0x0314, *fields, len(name), 0, 0, 0, 0,
                               int(entry.get("external_attr", 0)), offset) + name  # type: ignore[call-overload]
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), len(local), 0)
    return bytes(local + central + end)


def deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def entry(name: str, data: bytes, **changes: object) -> dict[str, object]:
    """An honest deflated entry, with optional lies in ``changes``."""
    fields: dict[str, object] = dict(name=name, data=deflate(data), method=8, crc=zlib.crc32(data), size=len(data))
    fields.update(changes)
    return fields


def zeros_bomb(gigabytes: float) -> tuple[bytes, int]:
    """A raw deflate stream that inflates to about ``gigabytes`` GB of zeros, built in ~1 s from one block.

    After a full flush the compressor's output for the next identical input is identical, so one compressed
    megabyte of zeros can be repeated. Returns (stream, inflated size).
    """
    megabyte = bytes(1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(megabyte) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(megabyte) + compressor.flush(zlib.Z_FULL_FLUSH)
    count = int(gigabytes * 1024)
    tail = compressor.flush()
    return first + block * (count - 1) + tail, count << 20
