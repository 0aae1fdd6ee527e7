-- wrk script for bench/postfach.sh: delivers exactly COUNT messages through the Postfach API.
--
--   wrk -t2 -c8 -d540s --latency --timeout 10s -s bench/postfach-seed.lua http://127.0.0.1:PORT \
--       -- MESSAGES_PATH ACCESS_TOKEN RECIPIENT COUNT FIRST_NUMBER THREADS DONE_DIR
--
-- Every request is `POST MESSAGES_PATH` with `Authorization: Bearer ACCESS_TOKEN` and the JSON
-- {"recipient": RECIPIENT, "subject": "Lasttest-Nachricht N", "body": "…"}; N runs from
-- FIRST_NUMBER up, unique across threads. THREADS must equal wrk's -t: thread i sends its share
-- of COUNT (COUNT / THREADS, the first COUNT % THREADS threads one more) and then only
-- `GET /readyz` (answered 200, not counted) until the answers to all its deliveries are in;
-- then it writes DONE_DIR/done-<i> and stops. (The first request() of thread 0 is wrk's
-- unsent check of the script and gets the filler.) Every 250 answers a thread writes its count
-- to DONE_DIR/progress-<i>. wrk itself runs until -d or SIGINT:
-- postfach.sh sends SIGINT once every thread is done, so wrk's duration is the seeding time.
--
-- done() prints human-readable lines and one machine-readable line starting with "RESULT":
--   RESULT rps=… p50_ms=… p99_ms=… max_ms=… sent=… created=… failed=… unauthorized=…
--          socket_errors=… timeouts=… seconds=… codes=201:5000
-- "rps" counts delivery answers only (not the /readyz fillers); "created" counts 201,
-- "failed" every other delivery answer (401 = the access token expired), "sent" the
-- deliveries sent. Latency percentiles include the few /readyz fillers at the end.

local threads = {}
local counter = 0

function setup(thread)
   thread:set("thread_id", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

codes = {}
sent = 0
answered = 0
local path, headers, recipient, share, first, step, done_file, progress_file
local filler
local finished = false

function init(args)
   local token
   path, token, recipient = args[1], args[2], args[3]
   local count, first_number, nthreads, done_dir = tonumber(args[4]), tonumber(args[5]),
      tonumber(args[6]), args[7]
   if path == nil or token == nil or recipient == nil or count == nil or first_number == nil
      or nthreads == nil or done_dir == nil then
      error("postfach-seed.lua: pass MESSAGES_PATH ACCESS_TOKEN RECIPIENT COUNT FIRST_NUMBER THREADS DONE_DIR after --")
   end
   local id = tonumber(thread_id) or 0
   share = math.floor(count / nthreads)
   if id < count % nthreads then
      share = share + 1
   end
   first = first_number + id
   step = nthreads
   done_file = done_dir .. "/done-" .. id
   progress_file = done_dir .. "/progress-" .. id
   headers = {
      ["Authorization"] = "Bearer " .. token,
      ["Content-Type"] = "application/json",
   }
   filler = wrk.format("GET", "/readyz")
   if share == 0 then
      finished = true
      local fh = io.open(done_file, "w")
      if fh ~= nil then fh:close() end
   end
end

local calls = 0

function request()
   calls = calls + 1
   -- wrk calls request() once on thread 0 before the run only to check the request (and
   -- never sends that one): answer it with the filler, or that delivery would be missing
   if sent >= share or (calls == 1 and (tonumber(thread_id) or 0) == 0) then
      return filler
   end
   local n = first + sent * step
   sent = sent + 1
   local body = string.format(
      '{"recipient":"%s","subject":"Lasttest-Nachricht %d","body":"Automatisch erzeugte Nachricht %d des Lasttests bench/postfach.sh. Kein Handlungsbedarf."}',
      recipient, n, n)
   return wrk.format("POST", path, headers, body)
end

function response(status, headers, body)
   if status == 200 then
      return -- /readyz filler
   end
   codes[status] = (codes[status] or 0) + 1
   answered = answered + 1
   if answered % 250 == 0 then -- progress for postfach.sh
      local fh = io.open(progress_file, "w")
      if fh ~= nil then fh:write(answered, "\n"); fh:close() end
   end
   if answered >= share and not finished then
      finished = true
      local fh = io.open(done_file, "w")
      if fh ~= nil then fh:close() end
      wrk.thread:stop()
   end
end

function done(summary, latency, requests_stats)
   local all, total_sent, total_answered = {}, 0, 0
   for _, t in ipairs(threads) do
      local c = t:get("codes")
      if c ~= nil then
         for k, v in pairs(c) do
            all[k] = (all[k] or 0) + v
         end
      end
      total_sent = total_sent + (tonumber(t:get("sent")) or 0)
      total_answered = total_answered + (tonumber(t:get("answered")) or 0)
   end
   local keys = {}
   for k, _ in pairs(all) do table.insert(keys, k) end
   table.sort(keys)
   local parts, created, failed, unauthorized = {}, 0, 0, 0
   for _, k in ipairs(keys) do
      table.insert(parts, k .. ":" .. all[k])
      if k == 201 then created = created + all[k] else failed = failed + all[k] end
      if k == 401 then unauthorized = unauthorized + all[k] end
   end
   local codes_text = (#parts > 0) and table.concat(parts, ",") or "none"
   local secs = summary.duration / 1e6
   local rps = total_answered / secs
   local e = summary.errors
   local socket_errors = e.connect + e.read + e.write + e.timeout
   local function ms(p)
      return latency:percentile(p) / 1000.0
   end
   io.write("---- postfach-seed.lua summary ----\n")
   io.write(string.format("deliveries:    %d sent, %d answered in %.2f s = %.1f/s\n",
                          total_sent, total_answered, secs, rps))
   io.write(string.format("HTTP status:   %s (201 = created)\n", codes_text))
   io.write(string.format("latency p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
                          ms(50), ms(99), latency.max / 1000.0))
   io.write(string.format("socket errors: connect %d, read %d, write %d, timeout %d\n",
                          e.connect, e.read, e.write, e.timeout))
   io.write(string.format(
      "RESULT rps=%.2f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f sent=%d created=%d failed=%d unauthorized=%d socket_errors=%d timeouts=%d seconds=%.3f codes=%s\n",
      rps, ms(50), ms(99), latency.max / 1000.0, total_sent, created, failed, unauthorized,
      socket_errors, e.timeout, secs, codes_text))
end
