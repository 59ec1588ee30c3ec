-- wrk script for bench/soak.sh: Zincati-shaped requests, and a check of
-- every response: status 200, and never a mix of the two upstream versions
-- the soak alternates between (marked "soak-A" and "soak-B").
local path = os.getenv("BENCH_PATH")
local counter = 0
local threads = {}

setup = function(thread)
  table.insert(threads, thread)
end

init = function()
  bad_status = 0
  mixed = 0
  seen_a = 0
  seen_b = 0
end

request = function()
  counter = counter + 1
  return wrk.format("GET", path .. "&node_uuid=" .. string.format("%016x%016x", counter, math.random(0, 0x7fffffff)))
end

response = function(status, headers, body)
  if status ~= 200 then
    bad_status = bad_status + 1
    return
  end
  local a = body:find("soak-A", 1, true) ~= nil
  local b = body:find("soak-B", 1, true) ~= nil
  if a and b then mixed = mixed + 1 end
  if a then seen_a = seen_a + 1 end
  if b then seen_b = seen_b + 1 end
end

done = function(summary, latency, requests)
  local bad, mix, a, b = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("bad_status")
    mix = mix + t:get("mixed")
    a = a + t:get("seen_a")
    b = b + t:get("seen_b")
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d rps=%.0f p99_ms=%.2f socket_errors=%d non200=%d mixed=%d version_a=%d version_b=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6), latency:percentile(99) / 1000,
    e.connect + e.read + e.write + e.timeout, bad, mix, a, b))
end
