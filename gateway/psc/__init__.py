"""Pro Santé Connect: professionals log in to SMTP and IMAP with the access token of the national OIDC provider.

:mod:`.sasl` reads the SASL OAUTHBEARER (RFC 7628) and XOAUTH2 responses, :mod:`.tokens` verifies the token
locally against the provider's keys (or by RFC 7662 introspection), :mod:`.login` maps the professional's
national id to the mailboxes granted to them (:mod:`.models`), :mod:`.simulator` stands in for the provider in
development and tests.

SPDX-License-Identifier: GPL-3.0-or-later
"""
