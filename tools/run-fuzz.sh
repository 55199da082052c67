#!/bin/sh
# Runs every built fuzz target for a few seconds each on its seed corpus.
build=$1; secs=${2:-10}
status=0
for t in "$build"/fuzz-*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    corpus="fuzz/corpus/${name#fuzz-}"
    work=$(mktemp -d)
    [ -d "$corpus" ] && cp "$corpus"/* "$work"/ 2>/dev/null
    if "$t" -max_total_time="$secs" -max_len=4096 "$work" >"$work.log" 2>&1; then
        echo "fuzz: $name ok ($(grep -c . "$work.log") log lines)"
    else
        echo "fuzz: $name FAILED"; tail -40 "$work.log"; status=1
    fi
    rm -rf "$work" "$work.log"
done
exit $status
