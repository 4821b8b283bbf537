"""Delivery to other operators: the durable outbound queue (:mod:`.queue`), its worker (:mod:`.worker`), the
sessions kept to next hops (:mod:`.pool`) and what their answers make of each recipient (:mod:`.results`).

SPDX-License-Identifier: GPL-3.0-or-later
"""

from gateway.smtp.outbound.queue import list_queue, retry_now
from gateway.smtp.outbound.worker import OutboundWorker

__all__ = ["OutboundWorker", "list_queue", "retry_now"]
