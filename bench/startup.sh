#!/usr/bin/env bash
# Startup time and idle memory of `rathaus serve` on an existing SQLite data dir.
#
#   bench/startup.sh
#
# 1. `rathaus serve --demo` creates a fresh data dir, is stopped with SIGTERM.
# 2. BENCH_STARTUP_RUNS times: start `rathaus serve $BENCH_RESTART_FLAGS` on that data dir,
#    time from process start to the first 200 on GET /readyz (polled every 5 ms through
#    bash's /dev/tcp, no fork per poll), wait BENCH_IDLE_SECONDS, read VmRSS, stop (SIGTERM).
#
# Environment (all optional):
#   BENCH_STARTUP_RUNS=5     number of measured starts
#   BENCH_IDLE_SECONDS=5     idle time after ready before reading VmRSS
#   BENCH_RESTART_FLAGS="--demo"  flags of the measured `rathaus serve` runs
#   BENCH_READY_TIMEOUT=180  seconds to wait for the first (demo-creating) start
#   BENCH_SKIP_BUILD=1, RATHAUS_BIN=..., BENCH_STRICT=1, BENCH_RESULTS=FILE, BENCH_KEEP=1
#
# Only 127.0.0.1 is contacted; every server started here is stopped on exit.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=${BENCH_STARTUP_RUNS:-5}
IDLE_S=${BENCH_IDLE_SECONDS:-5}
READY_TIMEOUT=${BENCH_READY_TIMEOUT:-180}
RESTART_FLAGS=${BENCH_RESTART_FLAGS---demo} # set to "" for a plain serve
TARGET_READY_MS=1000
TARGET_RSS_MB=60
START_TIMEOUT_S=30   # a measured start slower than this is a failure

[[ "$RUNS" =~ ^[0-9]+$ && "$RUNS" -ge 1 ]] || die "BENCH_STARTUP_RUNS must be >= 1"
[[ "$IDLE_S" =~ ^[0-9]+$ ]] || die "BENCH_IDLE_SECONDS must be an integer"

bench_init
ensure_tool curl curl
ensure_tool jq jq

cargo_build rathaus
RATHAUS=${RATHAUS_BIN:-$TARGET_RELEASE/rathaus}
# An installation has one public URL. Without it the URL would follow the fresh port of each
# run, and every start would re-sign all destination signatures for the new issuer.
export RATHAUS_PUBLIC_URL=${RATHAUS_PUBLIC_URL:-http://localhost:8080}
[[ -x "$RATHAUS" ]] || die "no rathaus binary at $RATHAUS"

T=$BENCH_TMP
DATA=$T/data
mkdir -p "$DATA"
PORT=$(free_port)
LISTEN="127.0.0.1:$PORT"

# 1. create the data dir with a demo run
log "creating the data dir: $RATHAUS serve --demo --data-dir $DATA --listen $LISTEN"
start_bg "$T/first.log" "$RATHAUS" serve --demo --data-dir "$DATA" --listen "$LISTEN"
FIRST_PID=$LAST_PID
FIRST_T0=$SECONDS
wait_ready "http://$LISTEN/readyz" "$FIRST_PID" "$READY_TIMEOUT" "$T/first.log" || die "first (demo) start failed"
FIRST_S=$((SECONDS - FIRST_T0))
stop_pid "$FIRST_PID"
log "demo data dir created (first start ready in ~${FIRST_S}s, exit status $STOP_RC after SIGTERM): $(du -sh "$DATA" | cut -f1)"

# 2. measured starts
READY_MS=()
RSS_KB=()
STOP_MS=()
for ((run = 1; run <= RUNS; run++)); do
    logf="$T/run-$run.log"
    PORT=$(free_port) # a fresh port each run: no TIME_WAIT leftovers from the previous one
    LISTEN="127.0.0.1:$PORT"
    t0=${EPOCHREALTIME/./}
    # shellcheck disable=SC2086  # RESTART_FLAGS is a list of flags
    start_bg "$logf" "$RATHAUS" serve $RESTART_FLAGS --data-dir "$DATA" --listen "$LISTEN"
    pid=$LAST_PID
    while :; do
        if ready_once "$PORT"; then
            t1=${EPOCHREALTIME/./}
            break
        fi
        if ! alive "$pid"; then
            tail -n 30 "$logf" >&2 || true
            die "run $run: rathaus exited before /readyz answered 200"
        fi
        if (((${EPOCHREALTIME/./} - t0) > START_TIMEOUT_S * 1000000)); then
            tail -n 30 "$logf" >&2 || true
            die "run $run: no 200 from /readyz within ${START_TIMEOUT_S}s"
        fi
        sleep 0.005
    done
    ms=$(awk -v d="$((t1 - t0))" 'BEGIN { printf "%.1f", d / 1000 }')
    READY_MS+=("$ms")
    sleep "$IDLE_S"
    alive "$pid" || die "run $run: rathaus exited while idle"
    rss=$(rss_kb "$pid")
    RSS_KB+=("$rss")
    s0=${EPOCHREALTIME/./}
    stop_pid "$pid"
    STOP_MS+=("$(awk -v d="$((${EPOCHREALTIME/./} - s0))" 'BEGIN { printf "%.0f", d / 1000 }')")
    log "run $run/$RUNS: ready after $ms ms, idle RSS $(kb_to_mb "$rss") MB (after ${IDLE_S}s), stopped in ${STOP_MS[-1]} ms (exit status $STOP_RC)"
done

# min / median / max of a list of numbers
stats() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%s %s %s\n", v[1], m, v[NR] }'; }

read -r R_MIN R_MED R_MAX < <(stats "${READY_MS[@]}")
RSS_MB=()
for k in "${RSS_KB[@]}"; do RSS_MB+=("$(kb_to_mb "$k")"); done
read -r M_MIN M_MED M_MAX < <(stats "${RSS_MB[@]}")
read -r S_MIN S_MED S_MAX < <(stats "${STOP_MS[@]}")

verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v < t) ? "PASS" : "FAIL" }'; }
V_READY=$(verdict "$R_MAX" "$TARGET_READY_MS")
V_RSS=$(verdict "$M_MAX" "$TARGET_RSS_MB")

report() {
    echo
    echo "=== Rathaus startup benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, load avg $(cut -d' ' -f1-3 /proc/loadavg)) ==="
    echo "binary:    $RATHAUS"
    echo "command:   rathaus serve $RESTART_FLAGS --data-dir <existing demo data dir> --listen 127.0.0.1:<port>"
    echo "data dir:  $(du -sh "$DATA" | cut -f1), created by a first 'serve --demo' run stopped with SIGTERM"
    echo "runs:      $RUNS; ready = process start -> first HTTP 200 on /readyz (poll every 5 ms)"
    echo
    printf '%-32s %10s %10s %10s   %s\n' "figure" "min" "median" "max" "target"
    printf '%-32s %10s %10s %10s   %s\n' "time to ready (ms)" "$R_MIN" "$R_MED" "$R_MAX" "< $TARGET_READY_MS ms (max): $V_READY"
    printf '%-32s %10s %10s %10s   %s\n' "idle RSS ${IDLE_S}s after ready (MB)" "$M_MIN" "$M_MED" "$M_MAX" "< $TARGET_RSS_MB MB (max): $V_RSS"
    printf '%-32s %10s %10s %10s   %s\n' "SIGTERM -> exit (ms)" "$S_MIN" "$S_MED" "$S_MAX" "-"
    echo
    echo "per run (ms to ready / idle RSS MB): $(for i in "${!READY_MS[@]}"; do printf '%s/%s ' "${READY_MS[$i]}" "${RSS_MB[$i]}"; done)"
    echo "RSS after routing load: see 'rathaus RSS' in bench/routing.sh's report"
}

if [[ -n "${BENCH_RESULTS:-}" ]]; then
    report | tee "$BENCH_RESULTS"
else
    report
fi
if [[ "${BENCH_STRICT:-0}" == 1 && ("$V_READY" != PASS || "$V_RSS" != PASS) ]]; then
    exit 1
fi
exit 0
