# Smart-card stack for tests/card (issue 7): pcscd, the virtual reader driver (vsmartcard-vpcd) and the virtual
# card (python3-virtualsmartcard, vicc), plus what pyscard needs to build from PyPI (libpcsclite-dev, swig,
# a C compiler and the Python headers).
# The tests start their own pcscd and card in a private network namespace (loopback only); the system pcscd
# is kept stopped so that the virtual reader's TCP port is never opened on a real interface.
PCSC_PACKAGES="pcscd libpcsclite-dev swig gcc python3-dev vsmartcard-vpcd python3-virtualsmartcard python3-pycryptodome
  iproute2 util-linux"
# shellcheck disable=SC2086
ensure_packages $PCSC_PACKAGES
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now pcscd.socket pcscd.service >/dev/null 2>&1 || true
fi
if [ -f /run/pcscd/pcscd.pid ]; then
  kill "$(cat /run/pcscd/pcscd.pid)" 2>/dev/null || true
fi
# The tests mount their own folder on /run/pcscd inside a private mount namespace; the mount point must exist
# (a test run without root cannot create it).
mkdir -p /run/pcscd
