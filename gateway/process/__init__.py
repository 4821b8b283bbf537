"""Several processes for one daemon: a supervisor that owns the listening sockets, and worker processes.

``gateway serve`` with ``[gateway] workers = N`` (N > 1) runs :mod:`gateway.process.supervisor`, which binds
every listener once and starts N ``gateway worker`` processes (:mod:`gateway.process.worker`), each with its own
event loop serving SMTP and IMAP over the same store. Worker 0 also runs the once-only work (queues, refreshes,
pruning, the card endpoint). Workers tell each other what changed through the supervisor
(:mod:`gateway.process.channel`, :mod:`gateway.process.shared`).

SPDX-License-Identifier: GPL-3.0-or-later
"""
