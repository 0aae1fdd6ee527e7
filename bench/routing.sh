#!/usr/bin/env bash
# Routing API load benchmark: Rathaus vs. a bare axum handler, at 1x and 20x rules.
#
#   bench/routing.sh                      # full run (a few minutes with the defaults + build)
#   BENCH_DURATION=10s BENCH_CONNECTIONS=32 bench/routing.sh
#
# Environment (all optional):
#   BENCH_DURATION=20s      wrk duration of each measured run (wrk syntax: 20s, 1m)
#   BENCH_CONNECTIONS=64    wrk connections
#   BENCH_THREADS=2         wrk threads
#   BENCH_WARMUP=3s         unmeasured wrk run before each measured one (0 = none)
#   BENCH_QUERIES=1000      length of the query mix (80% with a route, 20% empty)
#   BENCH_MIX=place         place queries only; "coarse" adds 20% Kreis-level (5-digit) queries
#   BENCH_RULE_FACTOR=20    second Rathaus run with FACTOR x the demo rule count
#   BENCH_SKIP_BUILD=1      use the binaries already built
#   RATHAUS_BIN / BASELINE_BIN   binaries to use instead of <target>/<BENCH_PROFILE>/{rathaus,bench-baseline}
#   BENCH_RESTART_FLAGS="--demo" flags of `rathaus serve` when restarting on the existing data dir
#   BENCH_READY_TIMEOUT=180 seconds to wait for /readyz (first demo start creates keys)
#   BENCH_STRICT=1          exit 1 if a Rathaus run misses the targets
#   BENCH_RESULTS=FILE      also write the result table to FILE
#   BENCH_KEEP=1            keep the scratch dir (data dir, query mix, logs, wrk output)
#
# Only 127.0.0.1 is contacted; every server started here is stopped on exit.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=${BENCH_DURATION:-20s}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
WARMUP=${BENCH_WARMUP:-3s}
NQUERIES=${BENCH_QUERIES:-1000}
FACTOR=${BENCH_RULE_FACTOR:-20}
READY_TIMEOUT=${BENCH_READY_TIMEOUT:-180}
RESTART_FLAGS=${BENCH_RESTART_FLAGS---demo} # set to "" for a plain serve
TARGET_RPS=50000
TARGET_P99_MS=5
# wrk sends everything from one address: lift the per-client limit far above the load, but
# keep the limiter on, so that its cost is part of the measurement.
export RATHAUS_ROUTING_RATE_LIMIT=${RATHAUS_ROUTING_RATE_LIMIT:-1000000000}

DURATION_S=$(duration_seconds "$DURATION")
WARMUP_S=$(duration_seconds "$WARMUP")
[[ "$DURATION_S" =~ ^[0-9]+$ && "$DURATION_S" -gt 0 ]] || die "BENCH_DURATION must be like 20s, 1m or 20"
[[ "$WARMUP_S" =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be like 3s or 0"
[[ "$FACTOR" =~ ^[0-9]+$ && "$FACTOR" -ge 2 ]] || die "BENCH_RULE_FACTOR must be an integer >= 2"

bench_init
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
ensure_tool curl curl
ensure_tool jq jq
ensure_tool wrk wrk

cargo_build rathaus bench-baseline
RATHAUS=${RATHAUS_BIN:-$TARGET_RELEASE/rathaus}
BASELINE=${BASELINE_BIN:-$TARGET_RELEASE/bench-baseline}
[[ -x "$RATHAUS" ]] || die "no rathaus binary at $RATHAUS"
[[ -x "$BASELINE" ]] || die "no bench-baseline binary at $BASELINE"

LEIKA=$(first_file "$ROOT/data/leika-sample.csv" "$ROOT/../shared/reference/leika-sample.csv") \
    || die "leika-sample.csv not found in data/ or ../shared/reference/"
GEBIETE=$(first_file "$ROOT/data/niedersachsen-gebiete-2017.csv" "$ROOT/../shared/reference/niedersachsen-gebiete-2017.csv") \
    || die "niedersachsen-gebiete-2017.csv not found in data/ or ../shared/reference/"

T=$BENCH_TMP
DATA=$T/data
mkdir -p "$DATA"
PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
ROUTES="/routing-api/v1/routes"

RATHAUS_PID=""
start_rathaus() { # start_rathaus LOGNAME FLAGS...
    local logname=$1
    shift
    log "starting: $RATHAUS serve $* --data-dir $DATA --listen 127.0.0.1:$PORT"
    start_bg "$T/$logname.log" "$RATHAUS" serve "$@" --data-dir "$DATA" --listen "127.0.0.1:$PORT"
    RATHAUS_PID=$LAST_PID
    wait_ready "$BASE/readyz" "$RATHAUS_PID" "$READY_TIMEOUT" "$T/$logname.log" \
        || die "rathaus did not become ready"
    log "rathaus ready (pid $RATHAUS_PID)"
}

# probe IN OUT: IN lines "form<TAB>path"; OUT lines "form<TAB>path<TAB>http_code<TAB>routes"
# (routes = length of .routes, -1 if the 200 body is not a route-result). One curl process
# (keep-alive, 8 transfers in parallel) does all requests, one jq process reads all answers.
probe() {
    local in=$1 out=$2 dir
    dir=$(mktemp -d "$T/probe.XXXXXX")
    awk -F'\t' -v base="$BASE" -v dir="$dir" \
        '{ printf "url = \"%s%s\"\noutput = \"%s/%d.json\"\n", base, $2, dir, NR }' "$in" >"$dir/curl.cfg"
    run_fg curl -s --no-progress-meter -g -Z --parallel-max 8 --max-time 10 -K "$dir/curl.cfg" \
        -w '%{filename_effective}\t%{http_code}\n' >"$dir/codes" 2>/dev/null || true
    # one line per answer: "N<TAB>body" (JSON never contains raw newlines, so dropping them is safe)
    (cd "$dir" && find . -maxdepth 1 -name '*.json' -size +0 -print | sed 's|^\./||' | sort -n) >"$dir/files"
    if [[ -s "$dir/files" ]]; then
        # shellcheck disable=SC2016  # awk program, not shell
        (cd "$dir" && xargs awk '{ b[FILENAME] = b[FILENAME] $0 } END { for (f in b) { n = f; sub(/\.json$/, "", n); print n "\t" b[f] } }' <files) \
            | jq -R -r 'index("\t") as $i | .[:$i] + "\t" + (.[$i+1:] | try (fromjson | .routes | if type == "array" then length | tostring else "-1" end) catch "-1")' \
                >"$dir/counts"
    else
        : >"$dir/counts"
    fi
    awk -F'\t' -v codes="$dir/codes" -v counts="$dir/counts" '
        BEGIN {
            while ((getline l < codes) > 0) {   # "DIR/N.json<TAB>code", in completion order
                split(l, a, "\t"); n = a[1]; sub(/.*\//, "", n); sub(/\.json$/, "", n); code[n] = a[2]
            }
            while ((getline l < counts) > 0) { split(l, a, "\t"); cnt[a[1]] = a[2] }
        }
        { c = (NR in code) ? code[NR] : "000"; r = (NR in cnt) ? cnt[NR] : -1
          if (c != "200") r = -1
          print $1 "\t" $2 "\t" c "\t" r }' "$in" >"$out"
    rm -rf "$dir"
}

# deterministic shuffle of lines (fixed seed)
shuffle() { awk -v seed="${1:-42}" 'BEGIN { srand(seed) } { printf "%.12f\t%s\n", rand(), $0 }' | sort -n -k1,1 | cut -f2-; }

# pick N FORMS_PATTERN < "form<TAB>path" lines: N paths, forms taken in the pattern's order,
# each form cycling through its own (already shuffled) bucket; absent forms are skipped.
pick() {
    awk -F'\t' -v n="$1" -v pattern="$2" '
        { c[$1]++; b[$1, c[$1]] = $2 }
        END {
            k = split(pattern, pat, " "); out = 0; i = 0; miss = 0
            while (out < n) {
                f = pat[(i % k) + 1]; i++
                if (c[f] > 0) { p[f]++; print f "\t" b[f, ((p[f] - 1) % c[f]) + 1]; out++; miss = 0 }
                else if (++miss > k) exit 1
            }
        }'
}

# mix_ratio PROBED: "with_route empty other" over all lines
mix_ratio() {
    awk -F'\t' '{ if ($4 > 0) r++; else if ($3 == "200" && $4 == 0) e++; else o++ }
        END { printf "%d %d %d\n", r, e, o }' "$1"
}

# verify_answer URL OUTFILE: the answer must be a route-result with routes[0].destinationId
verify_answer() {
    local url=$1 out=$2 code
    code=$(curl -s -o "$out" -w '%{http_code}' --max-time 5 "$url" || true)
    [[ "$code" == 200 ]] || die "GET $url answered HTTP $code (expected 200)"
    jq -e '.routes[0].destinationId | strings | length > 0' "$out" >/dev/null \
        || die "GET $url: no routes[0].destinationId in the answer: $(head -c 400 "$out")"
    log "verified: $url -> destinationId $(jq -r '.routes[0].destinationId' "$out"), $(wc -c <"$out") bytes"
}

# run_wrk LABEL URL: warm-up, then the measured run; sets WRK_RESULT to the RESULT line
run_wrk() {
    local label=$1 url=$2 out="$T/wrk-$1.txt"
    if ((WARMUP_S > 0)); then
        log "$label: warm-up ${WARMUP_S}s"
        run_fg timeout $((WARMUP_S + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP_S}s" --timeout 2s \
            -s "$BENCH_DIR/routes.lua" "$url" -- "$T/paths.txt" >"$T/wrk-$label-warmup.txt" 2>&1 \
            || die "$label: warm-up wrk failed: $(tail -n 5 "$T/wrk-$label-warmup.txt")"
    fi
    log "$label: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency ($NQUERIES-path mix)"
    run_fg timeout $((DURATION_S + 60)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency --timeout 2s \
        -s "$BENCH_DIR/routes.lua" "$url" -- "$T/paths.txt" >"$out" 2>&1 \
        || die "$label: wrk failed: $(tail -n 5 "$out")"
    sed -n '/^---- routes.lua summary/,$p' "$out" | grep -v '^RESULT' | sed "s/^/  [$label] /" >&2
    WRK_RESULT=$(sed -n 's/^RESULT //p' "$out" | tail -n 1)
    [[ -n "$WRK_RESULT" ]] || die "$label: no RESULT line in wrk output ($out)"
}

field() { # field KEY RESULT_LINE
    local kv
    for kv in $2; do
        if [[ "${kv%%=*}" == "$1" ]]; then
            printf '%s\n' "${kv#*=}"
            return 0
        fi
    done
    echo "?"
}

count_rules() {
    local body n
    body=$(curl -s --max-time 10 -H "Authorization: Bearer $ADMIN_TOKEN" "$BASE/api/admin/v1/rules?limit=1" || true)
    n=$(jq -r '.totalCount // empty' <<<"$body" 2>/dev/null || true)
    [[ "$n" =~ ^[0-9]+$ ]] || die "GET /api/admin/v1/rules?limit=1 gave no totalCount: ${body:0:300}"
    printf '%s\n' "$n"
}

# ---------------------------------------------------------------------------------------
# 1. Rathaus with the demo rules
# ---------------------------------------------------------------------------------------
start_rathaus rathaus-1x --demo
for ((i = 0; i < 100; i++)); do [[ -s "$DATA/demo.json" ]] && break; sleep 0.1; done
[[ -s "$DATA/demo.json" ]] || die "no $DATA/demo.json after the demo start"
DEMO_BASE_URL=$(jq -r '.base_url // empty' "$DATA/demo.json")
ADMIN_TOKEN=$(jq -r '.admin_token // empty' "$DATA/demo.json")
[[ -n "$ADMIN_TOKEN" ]] || die "demo.json has no admin_token"
case "$DEMO_BASE_URL" in
    http://127.0.0.1:* | http://localhost:*) BASE=${DEMO_BASE_URL%/} ;;
    *) log "demo.json base_url '$DEMO_BASE_URL' is not loopback: using $BASE" ;;
esac
# areas: {"name": "032575403006"} or {"name": {"ars": "...", ...}}
jq -r '.areas | to_entries[]
       | [.key, (.value | if type == "object" then (.ars // .ARS // .gebiet_ars // "") else . end | tostring)]
       | @tsv' "$DATA/demo.json" >"$T/areas.tsv"
awk -F'\t' '!(length($2) == 12 && $2 ~ /^[0-9]+$/) { bad = 1 } END { exit bad }' "$T/areas.tsv" \
    || die "demo.json areas are not 12-digit ARS: $(tr '\n' ' ' <"$T/areas.tsv")"
[[ -s "$T/areas.tsv" ]] || die "demo.json has no areas"
log "demo areas: $(awk -F'\t' '{ printf "%s=%s ", $1, $2 }' "$T/areas.tsv")"

# real inputs: service keys and Gemeindeverbaende / Landkreise of Lower Saxony
tail -n +2 "$LEIKA" | cut -d, -f1 | grep -E '^99[0-9]{12}$' | sort -u >"$T/keys.txt"
# gv.tsv: ars12 <TAB> 1 if Samtgemeinde (no member municipalities in the CSV)
awk -F, '$1 == "gemeindeverband" && $2 ~ /^[0-9]+$/ && length($2) == 12 { print $2 "\t" ($0 ~ /,samtgemeinde,/ ? 1 : 0) }' \
    "$GEBIETE" | sort -u >"$T/gv.tsv"
awk -F, '$1 == "kreis" && /,landkreis,/ { print substr($2, 1, 5) }' "$GEBIETE" | sort -u >"$T/landkreise.txt"
log "inputs: $(wc -l <"$T/keys.txt") service keys ($LEIKA), $(wc -l <"$T/gv.tsv") Gemeindeverbaende ($GEBIETE)"

cut -f2 "$T/areas.tsv" | cut -c1-5 | sort -u >"$T/demo-kreise.txt"
# Landkreise reserved for the empty-answer queries: no demo area in them, no extra rules in them
grep -vxF -f "$T/demo-kreise.txt" "$T/landkreise.txt" | awk 'NR % 9 == 1 && ++c <= 4' >"$T/reserved-kreise.txt"
log "reserved (empty) Landkreise: $(tr '\n' ' ' <"$T/reserved-kreise.txt")"

# Which services route in the demo areas? Probe every key x demo area.
awk -F'\t' 'NR == FNR { a[++na] = $2; next }
    { for (i = 1; i <= na; i++) print "ars12\t'"$ROUTES"'?leikaKey=" $1 "&ars=" a[i] }' \
    "$T/areas.tsv" "$T/keys.txt" >"$T/discover.in"
log "probing $(wc -l <"$T/discover.in") key x demo-area queries"
probe "$T/discover.in" "$T/discover.out"
read -r D_ROUTE D_EMPTY D_OTHER < <(mix_ratio "$T/discover.out")
log "discovery: $D_ROUTE with a route, $D_EMPTY empty, $D_OTHER other answers"
((D_ROUTE > 0)) || die "no service key returns a route in the demo areas (see $T/discover.out)"

# candidates: positive pairs in 4 forms; empty ones from non-responsible keys in the demo
# areas and from real places in the reserved Landkreise
{
    awk -F'\t' '$4 > 0 { print $2 }' "$T/discover.out" | while IFS= read -r p; do
        key=${p#*leikaKey=}; key=${key%%&*}; ars=${p##*ars=}
        printf 'ars12\t%s?leikaKey=%s&ars=%s\n' "$ROUTES" "$key" "$ars"
        printf 'ars9\t%s?leikaKey=%s&ars=%s\n' "$ROUTES" "$key" "${ars:0:9}"
        printf 'ars5\t%s?leikaKey=%s&ars=%s\n' "$ROUTES" "$key" "${ars:0:5}"
        printf 'ags8\t%s?leikaKey=%s&ags=%s%s\n' "$ROUTES" "$key" "${ars:0:5}" "${ars:9:3}"
    done
    awk -F'\t' '$3 == "200" && $4 == 0 { print $1 "\t" $2 }' "$T/discover.out" | shuffle 7 | awk 'NR <= 300'
    awk -F'\t' '$4 > 0 { k = $2; sub(/.*leikaKey=/, "", k); sub(/&.*/, "", k); print k }' "$T/discover.out" \
        | sort -u >"$T/route-keys.txt"
    awk -F'\t' -v r="$ROUTES" '
        FILENAME == ARGV[1] { res[$1] = 1; next }
        FILENAME == ARGV[2] { rk[++nrk] = $1; next }
        FILENAME == ARGV[3] { ak[++nak] = $1; next }
        {
            k5 = substr($1, 1, 5); if (!(k5 in res)) next
            for (j = 0; j < 4; j++) {
                n++; key = (j % 2 == 0) ? rk[(n % nrk) + 1] : ak[((n * 31) % nak) + 1]
                print "ars9\t" r "?leikaKey=" key "&ars=" substr($1, 1, 9)
                if ($2 == 0) {   # verbandsfreie Gemeinde: its municipality is ars9 + digits 7-9
                    g = substr($1, 7, 3)
                    print "ars12\t" r "?leikaKey=" key "&ars=" substr($1, 1, 9) g
                    print "ags8\t" r "?leikaKey=" key "&ags=" k5 g
                }
            }
        }
        END {
            for (k5 in res) for (j = 0; j < 8; j++) {
                n++; key = (j % 2 == 0) ? rk[(n % nrk) + 1] : ak[((n * 31) % nak) + 1]
                print "ars5\t" r "?leikaKey=" key "&ars=" k5
            }
        }' "$T/reserved-kreise.txt" "$T/route-keys.txt" "$T/keys.txt" "$T/gv.tsv"
} | sort -u >"$T/candidates.in"
log "probing $(wc -l <"$T/candidates.in") candidate queries (ars 12/9/5 digits, ags 8 digits)"
probe "$T/candidates.in" "$T/candidates.out"
read -r C_ROUTE C_EMPTY C_OTHER < <(mix_ratio "$T/candidates.out")
log "candidates: $C_ROUTE with a route, $C_EMPTY empty, $C_OTHER other answers (left out)"
log "candidate HTTP codes: $(cut -f3 "$T/candidates.out" | sort | uniq -c | awk '{ printf "%s x%s ", $2, $1 }')"
((C_ROUTE > 0 && C_EMPTY > 0)) \
    || die "need queries answering 200 with routes and 200 with \"routes\": [] (see $T/candidates.out)"

# BENCH_MIX=place (default): the question a sender asks for an application, one place
# (12-/9-digit ARS or an AGS). BENCH_MIX=coarse adds 20% Kreis-level (5-digit) queries,
# each answered with every authority of the Kreis (12-19 routes, ~50 KB).
case "${BENCH_MIX:-place}" in
    place) PICK_ROUTE="ars12 ars9 ars12 ags8 ars12 ars9 ags8 ars12 ars12 ars9"; PICK_EMPTY="ars12 ars9 ags8 ars12 ars9 ars12 ars12 ars9 ars9 ars12" ;;
    coarse) PICK_ROUTE="ars12 ars9 ars12 ars5 ars12 ars9 ags8 ars12 ars5 ars9"; PICK_EMPTY="ars12 ars9 ars5 ars12 ags8 ars9 ars12 ars5 ars9 ars12" ;;
    *) die "BENCH_MIX must be place or coarse" ;;
esac
N_ROUTE=$(((NQUERIES * 8 + 5) / 10))
N_EMPTY=$((NQUERIES - N_ROUTE))
{
    awk -F'\t' '$4 > 0 { print $1 "\t" $2 }' "$T/candidates.out" | shuffle 11 \
        | pick "$N_ROUTE" "$PICK_ROUTE" | sed 's/^/route\t/'
    awk -F'\t' '$3 == "200" && $4 == 0 { print $1 "\t" $2 }' "$T/candidates.out" | shuffle 13 \
        | pick "$N_EMPTY" "$PICK_EMPTY" | sed 's/^/empty\t/'
} | shuffle 17 >"$T/mix.tsv"
cut -f3 "$T/mix.tsv" >"$T/paths.txt"
MIX_FORMS=$(cut -f2 "$T/mix.tsv" | sort | uniq -c | awk '{ printf "%s%s %s", sep, $2, $1; sep = ", " }')
log "query mix: $(wc -l <"$T/paths.txt") paths ($N_ROUTE with a route, $N_EMPTY empty); forms: $MIX_FORMS"

probe_mix() { # probe_mix LABEL: answers of the whole mix against the running server
    awk '{ print "mix\t" $0 }' "$T/paths.txt" >"$T/mix-$1.in"
    probe "$T/mix-$1.in" "$T/mix-$1.out"
}

FIRST_ROUTE=$(awk -F'\t' '$1 == "route" { print $3; exit }' "$T/mix.tsv")
verify_answer "$BASE$FIRST_ROUTE" "$T/answer.json"
probe_mix 1x
read -r M1_ROUTE M1_EMPTY M1_OTHER < <(mix_ratio "$T/mix-1x.out")
RULES_1X=$(count_rules)
log "1x: $RULES_1X rules; mix answers: $M1_ROUTE with a route, $M1_EMPTY empty, $M1_OTHER other"

RSS_1X_IDLE=$(rss_kb "$RATHAUS_PID")
run_wrk rathaus-1x "$BASE"
R_1X=$WRK_RESULT
RSS_1X_LOAD=$(rss_kb "$RATHAUS_PID")

# extra rules: (FACTOR-1) x demo count, explicit authority rules over real service keys and
# real Gemeindeverbaende outside the demo and reserved Landkreise
EXTRA=$(((FACTOR - 1) * RULES_1X))
cat "$T/demo-kreise.txt" "$T/reserved-kreise.txt" >"$T/excluded-kreise.txt"
awk -F'\t' 'NR == FNR { x[$1] = 1; next } !(substr($1, 1, 5) in x) { print $1 }' \
    "$T/excluded-kreise.txt" "$T/gv.tsv" >"$T/rule-gv.txt"
{
    echo "leistungsschluessel,gebiet_ars,zustaendig_ars,ebene"
    awk -v extra="$EXTRA" '
        NR == FNR { g[n_g++] = $1; next }
        { k[n_k++] = $1 }
        END {
            if (extra > n_g * n_k) { print "too many rules asked for" > "/dev/stderr"; exit 1 }
            for (i = 0; i < extra; i++) {
                gi = i % n_g; ki = (int(i / n_g) + gi * 7) % n_k
                print k[ki] "," substr(g[gi], 1, 9) "," g[gi] ","
            }
        }' "$T/rule-gv.txt" "$T/keys.txt"
} >"$T/extra-rules.csv"
log "generated $EXTRA extra rules over $(wc -l <"$T/rule-gv.txt") Gemeindeverbaende -> $T/extra-rules.csv"

stop_pid "$RATHAUS_PID"
log "rathaus stopped (exit status $STOP_RC)"

# ---------------------------------------------------------------------------------------
# 2. Bare axum baseline serving the captured Rathaus answer
# ---------------------------------------------------------------------------------------
BPORT=$(free_port)
[[ "$BPORT" != "$PORT" ]] || BPORT=$((PORT + 1))
log "starting baseline: $BASELINE 127.0.0.1:$BPORT $T/answer.json"
start_bg "$T/baseline.log" "$BASELINE" "127.0.0.1:$BPORT" "$T/answer.json"
BASELINE_PID=$LAST_PID
wait_ready "http://127.0.0.1:$BPORT/readyz" "$BASELINE_PID" 30 "$T/baseline.log" || die "baseline did not start"
verify_answer "http://127.0.0.1:$BPORT$FIRST_ROUTE" "$T/answer-baseline.json"
cmp -s "$T/answer.json" "$T/answer-baseline.json" || die "baseline does not serve the captured answer"
run_wrk baseline "http://127.0.0.1:$BPORT"
R_BASE=$WRK_RESULT
stop_pid "$BASELINE_PID"

# ---------------------------------------------------------------------------------------
# 3. Rathaus with FACTOR x rules (import with the CLI into the same data dir, restart)
# ---------------------------------------------------------------------------------------
log "importing: $RATHAUS rules import extra-rules.csv --data-dir $DATA"
IMPORT_T0=$SECONDS
run_fg timeout 900 "$RATHAUS" rules import "$T/extra-rules.csv" --data-dir "$DATA" >"$T/import.log" 2>&1 \
    || die "rules import failed: $(tail -n 20 "$T/import.log")"
IMPORT_S=$((SECONDS - IMPORT_T0))
log "import took ${IMPORT_S}s"
# shellcheck disable=SC2086  # RESTART_FLAGS is a list of flags
start_rathaus "rathaus-${FACTOR}x" $RESTART_FLAGS
RULES_NX=$(count_rules)
if ((RULES_NX != RULES_1X + EXTRA)); then
    log "WARNING: expected $((RULES_1X + EXTRA)) rules after the import, the server reports $RULES_NX"
fi
verify_answer "$BASE$FIRST_ROUTE" "$T/answer-${FACTOR}x.json"
probe_mix "${FACTOR}x"
read -r MN_ROUTE MN_EMPTY MN_OTHER < <(mix_ratio "$T/mix-${FACTOR}x.out")
log "${FACTOR}x: $RULES_NX rules; mix answers: $MN_ROUTE with a route, $MN_EMPTY empty, $MN_OTHER other"
RSS_NX_IDLE=$(rss_kb "$RATHAUS_PID")
run_wrk "rathaus-${FACTOR}x" "$BASE"
R_NX=$WRK_RESULT
RSS_NX_LOAD=$(rss_kb "$RATHAUS_PID")
stop_pid "$RATHAUS_PID"

# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------
FAIL=0
row() { # row LABEL RULES RESULT
    local rps p99 ratio_rps ratio_p99 verdict=""
    rps=$(field rps "$3")
    p99=$(field p99_ms "$3")
    ratio_rps=$(awk -v a="$rps" -v b="$(field rps "$R_BASE")" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
    ratio_p99=$(awk -v a="$p99" -v b="$(field p99_ms "$R_BASE")" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
    if [[ "$1" == rathaus* ]]; then
        if awk -v r="$rps" -v p="$p99" -v tr="$TARGET_RPS" -v tp="$TARGET_P99_MS" 'BEGIN { exit !(r >= tr && p < tp) }' \
            && [[ "$(field non2xx "$3")" == 0 && "$(field socket_errors "$3")" == 0 ]]; then
            verdict=PASS
        else
            verdict=FAIL
            FAIL=1
        fi
    fi
    printf '%-22s %7s %9.0f %8s %8s %8s %9s %8s %7s %10s %10s  %s\n' "$1" "$2" "$rps" \
        "$(field p50_ms "$3")" "$(field p90_ms "$3")" "$p99" "$(field p999_ms "$3")" \
        "$(field non2xx "$3")" "$(field socket_errors "$3")" "$ratio_rps" "$ratio_p99" "$verdict"
}

report() {
    echo
    echo "=== Routing API benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores) ==="
    echo "machine:   load avg at start $LOADAVG_START, at end $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews all figures)"
    echo "load:      wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency (warm-up $WARMUP), 127.0.0.1 only"
    echo "query mix: $NQUERIES paths, target 80% with a route / 20% empty; forms: $MIX_FORMS"
    echo "           answers at 1x:  $M1_ROUTE with a route, $M1_EMPTY empty, $M1_OTHER other"
    echo "           answers at ${FACTOR}x: $MN_ROUTE with a route, $MN_EMPTY empty, $MN_OTHER other"
    echo "baseline:  bare axum handler returning one captured Rathaus answer ($(wc -c <"$T/answer.json") bytes)"
    echo "rules:     1x = $RULES_1X (demo), ${FACTOR}x = $RULES_NX (+$EXTRA imported in ${IMPORT_S}s)"
    echo
    printf '%-22s %7s %9s %8s %8s %8s %9s %8s %7s %10s %10s  %s\n' "run" "rules" "req/s" "p50 ms" "p90 ms" \
        "p99 ms" "p99.9 ms" "non-2xx" "sockerr" "rps/base" "p99/base" "target"
    row "baseline (bare axum)" "-" "$R_BASE"
    row "rathaus 1x" "$RULES_1X" "$R_1X"
    row "rathaus ${FACTOR}x" "$RULES_NX" "$R_NX"
    echo
    printf 'rathaus 1x vs %sx:  req/s %s -> %s (%s), p99 %s ms -> %s ms\n' "$FACTOR" \
        "$(field rps "$R_1X")" "$(field rps "$R_NX")" \
        "$(awk -v a="$(field rps "$R_NX")" -v b="$(field rps "$R_1X")" 'BEGIN { printf "%+.1f%%", (a / b - 1) * 100 }')" \
        "$(field p99_ms "$R_1X")" "$(field p99_ms "$R_NX")"
    printf 'rathaus RSS (MB):   1x idle %s, after load %s;  %sx idle %s, after load %s\n' \
        "$(kb_to_mb "$RSS_1X_IDLE")" "$(kb_to_mb "$RSS_1X_LOAD")" "$FACTOR" \
        "$(kb_to_mb "$RSS_NX_IDLE")" "$(kb_to_mb "$RSS_NX_LOAD")"
    echo "targets: rathaus >= $TARGET_RPS req/s with p99 < $TARGET_P99_MS ms, no non-2xx, no socket errors (2 cores, wrk on the same machine)"
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
