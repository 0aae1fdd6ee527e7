#!/usr/bin/env bash
# ePoststelle pipeline benchmark (issue 5): how many submissions per second the ePoststelle
# worker decrypts, validates, scans (clamd) and decides, against the bound its RSA-4096
# private-key operations set on this machine, measured in the same run.
#
#   bench/epoststelle.sh                          # SQLite, defaults below
#   BENCH_SUBMISSIONS=300 BENCH_BOUND_SECONDS=2 bench/epoststelle.sh   # a quick look
#   BENCH_BACKENDS="sqlite postgres" bench/epoststelle.sh
#
# Per backend, in one run:
#   1. `rathaus serve --demo` with the ePoststelle worker off (RATHAUS_POSTSTELLE_WORKER=false)
#      and the load generator pre-loads BENCH_SUBMISSIONS submissions to the demo's
#      platform-held destination (metadata + data valid against the demo's Fachdaten schema
#      + one attachment, every part a JWE to the destination's key); it waits until the
#      intake's SETs are signed, so that no intake work overlaps the measurement.
#   2. Restart on the same data dir with the worker on and clamd (scripts/clamd-throwaway)
#      configured; the worker finds the backlog. The load generator polls the admin status
#      until every submission is decided and every SET signed, then reads each receipt's
#      `decidedAt`: processed/s = (N - 1) / (last decision - first decision).
#   3. The bound: the private-key operations one submission costs, on all cores
#      (`bench-zustelldienst epoststelle bound`, before and after the backends): 3 JWE
#      decryptions (metadata, data, attachment: one RSA-OAEP-256 unwrap each) and 3 PS512
#      signatures (the accept SET with the destination's key, the Eingangsbestätigung and
#      the forward-submission SET with the service key) → bound/s = 1 / (3/dec + 3/sig).
#      The issue's narrower count (decryptions + the accept SET only) is shown beside it.
#
# Environment (all optional):
#   BENCH_SUBMISSIONS=2000     submissions pre-loaded per backend
#   BENCH_PRELOAD_CONCURRENCY=16  senders while pre-loading
#   BENCH_ATTACHMENT=10240     attachment plaintext bytes
#   BENCH_BOUND_SECONDS=3      seconds per operation of the bound (1 and all threads)
#   BENCH_BACKENDS="sqlite"    also "postgres" (scripts/pg-throwaway)
#   BENCH_MEASURE_TIMEOUT=1800 seconds the worker may take
#   BENCH_STRICT=1             exit 1 when a backend is below 80 % of the bound
#   BENCH_SKIP_BUILD=1, RATHAUS_BIN, LOADGEN_BIN, BENCH_PROFILE, BENCH_KEEP=1, BENCH_RESULTS=FILE
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=${BENCH_SUBMISSIONS:-2000}
PRE_CONC=${BENCH_PRELOAD_CONCURRENCY:-16}
ATT=${BENCH_ATTACHMENT:-10240}
BOUND_SECONDS=${BENCH_BOUND_SECONDS:-3}
BACKENDS=${BENCH_BACKENDS:-sqlite}
MEASURE_TIMEOUT=${BENCH_MEASURE_TIMEOUT:-1800}
READY_TIMEOUT=${BENCH_READY_TIMEOUT:-300}
TARGET_RATIO=0.80
# Private-key operations per submission (see crates/app/src/poststelle.rs): one JWE
# decryption per part, three signatures.
DECRYPTS=3
SIGNS=3

bench_init
CLAMD_STATE="$BENCH_TMP/clamd.state"
PG_STATE=""
ep_cleanup() {
    local rc=$?
    CLAMD_THROWAWAY_STATE=$CLAMD_STATE "$ROOT/scripts/clamd-throwaway" stop >/dev/null 2>&1 || true
    if [[ -n "$PG_STATE" ]]; then PG_THROWAWAY_STATE=$PG_STATE "$ROOT/scripts/pg-throwaway" stop >/dev/null 2>&1 || true; fi
    (exit "$rc")
    bench_cleanup
}
trap ep_cleanup EXIT
ensure_tool curl curl
ensure_tool jq jq
[[ -x /usr/sbin/clamd ]] || command -v clamd >/dev/null 2>&1 || ensure_tool clamd clamav-daemon
cargo_build rathaus bench-zustelldienst
RATHAUS=${RATHAUS_BIN:-$TARGET_RELEASE/rathaus}
LOADGEN=${LOADGEN_BIN:-$TARGET_RELEASE/bench-zustelldienst}
[[ -x "$RATHAUS" && -x "$LOADGEN" ]] || die "binaries missing in $TARGET_RELEASE"
CORES=$(nproc)
STARTED="$(date -u +%Y-%m-%dT%H:%MZ)"
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown)

# bound LABEL: the private-key rates on all cores, into BOUND_<LABEL> (a RESULT line)
run_bound() {
    log "bound ($1): private-key operations, ${BOUND_SECONDS}s each on 1 and $CORES threads"
    local out
    out=$("$LOADGEN" epoststelle bound "$BOUND_SECONDS" "$CORES" "$ATT" | sed -n 's/^RESULT bound //p')
    [[ -n "$out" ]] || die "bound measurement failed"
    printf -v "BOUND_$1" '%s' "$out"
}
run_bound before

log "starting clamd (scripts/clamd-throwaway)"
CLAMD_URL=$(CLAMD_THROWAWAY_STATE=$CLAMD_STATE "$ROOT/scripts/clamd-throwaway" start) || die "clamd did not start"
CLAMD_PID=$(sed -n 's/^pid=//p' "$CLAMD_STATE" | head -n1)
CLAMD_VERSION=$(/usr/sbin/clamd --version 2>/dev/null | head -n1 || echo '?')

declare -A PRE MEAS CPU CLAMD_MS
run_backend() {
    local backend=$1 url="" data port pid
    data="$BENCH_TMP/data-$backend"
    mkdir -p "$data"
    local envs=()
    if [[ "$backend" == postgres ]]; then
        PG_STATE="$BENCH_TMP/pg.state"
        url=$(PG_THROWAWAY_STATE=$PG_STATE "$ROOT/scripts/pg-throwaway" start 2>/dev/null) || {
            log "no PostgreSQL here (scripts/pg-throwaway start failed): skipping"; return 0; }
        envs+=(RATHAUS_DATABASE_URL="$url")
    fi
    # 1. Pre-load with the worker off.
    port=$(free_port)
    log "$backend: rathaus without the ePoststelle worker on 127.0.0.1:$port; pre-loading $N submissions"
    start_bg "$BENCH_TMP/rathaus-$backend-preload.log" env "${envs[@]}" RATHAUS_POSTSTELLE_WORKER=false \
        "$RATHAUS" serve --demo --data-dir "$data" --listen "127.0.0.1:$port"
    pid=$LAST_PID
    wait_ready "http://127.0.0.1:$port/readyz" "$pid" "$READY_TIMEOUT" "$BENCH_TMP/rathaus-$backend-preload.log" || die "rathaus ($backend) did not become ready"
    for ((i = 0; i < 100; i++)); do [[ -s "$data/demo.json" ]] && break; sleep 0.1; done
    local pre
    pre=$(run_fg "$LOADGEN" epoststelle preload "$data/demo.json" "$N" "$PRE_CONC" "$BENCH_TMP/ids-$backend.txt" "$ATT" | sed -n 's/^RESULT preload //p')
    [[ -n "$pre" ]] || die "$backend: pre-loading failed"
    PRE[$backend]=$pre
    log "$backend: pre-loaded: $pre"
    stop_pid "$pid"

    # 2. The worker on the backlog, clamd configured. The same port, so the same public URL:
    # a new one would make the start re-sign every destination signature (thousands of
    # RSA signatures) while the worker runs.
    log "$backend: rathaus with the worker and clamd ($CLAMD_URL) on 127.0.0.1:$port"
    local c0 c1
    c0=$(proc_cpu_ticks "$CLAMD_PID")
    start_bg "$BENCH_TMP/rathaus-$backend.log" env "${envs[@]}" RATHAUS_CLAMD_URL="$CLAMD_URL" \
        "$RATHAUS" serve --demo --data-dir "$data" --listen "127.0.0.1:$port"
    pid=$LAST_PID
    cpu_begin "$pid"
    wait_ready "http://127.0.0.1:$port/readyz" "$pid" "$READY_TIMEOUT" "$BENCH_TMP/rathaus-$backend.log" || die "rathaus ($backend) did not become ready"
    local meas
    meas=$(run_fg "$LOADGEN" epoststelle measure "$data/demo.json" "$BENCH_TMP/ids-$backend.txt" \
        "$(result_field decided_before "$pre")" "$MEASURE_TIMEOUT" | sed -n 's/^RESULT measure //p') || true
    cpu_end
    c1=$(proc_cpu_ticks "$CLAMD_PID")
    [[ -n "$meas" ]] || die "$backend: measuring failed (see $BENCH_TMP/rathaus-$backend.log)"
    MEAS[$backend]=$meas
    CPU[$backend]=$CPU_RESULT
    CLAMD_MS[$backend]=$(awk -v t="$((c1 - c0))" -v k="$CLK_TCK" -v n="$(result_field decided "$meas")" 'BEGIN { printf "%.2f", t / k * 1000 / n }')
    log "$backend: $meas"
    stop_pid "$pid"
    if [[ -n "$PG_STATE" ]]; then PG_THROWAWAY_STATE=$PG_STATE "$ROOT/scripts/pg-throwaway" stop >/dev/null 2>&1 || true; PG_STATE=""; fi
}
for b in $BACKENDS; do run_backend "$b"; done
run_bound after
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"

f() { result_field "$1" "$2"; }
# The bound from the mean of the two bound runs.
SIG=$(awk -v a="$(f ps512_per_s "$BOUND_before")" -v b="$(f ps512_per_s "$BOUND_after")" 'BEGIN { printf "%.1f", (a + b) / 2 }')
DEC=$(awk -v a="$(f jwe_decrypt_per_s "$BOUND_before")" -v b="$(f jwe_decrypt_per_s "$BOUND_after")" 'BEGIN { printf "%.1f", (a + b) / 2 }')
BOUND=$(awk -v s="$SIG" -v d="$DEC" -v ns="$SIGNS" -v nd="$DECRYPTS" 'BEGIN { printf "%.1f", 1 / (nd / d + ns / s) }')
NARROW=$(awk -v s="$SIG" -v d="$DEC" -v nd="$DECRYPTS" 'BEGIN { printf "%.1f", 1 / (nd / d + 1 / s) }')

report() {
    echo "=== ePoststelle pipeline benchmark ($STARTED, $CORES cores, $CPU_MODEL) ==="
    echo "machine:   load avg at start $LOAD_START, at end $LOAD_END (builds or tests running skew every figure)"
    echo "rathaus:   $RATHAUS (profile $BENCH_PROFILE); $CLAMD_VERSION (scripts/clamd-throwaway, test signatures only)"
    echo "load:      $N submissions pre-loaded with the worker off (metadata + Fachdaten + one ${ATT}-byte attachment, each part a JWE to the destination's RSA-4096 key), then the worker on the backlog"
    echo "bound:     per submission $DECRYPTS JWE decryptions (RSA-OAEP-256 unwrap each) + $SIGNS PS512 signatures (accept SET, Eingangsbestätigung, forward SET), RSA-4096, on $CORES threads"
    echo "           before: $BOUND_before"
    echo "           after:  $BOUND_after"
    awk -v a="$(f ps512_per_s "$BOUND_before")" -v b="$(f ps512_per_s "$BOUND_after")" \
        'BEGIN { d = (a > b ? a - b : b - a) / ((a + b) / 2); if (d > 0.05) printf "WARNING:   the two bound runs differ by %.0f %%: the machine was not steady\n", d * 100 }'
    echo "           mean: $SIG signatures/s, $DEC decryptions/s → bound $BOUND submissions/s (issue's narrower count, decryptions + accept SET: $NARROW/s)"
    echo
    printf '%-9s %9s %11s %9s %8s %8s %7s %10s %10s %13s %8s %s\n' backend decided processed/s p10-p90/s bound/s ratio narrow "all done s" "preload/s" "server cores" "clamd ms" target
    local b m c ratio narrow_r verdict
    for b in $BACKENDS; do
        [[ -n "${MEAS[$b]:-}" ]] || continue
        m=${MEAS[$b]}
        c=${CPU[$b]}
        ratio=$(awk -v p="$(f per_s "$m")" -v b="$BOUND" 'BEGIN { printf "%.2f", p / b }')
        narrow_r=$(awk -v p="$(f per_s "$m")" -v b="$NARROW" 'BEGIN { printf "%.2f", p / b }')
        verdict=$(verdict_of "$m")
        printf '%-9s %9s %11s %9s %8s %8s %7s %10s %10s %13s %8s %s\n' "$b" "$(f accepted "$m")/$(f decided "$m")" \
            "$(f per_s "$m")" "$(f p10_p90_per_s "$m")" "$BOUND" "$ratio" "$narrow_r" "$(f all_signed_s "$m")" \
            "$(f per_s "${PRE[$b]}")" "$(f server "$c")/$CORES" "${CLAMD_MS[$b]}" "$verdict"
    done
    echo
    echo "- processed/s: (N - 1) / (last decidedAt - first decidedAt) over the receipts; p10-p90/s: the same between the 10th and 90th percentile decision (no start-up or tail)"
    echo "- ratio = processed/s ÷ bound/s (target ≥ $TARGET_RATIO); narrow = ÷ the issue's narrower bound"
    echo "- all done s: from the restart to every submission decided and every SET signed; server cores and clamd ms (CPU per submission) over that time"
    for b in $BACKENDS; do
        [[ -n "${CPU[$b]:-}" ]] && echo "- $b CPU: ${CPU[$b]}"
    done
}
verdict_of() {
    awk -v p="$(f per_s "$1")" -v b="$BOUND" -v t="$TARGET_RATIO" -v a="$(f accepted "$1")" -v n="$(f decided "$1")" \
        'BEGIN { print (p / b >= t && a == n) ? "PASS" : "FAIL" }'
}
VERDICT_FAIL=0
for b in $BACKENDS; do
    if [[ -n "${MEAS[$b]:-}" && "$(verdict_of "${MEAS[$b]}")" != PASS ]]; then VERDICT_FAIL=1; fi
done
if [[ -n "${BENCH_RESULTS:-}" ]]; then report | tee "$BENCH_RESULTS"; else report; fi
if [[ "${BENCH_STRICT:-0}" == 1 && "$VERDICT_FAIL" == 1 ]]; then exit 1; fi
