"""Integration fixtures: a real Postern instance per test.

Run from tests/integration with
    POSTERN_BUILD=/abs/build /usr/bin/python3 -m pytest -q .

Fixtures
    instance          a started instance (function scope)
    instance_factory  make(domain=None, hostname=None, start=True, *,
                           address="127.0.0.1", smtp_port=None,
                           port_offset=None, main_cf=None, users=(),
                           dns_servers=None) -> Instance;
                      for tests that need several instances or an unstarted one
    dnsmasq_factory   start(records, extra_args=()) -> dns_fixture.Dnsmasq
    scripted_dns_factory  start(handler, tcp=True) -> dns_fixture.ScriptedDns
    sink_factory      start(host, port, **kw) -> sink.Sink (aiosmtpd)
    smtp_peer_factory start(host, port, script) -> smtp_peers.ScriptedPeer
    outbound_net      the outbound topology in one object (see OutboundNet)

Every instance lives in its own mkdtemp() directory under /tmp, listens only on
a loopback address (127.0.0.1 unless address= is given) at ports
2525/2587/2465/2110/2995/2143/2993 + a random free offset (or the offset that
makes its SMTP port smtp_port), and is stopped (and its processes killed) at
teardown. The directory is removed unless the test failed; then its path is
printed for inspection (also kept when POSTERN_KEEP is set).

DNS: every instance has dns_servers set, to the given server (a test dnsmasq)
or else to a dead loopback port, so no test instance ever asks the machine's
resolver.

Tests must never talk to non-loopback addresses.
"""

import os
import random
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time

import pytest

import smtp_peers
from dns_fixture import Dnsmasq, ScriptedDns, dead_dns_server
from sink import Sink

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(
    os.environ.get("POSTERN_BUILD") or os.path.join(HERE, "..", "..", "build"))

# master.cf template ports, in the order postern init substitutes them.
PORT_BASES = {
    "smtp": 2525, "submission": 2587, "smtps": 2465, "pop3": 2110,
    "pop3s": 2995, "imap": 2143, "imaps": 2993,
}


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "chain: needs the whole delivery chain (master, smtpd, qmgr, local, "
        "postqueue/postsuper)")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Lets fixtures see whether the test failed (to keep its directory).
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _ports_free(offset, addresses=("127.0.0.1",)):
    for address in addresses:
        for base in PORT_BASES.values():
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((address, base + offset))
            except OSError:
                return False
            finally:
                s.close()
    return True


def pick_port_offset(addresses=("127.0.0.1",)):
    for _ in range(500):
        offset = random.randrange(20000, 40000, 10)
        if _ports_free(offset, addresses):
            return offset
    raise RuntimeError("no free port offset in 20000-40000")


def _wait_port(port, timeout, host="127.0.0.1"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _decode(data):
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


class Instance:
    """One Postern instance in its own directory."""

    def __init__(self, directory, port_offset, domain, address="127.0.0.1"):
        self.dir = directory
        self.address = address
        self.etc = os.path.join(directory, "etc")
        self.port_offset = port_offset
        self.domain = domain
        self.ports = {name: base + port_offset for name, base in PORT_BASES.items()}
        self.smtp_port = self.ports["smtp"]
        self.submission_port = self.ports["submission"]
        self.demo_user = "demo@" + domain
        self.demo_password = None
        self.passwords = {}
        self.dns_servers = None
        self.started = False

    # ---- commands ----
    def bin(self, name):
        """Absolute path of a built program."""
        return os.path.join(BUILD, name)

    def env(self):
        env = dict(os.environ)
        env["POSTERN_CONFIG_DIR"] = self.etc
        return env

    def run(self, cmd, *args, input=None, timeout=30, check=False):
        """Runs BUILD/cmd -c etc args...; stdout/stderr come back as text.
        input may be str or bytes."""
        if isinstance(input, str):
            input = input.encode()
        argv = [self.bin(cmd), "-c", self.etc, *[str(a) for a in args]]
        # Files, not pipes: a daemon started by the command (postern start)
        # may inherit stdout/stderr, and a pipe would then never see EOF.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.run(argv, input=input, stdout=out, stderr=err,
                                  timeout=timeout, env=self.env())
            out.seek(0)
            err.seek(0)
            result = subprocess.CompletedProcess(argv, proc.returncode,
                                                 _decode(out.read()), _decode(err.read()))
        if check and result.returncode != 0:
            raise AssertionError("%s exited %d\nstdout: %s\nstderr: %s" % (
                " ".join(argv), result.returncode, result.stdout, result.stderr))
        return result

    def postern(self, *args, **kw):
        return self.run("postern", *args, **kw)

    # ---- lifecycle ----
    def start(self, timeout=10):
        r = self.postern("start", timeout=timeout + 5)
        if r.returncode != 0:
            raise AssertionError("postern start failed (%d)\n%s%s\nlog:\n%s" % (
                r.returncode, r.stdout, r.stderr, self.maillog()[-3000:]))
        self.started = True
        if not _wait_port(self.smtp_port, timeout, self.address):
            raise AssertionError("SMTP port %s:%d not accepting after %ss\nlog:\n%s" % (
                self.address, self.smtp_port, timeout, self.maillog()[-3000:]))

    def stop(self):
        r = self.postern("stop", timeout=20)
        self.started = False
        return r

    def master_pid(self):
        try:
            with open(os.path.join(self.dir, "queue", "pid", "master.pid")) as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0

    def _pids_of_instance(self):
        """Processes whose command line names this instance's config dir."""
        pids = []
        needle = self.etc.encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    if needle in f.read():
                        pids.append(int(entry))
            except OSError:
                pass
        return pids

    def kill_leftovers(self):
        pid = self.master_pid()
        targets = ([pid] if pid > 1 else []) + self._pids_of_instance()
        for p in targets:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass

    # ---- observation ----
    def maillog_path(self):
        return os.path.join(self.dir, "log", "maillog")

    def maillog(self):
        try:
            with open(self.maillog_path(), encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, regex, timeout=10):
        """Waits until the maillog matches regex; returns the match."""
        pattern = re.compile(regex, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = pattern.search(self.maillog())
            if m:
                return m
            if time.monotonic() > deadline:
                raise AssertionError("log never matched %r within %ss\nlog tail:\n%s" % (
                    regex, timeout, self.maillog()[-3000:]))
            time.sleep(0.05)

    def maildir(self, address):
        local, domain = address.rsplit("@", 1)
        return os.path.join(self.dir, "mail", domain.lower(), local.lower())

    def maildir_files(self, address):
        base = self.maildir(address)
        files = []
        for sub in ("new", "cur"):
            d = os.path.join(base, sub)
            if os.path.isdir(d):
                files += [os.path.join(d, n) for n in os.listdir(d) if not n.startswith(".")]
        return sorted(files)

    def wait_for_maildir(self, address, count, timeout=10):
        """Waits until address's Maildir holds at least count messages in
        new/ or cur/; returns their paths."""
        deadline = time.monotonic() + timeout
        while True:
            files = self.maildir_files(address)
            if len(files) >= count:
                return files
            if time.monotonic() > deadline:
                raise AssertionError("%s has %d of %d messages after %ss\nlog tail:\n%s" % (
                    address, len(files), count, timeout, self.maillog()[-3000:]))
            time.sleep(0.05)

    def send(self, sender, rcpts, msg, port=None, mail_options=()):
        """Sends msg (bytes or str) over SMTP to the instance's address;
        returns the refused-recipients dict of smtplib."""
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        with smtplib.SMTP(self.address, port or self.smtp_port, timeout=10,
                          local_hostname="client.test") as s:
            refused = s.sendmail(sender, rcpts, msg, mail_options=list(mail_options))
            s.quit()
        return refused

    def add_user(self, address, password):
        return self.postern("user", "add", address, input=password + "\n", check=True)

    def set_params(self, **params):
        """postconf -e name=value ... (before start, or reload after)."""
        if params:
            self.run("postconf", "-e", *["%s=%s" % kv for kv in params.items()], check=True)

    def pids_of(self, program):
        """PIDs of this instance's processes running program (smtp, qmgr...)."""
        out = subprocess.run(["pgrep", "-f", "/%s -c %s" % (program, self.etc)],
                             capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def __repr__(self):
        return "<Instance %s %s:%d>" % (self.dir, self.address, self.smtp_port)


def _make_instance(domain=None, hostname=None, start=True, address="127.0.0.1",
                   smtp_port=None, port_offset=None, main_cf=None, users=(),
                   dns_servers=None):
    directory = tempfile.mkdtemp(prefix="postern-test-", dir="/tmp")
    os.chmod(directory, 0o755)  # mail_owner must reach it when we are root
    if smtp_port is not None:
        offset = smtp_port - PORT_BASES["smtp"]
    elif port_offset is not None:
        offset = port_offset
    else:
        offset = pick_port_offset((address,))
    inst = Instance(directory, offset, domain or "example.test", address)
    args = [os.path.join(BUILD, "postern"), "init", directory, "--port-offset", str(offset)]
    if domain:
        args += ["--domain", domain]
    if hostname:
        args += ["--hostname", hostname]
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("postern init failed (%d)\n%s%s" % (r.returncode, r.stdout, r.stderr))
    inst.init_output = r.stdout
    with open(os.path.join(inst.etc, "demo-password")) as f:
        inst.demo_password = f.read().strip()
    if address != "127.0.0.1":
        # The template's inet services listen on 127.0.0.1:PORT.
        path = os.path.join(inst.etc, "master.cf")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(re.sub(r"^127\.0\.0\.1:", address + ":", text, flags=re.M))
    # Never the machine's resolver: the test's DNS server or a dead port.
    inst.dns_servers = dns_servers or dead_dns_server()
    params = {"dns_servers": inst.dns_servers}
    params.update(main_cf or {})
    inst.set_params(**params)
    for address_ in users:
        password = "pw-" + "".join(random.choice("abcdefghijkmnpqrstuvwxyz23456789")
                                   for _ in range(12))
        inst.add_user(address_, password)
        inst.passwords[address_] = password
    if start:
        inst.start()
    return inst


def _teardown(inst, failed):
    try:
        if inst.started or inst.master_pid():
            inst.stop()
    except Exception:  # noqa: BLE001 - teardown must go on
        pass
    inst.kill_leftovers()
    if failed or os.environ.get("POSTERN_KEEP"):
        print("\nkept instance for inspection: %s" % inst.dir)
    else:
        shutil.rmtree(inst.dir, ignore_errors=True)


def _failed(request):
    return any(getattr(getattr(request.node, "rep_" + when, None), "failed", False)
               for when in ("setup", "call"))


@pytest.fixture
def instance_factory(request):
    made = []

    def make(domain=None, hostname=None, start=True, **options):
        inst = _make_instance(domain=domain, hostname=hostname, start=False, **options)
        made.append(inst)
        if start:
            inst.start()
        return inst

    yield make
    for inst in made:
        _teardown(inst, _failed(request))


@pytest.fixture
def instance(instance_factory):
    return instance_factory()


# ---- outbound mail: DNS, sinks, scripted peers ----

@pytest.fixture
def dnsmasq_factory(request):
    """start(records, extra_args=()) -> a running Dnsmasq (dns_fixture)
    on 127.0.0.1:<free port>; its .server is the dns_servers value.
    Stopped at teardown; its log is printed if the test failed."""
    started = []

    def start(records=(), extra_args=()):
        d = Dnsmasq(records, extra_args)
        started.append(d)
        return d.start()

    yield start
    failed = _failed(request)
    for d in started:
        if failed:
            print("\ndnsmasq log (%s):\n%s" % (d.dir, d.logs()[-3000:]))
        d.stop(keep=failed)


@pytest.fixture
def scripted_dns_factory():
    """start(handler, tcp=True) -> a ScriptedDns (dns_fixture)."""
    started = []

    def start(handler, tcp=True):
        d = ScriptedDns(handler, tcp=tcp)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


@pytest.fixture
def sink_factory():
    """start(host, port, **kw) -> a running aiosmtpd Sink (sink.py)."""
    started = []

    def start(host, port, **kw):
        s = Sink(host, port, **kw)
        started.append(s)
        return s.start()

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def smtp_peer_factory():
    """start(host, port, script, deadline=60) -> a ScriptedPeer (smtp_peers.py)."""
    started = []

    def start(host, port, script, deadline=60.0):
        p = smtp_peers.ScriptedPeer(host, port, script, deadline=deadline)
        started.append(p)
        return p.start()

    yield start
    for p in started:
        p.stop()


# Loopback addresses the outbound topology uses (all routed to lo on Linux).
OUTBOUND_ADDRESSES = tuple("127.0.0.%d" % i for i in range(1, 10))

# Short timeouts for outbound test instances: a test never waits long.
OUTBOUND_PARAMS = {
    "dns_timeout": "2s",
    "dns_tries": "1",
    "smtp_connect_timeout": "3s",
    "smtp_helo_timeout": "3s",
    "smtp_mail_timeout": "3s",
    "smtp_rcpt_timeout": "3s",
    "smtp_data_init_timeout": "3s",
    "smtp_data_xfer_timeout": "3s",
    "smtp_data_done_timeout": "3s",
    "smtp_quit_timeout": "2s",
    "smtp_tls_security_level": "none",
    "queue_run_delay": "300s",
    "minimal_backoff_time": "300s",
    "maximal_backoff_time": "600s",
}


class OutboundNet:
    """The outbound topology of one test: one SMTP port P shared by every
    SMTP server of the test, each on its own loopback address (MX records
    carry no port, so senders use smtp_tcp_port = P):

        127.0.0.2:P   a.test (alice@a.test), hostname mail.a.test
        127.0.0.3:P   b.test (bob@b.test),   hostname mx.b.test
        127.0.0.4-9   sinks and scripted peers, as the test places them
        127.0.0.1:<n> dnsmasq

    net.dns(records)                 start dnsmasq (net.dnsmasq afterwards)
    net.instance(domain, address, users=(), main_cf=None, hostname=None,
                 start=True)         instance on address:P, dns_servers =
                                     net.dnsmasq (or dead), smtp_tcp_port = P
                                     and OUTBOUND_PARAMS
    net.sink(address, port=None, **kw)     aiosmtpd sink on address:P
    net.peer(address, script, port=None)   scripted peer on address:P
    """

    def __init__(self, make_instance, start_dns, start_sink, start_peer):
        self.port = PORT_BASES["smtp"] + pick_port_offset(OUTBOUND_ADDRESSES)
        self.dnsmasq = None
        self._make_instance = make_instance
        self._start_dns = start_dns
        self._start_sink = start_sink
        self._start_peer = start_peer

    def dns(self, records, extra_args=()):
        self.dnsmasq = self._start_dns(records, extra_args)
        return self.dnsmasq

    def instance(self, domain, address, users=(), main_cf=None, hostname=None,
                 start=True, dns_servers=None):
        params = dict(OUTBOUND_PARAMS)
        params["smtp_tcp_port"] = str(self.port)
        params.update(main_cf or {})
        if dns_servers is None and self.dnsmasq is not None:
            dns_servers = self.dnsmasq.server
        return self._make_instance(domain=domain, hostname=hostname, start=start,
                                   address=address, smtp_port=self.port, main_cf=params,
                                   users=users, dns_servers=dns_servers)

    def sink(self, address, port=None, **kw):
        return self._start_sink(address, port or self.port, **kw)

    def peer(self, address, script, port=None, deadline=60.0):
        return self._start_peer(address, port or self.port, script, deadline)


@pytest.fixture
def outbound_net(instance_factory, dnsmasq_factory, sink_factory, smtp_peer_factory):
    return OutboundNet(instance_factory, dnsmasq_factory, sink_factory, smtp_peer_factory)
