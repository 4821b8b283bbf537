"""DMP bridge: deposit rules (R12–R17), XDS.b metadata, the ITI-41 client with VIHF, the deposit outbox, and
the DMP simulator that speaks the same protocol in development and tests.

SPDX-License-Identifier: GPL-3.0-or-later
"""
