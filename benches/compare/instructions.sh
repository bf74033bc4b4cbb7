# Sourced by benches/compare/run: instructions per transaction of PgBouncer and rolegate,
# counted by valgrind's callgrind. Unlike CPU time these counts do not move with the
# machine's load (the same binary and workload give the same count within ~1%), so they
# show small changes the noisy tps and CPU columns cannot. They are instructions, not
# time: cache misses, atomics and system calls weigh the same as any instruction here.
#
# Each proxy runs once more under callgrind on its own port (PgBouncer 23110, rolegate
# 23112, pointing at the same leader); counters are zeroed once it answers, pgbench runs a
# fixed number of transactions, and the count is read from the dump.
#
# Uses run's globals: DIR, ROOT, PG_BIN, BASE, LEADER_PORT, ROLEGATE_WORKERS, FLOOR_TARGETS,
# PIDS_STARTED, say, selected.

# name | pgbench arguments (besides -j 2; a fixed -t keeps the runs short under callgrind)
INSTRUCTION_SCENARIOS=(
    "-S -c 16|-S -c 16 -t 1000"
    "-S -c 1000|-S -c 1000 -t 20"
    "-S -C -c 8|-S -C -c 8 -t 300"
    "-S -M prepared -c 16|-S -M prepared -c 16 -t 1000"
)

# callgrind_start TARGET PORT: starts TARGET under callgrind; prints its pid.
callgrind_start() {
    local target="$1" port="$2" out="$DIR/callgrind"
    mkdir -p "$out"
    chmod 777 "$out"
    case "$target" in
    pgbouncer)
        sed -e "s/^listen_port = .*/listen_port = $port/" "$DIR/pgbouncer.ini" >"$out/pgbouncer.ini"
        chmod 644 "$out/pgbouncer.ini"
        setpriv --reuid=postgres --regid=postgres --init-groups \
            valgrind --tool=callgrind --callgrind-out-file="$out/pgbouncer.%p" \
            "${PGBOUNCER:-pgbouncer}" "$out/pgbouncer.ini" </dev/null >"$out/pgbouncer.log" 2>&1 &
        ;;
    rolegate)
        cat >"$out/rolegate.toml" <<EOF
[cluster]
scope = "demo"
namespace = "/service/"
[dcs.etcd]
endpoints = ["127.0.0.1:$BASE"]
[admin]
http = ""
[log]
level = "warn"
[runtime]
worker_threads = $ROLEGATE_WORKERS
[auth]
type = "trust"
file = "$DIR/userlist.txt"
[[listener]]
name = "pooled"
addr = "127.0.0.1:$port"
role = "primary"
pool_mode = "transaction"
pool_size = 20
max_client_conn = 5000
EOF
        valgrind --tool=callgrind --callgrind-out-file="$out/rolegate.%p" \
            "$ROOT/target/release/rolegate" --config "$out/rolegate.toml" </dev/null >"$out/rolegate.log" 2>&1 &
        ;;
    floor-mio | floor-tokio)
        valgrind --tool=callgrind --callgrind-out-file="$out/$target.%p" \
            "$ROOT/target/release/examples/${target/-/_}" "127.0.0.1:$port" "127.0.0.1:$LEADER_PORT" 20 \
            </dev/null >"$out/$target.log" 2>&1 &
        ;;
    esac
    PIDS_STARTED+=($!)
    echo $!
}

# as_owner TARGET COMMAND...: runs COMMAND as the user TARGET runs as.
as_owner() {
    local target="$1"
    shift
    if [[ "$target" == pgbouncer ]]; then
        timeout 60 setpriv --reuid=postgres --regid=postgres --init-groups "$@"
    else
        timeout 60 "$@"
    fi
}

# instructions_of TARGET PORT ARGS: instructions per transaction (or "-").
instructions_of() {
    local target="$1" port="$2" args="$3" pid out tx dump ir deadline
    pid="$(callgrind_start "$target" "$port")"
    deadline=$((SECONDS + 60))
    until "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            kill -TERM "$pid" 2>/dev/null
            echo "-"
            return
        fi
        sleep 0.5
    done
    # vgdb finds a process by FIFOs named after its user: ask as that user.
    as_owner "$target" callgrind_control -z "$pid" >/dev/null 2>&1
    # shellcheck disable=SC2086 # ARGS is a word list
    out="$(PGCONNECT_TIMEOUT=60 "$PG_BIN/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -j 2 $args postgres 2>&1)"
    as_owner "$target" callgrind_control -d "$pid" >/dev/null 2>&1
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    tx="$(grep -oP 'processed: \K\d+' <<<"$out" || echo 0)"
    # The dump made by -d is the one with a part number: "<target>.<pid>.1".
    dump="$(ls "$DIR/callgrind/$target.$pid".* 2>/dev/null | head -n1)"
    ir="$(awk '/^(summary|totals):/ {print $2; exit}' "$dump" 2>/dev/null)"
    if [[ -n "$ir" && "$tx" -gt 0 ]]; then echo $((ir / tx)); else echo "-"; fi
}

# instructions_table: one row per scenario, to stdout.
instructions_table() {
    local entry name args pgb rg
    echo "instructions per transaction (callgrind, one run each; user space only):"
    printf '  %-22s %12s %12s %8s\n' scenario pgbouncer rolegate ratio
    for entry in "${INSTRUCTION_SCENARIOS[@]}"; do
        IFS='|' read -r name args <<<"$entry"
        selected "$name" || continue
        say "instructions: $name"
        pgb="$(instructions_of pgbouncer 23110 "$args")"
        rg="$(instructions_of rolegate 23112 "$args")"
        printf '  %-22s %12s %12s %8s\n' "$name" "$pgb" "$rg" \
            "$(if [[ "$pgb" =~ ^[0-9]+$ && "$rg" =~ ^[0-9]+$ ]]; then
                awk -v a="$rg" -v b="$pgb" 'BEGIN {printf "%.2fx", a / b}'
            else echo "-"; fi)"
    done
    if [[ -n "$FLOOR_TARGETS" ]] && selected "-S -c 16"; then
        say "instructions: the floor relays at -S -c 16"
        printf '  floor relays at -S -c 16 (see benches/floor): mio loop %s, tokio tasks %s\n' \
            "$(instructions_of floor-mio 23114 "-S -c 16 -t 1000")" \
            "$(instructions_of floor-tokio 23115 "-S -c 16 -t 1000")"
    fi
}
