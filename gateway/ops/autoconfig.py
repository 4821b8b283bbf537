"""Mail-client autoconfiguration: the documents Thunderbird and Outlook fetch to set up an account by themselves.

Both are built from the configuration alone: the gateway's ``hostname``, the submission (STARTTLS, RFC 6409),
submissions (implicit TLS, RFC 8314), IMAP (STARTTLS) and IMAPS listeners that are configured, implicit TLS
first (RFC 8314 section 5.1 prefers it), the full address as user name, and a password sent only inside TLS.

* Thunderbird's config-v1.1 format (``/.well-known/autoconfig/mail/config-v1.1.xml`` or
  ``/mail/config-v1.1.xml?emailaddress=...`` on ``autoconfig.<domain>``);
* Microsoft's Autodiscover "POX" exchange for Outlook: a POST of the request schema to
  ``/autodiscover/autodiscover.xml``, answered in the Outlook response schema (2006a).

An address in a request is used only to check that its domain is ours and to echo the login name to its
owner's client; it is never logged (a patient's address is an INS). Requests are small and read with entity
expansion, DTDs and network access off.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree

from gateway.config import Config, Listen

#: Outlook's request and response namespaces (Autodiscover POX).
REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
#: Largest Autodiscover request read (a real one is a few hundred bytes).
MAX_REQUEST = 16 * 1024
#: Longest address accepted (RFC 5321 4.5.3.1: 64-octet local part, 255-octet domain).
MAX_ADDRESS = 320

#: The provider's name in clients when ``[autoconfig] display_name`` is not given.
DISPLAY_NAME = "MSSanté"
#: Autodiscover error codes: invalid request, and no provider for the AcceptableResponseSchema asked for.
INVALID_REQUEST = 600
NO_PROVIDER = 601


@dataclass(frozen=True)
class Endpoint:
    """One listener as a mail client sees it."""

    protocol: str  # "imap" or "smtp"
    port: int
    implicit_tls: bool

    @property
    def socket_type(self) -> str:
        """Thunderbird's name for the TLS mode."""
        return "SSL" if self.implicit_tls else "STARTTLS"


def endpoints(config: Config) -> list[Endpoint]:
    """The configured client listeners, implicit TLS before STARTTLS for each protocol."""
    found: list[tuple[str, Listen | None, bool]] = [
        ("imap", config.imaps, True), ("imap", config.imap, False),
        ("smtp", config.submissions, True), ("smtp", config.submission, False)]
    return [Endpoint(protocol, listen.port, tls) for protocol, listen, tls in found if listen is not None]


def served_domains(config: Config) -> list[str]:
    """The structure's professional domains, then its patient domain."""
    return [*sorted(config.domains), config.patient_domain]


def domain_of(address: str, config: Config) -> str | None:
    """The domain of ``address`` when it looks like a mailbox address of ours, else None."""
    if not 3 <= len(address) <= MAX_ADDRESS or any(c.isspace() or c in "<>\"\\,;" for c in address):
        return None
    local, at, domain = address.rpartition("@")
    domain = domain.lower().rstrip(".")
    if not at or not local or len(local) > 64 or "@" in local:
        return None
    return domain if domain in served_domains(config) else None


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrib: str) -> etree._Element:
    element = etree.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = text
    return element


def thunderbird(config: Config, domain: str | None = None) -> bytes:
    """Thunderbird's config-v1.1 document; ``domain`` (one of ours) names the provider, else the hostname."""
    name = config.autoconfig.display_name if config.autoconfig is not None else DISPLAY_NAME
    root = etree.Element("clientConfig", version="1.1")
    provider = _sub(root, "emailProvider", id=domain or config.hostname)
    for served in served_domains(config):
        _sub(provider, "domain", served)
    _sub(provider, "displayName", f"{name} ({config.hostname})")
    _sub(provider, "displayShortName", name)
    for endpoint in endpoints(config):
        tag, kind = ("incomingServer", "imap") if endpoint.protocol == "imap" else ("outgoingServer", "smtp")
        server = _sub(provider, tag, type=kind)
        _sub(server, "hostname", config.hostname)
        _sub(server, "port", str(endpoint.port))
        _sub(server, "socketType", endpoint.socket_type)
        _sub(server, "authentication", "password-cleartext")  # inside TLS only: LOGINDISABLED / AUTH after TLS
        _sub(server, "username", "%EMAILADDRESS%")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


class AutodiscoverError(Exception):
    """An Autodiscover request we cannot answer with settings: its error code and message."""

    def __init__(self, code: int, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_comments=True, remove_pis=True)


def read_request(body: bytes) -> tuple[str, str]:
    """(EMailAddress, AcceptableResponseSchema) of an Outlook Autodiscover request."""
    if len(body) > MAX_REQUEST:
        raise AutodiscoverError(INVALID_REQUEST, "Invalid Request", 413)
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError:
        raise AutodiscoverError(INVALID_REQUEST, "Invalid Request", 400) from None
    if root.getroottree().docinfo.doctype:  # no DTD of any kind: nothing in a real request needs one
        raise AutodiscoverError(INVALID_REQUEST, "Invalid Request", 400)
    ns = {"a": REQUEST_NS}
    address = root.findtext("a:Request/a:EMailAddress", namespaces=ns)
    schema = root.findtext("a:Request/a:AcceptableResponseSchema", namespaces=ns)
    if root.tag != f"{{{REQUEST_NS}}}Autodiscover" or not address:
        raise AutodiscoverError(INVALID_REQUEST, "Invalid Request", 400)
    return address.strip(), (schema or OUTLOOK_NS).strip()


def autodiscover(config: Config, body: bytes) -> bytes:
    """The Outlook settings for the requested address, or raise :class:`AutodiscoverError`."""
    address, schema = read_request(body)
    if schema != OUTLOOK_NS:
        raise AutodiscoverError(NO_PROVIDER, "Provider is not available", 200)
    if domain_of(address, config) is None:
        raise AutodiscoverError(INVALID_REQUEST, "The address is not served here", 404)
    root = etree.Element(f"{{{RESPONSE_NS}}}Autodiscover", nsmap={None: RESPONSE_NS})
    response = etree.SubElement(root, f"{{{OUTLOOK_NS}}}Response", nsmap={None: OUTLOOK_NS})
    account = etree.SubElement(response, f"{{{OUTLOOK_NS}}}Account")

    def add(parent: etree._Element, tag: str, text: str) -> None:
        etree.SubElement(parent, f"{{{OUTLOOK_NS}}}{tag}").text = text

    add(account, "AccountType", "email")
    add(account, "Action", "settings")
    for endpoint in endpoints(config):
        protocol = etree.SubElement(account, f"{{{OUTLOOK_NS}}}Protocol")
        add(protocol, "Type", endpoint.protocol.upper())
        add(protocol, "Server", config.hostname)
        add(protocol, "Port", str(endpoint.port))
        add(protocol, "DomainRequired", "off")
        add(protocol, "LoginName", address)
        add(protocol, "SPA", "off")
        add(protocol, "SSL", "on")
        add(protocol, "Encryption", "SSL" if endpoint.implicit_tls else "TLS")  # TLS = STARTTLS for Outlook
        add(protocol, "AuthRequired", "on")
        if endpoint.protocol == "smtp":
            add(protocol, "UsePOPAuth", "off")
            add(protocol, "SMTPLast", "off")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8", pretty_print=True))


def autodiscover_error(error: AutodiscoverError) -> bytes:
    """The Autodiscover error document (ErrorCode 600 or 601)."""
    root = etree.Element(f"{{{RESPONSE_NS}}}Autodiscover", nsmap={None: RESPONSE_NS})
    response = etree.SubElement(root, f"{{{RESPONSE_NS}}}Response")
    moment = datetime.now(UTC).strftime("%H:%M:%S")
    detail = etree.SubElement(response, f"{{{RESPONSE_NS}}}Error", Time=moment, Id="0")
    etree.SubElement(detail, f"{{{RESPONSE_NS}}}ErrorCode").text = str(error.code)
    etree.SubElement(detail, f"{{{RESPONSE_NS}}}Message").text = str(error)
    etree.SubElement(detail, f"{{{RESPONSE_NS}}}DebugData")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8", pretty_print=True))
