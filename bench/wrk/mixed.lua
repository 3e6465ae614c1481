-- wrk script for bench/run's soak: alternates a non-streamed request ($BENCH_BODY) and a
-- streamed one ($BENCH_BODY_STREAM, sent with "x-bench-kind: stream").
local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local reqs = {}
local n = 0

function init(args)
  local key = "Bearer " .. (os.getenv("BENCH_API_KEY") or "sk-bench")
  reqs[1] = wrk.format("POST", wrk.path,
    { ["Content-Type"] = "application/json", ["Authorization"] = key },
    slurp(assert(os.getenv("BENCH_BODY"))))
  reqs[2] = wrk.format("POST", wrk.path,
    { ["Content-Type"] = "application/json", ["Authorization"] = key,
      ["x-bench-kind"] = "stream" },
    slurp(assert(os.getenv("BENCH_BODY_STREAM"))))
end

function request()
  n = n + 1
  return reqs[n % 2 + 1]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"p50_us":%.1f,"p90_us":%.1f,"p99_us":%.1f,"mean_us":%.1f,"max_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
