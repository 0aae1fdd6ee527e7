#!/usr/bin/env bash
# The tamper-evident journal: append rate through Store::sequence_journal on a fresh SQLite
# file, inclusion-proof latency at 10 million entries, verification of a 1M-entry export.
#
#   bench/journal.sh
#
# Builds `journal-bench` (cargo build --release) and runs it; the machine's figures come
# first. Needs about 6 GB of free disk in $TMPDIR (or JOURNAL_BENCH_DIR) for the 10M-entry
# database, removed at the end, and about 5 minutes on two cores.
#
# Environment (all optional, passed through to the binary):
#   JOURNAL_BENCH_APPEND=1000000     entries of the append and export/verify steps
#   JOURNAL_BENCH_BATCH=4096         batch size of the append step
#   JOURNAL_BENCH_PROOF_SIZE=10000000  log size of the proof step (0: proofs at APPEND only)
#   JOURNAL_BENCH_GROW_BATCH=16384   batch size while growing to PROOF_SIZE
#   JOURNAL_BENCH_PROOFS=10000       random inclusion proofs timed per size
#   JOURNAL_BENCH_DIR=DIR            keep the database there instead of a temp dir
#   BENCH_SKIP_BUILD=1               use the binary already built
#
# Targets: append >= 50,000 entries/s; proof < 1 ms; verify 1M < 5 s.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export LC_ALL=C

if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release -p journal-bench >&2
fi

echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "nproc: $(nproc)"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
echo
exec "$ROOT/target/release/journal-bench"
