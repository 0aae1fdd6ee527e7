#!/usr/bin/env bash
# OpenID Connect provider benchmark: Rathaus side by side with node's oidc-provider (OpenID
# certified), configured equivalently, in one run on this machine:
#   - client credentials grants/s (POST token, grant_type=client_credentials, HTTP Basic);
#   - complete code-flow exchanges/s of a user who is signed in and has consented:
#     authorize -> code -> token (PKCE S256, HTTP Basic) -> userinfo.
#
#   bench/oidc.sh                                  # about 3 minutes with the defaults (plus the build)
#   BENCH_DURATION=10s bench/oidc.sh
#   BENCH_SKIP_BUILD=1 RATHAUS_BIN=target/debug/rathaus bench/oidc.sh   # a quick check of the script
#   BENCH_OIDC_SERVERS=peer bench/oidc.sh          # oidc-provider alone (no cargo build)
#
# Environment (all optional):
#   BENCH_DURATION=20s          each measured wrk run (wrk syntax: 20s, 1m)
#   BENCH_WARMUP=5s             unmeasured run before each measured one (0 = none)
#   BENCH_CC_CONNECTIONS=32     wrk connections of the client credentials runs
#   BENCH_CC_THREADS=2          wrk threads of the client credentials runs
#   BENCH_CODE_CONNECTIONS=16   wrk connections of the code-flow runs (= wrk threads: the script
#                               drives one connection per thread through the steps)
#   BENCH_OIDC_SCOPE="openid profile email"   scope of the code flow
#   BENCH_CC_SCOPE=postfach:deliver           scope asked for in the client credentials grant
#   BENCH_OIDC_SERVERS=both     "rathaus" or "peer" to measure one side only
#   BENCH_PEER_STORAGE=map      oidc-provider storage: "map" (bench/oidc-peer/memory-adapter.mjs)
#                               or "bundled" (its development MemoryAdapter: slows down with every
#                               token of a grant, see the README)
#   BENCH_SKIP_BUILD=1          use the rathaus binary already built
#   RATHAUS_BIN                 binary instead of <target>/<BENCH_PROFILE>/rathaus
#   BENCH_READY_TIMEOUT=180     seconds to wait for /readyz (first demo start creates keys)
#   BENCH_STRICT=1              exit 1 if a target is missed
#   BENCH_RESULTS=FILE          also write the result table to FILE
#   BENCH_KEEP=1                keep the scratch dir (data dir, server logs, wrk output)
#
# Needs node >= 20 and npm: `npm ci` of bench/oidc-peer/package-lock.json is the only thing
# fetched (once; skipped when node_modules already holds the locked version).
# Only 127.0.0.1 is contacted; every server started here is stopped on exit.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=${BENCH_DURATION:-20s}
WARMUP=${BENCH_WARMUP:-5s}
CC_CONNECTIONS=${BENCH_CC_CONNECTIONS:-32}
CC_THREADS=${BENCH_CC_THREADS:-2}
CODE_CONNECTIONS=${BENCH_CODE_CONNECTIONS:-16}
SCOPE=${BENCH_OIDC_SCOPE:-openid profile email}
CC_SCOPE=${BENCH_CC_SCOPE-postfach:deliver}
SERVERS=${BENCH_OIDC_SERVERS:-both}
PEER_STORAGE=${BENCH_PEER_STORAGE:-map}
READY_TIMEOUT=${BENCH_READY_TIMEOUT:-180}
TARGET_CC_RATIO=5
TARGET_CODE_RATIO=3
KEYCLOAK_CC_PER_VCPU=120 # Keycloak sizing guide: ~120 client credentials grants/s per vCPU
TARGET_KEYCLOAK_FACTOR=20
# a fixed PKCE verifier (RFC 7636: 43-128 characters of [A-Za-z0-9-._~]); its S256 challenge
# is computed below
PKCE_VERIFIER=rathaus-bench-pkce-verifier-0123456789-abcdefghijklmnopqrstuvwxyz
# wrk sends everything from one address: lift the per-client limit of the token endpoint far
# above the load (the limiter stays on and costs what it costs)
export RATHAUS_TOKEN_RATE_LIMIT=${RATHAUS_TOKEN_RATE_LIMIT:-1000000000}

DURATION_S=$(duration_seconds "$DURATION")
WARMUP_S=$(duration_seconds "$WARMUP")
[[ "$DURATION_S" =~ ^[0-9]+$ && "$DURATION_S" -gt 0 ]] || die "BENCH_DURATION must be like 20s, 1m or 20"
[[ "$WARMUP_S" =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be like 5s or 0"
for v in CC_CONNECTIONS CC_THREADS CODE_CONNECTIONS; do
    [[ "${!v}" =~ ^[0-9]+$ && "${!v}" -gt 0 ]] || die "BENCH_$v must be a positive integer"
done
((CC_CONNECTIONS >= CC_THREADS)) || die "wrk needs at least as many connections as threads"
case "$SERVERS" in both | rathaus | peer) ;; *) die "BENCH_OIDC_SERVERS must be both, rathaus or peer" ;; esac
case "$PEER_STORAGE" in map | bundled) ;; *) die "BENCH_PEER_STORAGE must be map or bundled" ;; esac
want() { [[ "$SERVERS" == both || "$SERVERS" == "$1" ]]; }

bench_init
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
CORES=$(nproc)
ensure_tool curl curl
ensure_tool jq jq
ensure_tool wrk wrk
ensure_tool openssl openssl
T=$BENCH_TMP

PKCE_CHALLENGE=$(printf '%s' "$PKCE_VERIFIER" | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=\n')
((${#PKCE_CHALLENGE} == 43)) || die "S256 challenge has ${#PKCE_CHALLENGE} characters, not 43"

# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------
url_path() { local u=${1#*://}; [[ "$u" == */* ]] && printf '/%s\n' "${u#*/}" || printf '/\n'; }
uri_enc() { jq -rn --arg s "$1" '$s | @uri'; }
b64url_json() { # b64url_json SEGMENT: a JWT segment decoded (JSON)
    local s=${1//-/+}
    s=${s//_//}
    while ((${#s} % 4)); do s="$s="; done
    printf '%s' "$s" | base64 -d 2>/dev/null
}
header_value() { # header_value FILE NAME: the first value of header NAME in a curl -D file
    tr -d '\r' <"$1" | awk -v n="$(tr '[:upper:]' '[:lower:]' <<<"$2")" \
        'tolower($1) == n ":" { sub(/^[^:]*:[ \t]*/, ""); print; exit }'
}
set_cookies() { # set_cookies FILE: "name=value" of every Set-Cookie in a curl -D file, one a line
    tr -d '\r' <"$1" | awk 'tolower($1) == "set-cookie:" { c = $2; sub(/;.*/, "", c); print c }'
}
html_unescape() { sed -e 's/&quot;/"/g' -e "s/&#39;/'/g" -e "s/&#x27;/'/g" -e 's/&lt;/</g' -e 's/&gt;/>/g' \
    -e 's/&#x2F;/\//g' -e 's/&#47;/\//g' -e 's/&amp;/\&/g'; }
attr() { # attr TAG NAME: the value of attribute NAME in one HTML tag
    local v
    v=$(grep -oiE "[[:space:]]$2=(\"[^\"]*\"|'[^']*'|[^[:space:]>]+)" <<<"$1" | head -n 1) || true
    v=${v#*=}
    v=${v#[\"\']}
    v=${v%[\"\']}
    printf '%s' "$v" | html_unescape
}

# check_cc NAME TOKEN_URL ID SECRET: one client credentials grant with curl, must be 200
check_cc() {
    local name=$1 url=$2 id=$3 secret=$4 code args=()
    [[ -n "$CC_SCOPE" ]] && args=(--data-urlencode "scope=$CC_SCOPE")
    code=$(curl -s -o "$T/$name-cc.json" -w '%{http_code}' --max-time 10 -u "$(uri_enc "$id"):$(uri_enc "$secret")" \
        -d grant_type=client_credentials "${args[@]}" "$url" || true)
    [[ "$code" == 200 ]] || die "$name: client credentials grant at $url answered $code: $(head -c 500 "$T/$name-cc.json")"
    jq -e '.access_token | strings' "$T/$name-cc.json" >/dev/null || die "$name: no access_token: $(head -c 500 "$T/$name-cc.json")"
    CHECK_CC="200, keys $(jq -c 'keys' "$T/$name-cc.json"), access_token $(jq -r '.access_token | length' "$T/$name-cc.json") chars, token_type $(jq -r .token_type "$T/$name-cc.json"), expires_in $(jq -r .expires_in "$T/$name-cc.json"), scope \"$(jq -r '.scope // ""' "$T/$name-cc.json")\""
}

# check_code NAME BASE AUTHORIZE TOKEN USERINFO COOKIE ID SECRET REDIRECT: one complete exchange
# with curl, as oidc-code.lua does it; sets CHECK_CODE (what the answers held)
check_code() {
    local name=$1 base=$2 authz=$3 token=$4 userinfo=$5 cookie=$6 id=$7 secret=$8 redirect=$9
    local q code loc c at idt hdr claims
    q="response_type=code&client_id=$(uri_enc "$id")&redirect_uri=$(uri_enc "$redirect")&scope=$(uri_enc "$SCOPE")&code_challenge=$PKCE_CHALLENGE&code_challenge_method=S256&state=check1&nonce=ncheck1"
    code=$(curl -s -o "$T/$name-check-authz.html" -D "$T/$name-check-authz.txt" -w '%{http_code}' --max-time 10 \
        -H "Cookie: $cookie" "$base$authz?$q" || true)
    loc=$(header_value "$T/$name-check-authz.txt" location)
    if [[ ! ("$code" == 302 || "$code" == 303) || "$loc" != "$redirect"* ]]; then
        die "$name: GET $authz with the session answered $code ${loc:-(no Location)}: $(head -c 400 "$T/$name-check-authz.html")"
    fi
    c=$(sed -n 's/.*[?&]code=\([^&#]*\).*/\1/p' <<<"$loc")
    [[ -n "$c" && "$loc" == *"state=check1"* ]] || die "$name: redirect without code or state: $loc"
    code=$(curl -s -o "$T/$name-check-token.json" -w '%{http_code}' --max-time 10 -u "$(uri_enc "$id"):$(uri_enc "$secret")" \
        -d grant_type=authorization_code -d "code=$c" --data-urlencode "code_verifier=$PKCE_VERIFIER" \
        --data-urlencode "redirect_uri=$redirect" "$base$token" || true)
    [[ "$code" == 200 ]] || die "$name: POST $token (authorization_code) answered $code: $(head -c 500 "$T/$name-check-token.json")"
    at=$(jq -r '.access_token // empty' "$T/$name-check-token.json")
    idt=$(jq -r '.id_token // empty' "$T/$name-check-token.json")
    [[ -n "$at" && -n "$idt" ]] || die "$name: token answer without access_token or id_token: $(head -c 500 "$T/$name-check-token.json")"
    hdr=$(b64url_json "${idt%%.*}")
    claims=$(b64url_json "$(cut -d. -f2 <<<"$idt")")
    code=$(curl -s -o "$T/$name-check-userinfo.json" -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $at" \
        "$base$userinfo" || true)
    [[ "$code" == 200 ]] || die "$name: GET $userinfo answered $code: $(head -c 500 "$T/$name-check-userinfo.json")"
    jq -e '.sub | strings' "$T/$name-check-userinfo.json" >/dev/null || die "$name: userinfo without sub"
    CHECK_CODE="authorize $(awk '{ print $2; exit }' "$T/$name-check-authz.txt") -> redirect_uri?$(sed 's/.*?//; s/=[^&]*/=…/g' <<<"$loc"); token 200 $(jq -c 'keys' "$T/$name-check-token.json"), access_token $(jq -r '.access_token | length' "$T/$name-check-token.json") chars, refresh_token $(jq -r 'if .refresh_token then "yes" else "NO" end' "$T/$name-check-token.json"), id_token $(jq -r .alg <<<"$hdr") $(jq -c 'keys' <<<"$claims"); userinfo 200 $(jq -c 'keys' "$T/$name-check-userinfo.json")"
    [[ "$(jq -r .alg <<<"$hdr")" == ES256 ]] || log "WARNING: $name signs the ID token with $(jq -r .alg <<<"$hdr"), not ES256"
    jq -e '.refresh_token' "$T/$name-check-token.json" >/dev/null || log "WARNING: $name issued no refresh token in the code flow"
}

summary_to_log() { # summary_to_log LABEL FILE
    sed -n '/^---- .*summary/,$p' "$2" | grep -v '^RESULT' | sed "s/^/  [$1] /" >&2
}

# run_wrk LABEL PID KIND BASE ARGS...: warm-up, then one measured run; sets RUN_RESULT, CPU_RESULT
run_wrk() {
    local label=$1 pid=$2 kind=$3 base=$4
    shift 4
    local wrk_opts
    if [[ "$kind" == cc ]]; then
        wrk_opts=(-t"$CC_THREADS" -c"$CC_CONNECTIONS" -s "$BENCH_DIR/oidc-cc.lua")
    else
        wrk_opts=(-t"$CODE_CONNECTIONS" -c"$CODE_CONNECTIONS" -s "$BENCH_DIR/oidc-code.lua")
    fi
    if ((WARMUP_S > 0)); then
        log "$label: warm-up ${WARMUP_S}s"
        run_fg timeout $((WARMUP_S + 60)) wrk "${wrk_opts[@]}" -d"${WARMUP_S}s" --timeout 10s "$base" -- "$@" \
            >"$T/wrk-$label-warmup.txt" 2>&1 || die "$label: warm-up failed: $(tail -n 5 "$T/wrk-$label-warmup.txt")"
    fi
    log "$label: wrk ${wrk_opts[*]:0:2} -d${DURATION_S}s --latency"
    cpu_begin "$pid"
    run_fg timeout $((DURATION_S + 60)) wrk "${wrk_opts[@]}" -d"${DURATION_S}s" --latency --timeout 10s "$base" -- "$@" \
        >"$T/wrk-$label.txt" 2>&1 || die "$label: wrk failed: $(tail -n 5 "$T/wrk-$label.txt")"
    cpu_end
    summary_to_log "$label" "$T/wrk-$label.txt"
    RUN_RESULT=$(wrk_result "$T/wrk-$label.txt") || die "$label: no RESULT line in $T/wrk-$label.txt"
}

if want rathaus; then
    cargo_build rathaus
    RATHAUS=${RATHAUS_BIN:-$TARGET_RELEASE/rathaus}
    [[ -x "$RATHAUS" ]] || die "no rathaus binary at $RATHAUS"
fi

# ---------------------------------------------------------------------------------------
# oidc-provider (node)
# ---------------------------------------------------------------------------------------
PEER_DIR=$BENCH_DIR/oidc-peer
PEER_PID=""
if want peer; then
    ensure_tool node nodejs
    ensure_tool npm npm
    NODE_VERSION=$(node --version)
    if [[ ! "$NODE_VERSION" =~ ^v([0-9]+) ]] || ((BASH_REMATCH[1] < 20)); then
        die "node $NODE_VERSION is too old: oidc-provider 9 needs node >= 20"
    fi
    LOCKED=$(jq -r '.packages["node_modules/oidc-provider"].version' "$PEER_DIR/package-lock.json")
    HAVE=$(jq -r '.version // empty' "$PEER_DIR/node_modules/oidc-provider/package.json" 2>/dev/null || true)
    if [[ "$HAVE" != "$LOCKED" ]]; then
        log "installing the peer's locked dependencies: npm ci in $PEER_DIR (oidc-provider $LOCKED)"
        run_fg npm --prefix "$PEER_DIR" ci --no-audit --no-fund --ignore-scripts --loglevel=error >&2 || die "npm ci failed in $PEER_DIR"
    fi
    PEER_PORT=$(free_port)
    PEER_BASE="http://127.0.0.1:$PEER_PORT"
    log "starting: node $PEER_DIR/server.mjs --port $PEER_PORT (oidc-provider $LOCKED, node $NODE_VERSION, storage $PEER_STORAGE)"
    start_bg "$T/peer.log" env NODE_ENV=production node "$PEER_DIR/server.mjs" --port "$PEER_PORT" \
        --out "$T/peer.json" --storage "$PEER_STORAGE"
    PEER_PID=$LAST_PID
    wait_ready "$PEER_BASE/.well-known/openid-configuration" "$PEER_PID" 60 "$T/peer.log" || die "oidc-provider did not start"
    [[ -s "$T/peer.json" ]] || die "oidc-provider wrote no $T/peer.json"
    PEER_AUTHZ=$(jq -r .authorization_path "$T/peer.json")
    PEER_TOKEN=$(jq -r .token_path "$T/peer.json")
    PEER_USERINFO=$(jq -r .userinfo_path "$T/peer.json")
    PEER_WEB_ID=$(jq -r .web_client.client_id "$T/peer.json")
    PEER_WEB_SECRET=$(jq -r .web_client.client_secret "$T/peer.json")
    PEER_REDIRECT=$(jq -r .web_client.redirect_uri "$T/peer.json")
    PEER_API_ID=$(jq -r .api_client.client_id "$T/peer.json")
    PEER_API_SECRET=$(jq -r .api_client.client_secret "$T/peer.json")
    # sign in and consent once (login.mjs drives the interactions as a browser would)
    node "$PEER_DIR/login.mjs" --info "$T/peer.json" --scope "$SCOPE" --verifier "$PKCE_VERIFIER" \
        --challenge "$PKCE_CHALLENGE" >"$T/peer-login.json" 2>"$T/peer-login.err" \
        || die "signing in at oidc-provider failed: $(cat "$T/peer-login.err")"
    PEER_COOKIE=$(jq -r .cookie "$T/peer-login.json")
    log "oidc-provider: signed in and consented ($(jq -r '.steps | join(", ")' "$T/peer-login.json" | cut -c1-200)…)"
    check_cc peer "$PEER_BASE$PEER_TOKEN" "$PEER_API_ID" "$PEER_API_SECRET"
    PEER_CHECK_CC=$CHECK_CC
    check_code peer "$PEER_BASE" "$PEER_AUTHZ" "$PEER_TOKEN" "$PEER_USERINFO" "$PEER_COOKIE" "$PEER_WEB_ID" \
        "$PEER_WEB_SECRET" "$PEER_REDIRECT"
    PEER_CHECK_CODE=$CHECK_CODE
    log "oidc-provider checked: client credentials $PEER_CHECK_CC"
    log "oidc-provider checked: code flow $PEER_CHECK_CODE"
fi

# ---------------------------------------------------------------------------------------
# Rathaus
# ---------------------------------------------------------------------------------------
RATHAUS_PID=""
if want rathaus; then
    DATA=$T/data
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
    ISSUER=$(jq -r '.issuer // .base_url // empty' "$DEMO")
    WEB_ID=$(jq -r '.oidc_client.client_id // empty' "$DEMO")
    WEB_SECRET=$(jq -r '.oidc_client.client_secret // empty' "$DEMO")
    REDIRECT=$(jq -r '.oidc_client.redirect_uri // empty' "$DEMO")
    for v in EMAIL PASSWORD ISSUER WEB_ID WEB_SECRET REDIRECT; do
        [[ -n "${!v}" ]] || die "demo.json lacks $v (citizen.username/password, issuer, oidc_client.client_id/client_secret/redirect_uri)"
    done
    # the endpoints from discovery (paths only: we talk to our loopback port)
    code=$(curl -s -o "$T/rathaus-discovery.json" -w '%{http_code}' --max-time 10 "$BASE/.well-known/openid-configuration" || true)
    [[ "$code" == 200 ]] || die "GET /.well-known/openid-configuration answered $code"
    AUTHZ=$(url_path "$(jq -r .authorization_endpoint "$T/rathaus-discovery.json")")
    TOKEN=$(url_path "$(jq -r .token_endpoint "$T/rathaus-discovery.json")")
    USERINFO=$(url_path "$(jq -r .userinfo_endpoint "$T/rathaus-discovery.json")")
    log "rathaus ready (pid $RATHAUS_PID), issuer $ISSUER: $AUTHZ, $TOKEN, $USERINFO; web client $WEB_ID"

    # an API client for the client credentials grant, made with the CLI (as an operator would)
    if "$RATHAUS" clients add --data-dir "$DATA" --name bench --kind api --scope postfach:deliver --json \
        >"$T/rathaus-api-client.json" 2>"$T/rathaus-clients-add.err"; then
        API_ID=$(jq -r '.client_id // empty' "$T/rathaus-api-client.json")
        API_SECRET=$(jq -r '.client_secret // empty' "$T/rathaus-api-client.json")
        API_FROM="rathaus clients add --kind api --scope postfach:deliver"
    else
        log "WARNING: rathaus clients add failed ($(head -c 300 "$T/rathaus-clients-add.err")): using demo.json's postfach_api client"
        API_ID=$(jq -r '.postfach_api.client_id // empty' "$DEMO")
        API_SECRET=$(jq -r '.postfach_api.client_secret // empty' "$DEMO")
        API_FROM="demo.json postfach_api"
    fi
    [[ -n "$API_ID" && -n "$API_SECRET" ]] || die "no API client for the client credentials grant"

    # sign the demo citizen in (password form, double-submit CSRF), as login.sh does
    konto_login "$BASE" "$EMAIL" "$PASSWORD" "$T"
    [[ "$LOGIN_CODE" == 303 && -n "$SESSION_COOKIE" ]] \
        || die "login as $EMAIL answered $LOGIN_CODE (session cookie: ${SESSION_COOKIE:-none}), expected 303 with a session"
    case "$LOGIN_LOCATION" in
        /konto/anmelden*) die "the login redirects to $LOGIN_LOCATION (second factor or error), not into the account" ;;
    esac
    RATHAUS_COOKIE=$SESSION_COOKIE
    log "logged in as $EMAIL (303 -> $LOGIN_LOCATION)"

    # consent once: the first authorization request shows the consent page (or redirects to
    # it); submit its form with the grant button
    Q="response_type=code&client_id=$(uri_enc "$WEB_ID")&redirect_uri=$(uri_enc "$REDIRECT")&scope=$(uri_enc "$SCOPE")&code_challenge=$PKCE_CHALLENGE&code_challenge_method=S256&state=setup&nonce=nsetup"
    URL="$AUTHZ?$Q"
    COOKIES=$RATHAUS_COOKIE
    consented=0
    for ((hop = 1; hop <= 6; hop++)); do
        code=$(curl -s -o "$T/consent-$hop.html" -D "$T/consent-$hop.txt" -w '%{http_code}' --max-time 10 \
            -H "Cookie: $COOKIES" "$BASE$URL" || true)
        while IFS= read -r c; do [[ -n "$c" ]] && COOKIES="$COOKIES; $c"; done < <(set_cookies "$T/consent-$hop.txt")
        loc=$(header_value "$T/consent-$hop.txt" location)
        if [[ "$code" == 30[1237] ]]; then
            [[ "$loc" == "$REDIRECT"* ]] && break
            [[ "$loc" == /konto/anmelden* ]] && die "GET $URL sends the signed-in citizen to the login ($loc)"
            URL=$(url_path "$loc")
            continue
        fi
        [[ "$code" == 200 ]] || die "GET $URL answered $code: $(head -c 400 "$T/consent-$hop.html")"
        ((consented == 0)) || die "the consent page came again after consenting"
        # the form holding the grant button ("Zulassen" / "Allow")
        html=$(tr '\n\r' '  ' <"$T/consent-$hop.html" | sed 's/<form/\n<form/g; s/<\/form>/<\/form>\n/g')
        form=$(grep -iE '^<form' <<<"$html" | grep -E 'Zulassen|Allow' | head -n 1) \
            || die "no form with a Zulassen/Allow button on the consent page: see $T/consent-$hop.html"
        action=$(attr "$(grep -oiE '^<form[^>]*>' <<<"$form")" action)
        [[ -n "$action" ]] || action=$URL
        [[ "$action" == http* ]] && action=$(url_path "$action")
        [[ "$action" == /* ]] || action="$(dirname "${URL%%\?*}")/$action"
        fields=()
        while IFS= read -r tag; do
            [[ "$(attr "$tag" type | tr '[:upper:]' '[:lower:]')" == hidden ]] || continue
            fields+=(--data-urlencode "$(attr "$tag" name)=$(attr "$tag" value)")
        done < <(grep -oiE '<input[^>]*>' <<<"$form")
        button=$(grep -oiE '<button[^>]*>[^<]*(Zulassen|Allow)' <<<"$form" | head -n 1 || true)
        [[ -n "$button" ]] || button=$(grep -oiE '<input[^>]*value="(Zulassen|Allow)"[^>]*>' <<<"$form" | head -n 1 || true)
        bname=$(attr "$button" name)
        [[ -n "$bname" ]] && fields+=(--data-urlencode "$bname=$(attr "$button" value)")
        log "consent: POST $action ($((${#fields[@]} / 2)) fields, button ${bname:-none}=$(attr "$button" value))"
        code=$(curl -s -o "$T/consent-post.html" -D "$T/consent-post.txt" -w '%{http_code}' --max-time 10 \
            -H "Cookie: $COOKIES" "${fields[@]}" "$BASE$action" || true)
        loc=$(header_value "$T/consent-post.txt" location)
        [[ "$code" == 30[1237] ]] || die "POST $action (consent) answered $code: $(head -c 400 "$T/consent-post.html")"
        consented=1
        [[ "$loc" == "$REDIRECT"* ]] && break
        URL=$(url_path "$loc")
    done
    [[ "$loc" == "$REDIRECT"* && "$loc" == *code=* ]] || die "the setup flow did not end at $REDIRECT with a code (last: $code ${loc:-})"
    log "rathaus: consent given ($consented form), redirect ${loc%%\?*}?…"
    check_cc rathaus "$BASE$TOKEN" "$API_ID" "$API_SECRET"
    RATHAUS_CHECK_CC=$CHECK_CC
    check_code rathaus "$BASE" "$AUTHZ" "$TOKEN" "$USERINFO" "$RATHAUS_COOKIE" "$WEB_ID" "$WEB_SECRET" "$REDIRECT"
    RATHAUS_CHECK_CODE=$CHECK_CODE
    log "rathaus checked: client credentials $RATHAUS_CHECK_CC"
    log "rathaus checked: code flow $RATHAUS_CHECK_CODE"
fi

# ---------------------------------------------------------------------------------------
# Load
# ---------------------------------------------------------------------------------------
declare -A R=() C=()
cc_args() { # cc_args TOKEN_PATH ID SECRET
    CC_ARGS=("token=$1" "client_id=$2" "client_secret=$3")
    [[ -n "$CC_SCOPE" ]] && CC_ARGS+=("scope=$CC_SCOPE")
    return 0
}
code_args() { # code_args AUTHZ TOKEN USERINFO COOKIE ID SECRET REDIRECT
    CODE_ARGS=("authorize=$1" "token=$2" "userinfo=$3" "cookie=$4" "client_id=$5" "client_secret=$6"
        "redirect_uri=$7" "scope=$SCOPE" "verifier=$PKCE_VERIFIER" "challenge=$PKCE_CHALLENGE")
}
if want peer; then
    cc_args "$PEER_TOKEN" "$PEER_API_ID" "$PEER_API_SECRET"
    run_wrk peer-cc "$PEER_PID" cc "$PEER_BASE" "${CC_ARGS[@]}"
    R[peer-cc]=$RUN_RESULT C[peer-cc]=$CPU_RESULT
fi
if want rathaus; then
    cc_args "$TOKEN" "$API_ID" "$API_SECRET"
    run_wrk rathaus-cc "$RATHAUS_PID" cc "$BASE" "${CC_ARGS[@]}"
    R[rathaus-cc]=$RUN_RESULT C[rathaus-cc]=$CPU_RESULT
fi
if want peer; then
    code_args "$PEER_AUTHZ" "$PEER_TOKEN" "$PEER_USERINFO" "$PEER_COOKIE" "$PEER_WEB_ID" "$PEER_WEB_SECRET" "$PEER_REDIRECT"
    run_wrk peer-code "$PEER_PID" code "$PEER_BASE" "${CODE_ARGS[@]}"
    R[peer-code]=$RUN_RESULT C[peer-code]=$CPU_RESULT
    PEER_RSS=$(rss_kb "$PEER_PID")
    stop_pid "$PEER_PID" 10
fi
if want rathaus; then
    code_args "$AUTHZ" "$TOKEN" "$USERINFO" "$RATHAUS_COOKIE" "$WEB_ID" "$WEB_SECRET" "$REDIRECT"
    run_wrk rathaus-code "$RATHAUS_PID" code "$BASE" "${CODE_ARGS[@]}"
    R[rathaus-code]=$RUN_RESULT C[rathaus-code]=$CPU_RESULT
    RATHAUS_RSS=$(rss_kb "$RATHAUS_PID")
    DATA_MB=$(du -sm "$DATA" | cut -f1)
    stop_pid "$RATHAUS_PID"
    log "rathaus stopped (exit status $STOP_RC)"
fi

# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------
f() { result_field "$@"; }
calc() { awk "BEGIN { $1 }"; }
FAIL=0
clean() { # clean RESULT: no errors, no socket errors
    [[ "$(f errors "$1")" == 0 && "$(f socket_errors "$1")" == 0 ]]
}
for k in "${!R[@]}"; do clean "${R[$k]}" || FAIL=1; done

rate_of() { # rate_of KEY: grants/s or exchanges/s
    case "$1" in *-cc) f grants_per_s "${R[$1]}" ;; *) f exchanges_per_s "${R[$1]}" ;; esac
}
# per core: the rate over the cores the server may use (Rathaus: all; node: its one JavaScript
# thread) and over the cores it kept busy (its CPU seconds / wall seconds, all its threads)
avail_cores() { case "$1" in rathaus-*) echo "$CORES" ;; *) echo 1 ;; esac; }
per_core_avail() { calc "printf \"%.0f\", $(rate_of "$1") / $(avail_cores "$1")"; }
per_core_busy() { calc "c = $(f server "${C[$1]}"); printf \"%.0f\", (c > 0) ? $(rate_of "$1") / c : 0"; }

row() { # row KEY LABEL
    local k=$1 r=${R[$1]} lat
    if [[ "$k" == *-cc ]]; then
        lat=$(printf '%8.2f %8.2f %8.2f %8.2f' "$(f p50_ms "$r")" "$(f p90_ms "$r")" "$(f p99_ms "$r")" "$(f max_ms "$r")")
    else
        lat=$(printf '%8.2f %8.2f %8.2f %8.2f' "$(f x_p50_ms "$r")" "$(f x_p90_ms "$r")" "$(f x_p99_ms "$r")" "$(f x_max_ms "$r")")
    fi
    printf '%-34s %9.1f %s %7s %7s  %5s of %-2s %9s %9s\n' "$2" "$(rate_of "$k")" "$lat" "$(f errors "$r")" \
        "$(f socket_errors "$r")" "$(f server "${C[$k]}")" "$(avail_cores "$k")" "$(per_core_avail "$k")" "$(per_core_busy "$k")"
}

report() {
    echo
    echo "=== OpenID Connect provider benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ), $CORES cores) ==="
    echo "machine:   load avg at start $LOADAVG_START, at end $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews all figures)"
    if want rathaus; then
        echo "rathaus:   $RATHAUS (${RATHAUS_BIN:+RATHAUS_BIN}${RATHAUS_BIN:-$BENCH_PROFILE profile}), tokio on all $CORES cores, SQLite storage (its default; data dir ${DATA_MB:-?} MB at the end), RSS at the end $(kb_to_mb "${RATHAUS_RSS:-0}") MB"
        echo "           client credentials: $RATHAUS_CHECK_CC (client from $API_FROM)"
        echo "           code flow: $RATHAUS_CHECK_CODE"
    fi
    if want peer; then
        echo "peer:      oidc-provider $LOCKED on node $NODE_VERSION (NODE_ENV=production): JavaScript on ONE thread = one core"
        echo "           (V8's GC helper threads add a little: see 'cores busy'); storage IN MEMORY ($PEER_STORAGE adapter), nothing persisted; RSS at the end $(kb_to_mb "${PEER_RSS:-0}") MB"
        echo "           client credentials: $PEER_CHECK_CC"
        echo "           code flow: $PEER_CHECK_CODE"
    fi
    echo "same on both: ES256 ID tokens, PKCE S256 required, refresh token issued in the code flow, access tokens opaque to the client, client_secret_basic,"
    echo "           scope \"$SCOPE\" (code flow) and \"$CC_SCOPE\" (client credentials); one signed-in user who has consented"
    echo "load:      client credentials: wrk -t$CC_THREADS -c$CC_CONNECTIONS; code flow: wrk -t$CODE_CONNECTIONS -c$CODE_CONNECTIONS (one connection per thread, each"
    echo "           cycling authorize -> token -> userinfo); ${DURATION_S}s measured after ${WARMUP_S}s warm-up; wrk runs on the same $CORES cores, 127.0.0.1 only"
    echo
    printf '%-34s %9s %8s %8s %8s %8s %7s %7s  %-11s %9s %9s\n' "run" "per s" "p50 ms" "p90 ms" "p99 ms" "max ms" "errors" "sockerr" "cores busy" "per core" "per cpu-s"
    want peer && row peer-cc "client credentials, oidc-provider"
    want rathaus && row rathaus-cc "client credentials, rathaus"
    want peer && row peer-code "code flow, oidc-provider"
    want rathaus && row rathaus-code "code flow, rathaus"
    echo
    local k name
    for k in peer-code rathaus-code; do
        [[ -n "${R[$k]:-}" ]] || continue
        name=rathaus:
        [[ $k == peer-* ]] && name=oidc-provider:
        printf 'code flow per request, %-14s p50 / p99 ms: authorize %s / %s, token %s / %s, userinfo %s / %s\n' \
            "$name" "$(f a_p50_ms "${R[$k]}")" "$(f a_p99_ms "${R[$k]}")" "$(f t_p50_ms "${R[$k]}")" \
            "$(f t_p99_ms "${R[$k]}")" "$(f u_p50_ms "${R[$k]}")" "$(f u_p99_ms "${R[$k]}")"
    done
    echo "per s: grants/s (client credentials) or complete exchanges/s (code flow: counted at the 200 of userinfo);"
    echo "latency: per grant, or per complete exchange (3 requests); per core = per s / the cores the server can use"
    echo "(rathaus $CORES, oidc-provider 1); per cpu-s = per s / the cores it kept busy (its CPU time, all threads)"
    for k in "${!R[@]}"; do
        local se
        se=$(f step_errors "${R[$k]}")
        if [[ "$(f errors "${R[$k]}")" != 0 ]]; then
            printf 'errors in %s: %s, HTTP %s%s\n' "$k" "$(f errors "${R[$k]}")" "$(f codes "${R[$k]}")" "${se:+ (}${se}${se:+)}"
            grep '^error sample' "$T/wrk-$k.txt" | head -n 3 | sed 's/^/  /'
        fi
    done
    echo
    if want peer && want rathaus; then
        local cc_ratio code_ratio cc_core code_core p99r p99p v
        cc_ratio=$(calc "printf \"%.2f\", $(rate_of rathaus-cc) / $(rate_of peer-cc)")
        code_ratio=$(calc "printf \"%.2f\", $(rate_of rathaus-code) / $(rate_of peer-code)")
        cc_core=$(calc "printf \"%.2f\", $(per_core_avail rathaus-cc) / $(per_core_avail peer-cc)")
        code_core=$(calc "printf \"%.2f\", $(per_core_avail rathaus-code) / $(per_core_avail peer-code)")
        p99r=$(f p99_ms "${R[rathaus-cc]}")
        p99p=$(f p99_ms "${R[peer-cc]}")
        v=PASS
        calc "exit !($cc_ratio >= $TARGET_CC_RATIO && $p99r < $p99p)" || v=FAIL
        clean "${R[rathaus-cc]}" || v=FAIL
        [[ $v == PASS ]] || FAIL=1
        printf 'client credentials: rathaus / oidc-provider = %sx (target >= %sx), p99 %s vs %s ms (target: lower)  %s\n' \
            "$cc_ratio" "$TARGET_CC_RATIO" "$p99r" "$p99p" "$v"
        printf '                    per core %sx (rathaus on %s cores, oidc-provider on 1)\n' "$cc_core" "$CORES"
        v=PASS
        calc "exit !($code_ratio >= $TARGET_CODE_RATIO)" || v=FAIL
        clean "${R[rathaus-code]}" || v=FAIL
        [[ $v == PASS ]] || FAIL=1
        printf 'code flow:          rathaus / oidc-provider = %sx (target >= %sx)  %s\n' "$code_ratio" "$TARGET_CODE_RATIO" "$v"
        printf '                    per core %sx (rathaus on %s cores, oidc-provider on 1)\n' "$code_core" "$CORES"
    fi
    echo "oidc-provider is single-threaded node: its JavaScript runs on one core, while rathaus uses all $CORES; the per-core"
    echo "figures divide by that (and wrk takes part of the same cores in both runs)."
    local k target=$((KEYCLOAK_CC_PER_VCPU * TARGET_KEYCLOAK_FACTOR))
    for k in rathaus-cc peer-cc; do
        [[ -n "${R[$k]:-}" ]] || continue
        local name=rathaus
        [[ $k == peer-* ]] && name=oidc-provider
        local v=""
        if [[ $k == rathaus-cc ]]; then
            v=PASS
            calc "exit !($(per_core_busy "$k") >= $target)" || v=FAIL
            clean "${R[$k]}" || v=FAIL
            [[ $v == PASS ]] || FAIL=1
            v="  target >= ${TARGET_KEYCLOAK_FACTOR}x = $target/s per core (busy): $v"
        fi
        printf 'Keycloak sizing guide: ~%s client credentials grants/s per vCPU; %s: %s/s per core = %sx, %s/s per busy core = %sx%s\n' \
            "$KEYCLOAK_CC_PER_VCPU" "$name" "$(per_core_avail "$k")" \
            "$(calc "printf \"%.1f\", $(per_core_avail "$k") / $KEYCLOAK_CC_PER_VCPU")" "$(per_core_busy "$k")" \
            "$(calc "printf \"%.1f\", $(per_core_busy "$k") / $KEYCLOAK_CC_PER_VCPU")" "$v"
    done
    echo "cores busy (average over each measured run; 'other' = work not ours, should be ~0):"
    for k in peer-cc rathaus-cc peer-code rathaus-code; do
        [[ -n "${C[$k]:-}" ]] || continue
        printf '  %-14s server %s, wrk %s, whole machine %s of %s, other %s, steal %s\n' "$k" "$(f server "${C[$k]}")" \
            "$(f client "${C[$k]}")" "$(f machine "${C[$k]}")" "$CORES" "$(f other "${C[$k]}")" "$(f steal "${C[$k]}")"
    done
    echo "targets: client credentials >= ${TARGET_CC_RATIO}x oidc-provider with a lower p99; code flow >= ${TARGET_CODE_RATIO}x oidc-provider;"
    echo "         client credentials >= ${TARGET_KEYCLOAK_FACTOR}x Keycloak's ${KEYCLOAK_CC_PER_VCPU}/s per vCPU per busy core; no errors"
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
