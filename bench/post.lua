-- wrk script: POST the seed's 2-bill body with a unique request_id per request.
-- BENCH_PREFIX sets the request_id prefix (default "b"), so runs do not collide.
-- BENCH_IDS=uuid sends random version-4 UUIDs instead (as many main services do).
local counter, tid = 0, "0"
local prefix = os.getenv("BENCH_PREFIX") or "b"
local uuid = os.getenv("BENCH_IDS") == "uuid"
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", tostring(threads))
end
function init(args)
  tid = wrk.thread:get("tid") or "0"
  math.randomseed(os.time() + tonumber(tid) * 1000003 + math.floor(os.clock() * 1e6))
end
local function hex(n)
  local t = {}
  for i = 1, n do t[i] = string.format("%x", math.random(0, 15)) end
  return table.concat(t)
end
local headers = {["Content-Type"] = "application/json"}
function request()
  counter = counter + 1
  local rid = uuid and (hex(8) .. "-" .. hex(4) .. "-4" .. hex(3) .. "-a" .. hex(3) .. "-" .. hex(12))
              or (prefix .. "-" .. tid .. "-" .. counter)
  local body = '{"request_id":"' .. rid ..
    '","exchange_rate":75.5,"bills":[{"denomination_id":1,"denomination":10.0,"count":5},' ..
    '{"denomination_id":2,"denomination":20.0,"count":3}]}'
  return wrk.format("POST", nil, headers, body)
end
function done(summary, latency, requests)
  local non2xx = summary.errors.status
  io.write(string.format("RESULT rps=%.1f p50_ms=%.2f p99_ms=%.2f requests=%d non2xx=%d sockerr=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.requests, non2xx,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
