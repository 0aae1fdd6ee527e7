-- wrk script for bench/routing.sh: cycles through a file of request paths.
--
--   wrk -t2 -c64 -d20s --latency -s bench/routes.lua http://127.0.0.1:PORT -- PATHS_FILE [LABEL]
--
-- PATHS_FILE holds one path per line (e.g. /routing-api/v1/routes?leikaKey=99...&ars=...).
-- Each thread walks the whole list in order, starting at its own offset, so the mix seen by
-- the server is the mix in the file. Requests are formatted once in init(), so request()
-- costs only a table lookup. No response() callback: it would make wrk hand every body to
-- Lua and lower the ceiling wrk can measure.
--
-- done() prints human-readable lines and one machine-readable line starting with "RESULT",
-- which routing.sh parses. "non2xx" is wrk's own count of HTTP status >= 400.

local threads = {}
local counter = 0

function setup(thread)
   thread:set("thread_id", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

local requests = {}
local n = 0
local idx = 0

function init(args)
   local file = args[1]
   if file == nil then
      error("routes.lua: pass the paths file after --, e.g. -- /tmp/paths.txt")
   end
   local fh = io.open(file, "r")
   if fh == nil then
      error("routes.lua: cannot open " .. file)
   end
   for line in fh:lines() do
      if line ~= "" then
         n = n + 1
         requests[n] = wrk.format("GET", line)
      end
   end
   fh:close()
   if n == 0 then
      error("routes.lua: no paths in " .. file)
   end
   -- per-thread offset (thread_id set in setup): golden-ratio steps spread any number of
   -- threads over the list, so two threads never send the same sequence in lockstep
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

function done(summary, latency, requests_stats)
   local secs = summary.duration / 1e6
   local rps = summary.requests / secs
   local e = summary.errors
   local socket_errors = e.connect + e.read + e.write + e.timeout
   local function ms(p)
      return latency:percentile(p) / 1000.0
   end
   io.write("---- routes.lua summary ----\n")
   io.write(string.format("requests:      %d in %.2f s\n", summary.requests, secs))
   io.write(string.format("requests/s:    %.0f\n", rps))
   io.write(string.format("latency p50:   %.3f ms\n", ms(50)))
   io.write(string.format("latency p90:   %.3f ms\n", ms(90)))
   io.write(string.format("latency p99:   %.3f ms\n", ms(99)))
   io.write(string.format("latency p99.9: %.3f ms\n", ms(99.9)))
   io.write(string.format("latency max:   %.3f ms\n", latency.max / 1000.0))
   io.write(string.format("non-2xx (HTTP status >= 400): %d\n", e.status))
   io.write(string.format("socket errors: connect %d, read %d, write %d, timeout %d\n",
                          e.connect, e.read, e.write, e.timeout))
   io.write(string.format(
      "RESULT rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f requests=%d non2xx=%d socket_errors=%d\n",
      rps, ms(50), ms(90), ms(99), ms(99.9), latency.max / 1000.0, summary.requests, e.status, socket_errors))
end
