"""Shared helpers for the IMAP tests (test_imap.py, test_imap_fetch_search.py,
test_imap_clients.py).

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

import base64
import imaplib
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


# ---- logins and messages shared by test_imap*.py ----------------------------

def imaplib_login(inst, user=None, password=None):
    m = imaplib.IMAP4("127.0.0.1", inst.ports["imap"], timeout=10)
    m.login(user or inst.demo_user, password or inst.passwords.get(user) or inst.demo_password)
    return m


def simple_message(mid, subject="hello", body="Hello IMAP.\r\n", sender="ann@remote.test",
                   to="demo@example.test", extra="", date="Wed, 25 Nov 2026 10:11:12 +0000"):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s>\r\n%s\r\n%s"
            % (sender, to, subject, date, mid, extra, body)).encode()


def multipart(boundary, parts, preamble=b"This is a multi-part message in MIME format.\r\n"):
    """parts: [(header bytes incl. final CRLF, body bytes)]. The CRLF
    before each delimiter belongs to the delimiter (RFC 2046), so a
    part's body is exactly the given bytes."""
    out = preamble
    for header, body in parts:
        out += b"--" + boundary + b"\r\n" + header + b"\r\n" + body + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


QP_TEXT = (b"Gr=C3=BC=C3=9Fe aus K=C3=B6ln, the magic word is super=\r\n"
           b"califragilistic and that is all.\r\n"
           b"Second line =3D equals.\r\n")
HTML = b"<html><body><p>hidden base64secretword inside</p></body></html>\r\n"
HTML_B64 = base64.encodebytes(HTML).replace(b"\n", b"\r\n")
PDF_B64 = base64.encodebytes(bytes(range(256)) * 3).replace(b"\n", b"\r\n")
BIN_B64 = base64.encodebytes(b"\x00\x01binary attachment\xff" * 10).replace(b"\n", b"\r\n")


class Complex:
    """A nested MIME message whose section bytes are known by
    construction:
        multipart/mixed
          1   multipart/alternative
          1.1   text/plain utf-8 quoted-printable
          1.2   text/html utf-8 base64
          2   message/rfc822 (ISO-8859-1 encoded-word subject)
          2.1   text/plain
          2.2   application/octet-stream, RFC 2231 continued filename
          3   application/pdf base64, RFC 2231 charset-encoded filename
    """

    def __init__(self, mid="complex.1@remote.test"):
        self.mid = mid
        self.p11_hdr = (b"Content-Type: text/plain; charset=utf-8\r\n"
                        b"Content-Transfer-Encoding: quoted-printable\r\n")
        self.p11 = QP_TEXT
        self.p12_hdr = (b"Content-Type: text/html; charset=utf-8\r\n"
                        b"Content-Transfer-Encoding: base64\r\n")
        self.p12 = HTML_B64
        self.p1_hdr = b'Content-Type: multipart/alternative; boundary="alt-b"\r\n'
        self.p1 = multipart(b"alt-b", [(self.p11_hdr, self.p11), (self.p12_hdr, self.p12)])
        self.p21_hdr = b"Content-Type: text/plain; charset=us-ascii\r\n"
        self.p21 = b"Inner text of the forwarded message.\r\nSecond inner line.\r\n"
        self.p22_hdr = (b"Content-Type: application/octet-stream\r\n"
                        b"Content-Transfer-Encoding: base64\r\n"
                        b"Content-Disposition: attachment;\r\n"
                        b' filename*0="very long ";\r\n'
                        b' filename*1="name.bin"\r\n')
        self.p22 = BIN_B64
        self.inner_hdr = (b"From: Bob Inner <bob@inner.test>\r\n"
                          b"To: ann@remote.test\r\n"
                          b"Subject: =?ISO-8859-1?Q?Caf=E9_au_lait?=\r\n"
                          b"Date: Tue, 24 Nov 2026 09:00:00 +0000\r\n"
                          b"Message-ID: <inner.1@inner.test>\r\n"
                          b"MIME-Version: 1.0\r\n"
                          b'Content-Type: multipart/mixed; boundary="inner-b"\r\n'
                          b"\r\n")
        self.inner_body = multipart(b"inner-b", [(self.p21_hdr, self.p21),
                                                 (self.p22_hdr, self.p22)])
        self.p2_hdr = (b"Content-Type: message/rfc822\r\n"
                       b"Content-Description: forwarded\r\n")
        self.p2 = self.inner_hdr + self.inner_body
        self.p3_hdr = (b'Content-Type: application/pdf; name="rates.pdf"\r\n'
                       b"Content-Transfer-Encoding: base64\r\n"
                       b"Content-Disposition: attachment;\r\n"
                       b" filename*0*=utf-8''%E2%82%AC%20rates;\r\n"
                       b' filename*1=".pdf"\r\n')
        self.p3 = PDF_B64
        self.header = ('From: "Ann Example" <ann@remote.test>\r\n'
                       "To: demo@example.test\r\n"
                       'Cc: "Carl" <carl@remote.test>\r\n'
                       "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n"
                       "X-Folded: first part\r\n second part\r\n"
                       "Date: Wed, 25 Nov 2026 10:11:12 +0100\r\n"
                       "Message-ID: <%s>\r\n"
                       "In-Reply-To: <parent@remote.test>\r\n"
                       "MIME-Version: 1.0\r\n"
                       'Content-Type: multipart/mixed; boundary="outer-b"\r\n'
                       "\r\n" % mid).encode()
        self.body = multipart(b"outer-b", [(self.p1_hdr, self.p1), (self.p2_hdr, self.p2),
                                          (self.p3_hdr, self.p3)])
        self.data = self.header + self.body


def deliver(inst, msg, address=None):
    """Sends msg through smtpd; waits until local stored it; returns the
    bytes of the Maildir file (imapd may rename it later: new/ -> cur/,
    flags)."""
    address = address or inst.demo_user
    before = set(inst.maildir_files(address))
    assert inst.send("ann@remote.test", address, msg) == {}
    files = inst.wait_for_maildir(address, len(before) + 1)
    new = [f for f in files if f not in before]
    assert len(new) == 1, new
    return read(new[0])


def find_by_mid(inst, mid, folder=None):
    """The current path of the message with Message-ID <mid>."""
    found = [p for p in folder_files(inst, inst.demo_user, folder)
             if b"Message-ID: <%s>" % mid.encode() in read(p)]
    assert len(found) == 1, (mid, found)
    return found[0]


def file_header_end(data):
    i = data.find(b"\n\n")
    assert i >= 0
    return i + 2


def select_info(r):
    """EXISTS, RECENT, FLAGS and the OK [CODE ...] values of a SELECT result."""
    info = {}
    for u in r.untagged:
        m = re.match(rb"(\d+) (EXISTS|RECENT)$", u, re.I)
        if m:
            info[m.group(2).decode().upper()] = int(m.group(1))
            continue
        m = re.match(rb"FLAGS \((.*)\)$", u, re.I)
        if m:
            info["FLAGS"] = set(m.group(1).decode().split())
            continue
        m = re.match(rb"OK \[(\S+)(?: (.*?))?\]", u, re.I)
        if m:
            info[m.group(1).decode().upper()] = (m.group(2) or b"").decode()
    return info
