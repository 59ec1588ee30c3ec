-- wrk script: requests shaped like Zincati's, a different node_uuid each
-- time; prints one machine-readable summary line at the end.
-- Environment: BENCH_PATH (the path and query before node_uuid); when unset,
-- requests go to "/" (used for the static file).
local path = os.getenv("BENCH_PATH")
local counter = 0
math.randomseed(os.time())

request = function()
  if path == nil or path == "" then
    return wrk.format("GET", "/graph.json")
  end
  counter = counter + 1
  local uuid = string.format("%08x%08x%08x%08x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff), counter, math.random(0, 0x7fffffff))
  return wrk.format("GET", path .. "&node_uuid=" .. uuid)
end

done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT rps=%.0f p50_ms=%.2f p99_ms=%.2f requests=%d bytes=%d errors=%d non2xx=%d\n",
    summary.requests / seconds, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, summary.bytes, e.connect + e.read + e.write + e.timeout, e.status))
end
