# Command-line clients the suite drives: curl (SMTP/IMAP over TLS); a C compiler for wheels built from source.
ensure_packages curl ca-certificates
