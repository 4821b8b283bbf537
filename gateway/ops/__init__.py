"""Operating the gateway: the HTTP listener for Prometheus metrics, health probes and mail-client autoconfiguration,
and the DNS records a structure publishes so that mail clients find its listeners (RFC 6186).

SPDX-License-Identifier: GPL-3.0-or-later
"""
