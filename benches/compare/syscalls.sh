# Sourced by benches/compare/run: system calls per transaction of PgBouncer and rolegate,
# counted by `strace -c` attached to the running proxies for a fixed number of transactions.
# On loopback most of a proxy's CPU time is system time (a send runs the receiving side's TCP
# path too), so what a proxy asks of the kernel per transaction matters more than its own
# instructions: a pooled transaction needs at least a read and a write on each side.
# strace slows the traced process down: these are counts, not speeds.
#
# Uses run's globals: DIR, PG_BIN, PID, PORT, say, selected.

# name | pgbench arguments (besides -j 2)
SYSCALL_SCENARIOS=(
    "-S -c 16|-S -c 16 -t 500"
    "-S -C -c 8|-S -C -c 8 -t 100"
)

# syscalls_of TARGET ARGS: "<calls per transaction> (<the most frequent calls, each per
# transaction>)", or "-".
syscalls_of() {
    local target="$1" args="$2" out="$DIR/strace.$target" tracer tx
    rm -f "$out"
    strace -c -S calls -f -q -p "${PID[$target]}" -o "$out" 2>/dev/null &
    tracer=$!
    sleep 1 # attaching takes a moment; calls before it are not counted
    # shellcheck disable=SC2086 # ARGS is a word list
    tx="$("$PG_BIN/pgbench" -h 127.0.0.1 -p "${PORT[$target]}" -U postgres -n -j 2 $args postgres 2>&1 |
        grep -oP 'processed: \K\d+' || echo 0)"
    kill -INT "$tracer" 2>/dev/null
    wait "$tracer" 2>/dev/null || true
    if [[ ! -s "$out" || "$tx" -eq 0 ]]; then
        echo "-"
        return
    fi
    # strace -c -S calls: "% time, seconds, usecs/call, calls, [errors,] syscall" rows, most
    # calls first, then a total row.
    awk -v tx="$tx" '
        $1 !~ /^[0-9.]+$/ { next }
        $NF == "total" { total = $4; next }
        $4 / tx >= 0.01 { list = list sep $NF " " sprintf("%.2f", $4 / tx); sep = ", " }
        END { printf "%.2f (%s)", total / tx, list }' "$out"
}

# syscalls_table: one row per scenario and proxy, to stdout.
syscalls_table() {
    local entry name args target
    command -v strace >/dev/null || {
        echo "system calls per transaction: strace is not installed"
        return
    }
    echo "system calls per transaction (strace -c, one run each):"
    for entry in "${SYSCALL_SCENARIOS[@]}"; do
        IFS='|' read -r name args <<<"$entry"
        selected "$name" || continue
        for target in pgbouncer rolegate; do
            say "system calls: $name through $target"
            printf '  %-22s %-10s %s\n' "$name" "$target" "$(syscalls_of "$target" "$args")"
        done
    done
}
