"""A private Debian Postfix for side-by-side benchmarks: submission with STARTTLS and SASL PLAIN, into Maildir.

Everything lives in one throw-away folder: its own ``main.cf``/``master.cf`` (no chroot), queue, Cyrus SASL
``sasldb2`` (the bench accounts with their password), and the Maildir the ``virtual`` agent writes (every
recipient's mail, fsynced as Postfix always does). It listens on one loopback port only, with the bench PKI's
certificate. :meth:`PostfixPeer.stop` stops it and kills any of its processes still alive.

SPDX-License-Identifier: GPL-3.0-or-later
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

PACKAGES = ("postfix", "sasl2-bin", "libsasl2-modules")

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
myhostname = postfix.gateway.test
mydomain = gateway.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
maillog_file_prefixes = {folder}
maillog_file = {folder}/maillog
smtpd_banner = $myhostname ESMTP
smtpd_tls_cert_file = {cert}
smtpd_tls_key_file = {key}
smtpd_tls_security_level = encrypt
smtpd_tls_auth_only = yes
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = {etc}/sasl
smtpd_sasl_security_options = noanonymous
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
smtpd_client_connection_count_limit = 0
message_size_limit = {message_size}
virtual_mailbox_limit = 0
virtual_mailbox_domains = {domain}
virtual_mailbox_base = {maildir}
virtual_mailbox_maps = static:inbox/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
default_process_limit = 200
smtpd_client_restrictions =
biff = no
# Postfix at its fastest: no pause per message when arrivals outrun deliveries (default 1s), the bench
# waits for the queue to drain instead and counts the delivery work.
in_flow_delay = 0
"""

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

SMTPD_CONF = """\
pwcheck_method: auxprop
auxprop_plugin: sasldb
sasldb_path: {sasldb}
mech_list: PLAIN LOGIN
"""


class Unavailable(RuntimeError):
    """Postfix cannot be installed or started here (one sentence)."""


def ensure_installed() -> None:
    """Install Debian's Postfix and Cyrus SASL tools when missing (root only); Unavailable when impossible."""
    if shutil.which("postfix") and shutil.which("saslpasswd2"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Unavailable("Postfix is not installed and this bench cannot install it (needs root and apt-get).")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0 or not shutil.which("postfix"):
        raise Unavailable(f"apt-get could not install {' '.join(PACKAGES)}: "
                          f"{(done.stderr.strip().splitlines() or ['no output'])[-1]}")


class PostfixPeer:
    def __init__(self, folder: Path, cert: Path, key: Path, port: int, domain: str,
                 users: list[str], password: str, message_size: int) -> None:
        self.folder, self.port, self.domain = folder, port, domain
        self.etc = folder / "etc"
        self.queue = folder / "queue"
        self.maildir = folder / "maildir"
        self.sasldb = self.etc / "sasldb2"
        self.cert, self.key = cert, key
        self.users, self.password, self.message_size = users, password, message_size
        self.started = False

    def _postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        # postfix(1) says why it fails only on a terminal (or syslog, absent here): run it under script(1).
        command = " ".join(["postfix", "-c", str(self.etc), *args])
        return subprocess.run(["script", "-q", "-e", "-c", command, "/dev/null"], capture_output=True, text=True,
                              check=False, stdin=subprocess.DEVNULL)

    def start(self) -> PostfixPeer:
        ensure_installed()
        owner = pwd.getpwnam("postfix")
        for path in (self.etc / "sasl", self.queue, self.folder / "data", self.maildir):
            path.mkdir(parents=True, exist_ok=True)
        for path in (self.folder / "data", self.maildir):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        # Copies of the certificate and key in Postfix's own folder (readable by its daemons).
        key, cert = self.etc / "server.key", self.etc / "server.crt"
        shutil.copyfile(self.key, key)
        key.chmod(0o600)
        shutil.copyfile(self.cert, cert)
        (self.etc / "main.cf").write_text(MAIN_CF.format(
            queue=self.queue, data=self.folder / "data", folder=self.folder, cert=cert, key=key,
            etc=self.etc, message_size=self.message_size, domain=self.domain, maildir=self.maildir,
            uid=owner.pw_uid, gid=owner.pw_gid))
        (self.etc / "master.cf").write_text(MASTER_CF.format(port=self.port))
        (self.etc / "sasl" / "smtpd.conf").write_text(SMTPD_CONF.format(sasldb=self.sasldb))
        for user in self.users:
            local, _, realm = user.partition("@")
            subprocess.run(["saslpasswd2", "-c", "-p", "-f", str(self.sasldb), "-u", realm, local],
                           input=self.password, text=True, check=True, capture_output=True)
        os.chown(self.sasldb, owner.pw_uid, owner.pw_gid)
        done = self._postfix("start")
        if done.returncode != 0:
            said = (done.stdout + done.stderr).strip().splitlines() or ["no message"]
            raise Unavailable(f"postfix did not start: {said[-1]}")
        self.started = True
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._accepts():
                return self
            time.sleep(0.1)
        self.stop()
        raise Unavailable(f"postfix did not listen on 127.0.0.1:{self.port} within 30 s (see {self.folder}/maillog)")

    def _accepts(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def master_pid(self) -> int | None:
        try:
            return int((self.queue / "pid" / "master.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def delivered(self) -> int:
        """Messages in the Maildirs (new/), i.e. delivered by the virtual agent."""
        return sum(1 for _ in self.maildir.glob("*/new/*"))

    def stop(self) -> None:
        """Stop Postfix and kill whatever of its processes is left (they are the master's descendants)."""
        if not self.started:
            return
        master = self.master_pid()
        pids = descendants(master) if master else []
        self._postfix("stop")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.1)
        for pid in pids:
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.started = False


def descendants(root: int) -> list[int]:
    """``root`` and every process below it, from /proc (children of children included)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, ()))
    return found


def cpu_seconds(root: int) -> float:
    """CPU time (user + system) used so far by ``root``'s tree: the live processes, plus the reaped children
    their parents accounted for (Postfix's smtpd processes come and go)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in descendants(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    return total / ticks


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
