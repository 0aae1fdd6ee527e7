# shellcheck shell=bash
# Helpers shared by the scripts in bench/ (routing, startup, login, postfach). Source it; do not run it.
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

# ---------------------------------------------------------------------------------------
# Helpers of bench/login.sh and bench/postfach.sh (Servicekonto benchmarks)
# ---------------------------------------------------------------------------------------

# result_field KEY RESULT_LINE: the value of KEY=VALUE in a "RESULT k=v k=v" line, "?" if absent
result_field() {
    local kv
    for kv in $2; do
        if [[ "${kv%%=*}" == "$1" ]]; then
            printf '%s\n' "${kv#*=}"
            return 0
        fi
    done
    echo "?"
}

# wrk_result FILE: the last "RESULT …" line of a wrk output file (without "RESULT "), or fail
wrk_result() {
    local r
    r=$(sed -n 's/^RESULT //p' "$1" | tail -n 1)
    [[ -n "$r" ]] || return 1
    printf '%s\n' "$r"
}

CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# proc_cpu_ticks PID: user + system CPU time of a process, in clock ticks (0 if gone)
proc_cpu_ticks() {
    [[ -n "$1" ]] || { echo 0; return 0; }
    sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }' || echo 0
}

# proc_stat3 PID: "UTIME STIME MINFLT" of a process (clock ticks, minor page faults); zeros if gone
proc_stat3() {
    [[ -n "$1" ]] || { echo "0 0 0"; return 0; }
    sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12, $13, $8 }' || echo "0 0 0"
}

# machine_ticks: "BUSY TOTAL STEAL" clock ticks of all CPUs since boot (busy = all but idle,
# iowait and steal; steal = time the hypervisor gave our virtual CPUs to someone else)
machine_ticks() {
    awk '$1 == "cpu" { t = 0; for (i = 2; i <= 9 && i <= NF; i++) t += $i; st = (NF >= 9) ? $9 : 0
        print t - $5 - $6 - st, t, st; exit }' /proc/stat
}

# children_cpu_ticks: sets CHILD_TICKS to the user + system CPU of this shell's finished
# children (wrk, curl, …), in clock ticks. Call it directly, never in a $(…) subshell: `times`
# must run in this shell (a subshell has no children of its own).
CHILD_TICKS=0
children_cpu_ticks() {
    local f="$BENCH_TMP/.times"
    times >"$f"
    # shellcheck disable=SC2034  # used by the scripts that source this file
    CHILD_TICKS=$(tail -n 1 "$f" | awk -v tck="$CLK_TCK" '{
        s = 0
        for (i = 1; i <= 2; i++) { v = $i; m = v; sub(/m.*/, "", m); sec = v; sub(/^[0-9]+m/, "", sec); sub(/s$/, "", sec); s += m * 60 + sec }
        printf "%.0f\n", s * tck }')
}

# ticks_to_s TICKS: seconds with two decimals
ticks_to_s() { awk -v t="$1" -v k="$CLK_TCK" 'BEGIN { printf "%.2f", t / k }'; }

# thread_ticks PID: one line per thread of PID, "TID<TAB>NAME<TAB>TICKS" (user + system)
thread_ticks() {
    local t line comm
    for t in /proc/"$1"/task/*; do
        line=$(cat "$t/stat" 2>/dev/null) || continue
        # "tid (comm) state …": comm may hold spaces and parentheses; utime and stime are
        # fields 14 and 15, i.e. 12 and 13 after the comm
        comm=${line#*(}
        comm=${comm%)*}
        awk -v tid="${t##*/}" -v comm="$comm" '{ print tid "\t" comm "\t" ($12 + $13) }' <<<"${line##*) }"
    done
}

# ctx_switches PID: "VOLUNTARY NONVOLUNTARY" context switches summed over the threads of PID
# (threads that ended are missing)
ctx_switches() {
    cat /proc/"$1"/task/*/status 2>/dev/null \
        | awk '$1 == "voluntary_ctxt_switches:" { v += $2 } $1 == "nonvoluntary_ctxt_switches:" { n += $2 }
               END { print v + 0, n + 0 }'
}

# thread_split BEFORE_FILE AFTER_FILE: CPU seconds per thread name between two thread_ticks
# snapshots ("name=seconds" words, largest first); threads that ended in between are missing
thread_split() {
    awk -F'\t' -v k="$CLK_TCK" 'NR == FNR { b[$1] = $3; next }
        { d[$2] += $3 - (($1 in b) ? b[$1] : 0) }
        END { for (n in d) printf "%s\t%.2f\n", n, d[n] / k }' "$1" "$2" \
        | sort -t"$(printf '\t')" -k2,2 -rn | awk -F'\t' '{ gsub(/ /, "_", $1); printf "%s%s=%s", sep, $1, $2; sep = " " } END { print "" }'
}

# cpu_begin [PID] … cpu_end: CPU use over a run of the server PID (empty: none), of this
# script's children finished in between (wrk, bench-argon2: the "client") and of the whole
# machine. cpu_end sets CPU_RESULT
#   "wall=… server_s=… client_s=… server=… client=… machine=… other=… steal=… server_user_s=…
#    server_sys_s=… server_minflt=…"
# (*_s: CPU seconds; server/client/machine/other/steal: cores busy on average; other =
# machine - server - client, i.e. work that is not ours: it should be ~0 on a quiet machine;
# steal: CPU the hypervisor gave to other guests, also ~0 on a quiet host;
# server_minflt: the server's minor page faults).
CPU_PID=""
cpu_begin() {
    CPU_PID=${1:-}
    read -r CPU_U0 CPU_Y0 CPU_F0 < <(proc_stat3 "$CPU_PID")
    CPU_S0=$((CPU_U0 + CPU_Y0))
    children_cpu_ticks
    CPU_C0=$CHILD_TICKS
    read -r CPU_MB0 CPU_MT0 CPU_ST0 < <(machine_ticks)
    CPU_T0=$(date +%s.%N)
}
cpu_end() {
    local s1 c1 mb1 mt1 st1 t1 u1 y1 f1
    read -r u1 y1 f1 < <(proc_stat3 "$CPU_PID")
    s1=$((u1 + y1))
    children_cpu_ticks
    c1=$CHILD_TICKS
    read -r mb1 mt1 st1 < <(machine_ticks)
    t1=$(date +%s.%N)
    # shellcheck disable=SC2034  # used by the scripts that source this file
    CPU_RESULT=$(awk -v t0="$CPU_T0" -v t1="$t1" -v s="$((s1 - CPU_S0))" -v c="$((c1 - CPU_C0))" \
        -v mb="$((mb1 - CPU_MB0))" -v mt="$((mt1 - CPU_MT0))" -v k="$CLK_TCK" -v n="$(nproc)" \
        -v u="$((u1 - CPU_U0))" -v y="$((y1 - CPU_Y0))" -v fl="$((f1 - CPU_F0))" -v st="$((st1 - CPU_ST0))" 'BEGIN {
            w = t1 - t0; if (w <= 0) w = 1e-9
            m = (mt > 0) ? mb / mt * n : 0
            stc = (mt > 0) ? st / mt * n : 0
            o = m - s / k / w - c / k / w; if (o < 0) o = 0
            printf "wall=%.2f server_s=%.2f client_s=%.2f server=%.2f client=%.2f machine=%.2f other=%.2f steal=%.2f server_user_s=%.2f server_sys_s=%.2f server_minflt=%d",
                w, s / k, c / k, s / k / w, c / k / w, m, o, stc, u / k, y / k, fl }')
}

# wait_idle PID MAX_S: wait until the process uses < 5 % of a core over 0.5 s (at most MAX_S
# seconds); sets IDLE_AFTER_S to the seconds it took ("> MAX_S" if it never got idle).
IDLE_AFTER_S=0
wait_idle() {
    local pid=$1 max=${2:-120} t0 a b limit
    t0=$(date +%s.%N)
    limit=$(awk -v k="$CLK_TCK" 'BEGIN { v = k * 0.5 * 0.05; if (v < 1) v = 1; printf "%d", v }')
    a=$(proc_cpu_ticks "$pid")
    while :; do
        sleep 0.5
        alive "$pid" || break
        b=$(proc_cpu_ticks "$pid")
        if ((b - a <= limit)); then break; fi
        a=$b
        if awk -v t0="$t0" -v now="$(date +%s.%N)" -v m="$max" 'BEGIN { exit !(now - t0 > m) }'; then
            IDLE_AFTER_S="> $max"
            return 0
        fi
    done
    # the last 0.5 s window was idle: it does not count
    # shellcheck disable=SC2034  # used by the scripts that source this file
    IDLE_AFTER_S=$(awk -v t0="$t0" -v now="$(date +%s.%N)" 'BEGIN { d = now - t0 - 0.5; if (d < 0) d = 0; printf "%.1f", d }')
}

# csrf_token: a fresh 43-character base64url token (32 random bytes), as the server makes them
csrf_token() {
    head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'
}

# konto_login BASE EMAIL PASSWORD OUTDIR: one password login with curl (double-submit CSRF
# cookie and field). Sets LOGIN_CODE (HTTP status), LOGIN_LOCATION and SESSION_COOKIE
# ("name=value" of the new session cookie, empty if none); headers and body in OUTDIR.
# shellcheck disable=SC2034  # LOGIN_* and SESSION_COOKIE are read by the callers
konto_login() {
    local base=$1 email=$2 password=$3 out=$4 token
    token=$(csrf_token)
    ((${#token} == 43)) || die "csrf_token made a ${#token}-character token"
    LOGIN_CODE=$(curl -s --max-time 60 -o "$out/login-body.html" -D "$out/login-headers.txt" -w '%{http_code}' \
        -b "csrf=$token" --data-urlencode "csrf_token=$token" --data-urlencode "email=$email" \
        --data-urlencode "password=$password" "$base/konto/anmelden" || true)
    LOGIN_LOCATION=$(tr -d '\r' <"$out/login-headers.txt" | awk 'tolower($1) == "location:" { print $2; exit }')
    SESSION_COOKIE=$(tr -d '\r' <"$out/login-headers.txt" \
        | awk 'tolower($1) == "set-cookie:" && $2 ~ /^(__Host-)?session=/ { c = $2; sub(/;.*/, "", c); print c; exit }')
}
