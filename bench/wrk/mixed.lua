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

-- The headers both requests carry: the JSON content type, the key, and any extra
-- "Name: value" lines in $BENCH_HEADERS (a peer gateway's routing headers).
local function headers(extra)
  local h = { ["Content-Type"] = "application/json",
              ["Authorization"] = "Bearer " .. (os.getenv("BENCH_API_KEY") or "sk-bench") }
  for line in (os.getenv("BENCH_HEADERS") or ""):gmatch("[^\n]+") do
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then
      h[name] = value
    end
  end
  for k, v in pairs(extra) do
    h[k] = v
  end
  return h
end

function init(args)
  reqs[1] = wrk.format("POST", wrk.path, headers({}), slurp(assert(os.getenv("BENCH_BODY"))))
  reqs[2] = wrk.format("POST", wrk.path, headers({ ["x-bench-kind"] = "stream" }),
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
