-- wrk script: requests shaped like Zincati's, each with its own node_uuid,
-- all prepared once per thread in init() so that wrk spends next to nothing
-- per request (request() only hands out the next one of the pool). The same
-- script and the same requests go to every target, nginx included (nginx
-- serves /v1/graph as a file and ignores the query).
--
-- Environment:
--   BENCH_QUERY  the query before node_uuid (Zincati's other parameters)
--   BENCH_HOST   the Host header (host:port of the target)
--   BENCH_GZIP   "1": add "accept-encoding: gzip" (Zincati never does)
--   BENCH_CLOSE  "1": add "connection: close" (a new connection per request)
--   BENCH_POOL   requests prepared per thread (default 4096)
--   BENCH_NODES  N: node_uuids drawn among the N of node(i), i < N (the
--                nodes a fill has tracked), rather than at random
--   BENCH_FILL   N: fill mode: every request is built as it is sent, from
--                node(i) for each i < N in turn (thread t of BENCH_THREADS
--                takes every i = t - 1 modulo BENCH_THREADS), then again
--                from the start: N distinct nodes poll
--   BENCH_PATHS  a file of request targets, one per line: the pool is
--                those targets, in turn (thread t of BENCH_THREADS takes
--                every line t - 1 modulo BENCH_THREADS), not Zincati's
-- Prints one machine-readable summary line at the end.

local query = os.getenv("BENCH_QUERY") or ""
local host = os.getenv("BENCH_HOST") or "localhost"
local gzip = os.getenv("BENCH_GZIP") == "1"
local close = os.getenv("BENCH_CLOSE") == "1"
local pool_size = tonumber(os.getenv("BENCH_POOL") or "4096")
local nodes = tonumber(os.getenv("BENCH_NODES") or "0")
local fill = tonumber(os.getenv("BENCH_FILL") or "0")
local stride = tonumber(os.getenv("BENCH_THREADS") or "1")
local paths = os.getenv("BENCH_PATHS")

-- The i-th node_uuid of a fill: 32 hexadecimal digits, distinct for every
-- i below 2^31 (each field below 2^31, exact in a double).
local function node(i)
  return string.format("%08x%08x%08x%08x", 0x5eedf111,
    (i * 2654435761) % 2147483648, (i * 40503 + 12345) % 2147483648, i)
end

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

local pool = {}
local next_index = 0
local target_prefix, request_headers
local fill_index = 0

function init(args)
  -- Distinct node UUIDs in every thread and every run.
  math.randomseed(os.time() * 1000 + (thread_id or 0))
  -- Zincati's request: reqwest without its gzip feature sends only these
  -- headers (names in lower case, as hyper writes them).
  local headers = "host: " .. host .. "\r\naccept: application/json\r\n"
  if gzip then
    headers = headers .. "accept-encoding: gzip\r\n"
  end
  if close then
    headers = headers .. "connection: close\r\n"
  end
  local target = "/v1/graph?" .. query
  if query ~= "" then
    target = target .. "&"
  end
  target_prefix, request_headers = target, headers
  fill_index = (thread_id or 1) - 1
  if fill > 0 then
    return
  end
  if paths then
    local line_number = 0
    for path in io.lines(paths) do
      if line_number % stride == fill_index then
        pool[#pool + 1] = "GET " .. path .. " HTTP/1.1\r\n" .. headers .. "\r\n"
      end
      line_number = line_number + 1
    end
    pool_size = #pool
    return
  end
  for i = 1, pool_size do
    local uuid
    if nodes > 0 then
      uuid = node(math.random(0, nodes - 1))
    else
      uuid = string.format("%08x%08x%08x%08x",
        math.random(0, 0x7fffffff), math.random(0, 0x7fffffff),
        math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
    end
    pool[i] = "GET " .. target .. "node_uuid=" .. uuid .. " HTTP/1.1\r\n" .. headers .. "\r\n"
  end
end

function request()
  if fill > 0 then
    local uuid = node(fill_index)
    fill_index = (fill_index + stride) % fill
    return "GET " .. target_prefix .. "node_uuid=" .. uuid .. " HTTP/1.1\r\n" .. request_headers .. "\r\n"
  end
  next_index = next_index % pool_size + 1
  return pool[next_index]
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT rps=%.0f p50_ms=%.3f p99_ms=%.3f requests=%d bytes=%d errors=%d non2xx=%d\n",
    summary.requests / seconds, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, summary.bytes, e.connect + e.read + e.write + e.timeout, e.status))
end
