#!/usr/bin/env bash
# Postfach benchmark: the citizen's Postfach list with 10,000 messages in one account, seeded
# through the Postfach API (whose delivery rate is measured on the way).
#
#   bench/postfach.sh                                 # a few minutes with the defaults (plus the build)
#   BENCH_DURATION=10s BENCH_CONNECTIONS=16 bench/postfach.sh
#   BENCH_DATA_DIR=/tmp/pf bench/postfach.sh          # keep the seeded data dir; a second run reuses it
#
# Environment (all optional):
#   BENCH_MESSAGES=10000       messages in the demo citizen's Postfach (demo messages count)
#   BENCH_DURATION=20s         each measured wrk run on a Postfach page (wrk syntax: 20s, 1m)
#   BENCH_CONNECTIONS=8        wrk connections on the pages
#   BENCH_THREADS=2            wrk threads on the pages
#   BENCH_WARMUP=2s            unmeasured run on each page before its measured one (0 = none)
#   BENCH_DEEP_PAGE=200        the deep page measured besides the first and the last
#   BENCH_SEED_CONNECTIONS=8   wrk connections delivering the messages
#   BENCH_SEED_THREADS=2       wrk threads delivering the messages
#   BENCH_DATA_DIR=DIR         data dir to use and keep (default: a fresh one in the scratch dir);
#                              messages already there count, only the missing ones are delivered
#   BENCH_SKIP_BUILD=1         use the binary already built
#   RATHAUS_BIN                binary instead of <target>/<BENCH_PROFILE>/rathaus
#   BENCH_READY_TIMEOUT=180    seconds to wait for /readyz (first demo start creates keys)
#   BENCH_STRICT=1             exit 1 if a target is missed
#   BENCH_RESULTS=FILE         also write the result table to FILE
#   BENCH_KEEP=1               keep the scratch dir (data dir, server log, wrk output)
#
# Only 127.0.0.1 is contacted; every server started here is stopped on exit.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MESSAGES=${BENCH_MESSAGES:-10000}
DURATION=${BENCH_DURATION:-20s}
CONNECTIONS=${BENCH_CONNECTIONS:-8}
THREADS=${BENCH_THREADS:-2}
WARMUP=${BENCH_WARMUP:-2s}
DEEP_PAGE=${BENCH_DEEP_PAGE:-200}
SEED_CONNECTIONS=${BENCH_SEED_CONNECTIONS:-8}
SEED_THREADS=${BENCH_SEED_THREADS:-2}
READY_TIMEOUT=${BENCH_READY_TIMEOUT:-180}
TARGET_P99_MS=20
PER_PAGE=25           # messages per list page (crates/web/src/postfach_pages.rs)
SEED_ROUND_S=540      # one access token per round: tokens live 10 minutes
SEED_ROUNDS_MAX=20

DURATION_S=$(duration_seconds "$DURATION")
WARMUP_S=$(duration_seconds "$WARMUP")
[[ "$DURATION_S" =~ ^[0-9]+$ && "$DURATION_S" -gt 0 ]] || die "BENCH_DURATION must be like 20s, 1m or 20"
[[ "$WARMUP_S" =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be like 2s or 0"
for v in MESSAGES CONNECTIONS THREADS DEEP_PAGE SEED_CONNECTIONS SEED_THREADS; do
    [[ "${!v}" =~ ^[0-9]+$ && "${!v}" -gt 0 ]] || die "BENCH_$v must be a positive integer"
done
((CONNECTIONS >= THREADS && SEED_CONNECTIONS >= SEED_THREADS)) \
    || die "wrk needs at least as many connections as threads"

bench_init
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
CORES=$(nproc)
ensure_tool curl curl
ensure_tool jq jq
ensure_tool wrk wrk

cargo_build rathaus
RATHAUS=${RATHAUS_BIN:-$TARGET_RELEASE/rathaus}
[[ -x "$RATHAUS" ]] || die "no rathaus binary at $RATHAUS"

T=$BENCH_TMP
DATA=${BENCH_DATA_DIR:-$T/data}
mkdir -p "$DATA"
PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"

log "starting: $RATHAUS serve --demo --data-dir $DATA --listen 127.0.0.1:$PORT"
start_bg "$T/rathaus.log" "$RATHAUS" serve --demo --data-dir "$DATA" --listen "127.0.0.1:$PORT"
RATHAUS_PID=$LAST_PID
wait_ready "$BASE/readyz" "$RATHAUS_PID" "$READY_TIMEOUT" "$T/rathaus.log" || die "rathaus did not become ready"
for ((i = 0; i < 100; i++)); do [[ -s "$DATA/demo.json" ]] && break; sleep 0.1; done
[[ -s "$DATA/demo.json" ]] || die "no $DATA/demo.json after the demo start"
DEMO=$DATA/demo.json
EMAIL=$(jq -r '.citizen.username // empty' "$DEMO")
PASSWORD=$(jq -r '.citizen.password // empty' "$DEMO")
CLIENT_ID=$(jq -r '.postfach_api.client_id // empty' "$DEMO")
CLIENT_SECRET=$(jq -r '.postfach_api.client_secret // empty' "$DEMO")
TOKEN_URL=$(jq -r '.postfach_api.token_url // empty' "$DEMO")
MESSAGES_URL=$(jq -r '.postfach_api.messages_url // empty' "$DEMO")
RECIPIENT=$(jq -r '.postfach_api.citizen_postfach_ref // empty' "$DEMO")
for v in EMAIL PASSWORD CLIENT_ID CLIENT_SECRET TOKEN_URL MESSAGES_URL RECIPIENT; do
    [[ -n "${!v}" ]] || die "demo.json lacks $v (citizen.username/password, postfach_api.client_id/client_secret/token_url/messages_url/citizen_postfach_ref)"
done
[[ "$RECIPIENT" =~ ^[-._a-z0-9~/]+$ ]] || die "citizen_postfach_ref '$RECIPIENT' is not a Postfach reference"
# demo.json names the public URL; talk to our loopback port, on the same paths
url_path() { local u=${1#*://}; [[ "$u" == */* ]] && printf '/%s\n' "${u#*/}" || printf '/\n'; }
TOKEN_PATH=$(url_path "$TOKEN_URL")
MESSAGES_PATH=$(url_path "$MESSAGES_URL")
log "rathaus ready (pid $RATHAUS_PID); citizen $EMAIL, Postfach $RECIPIENT; API client $CLIENT_ID ($TOKEN_PATH, $MESSAGES_PATH)"

# ---------------------------------------------------------------------------------------
# Session of the citizen, and what the Postfach holds now
# ---------------------------------------------------------------------------------------
konto_login "$BASE" "$EMAIL" "$PASSWORD" "$T"
[[ "$LOGIN_CODE" == 303 && -n "$SESSION_COOKIE" ]] \
    || die "login as $EMAIL answered $LOGIN_CODE (session cookie: ${SESSION_COOKIE:-none}), expected 303 with a session"
case "$LOGIN_LOCATION" in
    /konto/anmelden*) die "the login redirects to $LOGIN_LOCATION (second factor or error), not into the account" ;;
esac
log "logged in as $EMAIL (303 -> $LOGIN_LOCATION)"

# get_page PATH OUTFILE: GET with the session; sets PAGE_CODE, PAGE_ROWS (message links),
# PAGE_TOTAL (the "N Nachrichten" count shown, empty if not found)
get_page() {
    PAGE_CODE=$(curl -s -o "$2" -w '%{http_code}' --max-time 10 -b "$SESSION_COOKIE" "$BASE$1" || true)
    PAGE_ROWS=$(grep -oE 'href="/postfach/[0-9a-f-]{36}' "$2" | sort -u | wc -l || true)
    PAGE_TOTAL=$(grep -oE '[0-9]+ (Nachrichten, davon|messages,)' "$2" | head -n 1 | grep -oE '^[0-9]+' || true)
}
get_page /postfach "$T/postfach-before.html"
[[ "$PAGE_CODE" == 200 ]] || die "GET /postfach with the session answered $PAGE_CODE"
[[ -n "$PAGE_TOTAL" ]] || die "no message count (\"N Nachrichten, davon …\") on /postfach: see $T/postfach-before.html"
TOTAL_BEFORE=$PAGE_TOTAL
log "the Postfach holds $TOTAL_BEFORE messages ($PAGE_ROWS on page 1)"

# ---------------------------------------------------------------------------------------
# Seeding through the Postfach API
# ---------------------------------------------------------------------------------------
uri_enc() { jq -rn --arg s "$1" '$s | @uri'; }
TOKENS=0
get_token() { # sets ACCESS_TOKEN (client credentials, HTTP Basic)
    local body code
    code=$(curl -s -o "$T/token.json" -w '%{http_code}' --max-time 10 \
        -u "$(uri_enc "$CLIENT_ID"):$(uri_enc "$CLIENT_SECRET")" \
        -d grant_type=client_credentials "$BASE$TOKEN_PATH" || true)
    body=$(head -c 400 "$T/token.json" 2>/dev/null || true)
    [[ "$code" == 200 ]] || die "POST $TOKEN_PATH answered $code: $body"
    ACCESS_TOKEN=$(jq -r '.access_token // empty' "$T/token.json")
    [[ -n "$ACCESS_TOKEN" ]] || die "no access_token from $TOKEN_PATH: $body"
    TOKENS=$((TOKENS + 1))
}

TO_SEED=$((MESSAGES - TOTAL_BEFORE))
SEEDED=0
SEED_S=0
SEED_RESULTS=()
NEXT_NUMBER=$((TOTAL_BEFORE + 1))
if ((TO_SEED > 0)); then
    get_token
    # one delivery with curl first: it must answer 201 with the message id
    code=$(curl -s -o "$T/deliver-1.json" -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $ACCESS_TOKEN" \
        -H 'Content-Type: application/json' \
        --data "{\"recipient\":\"$RECIPIENT\",\"subject\":\"Lasttest-Nachricht $NEXT_NUMBER\",\"body\":\"Automatisch erzeugte Nachricht des Lasttests bench/postfach.sh.\"}" \
        "$BASE$MESSAGES_PATH" || true)
    [[ "$code" == 201 ]] || die "POST $MESSAGES_PATH answered $code, not 201: $(head -c 600 "$T/deliver-1.json")"
    log "delivery checked: 201 $(jq -c '{id: (.id // .messageId // null)}' "$T/deliver-1.json" 2>/dev/null || head -c 200 "$T/deliver-1.json")"
    SEEDED=1
    NEXT_NUMBER=$((NEXT_NUMBER + 1))
    round=0
    while ((SEEDED < TO_SEED)); do
        round=$((round + 1))
        ((round <= SEED_ROUNDS_MAX)) || die "seeding did not finish in $SEED_ROUNDS_MAX rounds"
        ((round == 1)) || get_token
        remaining=$((TO_SEED - SEEDED))
        threads=$SEED_THREADS
        ((threads <= remaining)) || threads=$remaining
        conns=$SEED_CONNECTIONS
        ((conns <= remaining)) || conns=$remaining
        ((conns >= threads)) || conns=$threads
        done_dir="$T/seed-done-$round"
        mkdir -p "$done_dir"
        out="$T/wrk-seed-$round.txt"
        log "seeding round $round: $remaining deliveries, wrk -t$threads -c$conns (token $TOKENS)"
        cpu_begin "$RATHAUS_PID"
        wrk -t"$threads" -c"$conns" -d"${SEED_ROUND_S}s" --latency --timeout 10s -s "$BENCH_DIR/postfach-seed.lua" \
            "$BASE" -- "$MESSAGES_PATH" "$ACCESS_TOKEN" "$RECIPIENT" "$remaining" "$NEXT_NUMBER" "$threads" "$done_dir" \
            >"$out" 2>&1 &
        wrk_pid=$!
        BENCH_PIDS+=("$wrk_pid")
        last_report=$SECONDS
        last_progress=-1
        last_change=$SECONDS
        stalled=0
        while alive "$wrk_pid"; do
            n_done=$(find "$done_dir" -name 'done-*' | wc -l)
            if ((n_done >= threads)); then
                kill -INT "$wrk_pid" 2>/dev/null || true
                break
            fi
            if ((SECONDS - last_report >= 5)); then
                progress=$(cat "$done_dir"/progress-* 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
                if ((progress != last_progress)); then
                    last_progress=$progress
                    last_change=$SECONDS
                    log "  … round $round: about $progress of $remaining delivered"
                elif ((SECONDS - last_change >= 60)); then
                    kill -INT "$wrk_pid" 2>/dev/null || true
                    log "seeding round $round: no progress for 60 s; stopping wrk"
                    stalled=1
                    break
                fi
                last_report=$SECONDS
            fi
            sleep 0.05
        done
        rc=0
        wait "$wrk_pid" || rc=$?
        keep=()
        for p in "${BENCH_PIDS[@]}"; do [[ "$p" == "$wrk_pid" ]] || keep+=("$p"); done
        BENCH_PIDS=("${keep[@]}")
        cpu_end
        R=$(wrk_result "$out") || die "seeding round $round: no RESULT from wrk (exit $rc): $(tail -n 5 "$out")"
        sed -n '/^---- .*summary/,$p' "$out" | grep -v '^RESULT' | sed "s/^/  [seed $round] /" >&2
        SEED_RESULTS+=("$R $CPU_RESULT")
        created=$(result_field created "$R")
        failed=$(result_field failed "$R")
        unauthorized=$(result_field unauthorized "$R")
        SEEDED=$((SEEDED + created))
        SEED_S=$(awk -v a="$SEED_S" -v b="$(result_field seconds "$R")" 'BEGIN { printf "%.3f", a + b }')
        NEXT_NUMBER=$((NEXT_NUMBER + $(result_field sent "$R")))
        if ((failed > unauthorized)); then
            die "seeding round $round: $failed deliveries failed (HTTP status $(result_field codes "$R")); see $T/rathaus.log"
        fi
        ((created > 0)) || die "seeding round $round created nothing (HTTP status $(result_field codes "$R"))"
        ((stalled == 0)) || die "seeding round $round stalled after $created deliveries (HTTP status $(result_field codes "$R")); see $T/rathaus.log"
    done
fi

get_page /postfach "$T/postfach-after.html"
[[ "$PAGE_CODE" == 200 ]] || die "GET /postfach answered $PAGE_CODE after seeding"
TOTAL=$PAGE_TOTAL
[[ "$TOTAL" =~ ^[0-9]+$ ]] || die "no message count on /postfach after seeding"
if ((TOTAL != TOTAL_BEFORE + SEEDED)); then
    log "WARNING: the Postfach shows $TOTAL messages, expected $TOTAL_BEFORE + $SEEDED = $((TOTAL_BEFORE + SEEDED))"
fi
((PAGE_ROWS == PER_PAGE || TOTAL < PER_PAGE)) || die "page 1 lists $PAGE_ROWS messages, expected $PER_PAGE"
LAST_PAGE=$(((TOTAL + PER_PAGE - 1) / PER_PAGE))
((DEEP_PAGE <= LAST_PAGE)) || { log "only $LAST_PAGE pages: deep page $DEEP_PAGE -> $LAST_PAGE"; DEEP_PAGE=$LAST_PAGE; }
DATA_MB=$(du -sm "$DATA" | cut -f1)
log "the Postfach holds $TOTAL messages = $LAST_PAGE pages of $PER_PAGE; data dir $DATA_MB MB"

# the pages to measure: first, deep, last (each checked: 200 and the expected number of rows)
LABELS=("page 1" "page $DEEP_PAGE" "page $LAST_PAGE (last)")
PATHS=("/postfach" "/postfach?seite=$DEEP_PAGE" "/postfach?seite=$LAST_PAGE")
for i in "${!PATHS[@]}"; do
    get_page "${PATHS[$i]}" "$T/page-$i.html"
    [[ "$PAGE_CODE" == 200 ]] || die "GET ${PATHS[$i]} answered $PAGE_CODE"
    n=$(sed -n 's/.*seite=\([0-9]*\).*/\1/p' <<<"${PATHS[$i]}")
    n=${n:-1}
    want=$((n < LAST_PAGE ? PER_PAGE : TOTAL - (LAST_PAGE - 1) * PER_PAGE))
    ((PAGE_ROWS == want)) || die "GET ${PATHS[$i]} lists $PAGE_ROWS messages, expected $want"
    log "checked ${PATHS[$i]}: 200, $PAGE_ROWS messages, $(wc -c <"$T/page-$i.html") bytes"
done

# ---------------------------------------------------------------------------------------
# Load on the pages
# ---------------------------------------------------------------------------------------
RESULTS=()
CPUS=()
for i in "${!PATHS[@]}"; do
    printf '%s\n' "${PATHS[$i]}" >"$T/paths-$i.txt"
    if ((WARMUP_S > 0)); then
        run_fg timeout $((WARMUP_S + 60)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP_S}s" --timeout 5s \
            -s "$BENCH_DIR/pages.lua" "$BASE" -- "$T/paths-$i.txt" "$SESSION_COOKIE" >"$T/wrk-page-$i-warmup.txt" 2>&1 \
            || die "warm-up on ${PATHS[$i]} failed: $(tail -n 5 "$T/wrk-page-$i-warmup.txt")"
    fi
    log "${PATHS[$i]}: wrk -t$THREADS -c$CONNECTIONS -d${DURATION_S}s --latency"
    cpu_begin "$RATHAUS_PID"
    run_fg timeout $((DURATION_S + 60)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION_S}s" --latency --timeout 5s \
        -s "$BENCH_DIR/pages.lua" "$BASE" -- "$T/paths-$i.txt" "$SESSION_COOKIE" >"$T/wrk-page-$i.txt" 2>&1 \
        || die "wrk on ${PATHS[$i]} failed: $(tail -n 5 "$T/wrk-page-$i.txt")"
    cpu_end
    sed -n '/^---- .*summary/,$p' "$T/wrk-page-$i.txt" | grep -v '^RESULT' | sed "s/^/  [${LABELS[$i]}] /" >&2
    r=$(wrk_result "$T/wrk-page-$i.txt") || die "no RESULT line in $T/wrk-page-$i.txt"
    RESULTS+=("$r")
    CPUS+=("$CPU_RESULT")
done
RSS_END=$(rss_kb "$RATHAUS_PID")
stop_pid "$RATHAUS_PID"
log "rathaus stopped (exit status $STOP_RC)"

# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------
f() { result_field "$@"; }
FAIL=0
VERDICTS=()
for i in "${!RESULTS[@]}"; do
    r=${RESULTS[$i]}
    if awk -v p="$(f p99_ms "$r")" -v t="$TARGET_P99_MS" 'BEGIN { exit !(p < t) }' \
        && [[ "$(f unexpected "$r")" == 0 && "$(f socket_errors "$r")" == 0 ]]; then
        VERDICTS+=(PASS)
    else
        VERDICTS+=(FAIL)
        FAIL=1
    fi
done

report() {
    local i r created=0 codes="" p50="" p99="" cpu_server=0 other=0 n=0
    echo
    echo "=== Postfach benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ), $CORES cores) ==="
    echo "machine:   load avg at start $LOADAVG_START, at end $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews all figures)"
    echo "postfach:  demo citizen $EMAIL: $TOTAL messages ($TOTAL_BEFORE before this run, $SEEDED delivered now), $LAST_PAGE pages of $PER_PAGE; data dir $DATA_MB MB"
    if ((SEEDED > 0)); then
        for r in "${SEED_RESULTS[@]}"; do
            created=$((created + $(f created "$r")))
            codes="$codes${codes:+ }$(f codes "$r")"
            p50="$p50${p50:+/}$(f p50_ms "$r")"
            p99="$p99${p99:+/}$(f p99_ms "$r")"
            cpu_server=$(awk -v a="$cpu_server" -v b="$(f server_s "$r")" 'BEGIN { print a + b }')
            other=$(awk -v a="$other" -v b="$(f other "$r")" 'BEGIN { print a + b }')
            n=$((n + 1))
        done
        printf 'seeding:   POST %s (JSON, no attachments) with wrk -t%s -c%s: %s created in %s s = %s deliveries/s; latency p50 %s ms, p99 %s ms; HTTP %s; %s token(s)\n' \
            "$MESSAGES_PATH" "$SEED_THREADS" "$SEED_CONNECTIONS" "$created" "$SEED_S" \
            "$(awk -v c="$created" -v s="$SEED_S" 'BEGIN { printf "%.1f", (s > 0) ? c / s : 0 }')" "$p50" "$p99" "$codes" "$TOKENS"
        printf '           server CPU %s ms per delivery; other processes %s cores on average (+1 delivery with curl before)\n' \
            "$(awk -v c="$cpu_server" -v n="$created" 'BEGIN { printf "%.2f", (n > 0) ? c * 1000 / n : 0 }')" \
            "$(awk -v o="$other" -v n="$n" 'BEGIN { printf "%.2f", (n > 0) ? o / n : 0 }')"
    else
        echo "seeding:   none (the data dir already held $TOTAL_BEFORE >= $MESSAGES messages)"
    fi
    echo "load:      wrk -t$THREADS -c$CONNECTIONS -d${DURATION_S}s --latency (warm-up ${WARMUP_S}s) per page, session cookie of the citizen, 127.0.0.1 only"
    echo
    printf '%-28s %9s %8s %8s %8s %9s %8s  %-14s %7s  %-6s %s\n' "run" "req/s" "p50 ms" "p90 ms" "p99 ms" "p99.9 ms" "max ms" "answers" "sockerr" "target" "server / other cores"
    for i in "${!RESULTS[@]}"; do
        r=${RESULTS[$i]}
        printf '%-28s %9.1f %8.2f %8.2f %8.2f %9.2f %8.2f  %-14s %7s  %-6s %s / %s\n' "GET ${PATHS[$i]}" "$(f rps "$r")" \
            "$(f p50_ms "$r")" "$(f p90_ms "$r")" "$(f p99_ms "$r")" "$(f p999_ms "$r")" "$(f max_ms "$r")" \
            "$(f codes "$r")" "$(f socket_errors "$r")" "${VERDICTS[$i]}" "$(f server "${CPUS[$i]}")" "$(f other "${CPUS[$i]}")"
    done
    echo
    echo "rathaus RSS at the end: $(kb_to_mb "$RSS_END") MB"
    echo "targets: Postfach list p99 < $TARGET_P99_MS ms with $MESSAGES messages in the account (every page measured), only 200 answers, no socket errors"
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
