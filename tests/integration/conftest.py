"""Integration fixtures: a real Postern instance per test.

Run from tests/integration with
    POSTERN_BUILD=/abs/build /usr/bin/python3 -m pytest -q .

Fixtures
    instance          a started instance (function scope)
    instance_factory  make(domain=None, hostname=None, start=True) -> Instance;
                      for tests that need several instances or an unstarted one

Every instance lives in its own mkdtemp() directory under /tmp, listens only on
127.0.0.1 at ports 2525/2587/2465/2110/2995/2143/2993 + a random free offset,
and is stopped (and its processes killed) at teardown. The directory is removed
unless the test failed; then its path is printed for inspection.

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


def _ports_free(offset):
    for base in PORT_BASES.values():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", base + offset))
        except OSError:
            return False
        finally:
            s.close()
    return True


def pick_port_offset():
    for _ in range(500):
        offset = random.randrange(20000, 40000, 10)
        if _ports_free(offset):
            return offset
    raise RuntimeError("no free port offset in 20000-40000")


def _wait_port(port, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _decode(data):
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


class Instance:
    """One Postern instance in its own directory."""

    def __init__(self, directory, port_offset, domain):
        self.dir = directory
        self.etc = os.path.join(directory, "etc")
        self.port_offset = port_offset
        self.domain = domain
        self.ports = {name: base + port_offset for name, base in PORT_BASES.items()}
        self.smtp_port = self.ports["smtp"]
        self.submission_port = self.ports["submission"]
        self.demo_user = "demo@" + domain
        self.demo_password = None
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
        if not _wait_port(self.smtp_port, timeout):
            raise AssertionError("SMTP port %d not accepting after %ss\nlog:\n%s" % (
                self.smtp_port, timeout, self.maillog()[-3000:]))

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

    def send(self, sender, rcpts, msg, port=None):
        """Sends msg (bytes or str) over SMTP to 127.0.0.1; returns the
        refused-recipients dict of smtplib."""
        if isinstance(rcpts, str):
            rcpts = [rcpts]
        with smtplib.SMTP("127.0.0.1", port or self.smtp_port, timeout=10) as s:
            refused = s.sendmail(sender, rcpts, msg)
            s.quit()
        return refused

    def add_user(self, address, password):
        return self.postern("user", "add", address, input=password + "\n", check=True)

    def __repr__(self):
        return "<Instance %s smtp=%d>" % (self.dir, self.smtp_port)


def _make_instance(domain=None, hostname=None, start=True):
    directory = tempfile.mkdtemp(prefix="postern-test-", dir="/tmp")
    os.chmod(directory, 0o755)  # mail_owner must reach it when we are root
    offset = pick_port_offset()
    inst = Instance(directory, offset, domain or "example.test")
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
    if failed:
        print("\nkept instance for inspection: %s" % inst.dir)
    else:
        shutil.rmtree(inst.dir, ignore_errors=True)


def _failed(request):
    return any(getattr(getattr(request.node, "rep_" + when, None), "failed", False)
               for when in ("setup", "call"))


@pytest.fixture
def instance_factory(request):
    made = []

    def make(domain=None, hostname=None, start=True):
        inst = _make_instance(domain=domain, hostname=hostname, start=False)
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
