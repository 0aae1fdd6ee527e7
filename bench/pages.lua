-- wrk script for bench/login.sh and bench/postfach.sh: GET pages from a list, counting the
-- answers per HTTP status.
--
--   wrk -t1 -c8 -d20s --latency -s bench/pages.lua http://127.0.0.1:PORT -- PATHS_FILE [COOKIE]
--
-- PATHS_FILE holds one path per line (e.g. / or /postfach?seite=200). Each thread walks the
-- list in order from its own offset. COOKIE, if given, is sent as the Cookie header of every
-- request (e.g. "session=…" for the Postfach pages).
--
-- done() prints human-readable lines and one machine-readable line starting with "RESULT":
--   RESULT rps=… p50_ms=… p90_ms=… p99_ms=… p999_ms=… max_ms=… requests=… expected=…
--          unexpected=… non2xx=… socket_errors=… timeouts=… codes=200:1234
-- "expected" counts 200 answers, "unexpected" all others (a 303 to the login page means the
-- session cookie was not accepted).

local threads = {}
local counter = 0

function setup(thread)
   thread:set("thread_id", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

codes = {}
local requests = {}
local n = 0
local idx = 0

function init(args)
   local file, cookie = args[1], args[2]
   if file == nil then
      error("pages.lua: pass the paths file after --, e.g. -- /tmp/paths.txt")
   end
   local headers = {}
   if cookie ~= nil and cookie ~= "" then
      headers["Cookie"] = cookie
   end
   local fh = io.open(file, "r")
   if fh == nil then
      error("pages.lua: cannot open " .. file)
   end
   for line in fh:lines() do
      if line ~= "" then
         n = n + 1
         requests[n] = wrk.format("GET", line, headers)
      end
   end
   fh:close()
   if n == 0 then
      error("pages.lua: no paths in " .. file)
   end
   local id = tonumber(thread_id) or 0
   idx = math.floor(id * 0.6180339887 * n) % n
end

function request()
   idx = idx + 1
   if idx > n then
      idx = 1
   end
   return requests[idx]
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
      if k == 200 then expected = expected + all[k] else unexpected = unexpected + all[k] end
   end
   local codes_text = (#parts > 0) and table.concat(parts, ",") or "none"

   local secs = summary.duration / 1e6
   local rps = summary.requests / secs
   local e = summary.errors
   local socket_errors = e.connect + e.read + e.write + e.timeout
   local function ms(p)
      return latency:percentile(p) / 1000.0
   end
   io.write("---- pages.lua summary ----\n")
   io.write(string.format("requests:      %d in %.2f s = %.1f/s\n", summary.requests, secs, rps))
   io.write(string.format("HTTP status:   %s\n", codes_text))
   io.write(string.format("latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms\n",
                          ms(50), ms(90), ms(99), ms(99.9), latency.max / 1000.0))
   io.write(string.format("socket errors: connect %d, read %d, write %d, timeout %d\n",
                          e.connect, e.read, e.write, e.timeout))
   io.write(string.format(
      "RESULT rps=%.2f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f requests=%d expected=%d unexpected=%d non2xx=%d socket_errors=%d timeouts=%d codes=%s\n",
      rps, ms(50), ms(90), ms(99), ms(99.9), latency.max / 1000.0, summary.requests, expected,
      unexpected, e.status, socket_errors, e.timeout, codes_text))
end
