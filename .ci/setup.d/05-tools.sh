# Command-line mail clients the suite drives: curl (SMTP/IMAP over TLS).
if ! command -v curl >/dev/null 2>&1; then
  apt-get update -q && apt-get install -y -q curl >/dev/null
fi
