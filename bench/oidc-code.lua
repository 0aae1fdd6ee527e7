-- wrk script for bench/oidc.sh: complete OpenID Connect code-flow exchanges of a user who is
-- already signed in (and has consented): authorize -> code -> token -> userinfo, over and over.
--
--   wrk -t2 -c32 -d20s --latency -s bench/oidc-code.lua http://127.0.0.1:PORT -- \
--       authorize=/oidc/authorize token=/oauth/token userinfo=/oidc/userinfo \
--       cookie='session=…' client_id=ID client_secret=SECRET \
--       redirect_uri=http://127.0.0.1:8765/callback scope='openid profile email' \
--       verifier=PKCE_VERIFIER challenge=S256_CHALLENGE_OF_IT [label=NAME]
--
-- One exchange is three requests:
--   1. GET <authorize>?response_type=code&client_id&redirect_uri&scope&code_challenge
--      &code_challenge_method=S256&state&nonce, with the session cookie(s): a 302/303 whose
--      Location is redirect_uri?code=…&state=<the same state>;
--   2. POST <token> grant_type=authorization_code, code, code_verifier, redirect_uri, client
--      authenticated with HTTP Basic (client_secret_basic): a 200 with an access_token in the
--      JSON;
--   3. GET <userinfo> with `Authorization: Bearer <access_token>`: a 200 with "sub".
-- An exchange counts only at that 200 from userinfo. Any other answer is an error of its step,
-- counted as "step:status" (e.g. "authorize:400", "authorize:no-code" for a redirect without
-- a code or with another state, "token:400", "token:no-token", "userinfo:401"), and the
-- connection starts a new exchange. The state and nonce are unique per exchange; PKCE uses
-- one fixed verifier with its precomputed S256 challenge (the server still checks it on every
-- exchange).
--
-- RUN IT WITH AS MANY wrk THREADS AS CONNECTIONS (-tN -cN): wrk gives a script no connection
-- identity, so each thread (one Lua state) drives exactly one connection through its steps.
-- A request() while the previous request of the thread is unanswered (a reconnect after a
-- socket error, or more connections than threads) drops that exchange and counts it as
-- "<step>:lost".
--
-- Exchange latency (step 1 sent -> userinfo answered) and the latency of each step are measured
-- with clock_gettime through LuaJIT's FFI and kept in histograms of 10 µs buckets.
--
-- done() prints human-readable lines and one machine-readable line starting with "RESULT":
--   RESULT rps=… exchanges_per_s=… x_p50_ms=… x_p90_ms=… x_p99_ms=… x_p999_ms=… x_max_ms=…
--          p50_ms=… p90_ms=… p99_ms=… max_ms=… a_p50_ms=… a_p99_ms=… t_p50_ms=… t_p99_ms=…
--          u_p50_ms=… u_p99_ms=… requests=… exchanges=… errors=… non2xx=…
--          socket_errors=… timeouts=… codes=200:…,303:… step_errors=token:400:3,…
-- (rps and p50_ms…max_ms: wrk's per-request figures over all three kinds of request; x_*:
-- per complete exchange; a_/t_/u_: per authorize, token, userinfo request; step_errors "none"
-- when there were none.)

local ffi = require("ffi")
ffi.cdef [[
   typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
   int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now_us()
   ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
   return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

local threads = {}
local counter = 0

function setup(thread)
   thread:set("thread_id", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

local function urlencode(s)
   return (string.gsub(s, "[^%w%-%._~]", function(c)
      return string.format("%%%02X", string.byte(c))
   end))
end

local function urldecode(s)
   s = string.gsub(s, "+", " ")
   return (string.gsub(s, "%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
   local out = {}
   for i = 1, #s, 3 do
      local a, b, c = string.byte(s, i, i + 2)
      local n = a * 65536 + (b or 0) * 256 + (c or 0)
      local c1 = math.floor(n / 262144) % 64
      local c2 = math.floor(n / 4096) % 64
      local c3 = math.floor(n / 64) % 64
      local c4 = n % 64
      out[#out + 1] = B64:sub(c1 + 1, c1 + 1) .. B64:sub(c2 + 1, c2 + 1)
         .. (b and B64:sub(c3 + 1, c3 + 1) or "=") .. (c and B64:sub(c4 + 1, c4 + 1) or "=")
   end
   return table.concat(out)
end

local function parse_args(args)
   local o = {}
   for _, a in ipairs(args) do
      local k, v = string.match(a, "^([%w_]+)=(.*)$")
      if k == nil then
         error("oidc-code.lua: arguments are key=value, got " .. a)
      end
      o[k] = v
   end
   return o
end

local function header(headers, name)
   local v = headers[name]
   if v ~= nil then return v end
   local lname = string.lower(name)
   for k, val in pairs(headers) do
      if string.lower(k) == lname then return val end
   end
   return nil
end

-- results, read by done() through thread:get
codes = {}
step_errors = {}
exchanges = 0
errors = 0
hist = {} -- exchange latency: bucket of 10 µs -> count
-- the same per step (one request); flat globals, as wrk's thread:get copies one table level only
hist_authorize, hist_token, hist_userinfo = {}, {}, {}
local step_hist = { authorize = hist_authorize, token = hist_token, userinfo = hist_userinfo }
samples = {}

local o
local auth_prefix, auth_headers, token_headers, token_suffix
local seq, tid, nsamples, calls = 0, 0, 0, 0
local step = nil -- kind of the request in flight: "authorize", "token", "userinfo" or nil
local next_req = nil -- the request to send next (nil: start a new exchange)
local next_step = nil
local state, t0, t_step = nil, 0, 0

function init(args)
   o = parse_args(args)
   for _, k in ipairs({ "authorize", "token", "userinfo", "cookie", "client_id", "client_secret",
                        "redirect_uri", "scope", "verifier", "challenge" }) do
      if o[k] == nil or o[k] == "" then
         error("oidc-code.lua: missing " .. k .. "=… after -- (see the head of the script)")
      end
   end
   tid = tonumber(thread_id) or 0
   local sep = string.find(o.authorize, "?", 1, true) and "&" or "?"
   auth_prefix = o.authorize .. sep .. "response_type=code&client_id=" .. urlencode(o.client_id)
      .. "&redirect_uri=" .. urlencode(o.redirect_uri) .. "&scope=" .. urlencode(o.scope)
      .. "&code_challenge=" .. urlencode(o.challenge) .. "&code_challenge_method=S256"
   if o.extra ~= nil and o.extra ~= "" then
      auth_prefix = auth_prefix .. "&" .. o.extra
   end
   auth_headers = { ["Cookie"] = o.cookie }
   token_headers = {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["Accept"] = "application/json",
      ["Authorization"] = "Basic " .. base64(urlencode(o.client_id) .. ":" .. urlencode(o.client_secret)),
   }
   token_suffix = "&code_verifier=" .. urlencode(o.verifier) .. "&redirect_uri=" .. urlencode(o.redirect_uri)
end

local function authorize_request()
   seq = seq + 1
   state = "t" .. tid .. "x" .. seq
   return wrk.format("GET", auth_prefix .. "&state=" .. state .. "&nonce=n" .. state, auth_headers)
end

local function fail(kind, what, detail)
   errors = errors + 1
   local key = kind .. ":" .. what
   step_errors[key] = (step_errors[key] or 0) + 1
   if nsamples < 4 then
      nsamples = nsamples + 1
      samples[nsamples] = key .. " " .. string.gsub(string.sub(detail or "", 1, 400), "[\r\n]+", " ")
   end
   next_req, next_step = nil, nil
end

function request()
   calls = calls + 1
   if calls == 1 and tid == 0 then
      -- wrk calls request() once on thread 0 before the run only to check the request and
      -- never sends it: hand it a request without touching the state
      return wrk.format("GET", auth_prefix .. "&state=check&nonce=check", auth_headers)
   end
   if step ~= nil then
      fail(step, "lost", "request() with the previous request unanswered (reconnect, or -c > -t)")
   end
   if next_req == nil then
      next_req, next_step = authorize_request(), "authorize"
      t0 = now_us()
   end
   step = next_step
   t_step = now_us()
   local r = next_req
   next_req, next_step = nil, nil
   return r
end

function response(status, headers, body)
   codes[status] = (codes[status] or 0) + 1
   local kind = step
   step = nil
   local sh = kind and step_hist[kind]
   if sh then
      local b = math.floor((now_us() - t_step) / 10)
      sh[b] = (sh[b] or 0) + 1
   end
   if kind == "authorize" then
      local location = header(headers, "Location") or ""
      if status ~= 302 and status ~= 303 then
         return fail(kind, status, location .. " " .. (body or ""))
      end
      local code = string.match(location, "[?&]code=([^&#]+)")
      local st = string.match(location, "[?&]state=([^&#]+)")
      if code == nil or st == nil or urldecode(st) ~= state
         or string.sub(location, 1, #o.redirect_uri) ~= o.redirect_uri then
         return fail(kind, "no-code", location)
      end
      next_step = "token"
      next_req = wrk.format("POST", o.token, token_headers,
         "grant_type=authorization_code&code=" .. code .. token_suffix)
   elseif kind == "token" then
      if status ~= 200 then
         return fail(kind, status, body)
      end
      local at = string.match(body or "", '"access_token"%s*:%s*"([^"]+)"')
      if at == nil then
         return fail(kind, "no-token", body)
      end
      next_step = "userinfo"
      next_req = wrk.format("GET", o.userinfo, { ["Authorization"] = "Bearer " .. at })
   elseif kind == "userinfo" then
      if status ~= 200 or not string.find(body or "", '"sub"', 1, true) then
         return fail(kind, status, body)
      end
      exchanges = exchanges + 1
      local b = math.floor((now_us() - t0) / 10)
      hist[b] = (hist[b] or 0) + 1
      next_req, next_step = nil, nil
   else
      -- an answer with no request of ours in flight (cannot happen with -t = -c)
      fail("unknown", status, body)
   end
end

function done(summary, latency, requests_stats)
   local all, h, serr, all_samples = {}, {}, {}, {}
   local sh = { authorize = {}, token = {}, userinfo = {} }
   local total_x, total_err = 0, 0
   for _, t in ipairs(threads) do
      local c = t:get("codes")
      if c ~= nil then
         for k, v in pairs(c) do all[k] = (all[k] or 0) + v end
      end
      local th = t:get("hist")
      if th ~= nil then
         for k, v in pairs(th) do h[k] = (h[k] or 0) + v end
      end
      for kind, hh in pairs(sh) do
         local th2 = t:get("hist_" .. kind)
         if th2 ~= nil then
            for k, v in pairs(th2) do hh[k] = (hh[k] or 0) + v end
         end
      end
      local se = t:get("step_errors")
      if se ~= nil then
         for k, v in pairs(se) do serr[k] = (serr[k] or 0) + v end
      end
      local s = t:get("samples")
      if s ~= nil then
         for _, v in ipairs(s) do all_samples[#all_samples + 1] = v end
      end
      total_x = total_x + (tonumber(t:get("exchanges")) or 0)
      total_err = total_err + (tonumber(t:get("errors")) or 0)
   end
   local function joined(tbl, numeric)
      local keys = {}
      for k, _ in pairs(tbl) do table.insert(keys, k) end
      table.sort(keys, function(a, b)
         if numeric then return a < b end
         return tostring(a) < tostring(b)
      end)
      local parts = {}
      for _, k in ipairs(keys) do table.insert(parts, k .. ":" .. tbl[k]) end
      return (#parts > 0) and table.concat(parts, ",") or "none"
   end
   local codes_text = joined(all, true)
   local errors_text = joined(serr, false)

   -- latency percentiles from a histogram of 10 µs buckets (bucket upper bound, ms)
   local function pct_fn(hh)
      local buckets, total = {}, 0
      for k, v in pairs(hh) do
         table.insert(buckets, k)
         total = total + v
      end
      table.sort(buckets)
      return function(p)
         if total == 0 then return 0 end
         if p >= 100 then return (buckets[#buckets] + 1) * 10 / 1000.0 end
         local want = math.ceil(total * p / 100)
         local seen = 0
         for _, b in ipairs(buckets) do
            seen = seen + hh[b]
            if seen >= want then return (b + 1) * 10 / 1000.0 end
         end
         return (buckets[#buckets] + 1) * 10 / 1000.0
      end
   end
   local xpct = pct_fn(h)
   local x_max = xpct(100)
   local apct, tpct, upct = pct_fn(sh.authorize), pct_fn(sh.token), pct_fn(sh.userinfo)

   local secs = summary.duration / 1e6
   local e = summary.errors
   local socket_errors = e.connect + e.read + e.write + e.timeout
   local function ms(p) return latency:percentile(p) / 1000.0 end
   io.write("---- oidc-code.lua summary ----\n")
   io.write(string.format("exchanges:     %d in %.2f s = %.1f/s (%d requests = %.1f/s)\n", total_x, secs,
                          total_x / secs, summary.requests, summary.requests / secs))
   io.write(string.format("exchange latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms\n",
                          xpct(50), xpct(90), xpct(99), xpct(99.9), x_max))
   io.write(string.format("request latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
                          ms(50), ms(90), ms(99), latency.max / 1000.0))
   io.write(string.format("per step p50 / p99 / max ms: authorize %.2f / %.2f / %.2f, token %.2f / %.2f / %.2f, userinfo %.2f / %.2f / %.2f\n",
                          apct(50), apct(99), apct(100), tpct(50), tpct(99), tpct(100), upct(50), upct(99), upct(100)))
   io.write(string.format("HTTP status:   %s\n", codes_text))
   io.write(string.format("errors:        %d (%s)\n", total_err, errors_text))
   io.write(string.format("socket errors: connect %d, read %d, write %d, timeout %d\n",
                          e.connect, e.read, e.write, e.timeout))
   for i, s in ipairs(all_samples) do
      if i > 6 then break end
      io.write("error sample:  " .. s .. "\n")
   end
   io.write(string.format(
      "RESULT rps=%.2f exchanges_per_s=%.2f x_p50_ms=%.3f x_p90_ms=%.3f x_p99_ms=%.3f x_p999_ms=%.3f x_max_ms=%.3f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f a_p50_ms=%.3f a_p99_ms=%.3f t_p50_ms=%.3f t_p99_ms=%.3f u_p50_ms=%.3f u_p99_ms=%.3f requests=%d exchanges=%d errors=%d non2xx=%d socket_errors=%d timeouts=%d codes=%s step_errors=%s\n",
      summary.requests / secs, total_x / secs, xpct(50), xpct(90), xpct(99), xpct(99.9), x_max,
      ms(50), ms(90), ms(99), latency.max / 1000.0, apct(50), apct(99), tpct(50), tpct(99), upct(50), upct(99),
      summary.requests, total_x, total_err, e.status,
      socket_errors, e.timeout, codes_text, errors_text))
end
