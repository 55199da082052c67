"""DNS for integration tests: a real dnsmasq with the test's records, a
scripted DNS server for answers dnsmasq refuses to give (CNAME loops,
truncation without a TCP fallback), and a tiny query client to check both.

Nothing here talks to anything but 127.0.0.1. dnsmasq runs with no upstream
at all (--no-resolv, --no-hosts, --conf-file=/dev/null) and --local=/test/,
so a name under .test is answered from the given records or NXDOMAIN, and
any other name is REFUSED.

Records (Dnsmasq(records=[...])), each a tuple:
    ("MX", domain, host, preference)   host "." is a null MX (RFC 7505)
    ("A", name, "127.0.0.3")           also ("A", name, addr1, addr2, ...)
    ("CNAME", alias, target)           dnsmasq refuses CNAME loops (use
                                       ScriptedDns for those)
    ("RR", name, rrtype, "hexdata")    anything else, raw (--dns-rr)
"""

import os
import random
import socket
import struct
import subprocess
import tempfile
import threading
import time

DNSMASQ = "/usr/sbin/dnsmasq"

TYPE_A, TYPE_CNAME, TYPE_MX, TYPE_AAAA = 1, 5, 15, 28


# ---- a minimal DNS client (no dnspython on the machine) ----

def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def build_query(name, qtype, qid=None):
    qid = random.randrange(65536) if qid is None else qid
    header = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    return header + encode_name(name) + struct.pack(">HH", qtype, 1)


def _read_name(msg, off):
    labels, end, hops = [], None, 0
    while True:
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if end is None:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            hops += 1
            if hops > 64:
                raise ValueError("compression loop")
            continue
        off += 1
        if n == 0:
            break
        labels.append(msg[off:off + n].decode("latin-1"))
        off += n
    return ".".join(labels) if labels else ".", (end if end is not None else off)


def parse_response(msg):
    """Returns dict(rcode, tc, answers=[(name, type, value)]), value an
    address string (A/AAAA), (preference, host) for MX, a name for CNAME,
    else the raw rdata bytes."""
    qid, flags, qd, an, _ns, _ar = struct.unpack(">HHHHHH", msg[:12])
    off = 12
    for _ in range(qd):
        _, off = _read_name(msg, off)
        off += 4
    answers = []
    for _ in range(an):
        name, off = _read_name(msg, off)
        rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", msg[off:off + 10])
        off += 10
        rdata = msg[off:off + rdlen]
        if rtype == TYPE_A:
            value = socket.inet_ntoa(rdata)
        elif rtype == TYPE_AAAA:
            value = socket.inet_ntop(socket.AF_INET6, rdata)
        elif rtype == TYPE_MX:
            value = (struct.unpack(">H", rdata[:2])[0], _read_name(msg, off + 2)[0])
        elif rtype == TYPE_CNAME:
            value = _read_name(msg, off)[0]
        else:
            value = rdata
        off += rdlen
        answers.append((name, rtype, value))
    return {"id": qid, "rcode": flags & 0xF, "tc": bool(flags & 0x200), "answers": answers}


def query(port, name, qtype, tcp=False, timeout=2.0, host="127.0.0.1"):
    """One query to host:port; returns parse_response()'s dict."""
    pkt = build_query(name, qtype)
    if tcp:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(struct.pack(">H", len(pkt)) + pkt)
            data = b""
            while len(data) < 2:
                chunk = s.recv(2 - len(data))
                if not chunk:
                    raise ConnectionError("DNS TCP closed")
                data += chunk
            want = struct.unpack(">H", data)[0]
            data = b""
            while len(data) < want:
                chunk = s.recv(want - len(data))
                if not chunk:
                    raise ConnectionError("DNS TCP closed mid-answer")
                data += chunk
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(pkt, (host, port))
            data, _ = s.recvfrom(65535)
    return parse_response(data)


# ---- ports ----

def free_port(kind=socket.SOCK_DGRAM, host="127.0.0.1", also_tcp=False):
    """A port that is free now (UDP, and TCP too when also_tcp)."""
    for _ in range(200):
        port = random.randrange(20000, 60000)
        socks = []
        try:
            for k in ([kind, socket.SOCK_STREAM] if also_tcp else [kind]):
                s = socket.socket(socket.AF_INET, k)
                socks.append(s)
                s.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port")


def dead_dns_server():
    """"127.0.0.1:PORT" where nothing listens (UDP queries get ICMP port
    unreachable at once, TCP gets RST): a DNS server that is down."""
    return "127.0.0.1:%d" % free_port(socket.SOCK_DGRAM, also_tcp=True)


# ---- dnsmasq ----

class Dnsmasq:
    def __init__(self, records=(), extra_args=(), workdir=None):
        self.records = list(records)
        self.extra_args = list(extra_args)
        self.host = "127.0.0.1"
        self.port = None
        self.proc = None
        self._own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="postern-dns-", dir="/tmp")
        self.log_path = os.path.join(self.dir, "dnsmasq.log")

    @property
    def server(self):
        """The value for dns_servers."""
        return "%s:%d" % (self.host, self.port)

    def _record_args(self):
        args = []
        for rec in self.records:
            kind = rec[0].upper()
            if kind == "MX":
                _, domain, host, pref = rec
                args.append("--mx-host=%s,%s,%d" % (domain, host, pref))
            elif kind == "A":
                # One --host-record per address: dnsmasq keeps one IPv4
                # address per --host-record.
                args += ["--host-record=%s,%s" % (rec[1], addr) for addr in rec[2:]]
            elif kind == "CNAME":
                args.append("--cname=%s,%s" % (rec[1], rec[2]))
            elif kind == "RR":
                _, name, rrtype, hexdata = rec
                args.append("--dns-rr=%s,%d,%s" % (name, rrtype, hexdata))
            else:
                raise ValueError("unknown record kind %r" % (rec,))
        return args

    def argv(self):
        argv = [DNSMASQ, "--keep-in-foreground", "--port=%d" % self.port,
                "--listen-address=127.0.0.1", "--bind-interfaces",
                "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--pid-file=",
                "--local=/test/", "--no-negcache", "--cache-size=0",
                "--log-facility=%s" % self.log_path, "--log-queries"]
        if os.geteuid() == 0:
            # Stay root: dropping to nobody needs nothing from us, but the
            # log file in our directory must stay writable.
            argv.append("--user=root")
        return argv + self._record_args() + self.extra_args

    def start(self, timeout=5.0):
        last_error = None
        for _attempt in range(5):
            self.port = free_port(socket.SOCK_DGRAM, also_tcp=True)
            self.stderr = open(os.path.join(self.dir, "dnsmasq.stderr"), "wb")
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                         stdout=self.stderr, stderr=self.stderr)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    # Any answer (REFUSED for a name outside .test) means up.
                    query(self.port, "ready.check.invalid", TYPE_A, timeout=0.2)
                    if self._tcp_ready():
                        return self
                except OSError:
                    time.sleep(0.05)
            last_error = self._stop_proc()
        raise RuntimeError("dnsmasq did not start: %s\n%s" % (last_error, self.logs()))

    def _tcp_ready(self):
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def _stop_proc(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        rc = self.proc.returncode
        self.proc = None
        self.stderr.close()
        return "exit %s" % rc

    def logs(self):
        text = ""
        for name in ("dnsmasq.stderr", "dnsmasq.log"):
            try:
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    text += f.read()
            except OSError:
                pass
        return text

    def query(self, name, qtype, tcp=False):
        return query(self.port, name, qtype, tcp=tcp)

    def stop(self, keep=False):
        self._stop_proc()
        if self._own_dir and not keep:
            import shutil
            shutil.rmtree(self.dir, ignore_errors=True)


# ---- a scripted DNS server ----

def _rr(name, rtype, rdata, ttl=0):
    return encode_name(name) + struct.pack(">HHIH", rtype, 1, ttl, len(rdata)) + rdata


def rr_a(name, addr):
    return _rr(name, TYPE_A, socket.inet_aton(addr))


def rr_cname(name, target):
    return _rr(name, TYPE_CNAME, encode_name(target))


def rr_mx(name, pref, host):
    return _rr(name, TYPE_MX, struct.pack(">H", pref) + encode_name(host))


class ScriptedDns:
    """UDP (and optionally TCP) DNS on 127.0.0.1:port answering through
    handler(name, qtype) -> dict(rcode=0, answers=[rr bytes], tc=False) or
    None (no answer at all). Names arrive lower-case without the trailing
    dot. Runs in daemon threads until stop() or its deadline."""

    def __init__(self, handler, tcp=True, deadline=60.0):
        self.handler = handler
        self.tcp = tcp
        self.queries = []          # (transport, name, qtype)
        self.port = free_port(socket.SOCK_DGRAM, also_tcp=True)
        self.server = "127.0.0.1:%d" % self.port
        self._stop = threading.Event()
        self._deadline = time.monotonic() + deadline
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._udp.bind(("127.0.0.1", self.port))
        self._udp.settimeout(0.2)
        self._threads = [threading.Thread(target=self._serve_udp, daemon=True)]
        self._tcp = None
        if tcp:
            self._tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._tcp.bind(("127.0.0.1", self.port))
            self._tcp.listen(16)
            self._tcp.settimeout(0.2)
            self._threads.append(threading.Thread(target=self._serve_tcp, daemon=True))
        for t in self._threads:
            t.start()

    def _running(self):
        return not self._stop.is_set() and time.monotonic() < self._deadline

    def _answer(self, pkt, transport):
        try:
            qid, flags = struct.unpack(">HH", pkt[:4])
            name, off = _read_name(pkt, 12)
            qtype = struct.unpack(">H", pkt[off:off + 2])[0]
            question = pkt[12:off + 4]
        except (struct.error, IndexError, ValueError):
            return None
        name = name.lower().rstrip(".")
        self.queries.append((transport, name, qtype))
        spec = self.handler(name, qtype)
        if spec is None:
            return None
        answers = spec.get("answers", [])
        if transport == "tcp":
            answers = spec.get("tcp_answers", answers)
        out_flags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 | (spec.get("rcode", 0) & 0xF)
        if spec.get("tc") and transport == "udp":
            out_flags |= 0x0200
        header = struct.pack(">HHHHHH", qid, out_flags, 1, len(answers), 0, 0)
        return header + question + b"".join(answers)

    def _serve_udp(self):
        while self._running():
            try:
                pkt, peer = self._udp.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            reply = self._answer(pkt, "udp")
            if reply is not None:
                try:
                    self._udp.sendto(reply, peer)
                except OSError:
                    pass

    def _serve_tcp(self):
        while self._running():
            try:
                conn, _ = self._tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    hdr = conn.recv(2)
                    if len(hdr) < 2:
                        continue
                    want = struct.unpack(">H", hdr)[0]
                    pkt = b""
                    while len(pkt) < want:
                        chunk = conn.recv(want - len(pkt))
                        if not chunk:
                            break
                        pkt += chunk
                    reply = self._answer(pkt, "tcp")
                    if reply is not None:
                        conn.sendall(struct.pack(">H", len(reply)) + reply)
                except OSError:
                    pass

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
