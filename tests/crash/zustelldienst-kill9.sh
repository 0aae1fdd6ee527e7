#!/usr/bin/env bash
# kill -9 crash test of the Zustelldienst intake (FIT-Connect Submission API).
#
# Claim under test: a request is acknowledged only after its effects are durably committed.
# Many senders run the full flow (create + attachment + submit) against `rathaus serve --demo`
# while the server is killed with SIGKILL at random moments and restarted on the same data.
# The load generator writes a line for every acknowledged create and submit. Afterwards,
# against a cleanly restarted server, every acknowledged submit must be in the subscriber's
# pickup list exactly once, fetchable with its attachment, and have one signed
# submit-submission SET in its case's event log; every acknowledged create must have its
# create-submission event; every tree head published before a kill must still be there
# with the same root; the journal must export and verify right after a crash and again at
# the end, after the sequencer drained; and it must hold exactly one `received` and one
# `fetched` entry for every acknowledged submit.
#
#   tests/crash/zustelldienst-kill9.sh                      # SQLite, 20 kills
#   CRASH_KILLS=3 tests/crash/zustelldienst-kill9.sh        # short run (CI)
#   CRASH_BACKEND=postgres tests/crash/zustelldienst-kill9.sh
#
# Environment (all optional):
#   CRASH_KILLS=20            SIGKILLs of the server
#   CRASH_BACKEND=sqlite      or postgres (scripts/pg-throwaway; only rathaus is killed)
#   CRASH_SENDERS=16          concurrent senders
#   CRASH_ATTACHMENT=10240    attachment plaintext bytes (> ~190000 puts the JWE in blob files)
#   CRASH_MIN_DELAY=0.5 CRASH_MAX_DELAY=3   seconds between "ready" and the kill (uniform)
#   CRASH_SEED                seed of the delays (default: random; printed, to repeat a run)
#   CRASH_READY_TIMEOUT=180   seconds a (re)start may take until /readyz answers 200
#   RATHAUS_BIN, LOADGEN_BIN  prebuilt binaries (both: no build); otherwise
#                             `cargo build --release -p rathaus -p bench-zustelldienst`
#   BENCH_KEEP=1              keep logs and data (they are kept anyway on failure)
set -euo pipefail
: "${BENCH_PROFILE:=release}"
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../bench/lib.sh"
log() { printf '[crash %s] %s\n' "$(date +%H:%M:%S)" "$*" >&"$BENCH_LOG_FD"; }

KILLS=${CRASH_KILLS:-20}
BACKEND=${CRASH_BACKEND:-sqlite}
SENDERS=${CRASH_SENDERS:-16}
ATT=${CRASH_ATTACHMENT:-10240}
MIN_DELAY=${CRASH_MIN_DELAY:-0.5}
MAX_DELAY=${CRASH_MAX_DELAY:-3}
READY_TIMEOUT=${CRASH_READY_TIMEOUT:-180}
SEED=${CRASH_SEED:-$((RANDOM * 32768 + RANDOM))}
[[ "$KILLS" =~ ^[0-9]+$ ]] || { echo "CRASH_KILLS must be a number" >&2; exit 2; }
case "$BACKEND" in sqlite | postgres) ;; *) echo "CRASH_BACKEND must be sqlite or postgres" >&2; exit 2 ;; esac

PG_STATE_DIR=""
crash_cleanup() {
    local rc=$?
    set +e
    (exit "$rc")
    bench_cleanup
    if [[ -n "$PG_STATE_DIR" ]]; then
        PG_THROWAWAY_STATE=$PG_STATE_DIR/pg.state "$ROOT/scripts/pg-throwaway" stop >/dev/null 2>&1 || true
        rm -rf "$PG_STATE_DIR"
    fi
    exit "$rc"
}
bench_init
trap crash_cleanup EXIT
ensure_tool curl curl
ensure_tool jq jq
PYTHON=$(command -v python3 || true)
[[ -n "$PYTHON" ]] || ensure_tool python3 python3
PYTHON=$(command -v python3)

if [[ -n "${RATHAUS_BIN:-}" && -n "${LOADGEN_BIN:-}" ]]; then
    RATHAUS=$RATHAUS_BIN
    LOADGEN=$LOADGEN_BIN
else
    command -v cargo >/dev/null 2>&1 || PATH="$HOME/.cargo/bin:$PATH"
    cargo_build rathaus bench-zustelldienst
    RATHAUS=${RATHAUS_BIN:-$TARGET_RELEASE/rathaus}
    LOADGEN=${LOADGEN_BIN:-$TARGET_RELEASE/bench-zustelldienst}
fi
[[ -x "$RATHAUS" && -x "$LOADGEN" ]] || die "binaries missing: $RATHAUS $LOADGEN"

T0=$SECONDS
RANDOM=$((SEED % 32768))
DATA="$BENCH_TMP/data"
ACKS="$BENCH_TMP/acks.log"
CREATES="$BENCH_TMP/creates.log"
mkdir -p "$DATA"
: >"$ACKS"
: >"$CREATES"
DB_ENV=()
if [[ "$BACKEND" == postgres ]]; then
    PG_STATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/rathaus-crash-pg.XXXXXX")
    PG_URL=$(PG_THROWAWAY_STATE=$PG_STATE_DIR/pg.state "$ROOT/scripts/pg-throwaway" start) \
        || die "scripts/pg-throwaway start failed: no PostgreSQL for CRASH_BACKEND=postgres"
    DB_ENV=(RATHAUS_DATABASE_URL="$PG_URL")
fi
PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
FAILURES=()
fail() {
    FAILURES+=("$*")
    log "FAIL: $*"
}

# rathaus with the run's database (journal export, …) and the server's public URL: with
# another URL, opening the app would re-sign every destination for that URL (~10 s of
# RSA-4096 on two cores), and the next server start would re-sign them back.
rathaus_cli() {
    env "${DB_ENV[@]}" RATHAUS_PUBLIC_URL="$(jq -r .base_url "$DATA/demo.json")" "$RATHAUS" --data-dir "$DATA" "$@"
}

STARTS=0
SERVER_PID=""
start_server() {
    STARTS=$((STARTS + 1))
    local logf
    logf=$(printf '%s/rathaus-%02d.log' "$BENCH_TMP" "$STARTS")
    start_bg "$logf" env "${DB_ENV[@]}" "$RATHAUS" serve --demo --data-dir "$DATA" --listen "127.0.0.1:$PORT"
    SERVER_PID=$LAST_PID
    wait_ready "$BASE/readyz" "$SERVER_PID" "$READY_TIMEOUT" "$logf" \
        || die "rathaus did not become ready after start $STARTS (log: $logf)"
}

kill9_server() {
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    local keep=() p
    for p in "${BENCH_PIDS[@]}"; do [[ "$p" == "$SERVER_PID" ]] || keep+=("$p"); done
    BENCH_PIDS=("${keep[@]}")
    SERVER_PID=""
}

# "SIZE ROOT" of the latest published tree head ("0 -" if none)
tree_head() {
    curl -s --max-time 5 "$BASE/journal/v1/tree-head" 2>/dev/null \
        | jq -r '"\(.treeHead.treeSize // 0) \(.treeHead.rootHash // "-")"' 2>/dev/null || echo "0 -"
}

demo_fc() { jq -S .fit_connect "$DATA/demo.json"; }

log "backend $BACKEND, $KILLS kills, $SENDERS senders, attachment $ATT bytes, delays ${MIN_DELAY}-${MAX_DELAY} s, seed $SEED, port $PORT"
log "scratch: $BENCH_TMP"
start_server
for ((i = 0; i < 100; i++)); do [[ -s "$DATA/demo.json" ]] && break; sleep 0.1; done
[[ -s "$DATA/demo.json" ]] || die "no demo.json in $DATA"
demo_fc >"$BENCH_TMP/fit_connect.json"
log "ready after $((SECONDS - T0)) s; starting the load"

start_bg "$BENCH_TMP/loadgen.log" env LOADGEN_ACK_LOG="$ACKS" LOADGEN_CREATE_LOG="$CREATES" \
    "$LOADGEN" "$DATA/demo.json" "$SENDERS" 3600 "$ATT"
LOAD_PID=$LAST_PID

HEADS_CHECKED=0
HEADS_KEPT=0
for ((k = 1; k <= KILLS; k++)); do
    r=$RANDOM
    delay=$(awk -v r="$r" -v a="$MIN_DELAY" -v b="$MAX_DELAY" 'BEGIN { printf "%.2f", a + (b - a) * r / 32767 }')
    sleep "$delay"
    alive "$LOAD_PID" || die "the load generator stopped early; log: $(tail -n 5 "$BENCH_TMP/loadgen.log")"
    read -r head_size head_root < <(tree_head)
    kill9_server
    log "kill $k/$KILLS after ${delay} s: acknowledged so far $(wc -l <"$ACKS") submits, tree head $head_size"
    if ((k == KILLS)); then
        # The journal straight from the crashed state: the CLI sequences what is queued.
        if out=$(rathaus_cli journal export "$BENCH_TMP/journal-crash.jsonl" 2>"$BENCH_TMP/journal-crash.err") \
            && vout=$(rathaus_cli journal verify "$BENCH_TMP/journal-crash.jsonl" 2>&1); then
            log "crash state: $out; $vout"
            CRASH_JOURNAL=$(sed -n 's/.*verified \([0-9]*\) entries.*/\1/p' <<<"$vout")
        else
            fail "journal export/verify right after the last kill failed: $(cat "$BENCH_TMP/journal-crash.err") ${vout:-}"
            CRASH_JOURNAL="?"
        fi
    fi
    start_server
    if ! cmp -s <(demo_fc) "$BENCH_TMP/fit_connect.json"; then
        fail "restart $k: serve --demo changed demo.json's fit_connect (demo seeding is not idempotent): $(diff <(demo_fc) "$BENCH_TMP/fit_connect.json" | head -n 5)"
        demo_fc >"$BENCH_TMP/fit_connect.json"
    fi
    if ((head_size > 0)); then
        HEADS_CHECKED=$((HEADS_CHECKED + 1))
        root=$(curl -s --max-time 5 "$BASE/journal/v1/tree-heads/$head_size" | jq -r '.rootHash // "-"' 2>/dev/null || echo "-")
        if [[ "$root" == "$head_root" ]]; then
            HEADS_KEPT=$((HEADS_KEPT + 1))
        else
            fail "tree head of size $head_size published before kill $k is gone or changed (root $head_root, now $root)"
        fi
    fi
done

log "stopping the load"
stop_pid "$LOAD_PID" 120
LOAD_LINE=$(sed -n 's/^CRASHLOAD //p' "$BENCH_TMP/loadgen.log" | tail -n 1)
[[ -n "$LOAD_LINE" ]] || fail "the load generator printed no summary (exit $STOP_RC): $(tail -n 5 "$BENCH_TMP/loadgen.log")"
UNEXPECTED=$(result_field unexpected4xx "$LOAD_LINE")
if [[ "$UNEXPECTED" != 0 ]]; then
    fail "the load generator saw $UNEXPECTED unexpected 4xx answers (a lost create or attachment?): $(grep -m 5 '^unexpected' "$BENCH_TMP/loadgen.log" | tr '\n' ' ')"
fi
ACKED=$(wc -l <"$ACKS")
CREATED=$(wc -l <"$CREATES")
log "load: $LOAD_LINE"
((ACKED > 0)) || fail "no submit was acknowledged at all"

log "verifying $ACKED acknowledged submits and $CREATED acknowledged creates as the subscriber"
VERIFY_LINE=""
if "$LOADGEN" verify "$DATA/demo.json" "$ACKS" "$CREATES" >"$BENCH_TMP/verify.out" 2>"$BENCH_TMP/verify.err"; then
    VERIFY_LINE=$(sed -n 's/^VERIFY //p' "$BENCH_TMP/verify.out")
else
    VERIFY_LINE=$(sed -n 's/^VERIFY //p' "$BENCH_TMP/verify.out")
    fail "verify: ${VERIFY_LINE:-no result}"
    sed -n '1,30p' "$BENCH_TMP/verify.err" >&2
fi
log "verify: $VERIFY_LINE"

# Wait until the sequencer has drained the queue: the tree head stops growing.
log "waiting for the journal sequencer to drain"
last=-1
stable=0
deadline=$((SECONDS + 300))
while ((SECONDS < deadline)); do
    read -r size _ < <(tree_head)
    if [[ "$size" == "$last" ]]; then
        stable=$((stable + 1))
        ((stable >= 6)) && break
    else
        stable=0
        last=$size
    fi
    sleep 0.5
done
((stable >= 6)) || fail "the journal's tree head kept growing for 300 s"
DRAINED=$last
stop_pid "$SERVER_PID" 60
((STOP_RC == 0)) || fail "the final clean stop exited with $STOP_RC"

FINAL_JOURNAL="?"
if out=$(rathaus_cli journal export "$BENCH_TMP/journal.jsonl" 2>"$BENCH_TMP/journal.err") \
    && vout=$(rathaus_cli journal verify "$BENCH_TMP/journal.jsonl" 2>&1); then
    log "final: $out; $vout"
    FINAL_JOURNAL=$(sed -n 's/.*verified \([0-9]*\) entries.*/\1/p' <<<"$vout")
    if [[ "$FINAL_JOURNAL" =~ ^[0-9]+$ ]]; then
        ((FINAL_JOURNAL >= DRAINED)) || fail "the final export has $FINAL_JOURNAL entries, fewer than the drained tree head ($DRAINED)"
        ((FINAL_JOURNAL == DRAINED)) || log "note: the export sequenced $((FINAL_JOURNAL - DRAINED)) entries the server had not"
    fi
else
    fail "final journal export/verify failed: $(cat "$BENCH_TMP/journal.err") ${vout:-}"
fi

# Every acknowledged submit has exactly one `received` and one `fetched` (verify fetched
# each) entry in the final journal.
JOURNAL_LINE=""
if [[ -s "$BENCH_TMP/journal.jsonl" ]]; then
    JOURNAL_LINE=$("$PYTHON" - "$BENCH_TMP/journal.jsonl" "$ACKS" <<'EOF'
import collections, json, sys
export, acks = sys.argv[1], sys.argv[2]
count = collections.Counter()
with open(export) as f:
    next(f)  # header
    for line in f:
        e = json.loads(line)["entry"]
        count[(e.get("subject"), e.get("kind"))] += 1
acked = [l.split()[0] for l in open(acks) if l.strip()]
bad = []
for sid in acked:
    for kind in ("received", "fetched"):
        n = count[("submission:" + sid, kind)]
        if n != 1:
            bad.append(f"submission {sid}: {n} '{kind}' entries (want 1)")
ok = len(acked) - len({b.split()[1] for b in bad})
print(f"acked={len(acked)} with_received_and_fetched={ok} problems={len(bad)}")
for b in bad[:20]:
    print("  " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
) || fail "journal content: $JOURNAL_LINE"
fi

echo
echo "== Zustelldienst kill -9 crash test: $BACKEND =="
echo "kills:         $KILLS (SIGKILL ${MIN_DELAY}-${MAX_DELAY} s after ready, seed $SEED), $STARTS starts, demo.json stable across restarts"
echo "load:          $SENDERS senders; $LOAD_LINE"
echo "acknowledged:  $ACKED submits, $CREATED creates"
echo "verified:      $VERIFY_LINE"
echo "tree heads:    $HEADS_KEPT of $HEADS_CHECKED published before a kill kept with the same root"
echo "journal:       crash state verified ${CRASH_JOURNAL:-?} entries; final verified $FINAL_JOURNAL entries (drained head $DRAINED); $JOURNAL_LINE"
echo "time:          $((SECONDS - T0)) s (after build)"
echo "failures:      ${#FAILURES[@]}"
for f in "${FAILURES[@]}"; do echo "  - $f"; done
if ((${#FAILURES[@]} > 0)); then
    echo "RESULT: FAIL (logs and data in $BENCH_TMP)"
    exit 1
fi
echo "RESULT: PASS"
