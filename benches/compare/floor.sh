# Sourced by benches/compare/run: the floor relays (benches/floor), measured beside the
# proxies at `-S -c 16` and `-S -C -c 8`. They do the least a transaction pooler must (a
# client's query to an idle server, the answer back) and nothing else, one as a
# hand-written mio loop (PgBouncer's shape), one as a tokio task per client (rolegate's):
# their CPU is what no pooler of that shape goes below on this machine, and their tps what
# the machine allows a relay that costs (almost) nothing.
#
#   floor-mio    23104  benches/floor/mio.rs, 20 server connections to the leader
#   floor-tokio  23105  benches/floor/tokio.rs, the same
#
# FLOOR=0 leaves them out. Uses run's globals: DIR, ROOT, LEADER_PORT, PID, PIDS_STARTED.

FLOOR_TARGETS=""
if [[ "${FLOOR:-1}" != 0 ]]; then FLOOR_TARGETS="floor-mio floor-tokio"; fi

# build_floor: builds the floor relays (when they are measured).
build_floor() {
    [[ -n "$FLOOR_TARGETS" ]] || return 0
    (cd "$ROOT" && cargo build --release --quiet --example floor_mio --example floor_tokio)
}

# start_floor: starts the floor relays; sets their PID and PORT entries.
start_floor() {
    local name port
    for name in $FLOOR_TARGETS; do
        port=23104
        [[ "$name" == floor-tokio ]] && port=23105
        "$ROOT/target/release/examples/${name/-/_}" "127.0.0.1:$port" "127.0.0.1:$LEADER_PORT" 20 \
            </dev/null >"$DIR/$name.log" 2>&1 &
        PID[$name]=$!
        PORT[$name]=$port
        PIDS_STARTED+=($!)
    done
}
