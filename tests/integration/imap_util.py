"""Shared helpers for the IMAP tests (test_imap.py, test_imap_clients.py).

Client: a raw IMAP4rev1 client over a socket (optionally TLS) that keeps
every untagged response in order with its literals, so tests can assert
exact wire behaviour (which untagged responses came, in which order, and
the response codes of tagged replies). parse() turns one response into
Python values: atoms and quoted strings as str, literals as bytes, NIL as
None, parenthesized lists as lists; a FETCH item name such as
BODY[HEADER.FIELDS (FROM)]<0> stays one atom.

Messages are compared with what the Maildir holds: the server sends CRLF
line ends (local stores LF), so crlf() of the file is what BODY[] must be.
"""

import os
import re
import socket
import ssl
import time

import pytest


IMAP_TIMEOUT = 10


def require_imapd(inst):
    """Skips when imapd is not built; waits for both IMAP ports."""
    if not os.path.exists(inst.bin("imapd")):
        pytest.skip("imapd is not built yet (%s missing)" % inst.bin("imapd"))
    for port in (inst.ports["imap"], inst.ports["imaps"]):
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("imapd not listening on %d\nlog:\n%s" % (
                        port, inst.maillog()[-3000:]))
                time.sleep(0.1)
    return inst


def tls_context(inst):
    """Verifies the instance's self-signed certificate (made by init)."""
    return ssl.create_default_context(cafile=os.path.join(inst.etc, "tls", "cert.pem"))


def crlf(data):
    """LF or CRLF line ends -> CRLF (what an IMAP literal of the file is)."""
    return re.sub(rb"\r?\n", b"\r\n", data)


def lf(data):
    return data.replace(b"\r\n", b"\n")


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ---- parsing -------------------------------------------------------------

class ParseError(Exception):
    pass


def _parse_tokens(data, i, end_char=None):
    """Parses space-separated values from data[i:] until end_char (b')')
    or the end; returns (list, index after)."""
    out = []
    n = len(data)
    while i < n:
        c = data[i:i + 1]
        if c == b" ":
            i += 1
            continue
        if end_char is not None and c == end_char:
            return out, i + 1
        if c == b"(":
            sub, i = _parse_tokens(data, i + 1, b")")
            out.append(sub)
        elif c == b'"':
            j = i + 1
            s = bytearray()
            while True:
                if j >= n:
                    raise ParseError("unterminated string at %d" % i)
                ch = data[j:j + 1]
                if ch == b"\\":
                    s += data[j + 1:j + 2]
                    j += 2
                    continue
                if ch == b'"':
                    break
                s += ch
                j += 1
            out.append(s.decode("utf-8", "surrogateescape"))
            i = j + 1
        elif c == b"{":
            m = re.compile(rb"\{(\d+)\+?\}\r\n").match(data, i)
            if not m:
                raise ParseError("bad literal at %d: %r" % (i, data[i:i + 20]))
            size = int(m.group(1))
            start = m.end()
            out.append(bytes(data[start:start + size]))
            i = start + size
        else:
            # An atom; brackets may hold spaces and parentheses
            # (BODY[HEADER.FIELDS (A B)]), <...> follows.
            j = i
            depth = 0
            while j < n:
                ch = data[j:j + 1]
                if ch == b"[":
                    depth += 1
                elif ch == b"]":
                    depth -= 1
                elif depth == 0 and ch in (b" ", b"(", b")"):
                    break
                j += 1
            atom = data[i:j].decode("utf-8", "surrogateescape")
            out.append(None if atom.upper() == "NIL" else atom)
            i = j
    if end_char is not None:
        raise ParseError("unbalanced list")
    return out, i


def parse(data):
    """Values of one response (without the leading '* ' or tag)."""
    vals, _ = _parse_tokens(data, 0)
    return vals


def text(v):
    """bytes / str / None -> str (None stays None); lists recurse."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "surrogateescape")
    if isinstance(v, list):
        return [text(x) for x in v]
    return v


def fetch_items(resp):
    """b'* 3 FETCH (UID 7 FLAGS (\\Seen))' -> (3, {'UID': '7', 'FLAGS': [...]})
    Keys are upper-cased; values as parse() gives them."""
    vals = parse(resp[2:] if resp.startswith(b"* ") else resp)
    if len(vals) != 3 or str(vals[1]).upper() != "FETCH" or not isinstance(vals[2], list):
        raise ParseError("not a FETCH response: %r" % resp[:200])
    items = vals[2]
    if len(items) % 2:
        raise ParseError("odd FETCH item list: %r" % resp[:200])
    d = {}
    for k in range(0, len(items), 2):
        d[items[k].upper()] = items[k + 1]
    return int(vals[0]), d


# ---- the client ----------------------------------------------------------

class Literal:
    """A literal argument: synchronizing, or non-synchronizing (LITERAL+)."""

    def __init__(self, data, plus=False):
        self.data = data if isinstance(data, bytes) else data.encode()
        self.plus = plus


class Result:
    def __init__(self, tag, status, rest, untagged):
        self.tag = tag
        self.status = status          # "OK" / "NO" / "BAD"
        self.rest = rest              # bytes after the status
        self.untagged = untagged      # [bytes], each without "* " and CRLF
        m = re.match(rb"\[([^\]]*)\]", rest)
        self.code = m.group(1).decode() if m else None

    def named(self, name):
        """Untagged responses whose first word (or second, after a
        number) is name, e.g. 'EXISTS', 'FETCH', 'LIST'."""
        out = []
        for u in self.untagged:
            words = u.split(b" ", 2)
            if words[0].upper() == name.encode().upper():
                out.append(u)
            elif len(words) > 1 and words[0].isdigit() and \
                    words[1].rstrip(b"\r\n").upper() == name.encode().upper():
                out.append(u)
        return out

    def fetches(self):
        """{seq: {ITEM: value}} of the untagged FETCH responses (items of
        several responses for one message are merged)."""
        d = {}
        for u in self.named("FETCH"):
            seq, items = fetch_items(u)
            d.setdefault(seq, {}).update(items)
        return d

    def ok(self):
        if self.status != "OK":
            raise AssertionError("expected OK, got %s %r; untagged %r" % (
                self.status, self.rest, self.untagged[:5]))
        return self

    def __repr__(self):
        return "<Result %s %s %r untagged=%d>" % (self.tag, self.status, self.rest,
                                                  len(self.untagged))


class Client:
    """A raw IMAP client. greeting holds the greeting (without '* ')."""

    def __init__(self, inst, port=None, tls=False, timeout=IMAP_TIMEOUT, greet=True):
        self.inst = inst
        port = port or (inst.ports["imaps"] if tls else inst.ports["imap"])
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            self.sock = tls_context(inst).wrap_socket(self.sock, server_hostname="localhost")
        self.buf = b""
        self.n = 0
        self.pending = []    # untagged responses read outside a command
        self.greeting = self.response() if greet else None

    # -- low level --
    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed; buffered %r" % self.buf[-200:])
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def response(self):
        """One complete response line with its literals inlined as on the
        wire ("{n}\\r\\n" + data), without the final CRLF."""
        out = b""
        while True:
            line = self.line()
            out += line
            m = re.search(rb"\{(\d+)\}$", line)
            if not m:
                return out
            size = int(m.group(1))
            while len(self.buf) < size:
                self._fill()
            out += b"\r\n" + self.buf[:size]
            self.buf = self.buf[size:]

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def next_tag(self):
        self.n += 1
        return "T%d" % self.n

    def read_until_tagged(self, tag, untagged=None):
        untagged = [] if untagged is None else untagged
        while True:
            r = self.response()
            if r.startswith(b"* "):
                untagged.append(r[2:])
                continue
            if r.startswith(b"+"):
                raise AssertionError("unexpected continuation %r" % r)
            t, _, rest = r.partition(b" ")
            if t.decode() != tag:
                raise AssertionError("unexpected line %r waiting for %s" % (r, tag))
            status, _, rest = rest.partition(b" ")
            return Result(tag, status.decode().upper(), rest, untagged)

    def cmd(self, *parts, tag=None):
        """Sends tag + parts joined by nothing (str/bytes, Literal) + CRLF;
        waits for synchronizing-literal continuations; returns Result."""
        tag = tag or self.next_tag()
        untagged = []
        out = tag.encode() + b" "
        for p in parts:
            if isinstance(p, Literal):
                out += b"{%d%s}\r\n" % (len(p.data), b"+" if p.plus else b"")
                if p.plus:
                    out += p.data
                    continue
                self.send(out)
                out = b""
                while True:
                    r = self.response()
                    if r.startswith(b"+"):
                        break
                    if r.startswith(b"* "):
                        untagged.append(r[2:])
                        continue
                    # A tagged NO/BAD instead of the continuation.
                    t, _, rest = r.partition(b" ")
                    status, _, rest = rest.partition(b" ")
                    return Result(tag, status.decode().upper(), rest, untagged)
                out = p.data
            else:
                out += p if isinstance(p, bytes) else p.encode()
        self.send(out + b"\r\n")
        return self.read_until_tagged(tag, untagged)

    def login(self, user=None, password=None):
        user = user or self.inst.demo_user
        password = password or self.inst.passwords.get(user) or self.inst.demo_password
        return self.cmd('LOGIN "%s" "%s"' % (user, password)).ok()

    def select(self, box="INBOX", extra=""):
        return self.cmd('SELECT "%s"%s' % (box, extra)).ok()

    def at_eof(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def starttls(self):
        r = self.cmd("STARTTLS").ok()
        self.sock = tls_context(self.inst).wrap_socket(self.sock, server_hostname="localhost")
        return r

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def login(inst, user=None, password=None, tls=False):
    c = Client(inst, tls=tls)
    c.login(user, password)
    return c


def append(c, box, msg, flags=None, date=None, plus=False):
    """APPEND; returns (uidvalidity, uid) from [APPENDUID]."""
    args = '"%s"' % box
    if flags is not None:
        args += " (%s)" % flags
    if date is not None:
        args += ' "%s"' % date
    r = c.cmd("APPEND %s " % args, Literal(msg, plus=plus)).ok()
    m = re.match(r"APPENDUID (\d+) (\d+)$", r.code or "")
    assert m, "no APPENDUID in %r" % r.rest
    return int(m.group(1)), int(m.group(2))


def folder_files(inst, address, folder=None):
    """Message files of a folder ("" or None: INBOX) in new/ and cur/."""
    base = inst.maildir(address)
    if folder:
        base = os.path.join(base, "." + folder)
    files = []
    for sub in ("new", "cur"):
        d = os.path.join(base, sub)
        if os.path.isdir(d):
            files += [os.path.join(d, n) for n in os.listdir(d) if not n.startswith(".")]
    return sorted(files)


def maildir_flags(path):
    """The flag letters of a Maildir file name ("" when it has no :2,)."""
    name = os.path.basename(path)
    return name.split(":2,", 1)[1] if ":2," in name else ""


def wait_for(cond, timeout=10, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(interval)
