# Mail clients from Debian used by the IMAP tests (tests/imap/test_imap_clients.py): curl speaks IMAP over
# implicit TLS and STARTTLS. Sourced by .ci/run as root with `set -euo pipefail`.
if ! command -v curl >/dev/null 2>&1 || ! curl --version | grep -qw imaps; then
  apt-get update -q && apt-get install -y -q curl >/dev/null
fi
