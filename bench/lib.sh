# shellcheck shell=bash
# Helpers shared by bench/routing.sh and bench/startup.sh. Source it; do not run it.
# Everything here talks to 127.0.0.1 only and stops only the processes it started.

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
export LC_ALL=C

BENCH_PIDS=()   # servers started by this script, killed by bench_cleanup
BENCH_TMP=""    # scratch dir, removed by bench_cleanup unless BENCH_KEEP=1

BENCH_LOG_FD=2 # the script's own stderr, also inside functions whose stderr is redirected
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&"$BENCH_LOG_FD"; }
die() { log "ERROR: $*"; exit 1; }

# alive PID: the process exists and is not a zombie (an exited child stays visible to
# `kill -0` until it is reaped, so kill -0 alone cannot tell that a server died)
alive() {
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n "$st" && "${st:0:1}" != Z ]]
}

bench_cleanup() {
    local rc=$? pid
    for pid in "${BENCH_PIDS[@]}"; do
        if alive "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for pid in "${BENCH_PIDS[@]}"; do
        local i=0
        while alive "$pid" && ((i < 50)); do sleep 0.1; i=$((i + 1)); done
        if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    done
    if [[ -n "$BENCH_TMP" && -d "$BENCH_TMP" ]]; then
        if [[ "${BENCH_KEEP:-0}" == 1 || $rc -ne 0 ]]; then
            log "logs and data kept in $BENCH_TMP"
        else
            rm -rf "$BENCH_TMP"
        fi
    fi
    return "$rc"
}

bench_init() {
    exec {BENCH_LOG_FD}>&2
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    BENCH_TMP="$(mktemp -d "${TMPDIR:-/tmp}/rathaus-bench.XXXXXX")"
}

# ensure_tool COMMAND DEBIAN_PACKAGE: install from Debian if the command is missing.
_apt_updated=0
ensure_tool() {
    local cmd=$1 pkg=$2 sudo=()
    command -v "$cmd" >/dev/null 2>&1 && return 0
    log "$cmd missing: installing Debian package $pkg"
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "$cmd is missing and I am not root: apt-get install $pkg"
        sudo=(sudo -n)
    fi
    if ((_apt_updated == 0)); then
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        _apt_updated=1
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
    command -v "$cmd" >/dev/null 2>&1 || die "installing $pkg did not provide $cmd"
}

# cargo_build PACKAGE...: build from the workspace root with the profile operators deploy
# (BENCH_PROFILE, default "production"; skip with BENCH_SKIP_BUILD=1), then sets
# TARGET_RELEASE to the directory holding the binaries.
BENCH_PROFILE=${BENCH_PROFILE:-production}
cargo_build() {
    local args=() p
    for p in "$@"; do args+=(-p "$p"); done
    if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
        log "building: cargo build --profile $BENCH_PROFILE ${args[*]}"
        run_fg cargo build --manifest-path "$ROOT/Cargo.toml" --profile "$BENCH_PROFILE" "${args[@]}"
    fi
    local target
    target="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps 2>/dev/null | jq -r .target_directory)" \
        || target=""
    [[ -n "$target" && "$target" != null ]] || target="${CARGO_TARGET_DIR:-$ROOT/target}"
    # shellcheck disable=SC2034  # used by the scripts that source this file
    if [[ "$BENCH_PROFILE" == dev ]]; then TARGET_RELEASE="$target/debug"; else TARGET_RELEASE="$target/$BENCH_PROFILE"; fi
}

# first readable file among the arguments
first_file() {
    local f
    for f in "$@"; do
        if [[ -r "$f" ]]; then
            printf '%s\n' "$f"
            return 0
        fi
    done
    return 1
}

# free_port: a TCP port on 127.0.0.1 nobody listens on (BENCH_PORT_BASE..+2000)
free_port() {
    local base=${BENCH_PORT_BASE:-23000} p i
    for ((i = 0; i < 200; i++)); do
        p=$((base + (RANDOM % 2000)))
        if ! (: <"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            printf '%s\n' "$p"
            return 0
        fi
    done
    die "no free port found near $base"
}

# start_bg LOGFILE CMD...: start a server in the background; sets LAST_PID.
start_bg() {
    local logfile=$1
    shift
    "$@" >"$logfile" 2>&1 &
    LAST_PID=$!
    BENCH_PIDS+=("$LAST_PID")
}

# run_fg CMD...: run a long command so that INT/TERM interrupt the script at once (bash runs
# traps only between foreground commands, but `wait` is interruptible); the command is killed
# by bench_cleanup if the script stops early. Returns the command's exit status.
run_fg() {
    "$@" &
    local pid=$! rc=0 keep=() p
    BENCH_PIDS+=("$pid")
    wait "$pid" || rc=$?
    for p in "${BENCH_PIDS[@]}"; do [[ "$p" == "$pid" ]] || keep+=("$p"); done
    BENCH_PIDS=("${keep[@]}")
    return "$rc"
}

# stop_pid PID [TIMEOUT_S]: SIGTERM, wait, SIGKILL after the timeout; sets STOP_RC to the
# process's exit status (143 = killed by SIGTERM without handling it).
STOP_RC=0
stop_pid() {
    local pid=$1 timeout=${2:-30} i=0 rc=0
    kill -TERM "$pid" 2>/dev/null || true
    while alive "$pid" && ((i < timeout * 50)); do sleep 0.02; i=$((i + 1)); done
    if alive "$pid"; then
        log "pid $pid did not stop within ${timeout}s after SIGTERM: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || rc=$?
    local keep=() p
    for p in "${BENCH_PIDS[@]}"; do [[ "$p" == "$pid" ]] || keep+=("$p"); done
    BENCH_PIDS=("${keep[@]}")
    # shellcheck disable=SC2034  # used by the scripts that source this file
    STOP_RC=$rc
}

http_code() {
    curl -s -o /dev/null -w '%{http_code}' --max-time "${2:-2}" "$1" 2>/dev/null || true
}

# wait_ready URL PID TIMEOUT_S LOGFILE: poll URL until 200; fail if the process dies.
wait_ready() {
    local url=$1 pid=$2 timeout=$3 logfile=$4
    local deadline=$((SECONDS + timeout))
    while :; do
        [[ "$(http_code "$url" 1)" == 200 ]] && return 0
        if ! alive "$pid"; then
            log "server (pid $pid) exited before $url answered 200; last log lines:"
            tail -n 30 "$logfile" >&2 || true
            return 1
        fi
        if ((SECONDS >= deadline)); then
            log "no 200 from $url within ${timeout}s; last log lines:"
            tail -n 30 "$logfile" >&2 || true
            return 1
        fi
        sleep 0.05
    done
}

# ready_once PORT: one GET /readyz through bash's /dev/tcp (no fork); true on HTTP 200.
ready_once() {
    local port=$1 fd line
    if ! { exec {fd}<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
        return 1
    fi
    { printf 'GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$port" 1>&"$fd"; } 2>/dev/null || true
    line=""
    IFS= read -r -t 2 line <&"$fd" || true
    exec {fd}>&-
    [[ "$line" == "HTTP/1."?" 200"* ]]
}

# rss_kb PID: resident set size in KiB (VmRSS)
rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}

kb_to_mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# duration_seconds 20s|2m|1h|20 -> seconds (for bounding wrk with timeout)
duration_seconds() {
    local d=$1
    case "$d" in
        *s) echo "${d%s}" ;;
        *m) echo $((${d%m} * 60)) ;;
        *h) echo $((${d%h} * 3600)) ;;
        *) echo "$d" ;;
    esac
}
