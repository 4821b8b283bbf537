"""HL7 v2 with hospital systems (DPI, LIS, RIS) over MLLP: the ANS volet "transmission de documents CDA R2 en
HL7 v2" — ORU^R01, MDM^T02 and MDM^T10 carrying a CDA and its MetaDMPMSS destinations, answered by an ACK.

Library: python-hl7 (PyPI ``hl7``, BSD), chosen over hl7apy because it is small, pure Python with no
dependency, parses ER7 by fixed levels (segments, fields, repetitions, components, sub-components: nothing the
input can make recursive), ships an asyncio MLLP client and server (``hl7.mllp``) that the simulator uses, and
is packaged by Debian and Fedora (0.4.5 in both). Its release pace is slow (0.4.5, 2022), so it is held to
what it does well: everything is bounded here before it sees a byte (frame size, segment count, read and
frame timeouts in :mod:`gateway.hl7.mllp` and :mod:`gateway.hl7.message`), and the listener's framing is ours
because the library's stream reader waits for the end block without a deadline. hl7apy validates against HL7
profiles but builds an element tree per message with much more memory per field, which a 16 MiB frame with a
base64 CDA makes costly, and it brings no asyncio MLLP.

SPDX-License-Identifier: GPL-3.0-or-later
"""
