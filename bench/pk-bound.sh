#!/usr/bin/env bash
# The "signing bound": RSA-4096 private-key operations (PS512 signing, RSA-OAEP-256 key
# unwrapping) and JWE decryption per second on this machine, single-threaded and with N
# threads, next to OpenSSL's own `openssl speed rsa4096`. The Zustelldienst's throughput
# targets are stated relative to these figures.
#
#   bench/pk-bound.sh
#
# Builds `pk-bound` (bench/pk-bound/) with `cargo build --release` and runs it; see its
# main.rs for what each row measures. Prints the date, nproc, CPU model and load first:
# other work on the machine (builds, tests) lowers every figure.
#
# Environment (all optional):
#   BENCH_PK_SECONDS=3       seconds per operation and thread count
#   BENCH_PK_THREADS=nproc   the multi-threaded column (1 is always measured)
#   BENCH_PK_NO_OPENSSL=1    skip `openssl speed`
#   BENCH_PROFILE=release    cargo profile (production: fat LTO, much slower to build;
#                            the figures are dominated by aws-lc's C code either way)
#   BENCH_SKIP_BUILD=1, BENCH_RESULTS=FILE (also write the result table to FILE)
#
# No network and no servers: everything runs in this process and in `openssl speed`.
set -euo pipefail

: "${BENCH_PROFILE:=release}"
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECONDS_PER_OP=${BENCH_PK_SECONDS:-3}
THREADS=${BENCH_PK_THREADS:-$(nproc)}
[[ "$SECONDS_PER_OP" =~ ^[0-9]+$ && "$SECONDS_PER_OP" -ge 1 ]] || die "BENCH_PK_SECONDS must be an integer >= 1"
[[ "$THREADS" =~ ^[0-9]+$ && "$THREADS" -ge 1 ]] || die "BENCH_PK_THREADS must be an integer >= 1"

bench_init
cargo_build pk-bound
BIN="$TARGET_RELEASE/pk-bound"
[[ -x "$BIN" ]] || die "no pk-bound binary at $BIN"

args=(--seconds "$SECONDS_PER_OP" --threads "$THREADS")
if [[ "${BENCH_PK_NO_OPENSSL:-0}" == 1 ]] || ! command -v openssl >/dev/null 2>&1; then
    args+=(--no-openssl)
fi

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
started="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
out="$BENCH_TMP/pk-bound.out"
log "running $BIN ${args[*]}"
"$BIN" "${args[@]}" >"$out" || die "pk-bound failed"
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

report() {
    echo "pk-bound: $started, nproc $(nproc), CPU ${cpu_model:-unknown}"
    echo "$(openssl version 2>/dev/null || echo 'no openssl'); profile $BENCH_PROFILE;" \
        "${SECONDS_PER_OP} s per operation; threads 1 and $THREADS"
    echo "load average before $load_before, after $load_after (other work lowers every figure)"
    echo
    cat "$out"
}
if [[ -n "${BENCH_RESULTS:-}" ]]; then
    report | tee "$BENCH_RESULTS"
else
    report
fi
