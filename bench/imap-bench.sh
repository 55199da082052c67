#!/bin/sh
# NAME
#	imap-bench.sh - Postern's imapd against Debian's Dovecot IMAP, one run
# SYNOPSIS
#	sh bench/imap-bench.sh BUILD
# DESCRIPTION
#	Figures, never pass/fail. Builds nothing: BUILD must hold imap-load
#	(and postern, master, imapd for the Postern side; without them only
#	Dovecot is measured and the report says so).
#
#	For each mailbox size in $BENCH_IMAP_MESSAGES, one seed Maildir of
#	that many messages of about $BENCH_IMAP_SIZE bytes is generated, as
#	Postern's local(8) leaves mail after a bulk delivery (everything in
#	new/, LF line endings, names "time.MusecPpidQn.host,S=size,W=crlf,P=pop3"
#	with the sizes lib/maildir.c writes; BENCH_IMAP_NAMES=dovecot leaves
#	out P=, as Dovecot's LDA names files, so Postern's first index build
#	reads every file to count POP3 octets),
#	with varied From/To/Cc/Subject/Date/Message-ID headers (some
#	RFC 2047 encoded words) and bodies. Two words are planted: "quokka"
#	in the Subject of every 10th message and "zanzibar" in the body of
#	every 20th, nowhere else; the expected SEARCH counts follow. The seed
#	is copied once per system (owned by that system's mail user).
#
#	For each repetition ($BENCH_REPS) and each system (the order
#	alternates between repetitions): a fresh copy of the seed (hard
#	links: no index, everything in new/) becomes the INBOX of
#	bench1@example.test, its files are read once so both systems start
#	with them in the page cache (as right after a delivery), the server
#	starts, imap-load runs one session (LOGIN, first SELECT, UNSELECT and
#	a second SELECT, UID FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE
#	ENVELOPE), UID FETCH 1:* BODY.PEEK[], UID SEARCH HEADER Subject
#	quokka, UID SEARCH BODY zanzibar, then $BENCH_IMAP_IDLE rounds of
#	IDLE latency: a message renamed into new/ until "* n EXISTS"; see
#	bench/imap-load.c), the server stops. imap-load checks the message
#	counts of SELECT and of both FETCHes, the bytes of BODY.PEEK[]
#	against RFC822.SIZE and the SEARCH counts; a failed check is
#	reported with what the server sent, and that run has no figures.
#
#	During each session a sampler (bench/proc-sampler.py) reads /proc:
#	peak RSS and PSS of the server's whole process tree and its CPU time.
#	The table goes to stdout and, with the command lines, date, load
#	average and machine notes, to bench/results/imap-latest.md.
#
#	Dovecot (installed with the packages dovecot-core and dovecot-imapd
#	when missing; the system service is stopped again if the install
#	started it) runs from a private configuration in the work directory:
#	127.0.0.1:$BENCH_IMAP_DOVECOT_PORT, no TLS, passwd-file passdb and
#	userdb with Postern's password hash, mail_location maildir, files
#	owned by the system user $BENCH_IMAP_USER (created when missing).
#	Postern: `postern init` with a port offset; imapd on 2143 + offset.
# ENVIRONMENT
#	BENCH_IMAP_MESSAGES ("10000 100000") BENCH_IMAP_SIZE (4096)
#	BENCH_REPS (3) BENCH_IMAP_SYSTEMS ("dovecot postern")
#	BENCH_IMAP_IDLE (20 IDLE rounds) BENCH_IMAP_TIMEOUT (1200: imap-load
#	-T) BENCH_IMAP_STEPS (imap-load -x: the steps after the first SELECT,
#	default all) BENCH_IMAP_DIR (work directory, default /tmp/postern-imap-bench;
#	it is emptied) BENCH_IMAP_DOVECOT_PORT (10143) BENCH_PORT_OFFSET
#	(Postern, 21000: IMAP on 23143) BENCH_IMAP_USER (imapbench)
#	BENCH_IMAP_OUT (bench/results/imap-latest.md) BENCH_TOOLS (where
#	imap-load is; default BUILD) BENCH_IMAP_NAMES (postern: names
#	with S=, W=, P=; dovecot: S= and W= only)
# LIMITS
#	Each session stops by itself (imap-load -T); servers are stopped
#	after each session and whatever they left is killed by pid; an
#	EXIT/INT/TERM trap stops everything this script started. Needs root
#	(package install, a system user, Dovecot's privilege separation),
#	/usr/bin/python3 (seed generator, sampler, report) and about
#	3 x MESSAGES x SIZE bytes of disk in the work directory for the
#	largest size (the seeds of one size are removed before the next).
set -u

if [ $# -ne 1 ]; then
    echo "usage: sh bench/imap-bench.sh BUILD_DIR" >&2
    exit 2
fi
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" 2>/dev/null && pwd) || { echo "imap-bench: no build directory $1" >&2; exit 2; }
bench_name=imap-bench
. "$src/bench/lib.sh"

SIZES=${BENCH_IMAP_MESSAGES:-10000 100000}
SIZE=${BENCH_IMAP_SIZE:-4096}
REPS=${BENCH_REPS:-3}
SYSTEMS=${BENCH_IMAP_SYSTEMS:-dovecot postern}
IDLE_ROUNDS=${BENCH_IMAP_IDLE:-20}
STEPS=${BENCH_IMAP_STEPS:-select2,fetch-meta,fetch-body,search-header,search-body,idle}
LOAD_TIMEOUT=${BENCH_IMAP_TIMEOUT:-1200}
WORK=${BENCH_IMAP_DIR:-/tmp/postern-imap-bench}
DC_PORT=${BENCH_IMAP_DOVECOT_PORT:-10143}
PORT_OFFSET=${BENCH_PORT_OFFSET:-21000}
PN_PORT=$((2143 + PORT_OFFSET))
BUSER=${BENCH_IMAP_USER:-imapbench}
OUT=${BENCH_IMAP_OUT:-$src/bench/results/imap-latest.md}
PY=/usr/bin/python3
PASSWORD=bench-imap-secret
DOMAIN=example.test
LOGIN=bench1@$DOMAIN
HWORD=quokka
BWORD=zanzibar
tools=$(cd "${BENCH_TOOLS:-$build}" 2>/dev/null && pwd) || { echo "imap-bench: no directory ${BENCH_TOOLS:-}" >&2; exit 2; }

[ "$(id -u)" = 0 ] || { echo "imap-bench: must run as root (Dovecot, package install)" >&2; exit 2; }
[ -x "$tools/imap-load" ] || { echo "imap-bench: $tools/imap-load is missing (cmake --build BUILD --target imap-load)" >&2; exit 2; }
[ -x "$PY" ] || { echo "imap-bench: $PY is needed for the seed generator and sampler" >&2; exit 2; }

case $WORK in /*) ;; *) WORK=$(pwd)/$WORK ;; esac

# --- what is running, so the trap can stop it ---------------------------
cur_system=""
sampler_pid=""
load_pid=""
policy_rc=""

server_pid() {
    case $1 in
        postern) f=$WORK/postern/queue/pid/master.pid ;;
        dovecot) f=$WORK/dovecot/run/master.pid ;;
    esac
    [ -r "$f" ] && tr -d ' \n' < "$f"
}

server_stop() {
    local s_pid left
    s_pid=$(server_pid "$1")
    left=""
    [ -n "$s_pid" ] && kill -0 "$s_pid" 2>/dev/null && left=$(tree_pids "$s_pid")
    case $1 in
        postern) timeout 20 "$build/postern" -c "$WORK/postern/etc" stop >/dev/null 2>&1 ;;
        dovecot) [ -n "$s_pid" ] && kill -TERM "$s_pid" 2>/dev/null ;;
    esac
    reap_pids "$1" $left
}

cleanup() {
    [ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null
    [ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null
    if [ -n "$cur_system" ]; then
        server_stop "$cur_system"
        cur_system=""
    fi
    [ -n "$policy_rc" ] && rm -f "$policy_rc"
    policy_rc=""
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

wait_port() {
    local i=0
    while [ $i -lt 100 ]; do
        "$PY" -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 1).close()" \
            2>/dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# --- which systems can be measured -----------------------------------------
rm -rf "$WORK"
mkdir -p "$WORK" || exit 2
chmod 755 "$WORK"
notes=$WORK/notes.txt
: > "$notes"
echo "Seed file names: ${BENCH_IMAP_NAMES:-postern} style (postern: S=, W=, P= as lib/maildir.c writes them; dovecot: S=, W= only)" >> "$notes"
measured=""
for system in $SYSTEMS; do
    case $system in
    postern)
        missing=""
        for b in postern master imapd; do
            [ -x "$build/$b" ] || missing="$missing $b"
        done
        if [ -n "$missing" ]; then
            echo "imap-bench: Postern not measured: missing in $build:$missing" | tee -a "$notes" >&2
            continue
        fi
        ;;
    dovecot) ;;
    *) echo "imap-bench: unknown system $system" >&2; exit 2 ;;
    esac
    measured="$measured $system"
done

# --- Dovecot: package, system service stopped, bench user ------------------
case " $measured " in *" dovecot "*) dovecot_prepare dovecot-imapd ;; esac
[ -n "$measured" ] || { echo "imap-bench: nothing to measure" >&2; exit 2; }

# --- the seed Maildir --------------------------------------------------------
# seed N: writes $WORK/seed and $WORK/seed.expected ("N HEADER_HITS BODY_HITS").
seed() {
    rm -rf "$WORK/seed" "$WORK/seed-postern" "$WORK/seed-dovecot"
    echo "imap-bench: generating $1 messages of $SIZE bytes" >&2
    "$PY" - "$WORK/seed" "$1" "$SIZE" "$HWORD" "$BWORD" > "$WORK/seed.expected" <<'EOF'
"""A Maildir as Postern's local(8) leaves it after a bulk delivery."""
import os, random, sys, time
path, n, size, hword, bword = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
names = os.environ.get("BENCH_IMAP_NAMES", "postern")
for sub in ("tmp", "new", "cur"):
    os.makedirs(os.path.join(path, sub), mode=0o700)
os.chmod(path, 0o700)
first = ("Alice Bob Carol Dave Erin Frank Grace Heidi Ivan Judy Mallory Niaj Olivia "
         "Peggy Rupert Sybil Trent Victor Walter Yvonne Zoe").split()
last = ("Smith Jones Brown Taylor Wilson Evans Thomas Johnson Roberts Walker Wright "
        "Robinson Thompson White Hughes Edwards Green Hall Wood Harris").split()
domains = ("bench.test", "example.org", "mail.example.net", "lists.example.com",
           "corp.example", "university.example.edu")
subj = ("meeting notes report draft review budget schedule update question invoice "
        "release build failure success weekly monthly quarterly plan agenda minutes "
        "proposal contract travel request approval summary status ticket").split()
vocab = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
         "incididunt ut labore et dolore magna aliqua enim ad minim veniam quis nostrud "
         "exercitation ullamco laboris nisi aliquip ex ea commodo consequat duis aute "
         "irure in reprehenderit voluptate velit esse cillum fugiat nulla pariatur "
         "excepteur sint occaecat cupidatat non proident sunt culpa qui officia deserunt "
         "mollit anim id est laborum").split()
assert not any(hword in w or bword in w for w in first + last + subj + vocab)
days = "Mon Tue Wed Thu Fri Sat Sun".split()
months = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
zones = ("+0000", "+0100", "-0500", "+0530", "-0800", "+0900")
t0 = int(time.time()) - n * 60
hits_h = hits_b = 0
for i in range(n):
    rnd = random.Random(i)
    fn, ln, dom = rnd.choice(first), rnd.choice(last), rnd.choice(domains)
    sender = "%s.%s@%s" % (fn.lower(), ln.lower(), dom)
    words = rnd.sample(subj, rnd.randint(2, 5))
    if i % 10 == 3:
        words.insert(rnd.randint(0, len(words)), hword)
        hits_h += 1
    subject = " ".join(words).capitalize()
    if i % 33 == 5:
        subject = "=?UTF-8?Q?Caf=C3=A9_" + subject.replace(" ", "_") + "?="
    if i % 7 == 2:
        subject = "Re: " + subject
    tm = time.gmtime(t0 + i * 60)
    date = "%s, %02d %s %d %02d:%02d:%02d %s" % (days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon - 1],
                                                 tm.tm_year, tm.tm_hour, tm.tm_min, tm.tm_sec,
                                                 zones[i % len(zones)])
    to = "Bench User <bench@example.test>"
    if i % 4 == 1:
        to += ",\n\t%s %s <%s.%s@%s>" % (rnd.choice(first), rnd.choice(last), "x%d" % i,
                                         rnd.choice(last).lower(), rnd.choice(domains))
    head = ("Return-Path: <%s>\n"
            "Delivered-To: bench@example.test\n"
            "Received: from %s (localhost [127.0.0.1])\n"
            "\tby mail.example.test (Postern) with ESMTP id B%08d\n"
            "\tfor <bench@example.test>; %s\n"
            "From: %s %s <%s>\n"
            "To: %s\n") % (sender, dom, i, date, fn, ln, sender, to)
    if i % 5 == 0:
        head += "Cc: %s %s <%s@%s>\n" % (rnd.choice(first), rnd.choice(last), "cc%d" % i, rnd.choice(domains))
    if i % 7 == 2 and i > 0:
        head += "In-Reply-To: <%d.%08x@%s>\n" % (i - 1, (i - 1) * 2654435761 % 2**32, dom)
    head += ("Subject: %s\n"
             "Date: %s\n"
             "Message-ID: <%d.%08x@%s>\n"
             "MIME-Version: 1.0\n"
             "Content-Type: text/plain; charset=us-ascii\n\n") % (subject, date, i, i * 2654435761 % 2**32, dom)
    body = []
    room = size - len(head)
    plant = i % 20 == 7
    if plant:
        hits_b += 1
        where = rnd.randint(0, max(room // 73 - 1, 0))
    while room > 0:
        line = []
        while len(" ".join(line)) < 60:
            line.append(rnd.choice(vocab))
        if plant and len(body) == where:
            line[rnd.randrange(len(line))] = bword
            plant = False
        text = " ".join(line)[:72]
        if len(text) + 1 > room:
            text = text[:max(room - 1, 0)]
        body.append(text + "\n")
        room -= len(text) + 1
    if plant:  # the message was too short for the chosen line
        body.append(bword + "\n")
    data = (head + "".join(body)).encode()
    crlf = len(data) + data.count(b"\n")
    name = "%d.M%06dP%dQ%d.bench,S=%d,W=%d" % (t0 + i * 60, i % 1000000, os.getpid(), i + 1,
                                              len(data), crlf)
    if names == "postern":
        # POP3 octets as lib/maildir.c counts them: dot-stuffed lines, and
        # the CRLF the server adds after a last line without one.
        lines = data.split(b"\n")
        dots = sum(1 for ln in (lines[:-1] if data.endswith(b"\n") else lines)
                   if ln.startswith(b"."))
        name += ",P=%d" % (crlf + dots + (0 if data.endswith(b"\n") else 2))
    with open(os.path.join(path, "new", name), "wb") as f:
        f.write(data)
    os.utime(os.path.join(path, "new", name), (t0 + i * 60, t0 + i * 60))
print(n, hits_h, hits_b)
EOF
    [ $? -eq 0 ] || return 1
    for system in $ready; do
        cp -a "$WORK/seed" "$WORK/seed-$system" || return 1
        chown -R "$(mail_owner "$system"):" "$WORK/seed-$system" || return 1
    done
}

# --- instances -----------------------------------------------------------------
mail_owner() {
    local owner
    case $1 in
    postern)
        owner=$("$build/postconf" -c "$WORK/postern/etc" -h mail_owner 2>/dev/null)
        echo "${owner:-postern}"
        ;;
    dovecot) echo "$BUSER" ;;
    esac
}

# The password hash both systems verify: Postern's (yescrypt), when Postern runs.
setup_postern() {
    local d=$WORK/postern
    "$build/postern" init "$d" --port-offset "$PORT_OFFSET" >> "$WORK/setup.log" 2>&1 || return 1
    grep -q imapd "$d/etc/master.cf" || { echo "postern init wrote no imapd service" >> "$WORK/setup.log"; return 1; }
    printf '%s\n' "$PASSWORD" | "$build/postern" -c "$d/etc" user add "$LOGIN" \
        >> "$WORK/setup.log" 2>&1 || return 1
}

setup_dovecot() {
    local d=$WORK/dovecot uid gid hash
    uid=$(id -u "$BUSER") gid=$(id -g "$BUSER")
    mkdir -p "$d/etc" "$d/run" "$d/state" "$d/log" "$d/mail" || return 1
    chmod 755 "$d" "$d/mail"
    hash=""
    [ -r "$WORK/postern/etc/passwd" ] &&
        hash=$(awk -F: -v u="$LOGIN" '$1 == u { sub(/^[^:]*:/, ""); print; exit }' "$WORK/postern/etc/passwd")
    [ -n "$hash" ] || hash="{PLAIN}$PASSWORD"
    printf '%s:%s:%s:%s::%s::\n' "$LOGIN" "$hash" "$uid" "$gid" "$d/mail/bench1" > "$d/etc/passwd"
    chmod 640 "$d/etc/passwd"
    chgrp dovecot "$d/etc/passwd"
    cat > "$d/etc/dovecot.conf" <<EOC
# Dovecot IMAP for Postern's bench/imap-bench.sh: loopback only, no TLS, Debian's defaults otherwise.
base_dir = $d/run
state_dir = $d/state
instance_name = postern-imap-bench
protocols = imap
listen = 127.0.0.1
log_path = $d/log/dovecot.log
info_log_path = $d/log/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
login_trusted_networks = 127.0.0.0/8
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = $uid
last_valid_uid = $uid
mail_location = maildir:~
passdb {
  driver = passwd-file
  args = username_format=%u $d/etc/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%u $d/etc/passwd
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $DC_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
EOC
}

# The INBOX of $LOGIN for a system.
inbox() {
    case $1 in
        postern) echo "$WORK/postern/mail/$DOMAIN/bench1" ;;
        dovecot) echo "$WORK/dovecot/mail/bench1" ;;
    esac
}

# A fresh INBOX (no index, everything in new/), its files in the page cache.
fresh_inbox() {
    local dir
    dir=$(inbox "$1")
    rm -rf "$dir"
    mkdir -p "$(dirname "$dir")"
    cp -al "$WORK/seed-$1" "$dir" || return 1
    sync
    find "$dir/new" -type f -print0 | xargs -0 cat > /dev/null
}

server_start() {
    case $1 in
    postern)
        cur_system=postern
        timeout 20 "$build/postern" -c "$WORK/postern/etc" start >> "$WORK/setup.log" 2>&1 || return 1
        wait_port "$PN_PORT" || return 1
        ;;
    dovecot)
        cur_system=dovecot
        dovecot -c "$WORK/dovecot/etc/dovecot.conf" >> "$WORK/setup.log" 2>&1 || return 1
        wait_port "$DC_PORT" || return 1
        ;;
    esac
    # Dovecot may listen before it writes master.pid; the sampler needs it.
    local i=0 p
    while [ $i -lt 100 ]; do
        p=$(server_pid "$1")
        [ -n "$p" ] && kill -0 "$p" 2>/dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# --- set-up ------------------------------------------------------------------
ready=""
# Postern first: Dovecot's passwd-file takes the hash Postern made.
for system in postern dovecot; do
    case " $measured " in *" $system "*) ;; *) continue ;; esac
    if "setup_$system" >> "$WORK/setup.log" 2>&1; then
        ready="$ready $system"
    else
        echo "imap-bench: $system could not be set up; see $WORK/setup.log" | tee -a "$notes" >&2
        tail -5 "$WORK/setup.log" >&2
    fi
done
[ -n "$ready" ] || exit 1
# The order of the first repetition: Dovecot first (as in $SYSTEMS).
set -- $SYSTEMS
first_ready=""
for system in "$@"; do
    case " $ready " in *" $system "*) first_ready="$first_ready $system" ;; esac
done
ready=$first_ready

version_of() {
    case $1 in
        dovecot) echo "Dovecot $(dovecot --version 2>/dev/null)" ;;
        postern) echo "Postern (build $build)" ;;
    esac
}

session_names() {
    case $1 in
        postern) echo imapd ;;
        dovecot) echo imap,imap-login,auth ;;
    esac
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
t_start=$(date +%s)

# --- the runs ------------------------------------------------------------
raw=$WORK/raw.tsv
printf 'messages\tsystem\trep\tstatus\tsteps\tsample\n' > "$raw"
commands=""
broken=""
seeds=""
for N in $SIZES; do
    seed "$N" || { echo "imap-bench: seed generation failed" >&2; exit 2; }
    read -r _n hits_h hits_b < "$WORK/seed.expected"
    seeds="$seeds
  - $N messages: $(du -sb "$WORK/seed/new" | cut -f1) bytes in new/; Subject \"$HWORD\" in $hits_h, body \"$BWORD\" in $hits_b"
    r=1
    while [ $r -le "$REPS" ]; do
        # The machine's speed drifts over minutes: each repetition runs both
        # systems back to back, and the order alternates.
        order=$ready
        [ $((r % 2)) -eq 0 ] && order=$(echo "$ready" | awk '{ for (i = NF; i > 0; i--) printf " %s", $i }')
        for system in $order; do
            case " $broken " in *" $system "*) continue ;; esac
            fresh_inbox "$system" || { echo "imap-bench: cannot copy the mailbox for $system" | tee -a "$notes" >&2; broken="$broken $system"; continue; }
            if ! server_start "$system"; then
                echo "imap-bench: $system could not be started; see $WORK/setup.log" | tee -a "$notes" >&2
                tail -5 "$WORK/setup.log" >&2
                server_stop "$system"
                cur_system=""
                broken="$broken $system"
                continue
            fi
            case $system in
                postern) port=$PN_PORT ;;
                dovecot) port=$DC_PORT ;;
            esac
            "$PY" "$src/bench/proc-sampler.py" "$(server_pid "$system")" "$WORK/sample.out" \
                "$(session_names "$system")" 2 &
            sampler_pid=$!
            sleep 0.3
            cmd="imap-load -s 127.0.0.1:$port -u $LOGIN -p PASSWORD -N $N -H $HWORD=$hits_h -B $BWORD=$hits_b -m $(inbox "$system") -k $IDLE_ROUNDS -T $LOAD_TIMEOUT -x $STEPS"
            "$tools/imap-load" -s "127.0.0.1:$port" -u "$LOGIN" -p "$PASSWORD" -N "$N" \
                -H "$HWORD=$hits_h" -B "$BWORD=$hits_b" -m "$(inbox "$system")" \
                -k "$IDLE_ROUNDS" -T "$LOAD_TIMEOUT" -x "$STEPS" > "$WORK/load.out" 2> "$WORK/load.err" &
            load_pid=$!
            wait "$load_pid"
            status=$?
            load_pid=""
            kill "$sampler_pid" 2>/dev/null
            wait "$sampler_pid" 2>/dev/null
            sampler_pid=""
            sample=$(cat "$WORK/sample.out" 2>/dev/null)
            rm -f "$WORK/sample.out"
            steps=$(tr '\n' ';' < "$WORK/load.out")
            echo "== $system $N messages rep $r (exit $status)" >> "$WORK/load.log"
            cat "$WORK/load.out" "$WORK/load.err" >> "$WORK/load.log"
            if [ "$status" -ne 0 ]; then
                echo "imap-bench: $system, $N messages, rep $r: imap-load failed:" | tee -a "$notes" >&2
                sed 's/^/    /' "$WORK/load.err" | head -5 | tee -a "$notes" >&2
            fi
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$N" "$system" "$r" "$status" "$steps" "$sample" >> "$raw"
            echo "$system $N rep=$r exit=$status: $(echo "$steps" | tr ';' '\n' | awk '{ printf "%s %s  ", $1, $2 }')" >&2
            case $commands in *"$cmd"*) ;; *) commands="$commands
    $cmd" ;; esac
            server_stop "$system"
            cur_system=""
        done
        r=$((r + 1))
    done
done
rm -rf "$WORK/seed" "$WORK/seed-postern" "$WORK/seed-dovecot"
t_end=$(date +%s)

# --- the report ----------------------------------------------------------
mkdir -p "$(dirname "$OUT")"
versions=""
for system in $ready; do versions="$versions $(version_of "$system");"; done
cpu=$(awk -F: '/model name/ { sub(/^ +/, "", $2); print $2; exit }' /proc/cpuinfo)
mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
fstype=$(df -T "$WORK" | awk 'NR == 2 { print $2 " on " $1 }')
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

cat > "$WORK/head.md" <<EOF
# IMAP benchmark results (latest run)

Written by \`sh bench/imap-bench.sh\`. Figures, never pass/fail: median of
$REPS repetitions, (min–max) in brackets; each repetition ran both systems
back to back on fresh copies of the same Maildir, the order alternating.
Times are seconds from sending the command to its tagged reply (IDLE: from
the rename() of a new message into new/ to "* n EXISTS", median of
$IDLE_ROUNDS rounds). Ratio = Postern time / Dovecot time per repetition:
below 1 means Postern is ahead.

- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); run time $((t_end - t_start)) s
- Machine: $cpu, $(nproc) cores, $mem RAM, kernel $(uname -r); work directory $WORK ($fstype)
- Systems:$versions
- Mailboxes (about $SIZE bytes a message, LF line endings, all in new/ and in the page cache before the first SELECT):$seeds
- Load average (1, 5, 15 min) before: $load_start; after: $load_end

EOF

"$PY" - "$raw" "$OUT" "$WORK/head.md" "$notes" <<EOF
import statistics, sys
raw, out, head, notes = sys.argv[1:5]
steps = ["login", "select1", "select2", "fetch-meta", "fetch-body", "search-header",
         "search-body", "idle"]
label = {"login": "LOGIN", "select1": "first SELECT", "select2": "second SELECT",
         "fetch-meta": "UID FETCH 1:* (FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)",
         "fetch-body": "UID FETCH 1:* BODY.PEEK[]", "search-header": "UID SEARCH HEADER Subject $HWORD",
         "search-body": "UID SEARCH BODY $BWORD", "idle": "IDLE latency"}
runs = []   # (messages, system, rep, ok, {step: kv}, sample kv)
with open(raw) as f:
    next(f)
    for line in f:
        n, system, rep, status, st, sample = line.rstrip("\n").split("\t")
        per = {}
        for s in st.split(";"):
            kv = dict(x.split("=", 1) for x in s.split() if "=" in x)
            if "step" in kv:
                per[kv["step"]] = kv
        sm = dict(x.split("=", 1) for x in sample.split() if "=" in x)
        runs.append((int(n), system, int(rep), status == "0", per, sm))

def spread(vals, fmt):
    if not vals:
        return "n/a"
    med = statistics.median(vals)
    if len(vals) == 1:
        return fmt % med
    return (fmt + " (" + fmt + "–" + fmt + ")") % (med, min(vals), max(vals))

def tfmt(vals):
    if not vals:
        return "n/a"
    m = statistics.median(vals)
    return spread(vals, "%.4f" if m < 0.1 else "%.3f" if m < 10 else "%.1f")

systems = [s for s in ("dovecot", "postern") if any(r[1] == s for r in runs)]
out_lines = []
for n in sorted({r[0] for r in runs}):
    out_lines += ["", "### %d messages" % n, "",
                  "| step | " + " | ".join("%s s" % s.capitalize() for s in systems)
                  + (" | Postern / Dovecot |" if len(systems) == 2 else " |")
                  + " check |",
                  "|---|" + "---:|" * len(systems) + ("---:|" if len(systems) == 2 else "") + "---|"]
    for step in steps:
        cells = []
        for s in systems:
            cells.append(tfmt([float(r[4][step]["secs"]) for r in runs
                               if r[0] == n and r[1] == s and step in r[4]]))
        ratio = []
        for rep in sorted({r[2] for r in runs if r[0] == n}):
            a = [r[4].get(step) for r in runs if r[:3] == (n, "dovecot", rep)]
            b = [r[4].get(step) for r in runs if r[:3] == (n, "postern", rep)]
            if a and b and a[0] and b[0] and float(a[0]["secs"]) > 0:
                ratio.append(float(b[0]["secs"]) / float(a[0]["secs"]))
        check = {}
        for r in runs:
            if r[0] == n and step in r[4] and step != "idle":
                kv = r[4][step]
                for k in ("messages", "results", "size_sum"):
                    if k in kv:
                        check.setdefault(k, set()).add(kv[k])
        shown = ["%s %s" % (" / ".join(sorted(v)), k.replace("size_sum", "bytes"))
                 for k, v in sorted(check.items())]
        differ = any(len(v) > 1 for v in check.values())
        row = "| %s | %s |" % (label[step], " | ".join(cells))
        if len(systems) == 2:
            row += " %s |" % spread(ratio, "%.2f")
        row += " %s%s |" % ("DIFFERENT: " if differ else "", "; ".join(shown))
        out_lines.append(row)
    out_lines.append("")
    out_lines.append("| system | whole session s | server peak RSS MiB | server peak PSS MiB | server CPU s | failed runs |")
    out_lines.append("|---|---:|---:|---:|---:|---:|")
    for s in systems:
        rs = [r for r in runs if r[0] == n and r[1] == s]
        tot = [sum(float(kv["secs"]) for k, kv in r[4].items() if k != "idle") for r in rs if r[3]]
        out_lines.append("| %s | %s | %s | %s | %s | %d |" % (
            s, tfmt(tot),
            spread([int(r[5]["peak_rss_kb"]) / 1024 for r in rs if "peak_rss_kb" in r[5]], "%.0f"),
            spread([int(r[5]["peak_pss_kb"]) / 1024 for r in rs if "peak_pss_kb" in r[5]], "%.0f"),
            spread([float(r[5]["cpu_secs"]) for r in rs if "cpu_secs" in r[5]], "%.2f"),
            sum(1 for r in rs if not r[3])))
table = "\n".join(out_lines).strip("\n")
print(table)
with open(out, "w") as f:
    f.write(open(head).read())
    nt = open(notes).read().strip()
    if nt:
        f.write("Notes:\n\n" + "\n".join("- " + l if not l.startswith("    ") else "  " + l
                                         for l in nt.splitlines()) + "\n\n")
    f.write(table + "\n\n")
    f.write("""Columns: whole session s is the sum of the steps without IDLE; server peak
RSS/PSS and CPU s cover the server's whole process tree (master and all
descendants) during the session, IDLE rounds included. The check column
shows what imap-load verified (equal on both systems unless it says
DIFFERENT): the message count of SELECT and of each UID FETCH, the SEARCH
result counts, and the bytes of BODY.PEEK[] (equal to the sum of
RFC822.SIZE).

Command lines (BUILD=$build, tools from $tools):

\`\`\`
# per size: the seed Maildir in $WORK/seed, copied to seed-postern and seed-dovecot
BUILD/postern init $WORK/postern --port-offset $PORT_OFFSET
BUILD/postern -c $WORK/postern/etc user add $LOGIN
# each (repetition, system): cp -al the system's seed copy to the INBOX, read its files, then
BUILD/postern -c $WORK/postern/etc start          # or: dovecot -c $WORK/dovecot/etc/dovecot.conf
# the session (PASSWORD: $PASSWORD)$commands
BUILD/postern -c $WORK/postern/etc stop           # or: kill the dovecot master
\`\`\`

""")
    try:
        f.write("Dovecot's configuration ($WORK/dovecot/etc/dovecot.conf):\n\n\`\`\`\n"
                + open("$WORK/dovecot/etc/dovecot.conf").read() + "\`\`\`\n\n")
    except OSError:
        pass
    f.write("Raw results (one line per session):\n\n\`\`\`\n" + open(raw).read() + "\`\`\`\n")
EOF
echo "imap-bench: report written to $OUT"
