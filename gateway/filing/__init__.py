"""Filing received documents: a durable job per delivered message, a worker that files it, and acknowledgements.

Messages delivered to mailboxes configured for filing (a lab results mailbox, or every professional INBOX),
and messages imported from an upstream operator mailbox, get a filing job in the same transaction that stores
them. A worker claims jobs, runs :func:`gateway.ins_matching.record.process_and_record` and answers the sender
with an MDN when asked (RFC 8098), in one transaction per job: each message is filed exactly once.
"""
