"""Validation against the ANS extended CDA schema (CDA_extended.xsd), compiled once per path.

The result is recorded beside the header, not enforced: a schema error alone does not stop filing (R10)
when the header is readable.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from lxml import etree

from gateway.samples import samples_dir

#: Where the ANS extended CDA schema is looked for when no path is given (GATEWAY_CDA_SCHEMA overrides).
_DEFAULT_SCHEMA = samples_dir() / "cda-schema" / "CDA_extended.xsd"
_MAX_SCHEMA_ERRORS = 20

_SCHEMAS: dict[Path, etree.XMLSchema] = {}
_SCHEMA_LOCK = threading.Lock()


_CONFIGURED: list[Path] = []


def use_schema(path: Path | None) -> None:
    """Set the schema every later validation uses (the configuration's ``documents.cda_schema``)."""
    _CONFIGURED[:] = [path] if path is not None else []


def schema_path(explicit: Path | None = None) -> Path | None:
    """The CDA schema: ``explicit``, else :func:`use_schema`'s, else $GATEWAY_CDA_SCHEMA, else the samples' copy."""
    if explicit is not None:
        return explicit
    if _CONFIGURED:
        return _CONFIGURED[0]
    configured = os.environ.get("GATEWAY_CDA_SCHEMA")
    if configured:
        return Path(configured)
    return _DEFAULT_SCHEMA if _DEFAULT_SCHEMA.is_file() else None


class SchemaUnavailable(RuntimeError):
    """The configured CDA schema cannot be read: a configuration error, to surface at start-up."""


def load_schema(path: Path | None = None) -> etree.XMLSchema | None:
    """The compiled schema, compiled once per path and cached; call it at start-up to fail early."""
    resolved = schema_path(path)
    if resolved is None:
        return None
    with _SCHEMA_LOCK:
        schema = _SCHEMAS.get(resolved)
        if schema is None:
            # Our own schema files: local includes allowed, network and entities still off.
            parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
            try:
                schema = etree.XMLSchema(etree.parse(str(resolved), parser))
            except (OSError, etree.XMLSyntaxError, etree.XMLSchemaParseError) as error:
                raise SchemaUnavailable(f"The CDA schema {resolved} cannot be loaded ({error}); check the "
                                        "documents.cda_schema setting.") from None
            _SCHEMAS[resolved] = schema
        return schema


def validate_tree(root: etree._Element, path: Path | None = None) -> tuple[bool | None, tuple[str, ...]]:
    """Validate against the CDA schema: (True, ()), (False, first errors) or (None, ()) with no schema."""
    schema = load_schema(path)
    if schema is None:
        return None, ()
    # XMLSchema objects are not safe to share between threads while validating.
    with _SCHEMA_LOCK:
        valid = schema.validate(root)
        errors = tuple(f"line {e.line}: {e.message}" for e in list(schema.error_log)[:_MAX_SCHEMA_ERRORS])
    return bool(valid), () if valid else errors
