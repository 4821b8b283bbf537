"""Who is talking to us: password hashes, failed-login throttling, and account lookup shared by SMTP and IMAP."""
