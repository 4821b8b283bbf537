"""The packages of ``gateway`` import downward only: a declared order, measured from the sources by
tools/depgraph.py (module-level and function-level imports alike; imports under TYPE_CHECKING are free).

A new upward import, a new cycle, or a new package without a declared layer fails here. The known upward
edges that remain are listed in KNOWN_UPWARD with why; that list only shrinks.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _depgraph() -> ModuleType:
    spec = importlib.util.spec_from_file_location("depgraph", ROOT / "tools" / "depgraph.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("depgraph", module)
    spec.loader.exec_module(module)
    return module


depgraph = _depgraph()

#: Lowest first. A package may import packages of its own layer or of lower layers, never of a higher one.
LAYERS: tuple[frozenset[str], ...] = tuple(frozenset(layer.split()) for layer in (
    "__init__ codes",                    # facts: rule numbers, OIDs, XDS identifiers, statuses, reply codes
    "config logs tasks pki samples malloc tls_buffers",  # settings, logs, helpers, dev PKI, samples, memory
    "tlsctx",                            # TLS contexts from the settings
    "documents anatomy",                 # reading what messages carry: MIME, XDM, CDA; a message's anatomy (pure)
    "store",                             # tables, sessions, the event trail, effects applied in one transaction
    "ops",                               # metrics, health and autoconfiguration, over the store
    "auth",                              # accounts, passwords, logins and their limits
    "ins_matching directory",            # INS, identities (R7, R8), matching (R10, R11); the Annuaire Santé
    "routing",                           # pure decisions over the store's facts (R1-R5, R8), one planner
    "trust",                             # operators' certificates and the relay whitelist
    "psc",                               # Pro Santé Connect logins for SMTP, IMAP and the console
    "card",                              # smart-card readers and presence
    "dmp_bridge",                        # deposit rules (R12-R17), XDS metadata, ITI-41, the outbox
    "filing",                            # after delivery: filing, deposits, MDNs, upstream import
    "smtp imap hl7 web",                 # the listeners and the outbound client
    "transfer store.migrations",         # mail import/export, backups; migrations that fill new tables
    "process",                           # supervisor, workers, reloads, the daemon's loop
    "app",                               # wiring and lifecycle of one gateway
    "devsetup",                          # a development configuration, PKI and accounts
    "devstack",                          # the development stack (make run)
    "commands",                          # one module per command group
    "cli",                               # the parser and its dispatch
))

#: Upward edges still in the code, each with where and why. Remove a line when its import goes; never add one.
#: Every cycle between packages runs through one of these (test_no_cycle_but_through_a_known_upward_edge).
KNOWN_UPWARD: dict[tuple[str, str], str] = {
}


def _rank() -> dict[str, int]:
    rank: dict[str, int] = {}
    for position, layer in enumerate(LAYERS):
        for name in layer:
            assert name not in rank, f"{name} is declared in two layers"
            rank[name] = position
    return rank


@pytest.fixture(scope="module")
def graph() -> depgraph.Graph:
    return depgraph.scan(ROOT / "gateway")


def test_every_package_has_a_declared_layer(graph: depgraph.Graph) -> None:
    missing = sorted(graph.packages() - set(_rank()))
    assert not missing, f"declare the layer of {missing} in LAYERS (tests/architecture/test_layers.py) and README"


def test_no_import_goes_up_the_layers(graph: depgraph.Graph) -> None:
    rank = _rank()
    upward = {}
    for (source, target) in graph.edges():
        if rank.get(target, -1) > rank.get(source, len(LAYERS)) and (source, target) not in KNOWN_UPWARD:
            upward[(source, target)] = [f"{i.path}:{i.line} ({i.kind})" for i in graph.where(source, target)]
    assert not upward, f"imports going up the layers: {upward}"


def test_known_upward_edges_only_shrink(graph: depgraph.Graph) -> None:
    """An edge of the allow-list that is gone should leave the list, so it cannot come back unnoticed.

    A warning, not a failure: while several areas change at once, an edge may be gone from one tree and not yet
    from the next. Every allowed edge must at least name two declared packages.
    """
    rank = _rank()
    assert all(a in rank and b in rank and rank[b] > rank[a] for a, b in KNOWN_UPWARD), "KNOWN_UPWARD: upward only"
    gone = sorted(edge for edge in KNOWN_UPWARD if edge not in graph.edges())
    if gone:
        warnings.warn(f"these upward imports are gone, remove them from KNOWN_UPWARD: {gone}", stacklevel=1)


def test_no_cycle_but_through_a_known_upward_edge(graph: depgraph.Graph) -> None:
    """Without the known upward edges the graph has no cycle: none inside a layer, none of a new kind."""
    edges = {edge for edge in graph.edges() if edge not in KNOWN_UPWARD}
    cycles = depgraph.strongly_connected(graph.packages(), edges)
    assert not cycles, f"cycles between packages: {cycles}"


def test_function_level_imports_are_counted_as_links(graph: depgraph.Graph, tmp_path: Path) -> None:
    """An import hidden in a function body is a link like any other; TYPE_CHECKING ones are not run."""
    package = tmp_path / "gateway"
    (package / "low").mkdir(parents=True)
    (package / "high").mkdir()
    (package / "__init__.py").write_text("")
    (package / "low" / "__init__.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from gateway.high import thing\n"
        "def late():\n    from gateway.high import other\n    return other\n")
    (package / "high" / "__init__.py").write_text("from gateway import low\nfrom . import sibling\n")
    (package / "high" / "sibling.py").write_text("from ..low import late\n")
    small = depgraph.scan(package)
    assert small.edges(depgraph.KINDS) == {("low", "high"): {"module": 0, "function": 1, "typing": 1},
                                           ("high", "low"): {"module": 2, "function": 0, "typing": 0}}
    assert small.cycles() == [["high", "low"]]
    assert small.cycles(("module",)) == []


def test_queue_tables_the_metrics_read_are_the_models_tables() -> None:
    """ops reads the queues by table name (the queues' packages sit above it): the names must be the models'."""
    from gateway.dmp_bridge.outbox import DmpDeposit
    from gateway.filing.models import FilingJob
    from gateway.ops.metrics import QUEUE_TABLES
    from gateway.store.models import OutboundRecipient

    assert QUEUE_TABLES == {"outbound": OutboundRecipient.__tablename__, "filing": FilingJob.__tablename__,
                            "dmp": DmpDeposit.__tablename__}
    for model in (OutboundRecipient, FilingJob, DmpDeposit):
        assert {"state", "created_at"} <= set(model.__table__.columns.keys())
