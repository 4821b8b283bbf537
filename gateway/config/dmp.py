"""[dmp], [[dmp.professional]] and [card]: the DMP endpoint and deposit policy (R12-R16), card presence (R14).

The allowed modes and visibility codes are those of :mod:`gateway.codes.dmp`.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gateway.codes.dmp import VISIBILITY_CODES, AccessMode
from gateway.config.listeners import Listen, TLSSettings, _listen
from gateway.config.reader import ConfigError, PathOf, _array_of_tables, _positive, _readable, _Reader


@dataclass(frozen=True)
class DmpProfessional:
    """A professional of the structure as the DMP knows them (author of deposits, VIHF subject)."""

    national_id: str  # "8" + RPPS
    family: str
    given: str
    mailbox: str
    #: Profession code (TRE_G15, e.g. "10" médecin) and its label: VIHF subject:role and XDS authorRole.
    #: Empty: read from the Annuaire Santé (gateway/dmp_bridge/authors.py); given, it overrides the directory.
    role: str = ""
    role_name: str = ""
    #: Specialty code (TRE_R38, e.g. "SM26") and its label: VIHF subject:role and XDS authorSpecialty.
    #: Empty: read from the Annuaire Santé; given, it overrides the directory.
    specialty: str = ""
    specialty_name: str = ""


@dataclass(frozen=True)
class DmpSettings:
    """The DMP bridge: where the DMP is, who the structure is, and its deposit policy (R12–R16)."""

    repository_url: str
    registry_url: str
    ca_file: Path
    client_certificate: Path
    client_key: Path
    signing_certificate: Path
    signing_key: Path
    structure_id: str
    structure_name: str
    source_id: str
    default_mode: str = "systematic"
    modes: tuple[tuple[str, str], ...] = ()
    default_visibility: frozenset[str] = frozenset()
    professionals: tuple[DmpProfessional, ...] = ()
    concurrency: int = 8
    #: Seconds before the first retry of a deposit after a transport error, doubling up to ``retry_ceiling``.
    retry_base: float = 30.0
    retry_ceiling: float = 3600.0
    #: Seconds a sent deposit belongs to the process that sent it; after that (the process died) another resends.
    lease: float = 300.0
    #: The software's DMP homologation number (VIHF LPS_ID_HOMOLOGATION_DMP), its name and version (LPS_Nom,
    #: LPS_Version; the version defaults to the package's).
    lps_homologation: str = "DEV-HOMOLOGATION"
    lps_name: str = "MSS gateway"
    lps_version: str = ""
    #: VIHF Secteur_Activite and the structure's healthcareFacilityTypeCode (TRE_R02, one code for both).
    activity_sector: str = "SA07"
    activity_sector_name: str = ""
    #: The submission set's contentTypeCode (1.2.250.1.213.2.2) and its label.
    content_type_code: str = "04"
    content_type_name: str = ""


@dataclass(frozen=True)
class CardSettings:
    """The endpoint card agents report to, over mutual TLS with the agents' certificates."""

    listen: Listen
    client_ca: Path
    presence_timeout: float = 3600.0



_ACCESS_MODES = tuple(mode.value for mode in AccessMode)
_VISIBILITY = tuple(VISIBILITY_CODES)


#: A code of an ANS terminology (TRE_*): letters, digits, '_' and '-'.
_DMP_CODE = re.compile(r"[A-Za-z0-9_-]{1,32}")


def _label(reader: _Reader, name: str) -> str:
    """An optional display name of a code (XDS Name, VIHF displayName)."""
    value = reader.get(name, str, "").strip()
    reader.check(name, len(value) <= 200 and value.isprintable() and "^" not in value,
                 "must be a printable label of at most 200 characters without '^'")
    return value


def _professionals(dmp: _Reader) -> list[DmpProfessional]:
    """[[dmp.professional]]: the structure's authors of deposits (R12), their role and specialty codes."""
    professionals = []
    for pro in _array_of_tables(dmp, "professional"):
        national_id = pro.get("national_id", str, required=True)
        pro.check("national_id", national_id.isdigit() and len(national_id) == 12 and national_id[0] == "8",
                  "must be '8' followed by the 11-digit RPPS number")
        # Without role or specialty they come from the Annuaire Santé ([directory]); given, they override it.
        role = pro.get("role", str, "")
        pro.check("role", role == "" or (_DMP_CODE.fullmatch(role) is not None and role.isdigit()),
                  "must be a profession code of TRE_G15 such as '10' (médecin), or absent to read it from the "
                  "Annuaire Santé")
        specialty = pro.get("specialty", str, "")
        pro.check("specialty", specialty == "" or _DMP_CODE.fullmatch(specialty) is not None,
                  "must be a specialty code of TRE_R38 such as 'SM26' (médecine générale), or absent to read it "
                  "from the Annuaire Santé")
        professionals.append(DmpProfessional(national_id, pro.get("family", str, required=True),
                                             pro.get("given", str, required=True),
                                             pro.get("mailbox", str, required=True).lower(),
                                             role, _label(pro, "role_name"), specialty,
                                             _label(pro, "specialty_name")))
        pro.finish()
    return professionals


def _dmp_section(root: _Reader, path: PathOf) -> DmpSettings | None:
    """[dmp] and [[dmp.professional]]: the DMP endpoint, the structure's certificates and its deposit policy."""
    dmp = root.table("dmp")
    if dmp is None:
        return None
    urls = {}
    for name in ("repository_url", "registry_url"):
        urls[name] = dmp.get(name, str, required=True)
        dmp.check(name, urls[name].startswith("https://"), "must be an https:// URL (the DMP is reached over TLS)")
    files: dict[str, Path] = {}
    for name in ("ca_file", "client_certificate", "client_key", "signing_certificate", "signing_key"):
        p = path(dmp, name)
        assert p is not None
        _readable(dmp, name, p)
        files[name] = p
    mode = dmp.get("default_mode", str, "systematic")
    dmp.check("default_mode", mode in _ACCESS_MODES, f"must be one of {', '.join(_ACCESS_MODES)} (R14)")
    modes = dmp.get("modes", dict, {})
    dmp.check("modes", all(isinstance(v, str) and v in _ACCESS_MODES for v in modes.values()),
              f"must map mailbox addresses to one of {', '.join(_ACCESS_MODES)} (R14)")
    visibility = dmp.get("default_visibility", list, [])
    dmp.check("default_visibility", all(v in _VISIBILITY for v in visibility),
              f"must list codes among {', '.join(_VISIBILITY)} (R16)")
    concurrency = _positive(dmp, "concurrency", 8, int)
    retry_base = _positive(dmp, "retry_base", 30.0, float)
    retry_ceiling = _positive(dmp, "retry_ceiling", 3600.0, float)
    dmp.check("retry_ceiling", retry_ceiling >= retry_base, "must not be below retry_base")
    lease = _positive(dmp, "lease", 300.0, float)
    professionals = _professionals(dmp)
    lps: dict[str, str] = {}
    for name, default in (("lps_homologation", DmpSettings.lps_homologation), ("lps_name", DmpSettings.lps_name),
                          ("lps_version", "")):
        lps[name] = dmp.get(name, str, default).strip()
        dmp.check(name, (lps[name] == "" and name == "lps_version")
                  or (0 < len(lps[name]) <= 64 and lps[name].isprintable() and "^" not in lps[name]),
                  "must be 1 to 64 printable characters without '^' (it is a VIHF attribute)")
    sector = dmp.get("activity_sector", str, DmpSettings.activity_sector)
    dmp.check("activity_sector", len(sector) == 4 and sector.startswith("SA") and sector[2:].isdigit(),
              "must be a TRE_R02 sector code such as 'SA07' (cabinet individuel) or 'SA25' (laboratoire); it is "
              "both the VIHF Secteur_Activite and the healthcareFacilityTypeCode of deposits")
    content_type = dmp.get("content_type_code", str, DmpSettings.content_type_code)
    dmp.check("content_type_code", _DMP_CODE.fullmatch(content_type) is not None,
              "must be a submission set contentTypeCode (1.2.250.1.213.2.2) such as '04'")
    settings = DmpSettings(
        urls["repository_url"], urls["registry_url"], files["ca_file"], files["client_certificate"],
        files["client_key"], files["signing_certificate"], files["signing_key"],
        dmp.get("structure_id", str, required=True), dmp.get("structure_name", str, required=True),
        dmp.get("source_id", str, required=True), mode,
        tuple((k.lower(), v) for k, v in modes.items()), frozenset(visibility), tuple(professionals), concurrency,
        retry_base, retry_ceiling, lease, lps["lps_homologation"], lps["lps_name"], lps["lps_version"], sector,
        _label(dmp, "activity_sector_name"), content_type, _label(dmp, "content_type_name"))
    dmp.finish()
    return settings


def _card_section(root: _Reader, path: PathOf, tls: TLSSettings) -> CardSettings | None:
    """[card]: where smart-card agents report insertions and removals (R14's "patient present" signal)."""
    card = root.table("card")
    if card is None:
        return None
    listen = _listen(card, "listen")
    if listen is None:
        raise ConfigError("Configuration key 'card.listen' is missing; it must look like 'host:port'.")
    client_ca = path(card, "client_ca", required=False) or tls.client_ca
    if client_ca is None:
        raise ConfigError("Configuration key 'card.client_ca' is missing (and tls.client_ca is not set); "
                          "card agents authenticate with certificates.")
    _readable(card, "client_ca", client_ca)
    timeout = _positive(card, "presence_timeout", 3600.0, float)
    card.finish()
    return CardSettings(listen, client_ca, timeout)
