"""Messages the anatomy tests share: ordinary shapes and hostile ones."""

from __future__ import annotations

SIMPLE = (b"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n"
          b"From: Terry Gray <gray@cac.washington.edu>\r\n"
          b"Subject: IMAP4rev2 WG mtg summary and minutes\r\n"
          b"To: imap@cac.washington.edu\r\n"
          b"cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\r\n"
          b"Message-Id: <B27397-0100000@cac.washington.edu>\r\n"
          b"MIME-Version: 1.0\r\n"
          b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
          b"\r\n"
          + b"A line of the minutes.\r\n" * 92)

MIXED = (b"From: Dr Demo <dr.demo@pro.gateway.test>\r\n"
         b"To: patient@patient.gateway.test\r\n"
         b"Subject: =?utf-8?q?R=C3=A9sultats?= du bilan\r\n"
         b"Date: Tue, 1 Jul 2025 10:00:00 +0200\r\n"
         b"Message-ID: <m1@pro.gateway.test>\r\n"
         b"References: <m0@pro.gateway.test>\r\n"
         b"MIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
         b"\r\n"
         b"This is a preamble.\r\n"
         b"--outer\r\n"
         b"Content-Type: multipart/alternative; boundary=inner\r\n"
         b"\r\n"
         b"--inner\r\n"
         b"Content-Type: text/plain; charset=utf-8\r\n"
         b"Content-Transfer-Encoding: quoted-printable\r\n"
         b"\r\n"
         b"Bonjour, voici le r=C3=A9sultat.\r\n"
         b"--inner\r\n"
         b"Content-Type: text/html; charset=utf-8\r\n"
         b"\r\n"
         b"<p>Bonjour, voici le <b>compte rendu</b> &amp; le reste.</p>\r\n"
         b"--inner--\r\n"
         b"--outer\r\n"
         b"Content-Type: application/pdf; name=\"cr.pdf\"\r\n"
         b"Content-Transfer-Encoding: base64\r\n"
         b"Content-Disposition: attachment; filename=\"cr.pdf\"\r\n"
         b"Content-ID: <pdf@x>\r\n"
         b"Content-Description: Compte rendu\r\n"
         b"Content-Language: fr, en\r\n"
         b"Content-Location: http://example.test/cr.pdf\r\n"
         b"Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
         b"\r\n"
         b"JVBERi0xLjQKJcOkw7zDtsOfCg==\r\n"
         b"--outer\r\n"
         b"Content-Type: message/rfc822\r\n"
         b"\r\n"
         b"From: Someone <someone@example.test>\r\n"
         b"Subject: Forwarded\r\n"
         b"Content-Type: multipart/mixed; boundary=fwd\r\n"
         b"\r\n"
         b"--fwd\r\n"
         b"\r\n"
         b"Texte transmis unique.\r\n"
         b"--fwd\r\n"
         b"Content-Type: application/octet-stream\r\n"
         b"Content-Transfer-Encoding: binary\r\n"
         b"\r\n"
         b"\x00\x01\x02\xff\r\nraw\r\n"
         b"--fwd--\r\n"
         b"--outer--\r\n"
         b"Epilogue.\r\n")


def nested(depth: int) -> bytes:
    """A multipart nested ``depth`` levels deep (each level one part: the next level)."""
    head = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(depth))
    tail = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(depth)))
    return b"From: a@b.test\r\nSubject: deep\r\n" + head + b"Content-Type: text/plain\r\n\r\nbottom" + tail


def nested_messages(depth: int) -> bytes:
    """A message/rfc822 inside a message/rfc822, ``depth`` times."""
    return b"Subject: deep\r\nContent-Type: message/rfc822\r\n\r\n" * depth + b"Subject: bottom\r\n\r\nbody\r\n"


def siblings(count: int) -> bytes:
    """One multipart with ``count`` empty-ish parts."""
    parts = b"".join(b"--s\r\nContent-Type: text/plain\r\n\r\n%d\r\n" % i for i in range(count))
    return b"From: a@b.test\r\nContent-Type: multipart/mixed; boundary=s\r\n\r\n" + parts + b"--s--\r\n"
