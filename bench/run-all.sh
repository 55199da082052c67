#!/bin/sh
# NAME
#	run-all.sh - Postern against Debian's Postfix on this machine, one run
# SYNOPSIS
#	sh bench/run-all.sh BUILD        (make bench: sh bench/run-all.sh build)
# DESCRIPTION
#	Figures, never pass/fail. Builds nothing: BUILD must hold smtp-load and
#	fsync-rate (and postern, master, smtpd, qmgr, local for the Postern
#	side; without them only Postfix is measured and the report says so).
#	For each system, sessions in $BENCH_SESSIONS, messages per connection
#	in $BENCH_PER_CONN, $BENCH_REPS repetitions: a fresh instance, one
#	warm-up message through the whole chain, then smtp-load sends
#	$BENCH_MESSAGES messages of $BENCH_SIZE bytes and waits until all are
#	in the Maildir. During the run a sampler reads /proc every 100 ms:
#	peak sum of RSS (and PSS every 500 ms) of the instance's processes
#	(the master and all its descendants) and their CPU time (utime+stime
#	of live processes plus cutime+cstime, so short-lived children that
#	were reaped during the run count too). fsync-rate runs once on the
#	same filesystem. The table goes to stdout and, with the command
#	lines, date and machine notes, to bench/results/latest.md.
# ENVIRONMENT
#	BENCH_MESSAGES (2000) BENCH_SIZE (4096) BENCH_SESSIONS ("10 50")
#	BENCH_PER_CONN ("1 10") BENCH_REPS (3) BENCH_SYSTEMS ("postfix postern")
#	BENCH_DIR (work directory, default /tmp/postern-bench; it is emptied)
#	BENCH_POSTFIX_PORT (10025) BENCH_PORT_OFFSET (Postern, 20000)
#	BENCH_OUT (bench/results/latest.md)
#	BENCH_TOOLS (where smtp-load and fsync-rate are; default BUILD)
# LIMITS
#	Each load run stops by itself (smtp-load -T 240, deliveries waited for
#	at most 120 s); every instance is stopped after its run and whatever
#	it left is killed; an EXIT/INT/TERM trap stops everything this script
#	started. Needs root for Postfix (the package install and its
#	alternate_config_directories) and /usr/bin/python3 for the sampler.
set -u

if [ $# -ne 1 ]; then
    echo "usage: sh bench/run-all.sh BUILD_DIR" >&2
    exit 2
fi
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" 2>/dev/null && pwd) || { echo "run-all: no build directory $1" >&2; exit 2; }
bench_name=run-all
. "$src/bench/lib.sh"

N=${BENCH_MESSAGES:-2000}
SIZE=${BENCH_SIZE:-4096}
SESSIONS=${BENCH_SESSIONS:-10 50}
PER_CONN=${BENCH_PER_CONN:-1 10}
REPS=${BENCH_REPS:-3}
SYSTEMS=${BENCH_SYSTEMS:-postfix postern}
WORK=${BENCH_DIR:-/tmp/postern-bench}
PF_PORT=${BENCH_POSTFIX_PORT:-10025}
PORT_OFFSET=${BENCH_PORT_OFFSET:-20000}
OUT=${BENCH_OUT:-$src/bench/results/latest.md}
PY=/usr/bin/python3
tools=$(cd "${BENCH_TOOLS:-$build}" 2>/dev/null && pwd) || { echo "run-all: no directory ${BENCH_TOOLS:-}" >&2; exit 2; }

for tool in smtp-load fsync-rate; do
    if [ ! -x "$tools/$tool" ]; then
        echo "run-all: $tools/$tool is missing (make bench builds it)" >&2
        exit 2
    fi
done
[ -x "$PY" ] || { echo "run-all: $PY is needed for the /proc sampler" >&2; exit 2; }

case $WORK in /*) ;; *) WORK=$(pwd)/$WORK ;; esac
rm -rf "$WORK"
mkdir -p "$WORK" || exit 2
chmod 755 "$WORK"
raw=$WORK/raw.tsv
notes=$WORK/notes.txt
: > "$notes"

# --- what is running, so the trap can stop it ---------------------------
cur_system=""
cur_dir=""
sampler_pid=""
load_pid=""

cleanup() {
    [ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null
    [ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null
    if [ -n "$cur_system" ]; then
        instance_stop "$cur_system" "$cur_dir"
        cur_system=""
    fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

# --- instances -----------------------------------------------------------
# Sets dir, port, rcpt, newdir; returns non-zero when it cannot start.
instance_start() {
    local w i
    dir=$WORK/$1
    case $1 in
    postfix)
        rm -rf "$dir"
        sh "$src/bench/postfix-setup.sh" "$dir" "$PF_PORT" >> "$WORK/setup.log" 2>&1 || return 1
        port=$PF_PORT
        rcpt=user@bench.test
        newdir=$dir/mail/bench.test/user/new
        cur_system=postfix cur_dir=$dir
        postfix -c "$dir/etc" start >> "$WORK/setup.log" 2>&1 || return 1
        ;;
    postern)
        rm -rf "$dir"
        "$build/postern" init "$dir" --port-offset "$PORT_OFFSET" >> "$WORK/setup.log" 2>&1 || return 1
        port=$((2525 + PORT_OFFSET))
        rcpt=demo@example.test
        newdir=$dir/mail/example.test/demo/new
        cur_system=postern cur_dir=$dir
        timeout 20 "$build/postern" -c "$dir/etc" start >> "$WORK/setup.log" 2>&1 || return 1
        ;;
    esac
    # Warm-up: one message through the whole chain proves the instance
    # works and starts the long-lived processes before the measurement.
    i=0
    while [ $i -lt 15 ]; do
        w=$("$tools/smtp-load" -s "127.0.0.1:$port" -n 1 -c 1 -S 1000 -r "$rcpt" \
            -w "$newdir" -W 10 -T 12 2>>"$WORK/setup.log")
        case $w in *"accepted=1 "*"e2e_complete=1"*) sleep 1; return 0 ;; esac
        sleep 1
        i=$((i + 1))
    done
    echo "run-all: $1 instance in $dir did not deliver a warm-up message" >&2
    return 1
}

version_of() {
    case $1 in
        postfix) postconf -h mail_version 2>/dev/null | sed 's/^/Postfix /' ;;
        postern) echo "Postern (build $build)" ;;
    esac
}

# The machine is shared: its load before and after says how noisy the run was.
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# --- fsync-rate: the disk's ceiling, once ---------------------------------
fsync_line=$("$tools/fsync-rate" -d "$WORK" -t 3 2>&1)
echo "fsync-rate: $fsync_line"

# --- the runs ------------------------------------------------------------
printf 'system\tsessions\tper_conn\trep\tline\n' > "$raw"
commands=""
# Systems that can be measured; the machine's speed drifts over minutes, so
# every repetition runs each configuration on each system back to back
# (interleaved), never all of one system and then all of the other.
measured=""
for system in $SYSTEMS; do
    if [ "$system" = postern ]; then
        missing=""
        for b in postern master smtpd qmgr local; do
            [ -x "$build/$b" ] || missing="$missing $b"
        done
        if [ -n "$missing" ]; then
            echo "run-all: Postern not measured: missing in $build:$missing" | tee -a "$notes" >&2
            continue
        fi
    fi
    measured="$measured $system"
done
broken=""
r=1
while [ $r -le "$REPS" ]; do
    for c in $SESSIONS; do
        for m in $PER_CONN; do
            for system in $measured; do
                case " $broken " in *" $system "*) continue ;; esac
                if ! instance_start "$system"; then
                    echo "run-all: $system could not be started; see $WORK/setup.log" | tee -a "$notes" >&2
                    tail -5 "$WORK/setup.log" >&2
                    instance_stop "$system" "$WORK/$system"
                    cur_system=""
                    broken="$broken $system"
                    continue
                fi
                mpid=$(master_pid "$dir")
                "$PY" "$src/bench/proc-sampler.py" "$mpid" "$WORK/sample.out" &
                sampler_pid=$!
                sleep 0.2
                cmd="smtp-load -s 127.0.0.1:$port -n $N -S $SIZE -c $c -m $m -r $rcpt -w $newdir -W 120 -T 240"
                line=$("$tools"/$cmd 2>>"$WORK/load.log")
                kill "$sampler_pid" 2>/dev/null
                wait "$sampler_pid" 2>/dev/null
                sampler_pid=""
                sample=$(cat "$WORK/sample.out" 2>/dev/null)
                rm -f "$WORK/sample.out"
                instance_stop "$system" "$dir"
                cur_system=""
                printf '%s\t%s\t%s\t%s\t%s %s\n' "$system" "$c" "$m" "$r" "$line" "$sample" >> "$raw"
                echo "$system c=$c m=$m rep=$r: $line $sample"
                case $commands in *"$cmd"*) ;; *) commands="$commands
    $cmd" ;; esac
            done
        done
    done
    r=$((r + 1))
done

# --- the report ----------------------------------------------------------
mkdir -p "$(dirname "$OUT")"
versions=""
for system in $SYSTEMS; do versions="$versions $(version_of "$system");"; done
cpu=$(awk -F: '/model name/ { sub(/^ +/, "", $2); print $2; exit }' /proc/cpuinfo)
mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
fstype=$(df -T "$WORK" | awk 'NR == 2 { print $2 " on " $1 }')
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

"$PY" - "$raw" "$OUT" <<EOF
import statistics, sys
raw, out = sys.argv[1], sys.argv[2]
rows = []
with open(raw) as f:
    next(f)
    for line in f:
        system, c, m, rep, kv = line.rstrip("\n").split("\t")
        d = dict(x.split("=", 1) for x in kv.split() if "=" in x)
        rows.append((system, int(c), int(m), int(rep), d))

def spread(vals, fmt):
    if not vals:
        return "n/a"
    med = statistics.median(vals)
    if len(vals) == 1:
        return fmt % med
    return (fmt + " (" + fmt + "–" + fmt + ")") % (med, min(vals), max(vals))

table = ["| system | sessions | msgs/conn | accepted msgs/s | delivered msgs/s (end to end) "
         "| errors | peak RSS sum MiB | peak PSS sum MiB | peak procs | CPU s / 1000 msgs |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
keys = []
for r in rows:
    if r[:3] not in keys:
        keys.append(r[:3])
for k in keys:
    ds = [r[4] for r in rows if r[:3] == k]
    num = lambda key: [float(d[key]) for d in ds if key in d]
    e2e = [float(d["e2e_rate"]) for d in ds if d.get("e2e_complete") == "1"]
    incomplete = sum(1 for d in ds if d.get("e2e_complete") != "1")
    cpu = [float(d["cpu_secs"]) * 1000 / float(d["accepted"]) for d in ds
           if "cpu_secs" in d and float(d.get("accepted", 0)) > 0]
    table.append("| %s | %d | %d | %s | %s%s | %d | %s | %s | %s | %s |" % (
        k[0], k[1], k[2], spread(num("accept_rate"), "%.0f"), spread(e2e, "%.0f"),
        " (%d incomplete)" % incomplete if incomplete else "",
        sum(int(d.get("errors", 0)) for d in ds),
        spread([v / 1024 for v in num("peak_rss_kb")], "%.0f"),
        spread([v / 1024 for v in num("peak_pss_kb")], "%.0f"),
        spread(num("peak_procs"), "%.0f"), spread(cpu, "%.2f")))
# Ratios from back-to-back pairs (same repetition and configuration), so
# the machine's drift between minutes cancels out.
pairs = ["", "| sessions | msgs/conn | Postern / Postfix, delivered msgs/s: median of per-repetition ratios (min–max) | Postfix / Postern, CPU per message |",
         "|---:|---:|---:|---:|"]
have_pairs = False
for c, m in sorted({(r[1], r[2]) for r in rows}):
    ratios, cpu_ratios = [], []
    for rep in sorted({r[3] for r in rows}):
        pf = [r[4] for r in rows if r[:4] == ("postfix", c, m, rep)]
        pn = [r[4] for r in rows if r[:4] == ("postern", c, m, rep)]
        if not pf or not pn:
            continue
        a, b = pf[0], pn[0]
        if a.get("e2e_complete") == "1" and b.get("e2e_complete") == "1":
            ratios.append(float(b["e2e_rate"]) / float(a["e2e_rate"]))
        if "cpu_secs" in a and "cpu_secs" in b and float(b["cpu_secs"]) > 0:
            cpu_ratios.append((float(a["cpu_secs"]) / float(a["accepted"])) /
                              (float(b["cpu_secs"]) / float(b["accepted"])))
    if ratios:
        have_pairs = True
        pairs.append("| %d | %d | %s | %s |" % (c, m, spread(ratios, "%.2f"),
                                                 spread(cpu_ratios, "%.2f")))
if have_pairs:
    table += pairs
table_text = "\n".join(table)
print(table_text)

with open(raw) as f:
    raw_text = f.read()
with open(out, "w") as f:
    f.write("""# Benchmark results (latest run)

Written by \`sh bench/run-all.sh\` (\`make bench\`). Figures, never pass/fail:
median of $REPS runs, (min–max) in brackets. Method: docs/benchmarks.md.

- Date: $(date -u '+%Y-%m-%d %H:%M UTC')
- Machine: $cpu, $(nproc) cores, $mem RAM, kernel $(uname -r); work directory $WORK ($fstype)
- Systems:$versions
- Messages: $N per run, $SIZE bytes each, one recipient, delivered to a Maildir
- Load average (1, 5, 15 min) before: $load_start; after: $load_end
- Disk (fsync-rate -d $WORK -t 3): \`$fsync_line\`

""")
    notes = open("$notes").read().strip()
    if notes:
        f.write("Notes:\n\n" + "\n".join("- " + l for l in notes.splitlines()) + "\n\n")
    f.write(table_text + "\n\n")
    f.write("""Command lines (BUILD=$build, tools from $tools; port and recipient per system):

\`\`\`
# each run, Postfix: fresh instance, warm-up message, load, stop
sh bench/postfix-setup.sh $WORK/postfix $PF_PORT
postfix -c $WORK/postfix/etc start
postfix -c $WORK/postfix/etc stop
# each run, Postern
BUILD/postern init $WORK/postern --port-offset $PORT_OFFSET
BUILD/postern -c $WORK/postern/etc start
BUILD/postern -c $WORK/postern/etc stop
# the load (tools directory)$commands
\`\`\`

Raw results (one line per run):

\`\`\`
""" + raw_text + "\`\`\`\n")
EOF
echo "run-all: report written to $OUT"
