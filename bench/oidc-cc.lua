-- wrk script for bench/oidc.sh: the OAuth 2.0 client credentials grant, over and over.
--
--   wrk -t2 -c64 -d20s --latency -s bench/oidc-cc.lua http://127.0.0.1:PORT -- \
--       token=/oauth/token client_id=ID client_secret=SECRET [scope=postfach:deliver] [label=NAME]
--
-- Every request is `POST <token>` with `grant_type=client_credentials` (and `scope=…` if
-- given) as a form, the client authenticated with HTTP Basic (client_secret_basic: id and
-- secret form-urlencoded, then base64, RFC 6749 § 2.3.1). The same script runs against
-- Rathaus and against oidc-provider; only the arguments differ.
--
-- A grant counts when the answer is 200 with an "access_token" in the JSON body. done()
-- prints human-readable lines and one machine-readable line starting with "RESULT":
--   RESULT rps=… grants_per_s=… p50_ms=… p90_ms=… p99_ms=… p999_ms=… max_ms=… requests=…
--          grants=… errors=… non2xx=… socket_errors=… timeouts=… codes=200:1234
-- "errors" counts every answer that is not such a grant (any other status, or 200 without a
-- token); the first answers of each kind are printed as samples.

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
         error("oidc-cc.lua: arguments are key=value, got " .. a)
      end
      o[k] = v
   end
   return o
end

codes = {}
grants = 0
errors = 0
samples = {}
local nsamples = 0
local req

function init(args)
   local o = parse_args(args)
   if o.token == nil or o.client_id == nil or o.client_secret == nil then
      error("oidc-cc.lua: pass token=PATH client_id=ID client_secret=SECRET [scope=S] after --")
   end
   local body = "grant_type=client_credentials"
   if o.scope ~= nil and o.scope ~= "" then
      body = body .. "&scope=" .. urlencode(o.scope)
   end
   req = wrk.format("POST", o.token, {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["Accept"] = "application/json",
      ["Authorization"] = "Basic " .. base64(urlencode(o.client_id) .. ":" .. urlencode(o.client_secret)),
   }, body)
end

function request()
   return req
end

function response(status, headers, body)
   codes[status] = (codes[status] or 0) + 1
   if status == 200 and body ~= nil and string.find(body, '"access_token"', 1, true) then
      grants = grants + 1
   else
      errors = errors + 1
      if nsamples < 3 then
         nsamples = nsamples + 1
         samples[nsamples] = status .. " " .. string.sub(body or "", 1, 300)
      end
   end
end

function done(summary, latency, requests_stats)
   local all, total_grants, total_errors, all_samples = {}, 0, 0, {}
   for _, t in ipairs(threads) do
      local c = t:get("codes")
      if c ~= nil then
         for k, v in pairs(c) do all[k] = (all[k] or 0) + v end
      end
      total_grants = total_grants + (tonumber(t:get("grants")) or 0)
      total_errors = total_errors + (tonumber(t:get("errors")) or 0)
      local s = t:get("samples")
      if s ~= nil then
         for _, v in ipairs(s) do all_samples[#all_samples + 1] = v end
      end
   end
   local keys = {}
   for k, _ in pairs(all) do table.insert(keys, k) end
   table.sort(keys)
   local parts = {}
   for _, k in ipairs(keys) do table.insert(parts, k .. ":" .. all[k]) end
   local codes_text = (#parts > 0) and table.concat(parts, ",") or "none"

   local secs = summary.duration / 1e6
   local e = summary.errors
   local socket_errors = e.connect + e.read + e.write + e.timeout
   local function ms(p) return latency:percentile(p) / 1000.0 end
   io.write("---- oidc-cc.lua summary ----\n")
   io.write(string.format("grants:        %d in %.2f s = %.1f/s (%d requests)\n", total_grants, secs,
                          total_grants / secs, summary.requests))
   io.write(string.format("HTTP status:   %s\n", codes_text))
   io.write(string.format("latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms\n",
                          ms(50), ms(90), ms(99), ms(99.9), latency.max / 1000.0))
   io.write(string.format("socket errors: connect %d, read %d, write %d, timeout %d\n",
                          e.connect, e.read, e.write, e.timeout))
   for i, s in ipairs(all_samples) do
      if i > 5 then break end
      io.write("error sample:  " .. string.gsub(s, "[\r\n]", " ") .. "\n")
   end
   io.write(string.format(
      "RESULT rps=%.2f grants_per_s=%.2f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f requests=%d grants=%d errors=%d non2xx=%d socket_errors=%d timeouts=%d codes=%s\n",
      summary.requests / secs, total_grants / secs, ms(50), ms(90), ms(99), ms(99.9),
      latency.max / 1000.0, summary.requests, total_grants, total_errors, e.status, socket_errors,
      e.timeout, codes_text))
end
