-- wrk script: sends the request targets listed in the file BENCH_PATHS (one
-- per line), in turn and again from the start, with Zincati's headers; each
-- thread of BENCH_THREADS takes every BENCH_THREADS-th line. The requests
-- are prepared in init(). Prints one summary line at the end.
local paths_file = os.getenv("BENCH_PATHS")
local host = os.getenv("BENCH_HOST") or "localhost"
local stride = tonumber(os.getenv("BENCH_THREADS") or "1")

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

local pool = {}
local next_index = 0

function init(args)
  local line_number = 0
  for path in io.lines(paths_file) do
    if line_number % stride == (thread_id or 1) - 1 then
      pool[#pool + 1] = "GET " .. path .. " HTTP/1.1\r\nhost: " .. host ..
        "\r\naccept: application/json\r\n\r\n"
    end
    line_number = line_number + 1
  end
end

function request()
  next_index = next_index % #pool + 1
  return pool[next_index]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d errors=%d non2xx=%d\n", summary.requests,
    e.connect + e.read + e.write + e.timeout, e.status))
end
