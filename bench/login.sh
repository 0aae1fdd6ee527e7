#!/usr/bin/env bash
# Password login benchmark: logins/s of `rathaus serve` against the raw Argon2id rate of the
# threads given to hashing (same parameters, same run), and the latency of other pages while
# 200 clients hammer the login.
#
#   bench/login.sh                              # about 2.5 minutes with the defaults (plus the build)
#   BENCH_DURATION=10s bench/login.sh
#   RATHAUS_HASH_CONCURRENCY=1 RATHAUS_ARGON2_MEMORY_KIB=65536 bench/login.sh
#
# Environment (all optional):
#   BENCH_DURATION=20s          each measured wrk run (wrk syntax: 20s, 1m)
#   BENCH_ARGON2_DURATION=10s   each of the two raw Argon2id runs (before and after the server)
#   BENCH_WARMUP=3s             unmeasured login run before the measured ones (0 = none)
#   BENCH_LOGIN_CONNECTIONS=200 wrk connections on the login ("200 clients")
#   BENCH_LOGIN_THREADS=2       wrk threads on the login
#   BENCH_LOGIN_TIMEOUT=30s     wrk --timeout of a login (a login waits its turn behind the others)
#   BENCH_PAGE_CONNECTIONS=8    wrk connections on the other pages
#   BENCH_PAGE_THREADS=1        wrk threads on the other pages
#   BENCH_PAGE_PATHS=FILE       paths of the other pages, one a line (default: /, the finder with
#                               a service and a place, an authority page, the login form)
#   BENCH_OVERLAP_LEAD=3s       in the combined run the logins start this long before the
#                               pages and end this long after them
#   RATHAUS_HASH_CONCURRENCY    hashing threads (server and raw run; default: one per CPU but one)
#   RATHAUS_ARGON2_MEMORY_KIB / _ITERATIONS / _PARALLELISM   Argon2id parameters (both sides;
#                               default m=19456 KiB, t=2, p=1)
#   BENCH_SKIP_BUILD=1          use the binaries already built
#   RATHAUS_BIN / ARGON2_BIN    binaries instead of <target>/<BENCH_PROFILE>/{rathaus,bench-argon2}
#   BENCH_READY_TIMEOUT=180     seconds to wait for /readyz (first demo start creates keys)
#   BENCH_STRICT=1              exit 1 if a target is missed
#   BENCH_RESULTS=FILE          also write the result table to FILE
#   BENCH_KEEP=1                keep the scratch dir (data dir, server log, wrk output)
#
# Only 127.0.0.1 is contacted; every server started here is stopped on exit.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=${BENCH_DURATION:-20s}
ARGON2_DURATION=${BENCH_ARGON2_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-3s}
LOGIN_CONNECTIONS=${BENCH_LOGIN_CONNECTIONS:-200}
LOGIN_THREADS=${BENCH_LOGIN_THREADS:-2}
LOGIN_TIMEOUT=${BENCH_LOGIN_TIMEOUT:-30s}
PAGE_CONNECTIONS=${BENCH_PAGE_CONNECTIONS:-8}
PAGE_THREADS=${BENCH_PAGE_THREADS:-1}
LEAD=${BENCH_OVERLAP_LEAD:-3s}
READY_TIMEOUT=${BENCH_READY_TIMEOUT:-180}
TARGET_RATIO=0.90
TARGET_PAGES_P99_MS=50
KEYCLOAK_PER_VCPU=15
# Keycloak's default Argon2id (26.x): m=7168 KiB, t=5, p=1
KEYCLOAK_M_KIB=7168
KEYCLOAK_T=5

DURATION_S=$(duration_seconds "$DURATION")
ARGON2_S=$(duration_seconds "$ARGON2_DURATION")
WARMUP_S=$(duration_seconds "$WARMUP")
LEAD_S=$(duration_seconds "$LEAD")
LOGIN_TIMEOUT_S=$(duration_seconds "$LOGIN_TIMEOUT")
[[ "$DURATION_S" =~ ^[0-9]+$ && "$DURATION_S" -gt 0 ]] || die "BENCH_DURATION must be like 20s, 1m or 20"
[[ "$ARGON2_S" =~ ^[0-9]+$ && "$ARGON2_S" -gt 0 ]] || die "BENCH_ARGON2_DURATION must be like 10s or 10"
[[ "$WARMUP_S" =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be like 3s or 0"
[[ "$LEAD_S" =~ ^[0-9]+$ ]] || die "BENCH_OVERLAP_LEAD must be like 3s or 0"
[[ "$LOGIN_TIMEOUT_S" =~ ^[0-9]+$ && "$LOGIN_TIMEOUT_S" -gt 0 ]] || die "BENCH_LOGIN_TIMEOUT must be like 30s"
for v in LOGIN_CONNECTIONS LOGIN_THREADS PAGE_CONNECTIONS PAGE_THREADS; do
    [[ "${!v}" =~ ^[0-9]+$ && "${!v}" -gt 0 ]] || die "BENCH_$v must be a positive integer"
done
((LOGIN_CONNECTIONS >= LOGIN_THREADS && PAGE_CONNECTIONS >= PAGE_THREADS)) \
    || die "wrk needs at least as many connections as threads"

bench_init
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
CORES=$(nproc)
ensure_tool curl curl
ensure_tool jq jq
ensure_tool wrk wrk

cargo_build rathaus bench-argon2
RATHAUS=${RATHAUS_BIN:-$TARGET_RELEASE/rathaus}
ARGON2=${ARGON2_BIN:-$TARGET_RELEASE/bench-argon2}
[[ -x "$RATHAUS" ]] || die "no rathaus binary at $RATHAUS"
[[ -x "$ARGON2" ]] || die "no bench-argon2 binary at $ARGON2"

T=$BENCH_TMP
DATA=$T/data
mkdir -p "$DATA"
PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"

# ---------------------------------------------------------------------------------------
# Raw Argon2id rate (bench-argon2 reads RATHAUS_HASH_CONCURRENCY and RATHAUS_ARGON2_*, as the
# server does); its answer fixes the settings the server is started with.
# ---------------------------------------------------------------------------------------
# run_argon2 LABEL: sets ARGON2_RESULT (bench-argon2's RESULT line plus cpu_ms, its CPU time
# per Argon2id computation, robust against other work on the machine) and CPU_RESULT
run_argon2() {
    local out="$T/argon2-$1.txt" cpu_ms
    log "raw Argon2id ($1): $ARGON2 --seconds $ARGON2_S"
    cpu_begin "$RATHAUS_PID"
    run_fg timeout $((ARGON2_S + 120)) "$ARGON2" --seconds "$ARGON2_S" >"$out" 2>&1 \
        || die "bench-argon2 failed: $(tail -n 5 "$out")"
    cpu_end
    sed -n '1,2p' "$out" | sed "s/^/  [argon2 $1] /" >&2
    ARGON2_RESULT=$(wrk_result "$out") || die "no RESULT line from bench-argon2 ($out)"
    # CPU per verification: bench-argon2's own figure for its measured loop (/proc/self/stat),
    # else its whole CPU time (as a child of this shell) over all its Argon2id computations:
    # the measured ones, one warm-up per thread and the self-check (3)
    cpu_ms=$(awk -v u="$(result_field utime_ticks "$ARGON2_RESULT")" -v y="$(result_field stime_ticks "$ARGON2_RESULT")" \
        -v k="$CLK_TCK" -v c="$(result_field client_s "$CPU_RESULT")" -v v="$(result_field verifications "$ARGON2_RESULT")" \
        -v t="$(result_field threads "$ARGON2_RESULT")" 'BEGIN {
            if (u ~ /^[0-9]+$/ && y ~ /^[0-9]+$/ && v > 0) printf "%.2f", (u + y) * 1000 / k / v
            else printf "%.2f", c * 1000 / (v + t + 3) }')
    ARGON2_RESULT="$ARGON2_RESULT cpu_ms=$cpu_ms"
    log "raw Argon2id ($1): $(result_field rate "$ARGON2_RESULT")/s, CPU $cpu_ms ms per computation; other processes $(result_field other "$CPU_RESULT") cores"
}
RATHAUS_PID=""
run_argon2 before
A_BEFORE=$ARGON2_RESULT
CPU_A_BEFORE=$CPU_RESULT
HASH_THREADS=$(result_field threads "$A_BEFORE")
M_KIB=$(result_field m_kib "$A_BEFORE")
T_COST=$(result_field t "$A_BEFORE")
P_COST=$(result_field p "$A_BEFORE")
export RATHAUS_HASH_CONCURRENCY=$HASH_THREADS RATHAUS_ARGON2_MEMORY_KIB=$M_KIB \
    RATHAUS_ARGON2_ITERATIONS=$T_COST RATHAUS_ARGON2_PARALLELISM=$P_COST
log "settings for both sides: $HASH_THREADS hashing threads, Argon2id m=$M_KIB KiB t=$T_COST p=$P_COST"

# ---------------------------------------------------------------------------------------
# Server
# ---------------------------------------------------------------------------------------
log "starting: $RATHAUS serve --demo --data-dir $DATA --listen 127.0.0.1:$PORT"
start_bg "$T/rathaus.log" "$RATHAUS" serve --demo --data-dir "$DATA" --listen "127.0.0.1:$PORT"
RATHAUS_PID=$LAST_PID
wait_ready "$BASE/readyz" "$RATHAUS_PID" "$READY_TIMEOUT" "$T/rathaus.log" || die "rathaus did not become ready"
for ((i = 0; i < 100; i++)); do [[ -s "$DATA/demo.json" ]] && break; sleep 0.1; done
[[ -s "$DATA/demo.json" ]] || die "no $DATA/demo.json after the demo start"
EMAIL=$(jq -r '.citizen.username // empty' "$DATA/demo.json")
PASSWORD=$(jq -r '.citizen.password // empty' "$DATA/demo.json")
[[ -n "$EMAIL" && -n "$PASSWORD" ]] || die "demo.json has no citizen.username / citizen.password"
log "rathaus ready (pid $RATHAUS_PID); demo citizen $EMAIL"

# One login with curl: it must answer 303 with a session cookie that opens /konto.
konto_login "$BASE" "$EMAIL" "$PASSWORD" "$T"
[[ "$LOGIN_CODE" == 303 ]] \
    || die "POST /konto/anmelden answered $LOGIN_CODE, not 303 (headers: $(tr '\r\n' '  ' <"$T/login-headers.txt" | head -c 600))"
[[ -n "$SESSION_COOKIE" ]] || die "the login answered 303 without a session cookie"
case "$LOGIN_LOCATION" in
    /konto/anmelden*) die "the login redirects to $LOGIN_LOCATION (second factor or error), not into the account" ;;
esac
KONTO_CODE=$(curl -s -o "$T/konto.html" -w '%{http_code}' --max-time 10 -b "$SESSION_COOKIE" "$BASE/konto" || true)
[[ "$KONTO_CODE" == 200 ]] || die "GET /konto with the new session answered $KONTO_CODE, not 200"
log "login checked: 303 -> $LOGIN_LOCATION, session cookie opens /konto (200)"
LOGIN_TOKEN=$(csrf_token)

# Other pages: the given list, or a default list checked to answer 200.
if [[ -n "${BENCH_PAGE_PATHS:-}" ]]; then
    grep -v '^[[:space:]]*$' "$BENCH_PAGE_PATHS" >"$T/page-candidates.txt" || die "no paths in $BENCH_PAGE_PATHS"
else
    printf '%s\n' "/" "/zustaendigkeit?leistung=Hundesteuer&ort=Bad+Nenndorf" \
        "/zustaendigkeit?leistung=Personalausweis&ort=31542" "/behoerden/03257" \
        "/behoerden/032575403" "/konto/anmelden" >"$T/page-candidates.txt"
fi
: >"$T/pages.txt"
while IFS= read -r p; do
    code=$(http_code "$BASE$p" 10)
    if [[ "$code" == 200 ]]; then
        printf '%s\n' "$p" >>"$T/pages.txt"
    else
        log "page $p answered $code: left out"
    fi
done <"$T/page-candidates.txt"
[[ -s "$T/pages.txt" ]] || die "none of the pages answered 200"
PAGES_TEXT=$(tr '\n' ' ' <"$T/pages.txt")
log "other pages: $PAGES_TEXT"

# ---------------------------------------------------------------------------------------
# wrk runs
# ---------------------------------------------------------------------------------------
# wrk_cmd KIND DURATION_S: the wrk command line of a login or pages run
wrk_cmd() {
    case "$1" in
        login) WRK=(wrk -t"$LOGIN_THREADS" -c"$LOGIN_CONNECTIONS" -d"${2}s" --latency --timeout "${LOGIN_TIMEOUT_S}s"
            -s "$BENCH_DIR/login.lua" "$BASE" -- "$EMAIL" "$PASSWORD" "$LOGIN_TOKEN") ;;
        pages) WRK=(wrk -t"$PAGE_THREADS" -c"$PAGE_CONNECTIONS" -d"${2}s" --latency --timeout 5s
            -s "$BENCH_DIR/pages.lua" "$BASE" -- "$T/pages.txt") ;;
    esac
}

summary_to_log() { # summary_to_log LABEL FILE
    sed -n '/^---- .*summary/,$p' "$2" | grep -v '^RESULT' | sed "s/^/  [$1] /" >&2
}

# run_one LABEL KIND: one measured wrk run of DURATION_S alone; sets RUN_RESULT and CPU_RESULT
run_one() {
    local label=$1 kind=$2 out="$T/wrk-$1.txt"
    wrk_cmd "$kind" "$DURATION_S"
    log "$label: ${WRK[*]:0:6}"
    thread_ticks "$RATHAUS_PID" >"$T/threads-$label-0.tsv"
    local v0 n0 v1 n1
    read -r v0 n0 < <(ctx_switches "$RATHAUS_PID")
    cpu_begin "$RATHAUS_PID"
    run_fg timeout $((DURATION_S + LOGIN_TIMEOUT_S + 60)) "${WRK[@]}" >"$out" 2>&1 \
        || die "$label: wrk failed: $(tail -n 5 "$out")"
    cpu_end
    read -r v1 n1 < <(ctx_switches "$RATHAUS_PID")
    CTX_SWITCHES="voluntary=$((v1 - v0)) involuntary=$((n1 - n0))"
    thread_ticks "$RATHAUS_PID" >"$T/threads-$label-1.tsv"
    THREAD_SPLIT=$(thread_split "$T/threads-$label-0.tsv" "$T/threads-$label-1.tsv")
    summary_to_log "$label" "$out"
    RUN_RESULT=$(wrk_result "$out") || die "$label: no RESULT line in $out"
}

# drain LABEL: wait until the server is idle again (logins of closed connections may still be
# hashed); records the time it took
declare -A DRAIN=()
drain() {
    wait_idle "$RATHAUS_PID" 120
    DRAIN[$1]=$IDLE_AFTER_S
    log "$1: server idle ${IDLE_AFTER_S}s after wrk stopped"
}

# 1. pages alone (reference latency without login load)
run_one pages-alone pages
R_PAGES_ALONE=$RUN_RESULT
CPU_PAGES_ALONE=$CPU_RESULT

# 2. login warm-up, then logins alone
if ((WARMUP_S > 0)); then
    wrk_cmd login "$WARMUP_S"
    log "login warm-up ${WARMUP_S}s"
    run_fg timeout $((WARMUP_S + LOGIN_TIMEOUT_S + 60)) "${WRK[@]}" >"$T/wrk-login-warmup.txt" 2>&1 \
        || die "login warm-up failed: $(tail -n 5 "$T/wrk-login-warmup.txt")"
    drain warmup
fi
run_one logins-alone login
R_LOGIN_ALONE=$RUN_RESULT
CPU_LOGIN_ALONE=$CPU_RESULT
SPLIT_LOGIN_ALONE=$THREAD_SPLIT
CTX_LOGIN_ALONE=$CTX_SWITCHES
log "logins-alone: server CPU seconds by thread name: $THREAD_SPLIT"
drain logins-alone

# 3. logins and pages at the same time: the logins run LEAD longer on both sides
wrk_cmd login $((DURATION_S + 2 * LEAD_S))
LOGIN_CMD=("${WRK[@]}")
wrk_cmd pages "$DURATION_S"
PAGES_CMD=("${WRK[@]}")
log "combined: logins ${LOGIN_CMD[*]:0:6} (${LEAD_S}s lead), pages ${PAGES_CMD[*]:0:6}"
cpu_begin "$RATHAUS_PID"
timeout $((DURATION_S + 2 * LEAD_S + LOGIN_TIMEOUT_S + 60)) "${LOGIN_CMD[@]}" >"$T/wrk-combined-logins.txt" 2>&1 &
LOGIN_WRK_PID=$!
BENCH_PIDS+=("$LOGIN_WRK_PID")
sleep "$LEAD_S"
run_fg timeout $((DURATION_S + 60)) "${PAGES_CMD[@]}" >"$T/wrk-combined-pages.txt" 2>&1 \
    || die "combined: pages wrk failed: $(tail -n 5 "$T/wrk-combined-pages.txt")"
rc=0
wait "$LOGIN_WRK_PID" || rc=$?
keep=()
for p in "${BENCH_PIDS[@]}"; do [[ "$p" == "$LOGIN_WRK_PID" ]] || keep+=("$p"); done
BENCH_PIDS=("${keep[@]}")
((rc == 0)) || die "combined: login wrk failed: $(tail -n 5 "$T/wrk-combined-logins.txt")"
cpu_end
CPU_COMBINED=$CPU_RESULT
summary_to_log combined-logins "$T/wrk-combined-logins.txt"
summary_to_log combined-pages "$T/wrk-combined-pages.txt"
R_LOGIN_COMB=$(wrk_result "$T/wrk-combined-logins.txt") || die "no RESULT line in wrk-combined-logins.txt"
R_PAGES_COMB=$(wrk_result "$T/wrk-combined-pages.txt") || die "no RESULT line in wrk-combined-pages.txt"
drain combined

RSS_END=$(rss_kb "$RATHAUS_PID")
stop_pid "$RATHAUS_PID"
log "rathaus stopped (exit status $STOP_RC)"

# 4. raw Argon2id again, with the server gone
run_argon2 after
A_AFTER=$ARGON2_RESULT
CPU_A_AFTER=$CPU_RESULT

# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------
f() { result_field "$@"; }
calc() { awk "BEGIN { $1 }"; }
# the raw rate is the better of the two runs: other work on the machine only lowers it
RAW=$(calc "a = $(f rate "$A_BEFORE"); b = $(f rate "$A_AFTER"); printf \"%.2f\", (a > b) ? a : b")
LOGIN_RPS=$(f rps "$R_LOGIN_ALONE")
RATIO=$(calc "printf \"%.3f\", $LOGIN_RPS / $RAW")
FAIL=0
verdict() { # verdict CONDITION_AWK -> PASS/FAIL
    if calc "exit !($1)"; then echo PASS; else echo FAIL; fi
}
clean() { # clean RESULT: no unexpected answers, no socket errors
    [[ "$(f unexpected "$1")" == 0 && "$(f socket_errors "$1")" == 0 ]]
}
V_LOGIN=$(verdict "$RATIO >= $TARGET_RATIO")
clean "$R_LOGIN_ALONE" || { V_LOGIN=FAIL; FAIL=1; }
V_PAGES=$(verdict "$(f p99_ms "$R_PAGES_COMB") < $TARGET_PAGES_P99_MS")
clean "$R_PAGES_COMB" || { V_PAGES=FAIL; FAIL=1; }
[[ "$V_LOGIN" == PASS && "$V_PAGES" == PASS ]] || FAIL=1
clean "$R_LOGIN_COMB" || FAIL=1
clean "$R_PAGES_ALONE" || FAIL=1

wrk_row() { # wrk_row LABEL RESULT VERDICT
    printf '%-24s %9.1f %8.1f %8.1f %8.1f %9.1f  %-22s %7s  %s\n' "$1" "$(f rps "$2")" "$(f p50_ms "$2")" \
        "$(f p90_ms "$2")" "$(f p99_ms "$2")" "$(f max_ms "$2")" "$(f codes "$2")" "$(f socket_errors "$2")" "$3"
}
raw_row() { # raw_row LABEL RESULT
    printf '%-24s %9.1f %8.1f %8s %8.1f %9s  %-22s %7s  %s\n' "$1" "$(f rate "$2")" "$(f p50_ms "$2")" "-" \
        "$(f p99_ms "$2")" "-" "$(f verifications "$2") verifications" "-" "$(f per_thread "$2")/s per thread, CPU $(f cpu_ms "$2") ms each"
}
cpu_line() { # cpu_line LABEL CPU_RESULT CLIENT_NAME
    printf '  %-22s server %s, %s %s, whole machine %s of %s, other processes %s, steal %s\n' "$1" \
        "$(f server "$2")" "$3" "$(f client "$2")" "$(f machine "$2")" "$CORES" "$(f other "$2")" "$(f steal "$2")"
}

raw_per() { # raw_per KEY ms|n: KEY of the raw run with the lower CPU per verification, per verification
    local r=$A_BEFORE
    calc "exit !($(f cpu_ms "$A_AFTER") < $(f cpu_ms "$A_BEFORE"))" && r=$A_AFTER
    local v x
    v=$(f verifications "$r")
    x=$(f "$1" "$r")
    [[ "$x" =~ ^[0-9]+$ && "$v" -gt 0 ]] || { echo "?"; return 0; }
    if [[ "$2" == ms ]]; then calc "printf \"%.1f\", $x * 1000 / $CLK_TCK / $v"; else calc "printf \"%.0f\", $x / $v"; fi
}

report() {
    local logins_alone hash_ms cpu_per_login rest_ms
    logins_alone=$(f requests "$R_LOGIN_ALONE")
    # CPU time per Argon2id computation: the lower of the two raw runs (contention only adds)
    hash_ms=$(calc "a = $(f cpu_ms "$A_BEFORE"); b = $(f cpu_ms "$A_AFTER"); printf \"%.1f\", (a < b) ? a : b")
    cpu_per_login=$(calc "n = $(f expected "$R_LOGIN_ALONE"); printf \"%.1f\", (n > 0) ? $(f server_s "$CPU_LOGIN_ALONE") * 1000 / n : 0")
    rest_ms=$(calc "printf \"%.1f\", $cpu_per_login - $hash_ms")
    local kv sqlite_s=0
    for kv in $SPLIT_LOGIN_ALONE; do
        [[ "${kv%%=*}" == sqlx-sqlite* ]] && sqlite_s=$(calc "print $sqlite_s + ${kv#*=}")
    done
    echo
    echo "=== Password login benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ), $CORES cores) ==="
    echo "machine:   load avg at start $LOADAVG_START, at end $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews all figures)"
    echo "argon2id:  m=$M_KIB KiB, t=$T_COST, p=$P_COST; $HASH_THREADS hashing threads (RATHAUS_HASH_CONCURRENCY) on $CORES CPUs, same in server and raw run"
    echo "load:      logins: wrk -t$LOGIN_THREADS -c$LOGIN_CONNECTIONS --timeout ${LOGIN_TIMEOUT_S}s (POST /konto/anmelden, demo citizen, 303 expected)"
    echo "           pages:  wrk -t$PAGE_THREADS -c$PAGE_CONNECTIONS over $(wc -l <"$T/pages.txt") paths: $PAGES_TEXT"
    echo "           each measured run ${DURATION_S}s (combined: logins ${LEAD_S}s longer on both sides), login warm-up ${WARMUP_S}s, raw Argon2id ${ARGON2_S}s; 127.0.0.1 only"
    echo
    printf '%-24s %9s %8s %8s %8s %9s  %-22s %7s  %s\n' "run" "req/s" "p50 ms" "p90 ms" "p99 ms" "max ms" "answers" "sockerr" "target"
    raw_row "raw argon2id before" "$A_BEFORE"
    raw_row "raw argon2id after" "$A_AFTER"
    wrk_row "logins alone" "$R_LOGIN_ALONE" "$V_LOGIN (logins/raw $RATIO >= $TARGET_RATIO)"
    wrk_row "pages alone" "$R_PAGES_ALONE" ""
    wrk_row "combined: logins" "$R_LOGIN_COMB" ""
    wrk_row "combined: pages" "$R_PAGES_COMB" "$V_PAGES (p99 < $TARGET_PAGES_P99_MS ms)"
    echo
    printf 'logins/s vs raw Argon2id: %s / %s = %s (raw = the better of before and after; target >= %s)\n' \
        "$LOGIN_RPS" "$RAW" "$RATIO" "$TARGET_RATIO"
    if calc "a = $(f rate "$A_BEFORE"); b = $(f rate "$A_AFTER"); exit !((a > b ? a - b : b - a) > 0.05 * (a > b ? a : b))"; then
        printf 'WARNING:   the two raw Argon2id runs differ by more than 5 %% (%s vs %s/s): the machine was not steady, the ratio is not reliable; run again\n' \
            "$(f rate "$A_BEFORE")" "$(f rate "$A_AFTER")"
    fi
    printf 'per core:  %s logins/s per core (%s cores), %s per hashing thread; raw Argon2id %s/s per thread\n' \
        "$(calc "printf \"%.1f\", $LOGIN_RPS / $CORES")" "$CORES" "$(calc "printf \"%.1f\", $LOGIN_RPS / $HASH_THREADS")" \
        "$(calc "printf \"%.1f\", $RAW / $HASH_THREADS")"
    printf '           Keycloak sizing guide: ~%s password logins/s per vCPU (its default Argon2id m=%s KiB, t=%s: %s KiB-passes per hash; ours %s)\n' \
        "$KEYCLOAK_PER_VCPU" "$KEYCLOAK_M_KIB" "$KEYCLOAK_T" "$((KEYCLOAK_M_KIB * KEYCLOAK_T))" "$((M_KIB * T_COST))"
    printf 'split:     logins alone: server CPU %s ms per successful login = Argon2id %s ms (CPU per computation in the raw run) + %s ms the rest (HTTP, form, SQLite, session, event)\n' \
        "$cpu_per_login" "$hash_ms" "$rest_ms"
    printf '           of the rest: SQLite threads %s ms, other server threads %s ms (tokio workers less Argon2id: HTTP, form, app); server CPU by thread name (s): %s\n' \
        "$(calc "n = $(f expected "$R_LOGIN_ALONE"); printf \"%.1f\", (n > 0) ? $sqlite_s * 1000 / n : 0")" \
        "$(calc "n = $(f expected "$R_LOGIN_ALONE"); printf \"%.1f\", (n > 0) ? ($(f server_s "$CPU_LOGIN_ALONE") - $sqlite_s) * 1000 / n - $hash_ms : 0")" \
        "$SPLIT_LOGIN_ALONE"
    printf '           per login in the server: user %s ms, system %s ms, %s minor page faults, %s + %s voluntary + involuntary context switches; per raw verification: user %s ms, system %s ms, %s minor page faults\n' \
        "$(calc "n = $(f expected "$R_LOGIN_ALONE"); printf \"%.1f\", (n > 0) ? $(f server_user_s "$CPU_LOGIN_ALONE") * 1000 / n : 0")" \
        "$(calc "n = $(f expected "$R_LOGIN_ALONE"); printf \"%.1f\", (n > 0) ? $(f server_sys_s "$CPU_LOGIN_ALONE") * 1000 / n : 0")" \
        "$(calc "n = $(f expected "$R_LOGIN_ALONE"); printf \"%.0f\", (n > 0) ? $(f server_minflt "$CPU_LOGIN_ALONE") / n : 0")" \
        "$(calc "n = $(f expected "$R_LOGIN_ALONE"); printf \"%.1f\", (n > 0) ? $(f voluntary "$CTX_LOGIN_ALONE") / n : 0")" \
        "$(calc "n = $(f expected "$R_LOGIN_ALONE"); printf \"%.1f\", (n > 0) ? $(f involuntary "$CTX_LOGIN_ALONE") / n : 0")" \
        "$(raw_per utime_ticks ms)" "$(raw_per stime_ticks ms)" "$(raw_per minflt n)"
    echo "cores busy (average over each run; 'other processes' = work not ours, should be ~0):"
    cpu_line "raw argon2id before" "$CPU_A_BEFORE" bench-argon2
    cpu_line "pages alone" "$CPU_PAGES_ALONE" wrk
    cpu_line "logins alone" "$CPU_LOGIN_ALONE" wrk
    cpu_line "combined" "$CPU_COMBINED" wrk
    cpu_line "raw argon2id after" "$CPU_A_AFTER" bench-argon2
    printf 'after the load: server idle again after %s s (warm-up), %s s (logins alone), %s s (combined); RSS at the end %s MB; %s logins in the measured runs\n' \
        "${DRAIN[warmup]:--}" "${DRAIN[logins-alone]:--}" "${DRAIN[combined]:--}" "$(kb_to_mb "$RSS_END")" \
        "$((logins_alone + $(f requests "$R_LOGIN_COMB")))"
    echo "targets: logins/s >= $TARGET_RATIO x raw Argon2id rate of the hashing threads, all logins 303; other pages p99 < $TARGET_PAGES_P99_MS ms while the login is hammered; no socket errors"
}

if [[ -n "${BENCH_RESULTS:-}" ]]; then
    report | tee "$BENCH_RESULTS"
else
    report
fi
if [[ "${BENCH_STRICT:-0}" == 1 && $FAIL -ne 0 ]]; then
    exit 1
fi
exit 0
