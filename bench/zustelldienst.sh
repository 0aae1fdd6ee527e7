#!/usr/bin/env bash
# Zustelldienst intake benchmark: many concurrent FIT-Connect senders doing the full flow
# (token reused; create + one attachment + submit) against `rathaus serve --demo`, on SQLite
# and (when a PostgreSQL server can be started here) on PostgreSQL. The signing bound is
# measured in the same run by the load generator: PS512 signatures/s with an RSA-4096 key
# on all cores, halved (a submission needs two SETs).
#
#   bench/zustelldienst.sh                        # both backends, defaults below
#   BENCH_BACKENDS=sqlite BENCH_SECONDS=10 bench/zustelldienst.sh
#
# Environment (all optional):
#   BENCH_SECONDS=30          measured load per run
#   BENCH_CONCURRENCY=32      concurrent senders (sustained run)
#   BENCH_BURST_CONCURRENCY=128  senders of the burst run (0 = no burst run)
#   BENCH_BURST_SECONDS=60    length of the burst run
#   BENCH_ATTACHMENT=10240    attachment plaintext bytes
#   BENCH_BACKENDS="sqlite postgres"
#   BENCH_SKIP_BUILD=1, RATHAUS_BIN, BENCH_PROFILE (see bench/lib.sh)
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECONDS_LOAD=${BENCH_SECONDS:-30}
CONC=${BENCH_CONCURRENCY:-32}
BURST_CONC=${BENCH_BURST_CONCURRENCY:-128}
BURST_SECONDS=${BENCH_BURST_SECONDS:-60}
ATT=${BENCH_ATTACHMENT:-10240}
BACKENDS=${BENCH_BACKENDS:-sqlite postgres}
READY_TIMEOUT=${BENCH_READY_TIMEOUT:-300}

bench_init
ensure_tool curl curl
ensure_tool jq jq
cargo_build rathaus bench-zustelldienst
RATHAUS=${RATHAUS_BIN:-$TARGET_RELEASE/rathaus}
LOADGEN=$TARGET_RELEASE/bench-zustelldienst
[[ -x "$RATHAUS" && -x "$LOADGEN" ]] || die "binaries missing in $TARGET_RELEASE"

echo "# Zustelldienst intake, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# attachment ${ATT} bytes, sustained run ${CONC} senders × ${SECONDS_LOAD}s, burst ${BURST_CONC} senders × ${BURST_SECONDS}s"

run_backend() {
    local backend=$1 url="" pgstate=""
    local data="$BENCH_TMP/data-$backend" port
    mkdir -p "$data"
    if [[ "$backend" == postgres ]]; then
        pgstate="$BENCH_TMP/pg.state"
        url=$(PG_THROWAWAY_STATE=$pgstate "$ROOT/scripts/pg-throwaway" start 2>/dev/null) || {
            log "no PostgreSQL here (scripts/pg-throwaway start failed): skipping"; return 0; }
    fi
    port=$(free_port)
    log "$backend: starting rathaus on 127.0.0.1:$port"
    if [[ -n "$url" ]]; then
        start_bg "$BENCH_TMP/rathaus-$backend.log" env RATHAUS_DATABASE_URL="$url" "$RATHAUS" serve --demo --data-dir "$data" --listen "127.0.0.1:$port"
    else
        start_bg "$BENCH_TMP/rathaus-$backend.log" "$RATHAUS" serve --demo --data-dir "$data" --listen "127.0.0.1:$port"
    fi
    local pid=$LAST_PID
    wait_ready "http://127.0.0.1:$port/readyz" "$pid" "$READY_TIMEOUT" "$BENCH_TMP/rathaus-$backend.log" || die "rathaus ($backend) did not become ready"
    for ((i = 0; i < 100; i++)); do [[ -s "$data/demo.json" ]] && break; sleep 0.1; done
    echo "## $backend: sustained"
    run_fg "$LOADGEN" "$data/demo.json" "$CONC" "$SECONDS_LOAD" "$ATT"
    if ((BURST_CONC > 0)); then
        echo "## $backend: burst"
        run_fg "$LOADGEN" "$data/demo.json" "$BURST_CONC" "$BURST_SECONDS" "$ATT"
    fi
    stop_pid "$pid"
    if [[ -n "$pgstate" ]]; then PG_THROWAWAY_STATE=$pgstate "$ROOT/scripts/pg-throwaway" stop >/dev/null 2>&1 || true; fi
}

for b in $BACKENDS; do run_backend "$b"; done
