"""Reading what messages carry (MIME, IHE XDM zips, CDA headers), writing XDM, and the patient record.

Every reader here is bounded (size, count, depth, time) and safe (no XML entities, no DTD, no network, no
path traversal); a refusal is a :class:`~gateway.documents.errors.DocumentRefused` with a sentence for people.
"""
