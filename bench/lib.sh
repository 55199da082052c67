# NAME
#	lib.sh - shell functions the benchmark scripts share (sourced)
# DESCRIPTION
#	run-all.sh, pop3-bench.sh, relay-bench.sh and edge-bench.sh stop what
#	they started by pid, never by name: these find a server's process
#	tree and make sure all of it is gone. The sourcing script sets
#	$bench_name (for messages) and $build (Postern's programs).

# Descendants of a pid (itself included), from one ps snapshot.
tree_pids() {
    ps -eo pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2; pids[NR] = $1 }
        END {
            keep[root] = 1; changed = 1
            while (changed) {
                changed = 0
                for (i in pids) { p = pids[i]
                    if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; changed = 1 } }
            }
            for (p in keep) if (p != "") print p
        }'
}

# The master pid of a Postern or Postfix instance in DIR.
master_pid() {
    f=$1/queue/pid/master.pid
    [ -r "$f" ] && tr -d ' \n' < "$f"
}

# reap_pids LABEL PID...: waits up to 10 s for the pids to go, then
# kills what is left.
reap_pids() {
    local r_label r_alive r_i r_p
    r_label=$1
    shift
    r_i=0
    while [ $r_i -lt 100 ]; do
        r_alive=""
        for r_p in "$@"; do kill -0 "$r_p" 2>/dev/null && r_alive="$r_alive $r_p"; done
        [ -z "$r_alive" ] && return 0
        sleep 0.1
        r_i=$((r_i + 1))
    done
    echo "$bench_name: $r_label left $(echo $r_alive | wc -w) processes; killing them" >&2
    for r_p in $r_alive; do kill -9 "$r_p" 2>/dev/null; done
}

# instance_stop SYSTEM DIR: stops the postfix or postern instance in DIR
# and everything its master started.
instance_stop() {
    local s_system s_dir s_mpid left
    s_system=$1 s_dir=$2
    [ -n "$s_dir" ] && [ -d "$s_dir" ] || return 0
    s_mpid=$(master_pid "$s_dir")
    left=""
    [ -n "$s_mpid" ] && kill -0 "$s_mpid" 2>/dev/null && left=$(tree_pids "$s_mpid")
    case $s_system in
        postfix) timeout 60 postfix -c "$s_dir/etc" stop >/dev/null 2>&1 ;;
        postern) timeout 20 "$build/postern" -c "$s_dir/etc" stop >/dev/null 2>&1 ;;
    esac
    reap_pids "$s_system" $left
}
