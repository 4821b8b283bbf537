"""IHE XDM zip reader: ``IHE_XDM/<subset>/METADATA.XML`` and the documents it lists, read safely.

A zip says how big its entries are; a hostile one lies. So: the entry count is read from the end-of-central-
directory record before :mod:`zipfile` builds anything; declared sizes and ratios are checked before inflating;
entries are inflated in chunks with a running cap on size and ratio (and zipfile's own stop at the declared
size plus CRC check); names are refused when absolute, with ``..``, duplicated (case-insensitively), links,
encrypted, or archives themselves. Only METADATA.XML and the documents it lists are ever inflated.
"""

from __future__ import annotations

import hashlib
import io
import re
import stat
import struct
import zipfile
from dataclasses import dataclass, field

from lxml import etree

from gateway.documents import xds
from gateway.documents.errors import XdmRefused
from gateway.documents.limits import XDM, MiB, XdmLimits
from gateway.documents.safe_xml import parse_xml

_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_CHUNK = 64 * 1024
#: Ratio is only judged past this size: tiny entries (an empty file, a blank page) have absurd ratios.
_RATIO_FLOOR = 1 * MiB
_ARCHIVE_SUFFIXES = (".zip", ".jar", ".gz", ".tgz", ".tar", ".7z", ".rar", ".bz2", ".xz", ".zst", ".cab", ".iso")
_ARCHIVE_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b", b"7z\xbc\xaf\x27\x1c", b"Rar!", b"BZh",
                  b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd", b"MSCF")
_METADATA = re.compile(r"^(?:(?P<top>[^/]+)/)?(?P<xdm>ihe_xdm)/(?P<subset>[^/]+)/metadata\.xml$", re.IGNORECASE)
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class CodedValue:
    code: str
    scheme: str | None
    display: str | None


@dataclass(frozen=True)
class XdmDocument:
    """One document of the submission: metadata as declared, its bytes, and whether hash and size agree."""

    entry_id: str
    path: str
    mime_type: str | None
    unique_id: str | None
    patient_id: str | None
    title: str | None
    type_code: CodedValue | None
    class_code: CodedValue | None
    format_code: CodedValue | None
    confidentiality: tuple[CodedValue, ...]
    creation_time: str | None
    declared_hash: str | None
    declared_size: int | None
    content: bytes
    sha1: str
    size: int

    @property
    def hash_ok(self) -> bool:
        return self.declared_hash is not None and self.declared_hash.lower() == self.sha1

    @property
    def size_ok(self) -> bool:
        return self.declared_size is not None and self.declared_size == self.size

    @property
    def patient(self) -> tuple[str, str] | None:
        """``(matricule, OID)`` from the entry's patientId."""
        return xds.parse_cx(self.patient_id)

    @property
    def problems(self) -> tuple[str, ...]:
        """Sentences for what does not agree with the metadata; empty when all is well."""
        found = []
        if not self.hash_ok:
            found.append("The document's SHA-1 does not match the hash declared in METADATA.XML.")
        if not self.size_ok:
            found.append(f"The document is {self.size} bytes but METADATA.XML declares {self.declared_size}.")
        return tuple(found)


@dataclass(frozen=True)
class XdmSubset:
    name: str
    submission_unique_id: str | None
    source_id: str | None
    patient_id: str | None
    submission_time: str | None
    content_type: CodedValue | None
    documents: tuple[XdmDocument, ...]


@dataclass(frozen=True)
class XdmArchive:
    subsets: tuple[XdmSubset, ...]
    entries: tuple[str, ...] = field(default_factory=tuple)

    @property
    def documents(self) -> tuple[XdmDocument, ...]:
        return tuple(d for s in self.subsets for d in s.documents)


def looks_like_zip(data: bytes) -> bool:
    return data[:4] in (b"PK\x03\x04", b"PK\x05\x06")


def read_xdm(data: bytes, limits: XdmLimits = XDM) -> XdmArchive:
    """Read an XDM zip; raises :class:`XdmRefused` (and nothing else) when it is unsafe or inconsistent."""
    try:
        return _read(data, limits)
    except XdmRefused:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, RuntimeError, NotImplementedError,
            ValueError, struct.error, KeyError) as error:
        raise XdmRefused("corrupt", f"The zip archive is corrupt or unsupported ({type(error).__name__}).") from None


def _read(data: bytes, limits: XdmLimits) -> XdmArchive:
    if len(data) > limits.max_archive_bytes:
        raise XdmRefused("too-large", f"The zip is {len(data)} bytes, over the limit of {limits.max_archive_bytes}.")
    if not looks_like_zip(data):
        raise XdmRefused("not-zip", "The attachment is not a zip archive.")
    _precheck_directory(data, limits)
    archive = zipfile.ZipFile(io.BytesIO(data))
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise XdmRefused("too-many-entries", f"The zip has more than {limits.max_entries} entries.")
    by_name: dict[str, zipfile.ZipInfo] = {}
    declared_total = 0
    for info in infos:
        name = _safe_name(info.filename)
        key = name.casefold()
        if key in by_name:
            raise XdmRefused("duplicate-name", "The zip lists the same file name twice; which one is meant is "
                                               "ambiguous, so the archive is refused.")
        _check_entry(info, name, limits)
        declared_total += info.file_size
        by_name[key] = info
    if declared_total > limits.max_total_bytes:
        raise XdmRefused("too-large", f"The zip's entries declare {declared_total} bytes together, over the limit "
                                      f"of {limits.max_total_bytes}.")
    reader = _Reader(archive, limits)
    subsets = []
    for key, info in sorted(by_name.items()):
        match = _METADATA.match(key)
        if match is None:
            continue
        base = key.rsplit("/", 1)[0]
        xdm_dir = base.rsplit("/", 1)[0]
        shown = _METADATA.match(_safe_name(info.filename))
        subset_name = shown.group("subset") if shown else match.group("subset")
        subsets.append(_subset(reader, info, subset_name, base, xdm_dir, by_name, limits))
    if not subsets:
        raise XdmRefused("no-metadata", "The zip has no IHE_XDM/<subset>/METADATA.XML: it is not an IHE XDM package.")
    return XdmArchive(tuple(subsets), tuple(_safe_name(i.filename) for i in infos))


def _precheck_directory(data: bytes, limits: XdmLimits) -> None:
    """Read the entry count from the end-of-central-directory record before zipfile parses the directory."""
    tail_start = max(0, len(data) - (22 + 65535))
    position = data.rfind(_EOCD, tail_start)
    if position < 0 or position + 22 > len(data):
        raise XdmRefused("corrupt", "The zip has no end-of-central-directory record.")
    if position >= 20 and data[position - 20:position - 16] == _ZIP64_LOCATOR:
        raise XdmRefused("zip64", "ZIP64 archives (over 4 GB or 65,535 entries) are not accepted as XDM packages.")
    entries_here, entries_total = struct.unpack("<HH", data[position + 8:position + 12])
    if entries_total == 0xFFFF or entries_here == 0xFFFF:
        raise XdmRefused("zip64", "ZIP64 archives (over 4 GB or 65,535 entries) are not accepted as XDM packages.")
    if entries_total > limits.max_entries or entries_here > limits.max_entries:
        raise XdmRefused("too-many-entries", f"The zip has more than {limits.max_entries} entries.")


def _safe_name(raw: str) -> str:
    """The entry name, refused when it could write or read outside the package (zip slip)."""
    if "\x00" in raw:
        raise XdmRefused("bad-name", "A zip entry name contains a NUL character.")
    name = raw.replace("\\", "/")
    if name.startswith("/") or _DRIVE.match(name):
        raise XdmRefused("absolute-path", "A zip entry has an absolute path; the archive is refused.")
    if any(part == ".." for part in name.split("/")):
        raise XdmRefused("path-traversal", "A zip entry name contains '..'; the archive is refused.")
    return name


def _check_entry(info: zipfile.ZipInfo, name: str, limits: XdmLimits) -> None:
    if info.flag_bits & 0x1:
        raise XdmRefused("encrypted", "A zip entry is encrypted; XDM packages are not.")
    mode = info.external_attr >> 16
    if info.create_system == 3 and stat.S_ISLNK(mode):
        raise XdmRefused("symlink", "A zip entry is a symbolic link; the archive is refused.")
    if name.endswith("/"):
        return
    if name.lower().endswith(_ARCHIVE_SUFFIXES):
        raise XdmRefused("nested-archive", "The zip contains another archive; nested archives are refused.")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise XdmRefused("compression", "A zip entry uses a compression method other than stored or deflate.")
    if info.file_size > limits.max_entry_bytes:
        raise XdmRefused("entry-too-large", f"A zip entry declares {info.file_size} bytes, over the limit of "
                                            f"{limits.max_entry_bytes}.")
    if info.file_size > _RATIO_FLOOR and info.file_size > max(info.compress_size, 1) * limits.max_ratio:
        raise XdmRefused("ratio", f"A zip entry declares a compression ratio over {limits.max_ratio}:1 "
                                  "(a zip bomb); the archive is refused.")


@dataclass
class _Reader:
    archive: zipfile.ZipFile
    limits: XdmLimits
    inflated: int = 0

    def read(self, info: zipfile.ZipInfo) -> bytes:
        """Inflate one entry in chunks, stopping at the first cap crossed (declared size, limit, ratio)."""
        cap = min(info.file_size, self.limits.max_entry_bytes)
        ratio_cap = max(_RATIO_FLOOR, max(info.compress_size, 1) * self.limits.max_ratio)
        chunks: list[bytes] = []
        size = 0
        with self.archive.open(info) as stream:
            while True:
                chunk = stream.read(_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                self.inflated += len(chunk)
                if size > cap:
                    raise XdmRefused("entry-too-large", "A zip entry inflates beyond its declared size or the limit.")
                if size > ratio_cap:
                    raise XdmRefused("ratio", f"A zip entry inflates at a ratio over {self.limits.max_ratio}:1 "
                                              "(a zip bomb); the archive is refused.")
                if self.inflated > self.limits.max_total_bytes:
                    raise XdmRefused("too-large", "The zip's entries inflate beyond the total limit.")
                chunks.append(chunk)
        content = b"".join(chunks)
        if content[:8].startswith(_ARCHIVE_MAGIC):
            raise XdmRefused("nested-archive", "The zip contains another archive; nested archives are refused.")
        return content


def _children(element: etree._Element, name: str) -> list[etree._Element]:
    """Children with this local name, whatever the namespace (writers differ: rim:, ns3:, none)."""
    return list(element.iterchildren(f"{{*}}{name}"))


def _descendants(element: etree._Element, name: str) -> list[etree._Element]:
    return list(element.iter(f"{{*}}{name}"))


def _slots(element: etree._Element) -> dict[str, list[str]]:
    slots: dict[str, list[str]] = {}
    for slot in _children(element, "Slot"):
        values = [(v.text or "").strip() for vl in _children(slot, "ValueList") for v in _children(vl, "Value")]
        slots[slot.get("name", "")] = values
    return slots


def _first(slots: dict[str, list[str]], name: str) -> str | None:
    values = slots.get(name)
    return values[0] if values else None


def _localized(element: etree._Element, name: str) -> str | None:
    for holder in _children(element, name):
        for string in _children(holder, "LocalizedString"):
            if string.get("value"):
                return string.get("value")
    return None


def _classifications(element: etree._Element) -> dict[str, list[CodedValue]]:
    found: dict[str, list[CodedValue]] = {}
    for classification in _children(element, "Classification"):
        scheme = classification.get("classificationScheme")
        code = classification.get("nodeRepresentation")
        if not scheme or code is None:
            continue
        found.setdefault(scheme, []).append(CodedValue(
            code, _first(_slots(classification), "codingScheme"), _localized(classification, "Name")))
    return found


def _identifiers(element: etree._Element) -> dict[str, str]:
    return {e.get("identificationScheme", ""): e.get("value", "") for e in _children(element, "ExternalIdentifier")}


def _one(codes: dict[str, list[CodedValue]], scheme: str) -> CodedValue | None:
    values = codes.get(scheme)
    return values[0] if values else None


def _subset(reader: _Reader, info: zipfile.ZipInfo, name: str, base: str, xdm_dir: str,
            by_name: dict[str, zipfile.ZipInfo], limits: XdmLimits) -> XdmSubset:
    if info.file_size > limits.max_metadata_bytes:
        raise XdmRefused("metadata-too-large", f"METADATA.XML declares {info.file_size} bytes, over the limit of "
                                               f"{limits.max_metadata_bytes}.")
    root = parse_xml(reader.read(info), limits.max_metadata_bytes, "METADATA.XML", XdmRefused)
    packages = _descendants(root, "RegistryPackage")
    package = packages[0] if packages else None
    package_ids = _identifiers(package) if package is not None else {}
    objects = _descendants(root, "ExtrinsicObject")
    if len(objects) > limits.max_documents:
        raise XdmRefused("too-many-documents", f"METADATA.XML lists more than {limits.max_documents} documents.")
    documents = []
    for extrinsic in objects:
        slots = _slots(extrinsic)
        uri = _first(slots, "URI")
        if not uri:
            raise XdmRefused("no-uri", "A document in METADATA.XML has no URI slot naming its file.")
        entry = _resolve(uri, base, xdm_dir, by_name)
        content = reader.read(entry)
        codes = _classifications(extrinsic)
        identifiers = _identifiers(extrinsic)
        documents.append(XdmDocument(
            entry_id=extrinsic.get("id", ""), path=_safe_name(entry.filename), mime_type=extrinsic.get("mimeType"),
            unique_id=identifiers.get(xds.DE_UNIQUE_ID), patient_id=identifiers.get(xds.DE_PATIENT_ID),
            title=_localized(extrinsic, "Name"), type_code=_one(codes, xds.DE_TYPE_CODE),
            class_code=_one(codes, xds.DE_CLASS_CODE), format_code=_one(codes, xds.DE_FORMAT_CODE),
            confidentiality=tuple(codes.get(xds.DE_CONFIDENTIALITY, ())),
            creation_time=_first(slots, "creationTime"), declared_hash=_first(slots, "hash"),
            declared_size=_int(_first(slots, "size")), content=content,
            sha1=hashlib.sha1(content, usedforsecurity=False).hexdigest(), size=len(content)))
    package_codes = _classifications(package) if package is not None else {}
    return XdmSubset(
        name=name, submission_unique_id=package_ids.get(xds.SS_UNIQUE_ID), source_id=package_ids.get(xds.SS_SOURCE_ID),
        patient_id=package_ids.get(xds.SS_PATIENT_ID),
        submission_time=_first(_slots(package), "submissionTime") if package is not None else None,
        content_type=_one(package_codes, xds.SS_CONTENT_TYPE), documents=tuple(documents))


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _resolve(uri: str, base: str, xdm_dir: str, by_name: dict[str, zipfile.ZipInfo]) -> zipfile.ZipInfo:
    """The entry a URI slot names: relative to the subset folder (the rule), or to IHE_XDM/ or the root."""
    relative = _safe_name(uri).casefold()
    top = xdm_dir.rsplit("/", 1)[0] if "/" in xdm_dir else ""
    for candidate in (f"{base}/{relative}", f"{xdm_dir}/{relative}", f"{top}/{relative}" if top else relative):
        info = by_name.get(candidate)
        if info is not None and not candidate.endswith("/"):
            return info
    raise XdmRefused("missing-document", "METADATA.XML lists a document that is not in the zip.")
