"""Peak memory and CPU time of a process tree, sampled from /proc.

usage: proc-sampler.py ROOT_PID OUT_FILE [SESSION_NAMES [PSS_EVERY]]

Every 100 ms: the tree under ROOT_PID (the server's master and all its
descendants) and, when SESSION_NAMES (comma-separated process names) is
given, the session processes among them. PSS (from smaps_rollup) is read
every PSS_EVERY samples (default 5), since it costs more than RSS. CPU is
utime + stime + cutime + cstime of the tree at the start and at the end, so
children that exited and were reaped still count. Runs until SIGTERM or
until ROOT_PID is gone, then writes one key=value line to OUT_FILE. Used by
run-all.sh (SMTP) and pop3-bench.sh (POP3).
"""
import os
import signal
import sys
import time

root, out = int(sys.argv[1]), sys.argv[2]
names = set(n for n in (sys.argv[3] if len(sys.argv) > 3 else "").split(",") if n)
pss_every = int(sys.argv[4]) if len(sys.argv) > 4 else 5
page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
hz = os.sysconf("SC_CLK_TCK")
stop = False


def on_term(signum, frame):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)


def tree():
    procs = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        comm = s[s.find("(") + 1:s.rfind(")")]
        fl = s[s.rfind(")") + 2:].split()
        # state ppid ... utime(11) stime(12) cutime(13) cstime(14) ... rss(21)
        procs[int(d)] = (int(fl[1]), sum(int(x) for x in fl[11:15]), int(fl[21]), comm)
    kids = {}
    for p, v in procs.items():
        kids.setdefault(v[0], []).append(p)
    todo, members = [root], []
    while todo:
        p = todo.pop()
        if p in procs:
            members.append(p)
            todo.extend(kids.get(p, []))
    return procs, members


def pss(members):
    total = 0
    for p in members:
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


procs, members = tree()
cpu0 = sum(procs[p][1] for p in members)
peak = {"rss": 0, "pss": 0, "sess_rss": 0, "sess_pss": 0, "procs": 0, "sess_procs": 0}
n = 0
while True:
    procs, members = tree()
    sess = [p for p in members if procs[p][3] in names]
    peak["rss"] = max(peak["rss"], sum(procs[p][2] for p in members) * page_kb)
    peak["sess_rss"] = max(peak["sess_rss"], sum(procs[p][2] for p in sess) * page_kb)
    peak["procs"] = max(peak["procs"], len(members))
    peak["sess_procs"] = max(peak["sess_procs"], len(sess))
    if n % pss_every == 0:
        peak["pss"] = max(peak["pss"], pss(members))
        if names:
            peak["sess_pss"] = max(peak["sess_pss"], pss(sess))
    n += 1
    if stop or root not in procs:
        break
    time.sleep(0.1)
cpu1 = sum(procs[p][1] for p in members)
line = "peak_rss_kb=%d peak_pss_kb=%d peak_procs=%d cpu_secs=%.2f samples=%d" % (
    peak["rss"], peak["pss"], peak["procs"], (cpu1 - cpu0) / hz, n)
if names:
    line += " sess_rss_kb=%d sess_pss_kb=%d sess_procs=%d" % (
        peak["sess_rss"], peak["sess_pss"], peak["sess_procs"])
with open(out, "w") as f:
    f.write(line + "\n")
