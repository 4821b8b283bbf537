"""Where the development copies of the reference schemas and samples are (CDA schema, XDS.b/ebRS/SAML schemas).

Production configures schema paths explicitly; in development and tests they are found, in order, in
``$GATEWAY_SAMPLES``, in ``../shared/samples`` beside the project, and in ``tests/fixtures/samples`` of the
checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]


def candidates() -> list[Path]:
    found = [Path(p) for p in [os.environ.get("GATEWAY_SAMPLES")] if p]
    return [*found, _ROOT.parent / "shared" / "samples", _ROOT / "tests" / "fixtures" / "samples"]


def samples_dir() -> Path:
    """The first folder that holds the samples (``cda/``, ``cda-schema/``, ``xds-schema/``)."""
    for folder in candidates():
        if (folder / "cda-schema").is_dir():
            return folder
    return candidates()[-1]
