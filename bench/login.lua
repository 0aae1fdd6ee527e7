-- wrk script for bench/login.sh: one password login, over and over.
--
--   wrk -t2 -c200 -d20s --latency --timeout 30s -s bench/login.lua http://127.0.0.1:PORT \
--       -- EMAIL PASSWORD CSRF_TOKEN [LABEL]
--
-- Every request is `POST /konto/anmelden` with the form fields csrf_token, email, password and
-- the cookie `csrf=<CSRF_TOKEN>` (double-submit CSRF: the same 43-character token in cookie
-- and field). A successful login answers 303 (to /konto) with a new session cookie; the
-- request carries no session cookie, so every login starts a fresh session.
--
-- response() counts the answers per HTTP status (wrk itself counts only status >= 400), and
-- done() prints human-readable lines and one machine-readable line starting with "RESULT":
--   RESULT rps=… p50_ms=… p90_ms=… p99_ms=… p999_ms=… max_ms=… requests=… expected=…
--          unexpected=… non2xx=… socket_errors=… timeouts=… codes=303:1234,429:2
-- "expected" counts 303 answers, "unexpected" all others.

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

codes = {}
local req

function init(args)
   local email, password, token = args[1], args[2], args[3]
   if email == nil or password == nil or token == nil then
      error("login.lua: pass EMAIL PASSWORD CSRF_TOKEN after --")
   end
   local body = "csrf_token=" .. urlencode(token) .. "&email=" .. urlencode(email)
      .. "&password=" .. urlencode(password)
   req = wrk.format("POST", "/konto/anmelden", {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["Cookie"] = "csrf=" .. token,
   }, body)
end

function request()
   return req
end

function response(status, headers, body)
   codes[status] = (codes[status] or 0) + 1
end

function done(summary, latency, requests_stats)
   local all = {}
   for _, t in ipairs(threads) do
      local c = t:get("codes")
      if c ~= nil then
         for k, v in pairs(c) do
            all[k] = (all[k] or 0) + v
         end
      end
   end
   local keys = {}
   for k, _ in pairs(all) do table.insert(keys, k) end
   table.sort(keys)
   local parts, expected, unexpected = {}, 0, 0
   for _, k in ipairs(keys) do
      table.insert(parts, k .. ":" .. all[k])
      if k == 303 then expected = expected + all[k] else unexpected = unexpected + all[k] end
   end
   local codes_text = (#parts > 0) and table.concat(parts, ",") or "none"

   local secs = summary.duration / 1e6
   local rps = summary.requests / secs
   local e = summary.errors
   local socket_errors = e.connect + e.read + e.write + e.timeout
   local function ms(p)
      return latency:percentile(p) / 1000.0
   end
   io.write("---- login.lua summary ----\n")
   io.write(string.format("logins:        %d answers in %.2f s = %.1f/s\n", summary.requests, secs, rps))
   io.write(string.format("HTTP status:   %s (303 = logged in)\n", codes_text))
   io.write(string.format("latency p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms\n",
                          ms(50), ms(90), ms(99), latency.max / 1000.0))
   io.write(string.format("socket errors: connect %d, read %d, write %d, timeout %d\n",
                          e.connect, e.read, e.write, e.timeout))
   io.write(string.format(
      "RESULT rps=%.2f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f requests=%d expected=%d unexpected=%d non2xx=%d socket_errors=%d timeouts=%d codes=%s\n",
      rps, ms(50), ms(90), ms(99), ms(99.9), latency.max / 1000.0, summary.requests, expected,
      unexpected, e.status, socket_errors, e.timeout, codes_text))
end
