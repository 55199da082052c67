"""A large deferred queue for Postern's qmgr, and a watcher while it is retried.

usage: relay-backlog.py gen QUEUE_DIR COUNT SIZE SENDER RCPT NEXT_TRY [UID GID]
       relay-backlog.py watch LOG QMGR_PID QUEUE_DIR WANT TIMEOUT OUT SERIES
                              PROBE_FIRST PROBE_GAP PROBE_MATCH
                              -- FLUSH_CMD... -- PROBE_CMD...

gen writes COUNT queue files straight into QUEUE_DIR/deferred/ in the
format of lib/queue_file.h ("POSTERN-QUEUE 1", T, S, A, R-, M, message,
E), one pending recipient RCPT each, a SIZE-byte message (headers with
a unique Message-ID, then 72-character lines, LF endings), arrival two
hours ago, mtime NEXT_TRY (unix seconds: in the future, the files are
not due; in the past, the next deferred scan takes them). IDs follow
queue_id_new(): 8 hex digits of seconds, 5 of microseconds, 4 of a
counter, so they are valid and unique. Files are mode 0600, owned by
UID:GID when given (qmgr runs as mail_owner). No fsync: the benchmark
does not need them durable.

watch measures one full retry of the backlog. It notes the end of LOG,
runs FLUSH_CMD (postqueue -f), then every 0.5 s: reads the new log lines
and counts "status=deferred" ones (each backlog message has one
recipient, so WANT such lines mean every message had its next attempt),
reads qmgr's RSS (/proc/PID/status) and PSS (smaps_rollup) and, every
2 s, the number of files in active/ and incoming/. Meanwhile a thread
starts a probe message PROBE_FIRST seconds after the flush and then
every PROBE_GAP seconds until the backlog is done, each its own
PROBE_CMD (smtp-load -n 1 to a local user), without waiting for the
previous one. A probe's latency is the delay= of its delivery line (log
lines containing PROBE_MATCH and status=sent): from its arrival in the
queue to its delivery. After the last backlog line the watcher waits
for active/ and incoming/ to empty (the queue settled) and for every
probe's delivery line (at most 60 s more), samples at least 5 s more,
then writes one key=value line to OUT and the time series (t, deferred
lines, qmgr RSS/PSS kB, active, incoming) as TSV to SERIES. Everything
stops by TIMEOUT seconds.
Used by relay-bench.sh.
"""
import os
import re
import statistics
import subprocess
import sys
import threading
import time


def gen(argv):
    qdir, count, size, sender, rcpt, next_try = argv[:6]
    count, size, next_try = int(count), int(size), int(next_try)
    uid = int(argv[6]) if len(argv) > 6 else -1
    gid = int(argv[7]) if len(argv) > 7 else -1
    ddir = os.path.join(qdir, "deferred")
    now = int(time.time())
    arrival = now - 7200
    line = ("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
            "0123456789")[:72] + "\n"
    for i in range(count):
        usec_total = i * 37          # distinct, sorted by "arrival"
        sec = arrival - 3600 + usec_total // 1000000
        usec = usec_total % 1000000
        qid = "%08X%05X%04X" % (sec & 0xffffffff, usec, i & 0xffff)
        head = ("From: <%s>\nTo: <%s>\nSubject: backlog %d\n"
                "Date: Thu, 26 Nov 2026 06:00:00 +0000\n"
                "Message-ID: <%s.%d@relay-bench.test>\n\n" % (sender, rcpt, i, qid, i))
        body = []
        left = size - len(head)
        while left > 0:
            chunk = line if left >= len(line) else line[:max(0, left - 1)] + "\n"
            body.append(chunk)
            left -= len(chunk)
        msg = (head + "".join(body)).encode()
        env = ("POSTERN-QUEUE 1\nT %d.%06d\nS %s\n"
               "A client=localhost[127.0.0.1]\nA client_address=127.0.0.1\n"
               "A helo=relay-bench\nA protocol=ESMTP\nR- %s\nM %012d\n"
               % (sec, usec, sender, rcpt, len(msg))).encode()
        path = os.path.join(ddir, qid)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, env + msg + b"E\n")
        if uid >= 0:
            os.fchown(fd, uid, gid)
        os.close(fd)
        os.utime(path, (next_try, next_try))
    return 0


def proc_kb(pid):
    rss = pss = 0
    try:
        with open("/proc/%d/status" % pid) as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    rss = int(ln.split()[1])
                    break
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for ln in f:
                if ln.startswith("Pss:"):
                    pss = int(ln.split()[1])
                    break
    except OSError:
        pass
    return rss, pss


def count_dir(path):
    try:
        return sum(1 for _ in os.scandir(path))
    except OSError:
        return -1


def watch(argv):
    log, qpid, qdir, want, timeout, out, series = argv[:7]
    probe_first, probe_gap = float(argv[7]), float(argv[8])
    probe_match = argv[9].encode()
    rest = argv[10:]
    if not rest or rest[0] != "--" or "--" not in rest[1:]:
        sys.stderr.write(__doc__)
        return 2
    sep = rest.index("--", 1)
    flush_cmd, probe_cmd = rest[1:sep], rest[sep + 1:]
    qpid, want, timeout = int(qpid), int(want), float(timeout)

    pos = os.path.getsize(log)
    t0 = time.monotonic()
    deadline = t0 + timeout
    done = threading.Event()
    launched = []                # (seconds after flush, Popen)

    def prober():
        # One probe every PROBE_GAP seconds, each its own smtp-load, so a
        # starved probe does not hold back the next one.
        if done.wait(probe_first):
            return
        while not done.is_set() and time.monotonic() < deadline - 60:
            launched.append((time.monotonic() - t0,
                             subprocess.Popen(probe_cmd, stdout=subprocess.PIPE,
                                              stderr=subprocess.DEVNULL)))
            if done.wait(probe_gap):
                return

    rss0, pss0 = proc_kb(qpid)
    flush = subprocess.run(flush_cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
    th = threading.Thread(target=prober, daemon=True)
    th.start()
    seen = sent = bounced = 0
    delays = []                  # delay= of the probes' delivery lines, in log order
    rows = []
    t_all = t_settled = None
    partial = b""
    active = incoming = -1
    n = 0
    while True:
        now = time.monotonic()
        with open(log, "rb") as f:
            f.seek(pos)
            data = f.read()
            pos += len(data)
        data = partial + data
        lines = data.split(b"\n")
        partial = lines.pop()
        for ln in lines:
            if b"status=deferred" in ln:
                seen += 1
            elif b"status=sent" in ln:
                sent += 1
                if probe_match in ln:
                    m = re.search(rb" delay=([\d.]+)", ln)
                    if m:
                        delays.append(float(m.group(1)))
            elif b"status=bounced" in ln:
                bounced += 1
        rss, pss = proc_kb(qpid)
        if n % 4 == 0:
            active = count_dir(os.path.join(qdir, "active"))
            incoming = count_dir(os.path.join(qdir, "incoming"))
        rows.append((now - t0, seen, rss, pss, active, incoming))
        n += 1
        if t_all is None and seen >= want:
            t_all = now
            done.set()
            th.join(timeout=5)
        if t_all is not None and t_settled is None and n % 4 == 1 and active == 0 and incoming == 0:
            t_settled = now
        # Settled, 5 s of samples after it, and every probe delivered (or
        # 60 s more for the stragglers).
        if (t_settled is not None and now - t_settled >= 5 and
                (len(delays) >= len(launched) or now - t_settled >= 60)):
            break
        if now >= deadline:
            break
        time.sleep(0.5)
    done.set()
    th.join(timeout=5)
    for _, p in launched:
        try:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    rss1, pss1 = proc_kb(qpid)
    with open(series, "w") as f:
        f.write("t\tdeferred_lines\tqmgr_rss_kb\tqmgr_pss_kb\tactive\tincoming\n")
        for r in rows:
            f.write("%.1f\t%d\t%d\t%d\t%d\t%d\n" % r)
    res = {
        "flush_rc": flush.returncode,
        "want": want,
        "deferred_seen": seen,
        "sent_lines": sent,
        "bounced_lines": bounced,
        "retry_secs": "%.1f" % (t_all - t0) if t_all else "-1",
        "retry_rate": "%.0f" % (want / (t_all - t0)) if t_all else "0",
        "settle_secs": "%.1f" % (t_settled - t0) if t_settled else "-1",
        "qmgr_rss_before_kb": rss0,
        "qmgr_pss_before_kb": pss0,
        "qmgr_rss_peak_kb": max([r[2] for r in rows] + [0]),
        "qmgr_pss_peak_kb": max([r[3] for r in rows] + [0]),
        "qmgr_rss_after_kb": rss1,
        "qmgr_pss_after_kb": pss1,
        "active_peak": max([r[4] for r in rows] + [0]),
        "probes": len(launched),
        "probes_lost": max(0, len(launched) - len(delays)),
        "probe_median_secs": "%.2f" % statistics.median(delays) if delays else "-1",
        "probe_max_secs": "%.2f" % max(delays) if delays else "-1",
        "probe_sent_at": ",".join("%.0f" % t for t, _ in launched) or "none",
        "probe_delays": ",".join("%.2f" % d for d in delays) or "none",
    }
    with open(out, "w") as f:
        f.write(" ".join("%s=%s" % kv for kv in res.items()) + "\n")
    return 0


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("gen", "watch"):
        sys.stderr.write(__doc__)
        return 2
    if sys.argv[1] == "gen":
        if len(sys.argv) < 8:
            sys.stderr.write(__doc__)
            return 2
        return gen(sys.argv[2:])
    if len(sys.argv) < 14:
        sys.stderr.write(__doc__)
        return 2
    return watch(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
