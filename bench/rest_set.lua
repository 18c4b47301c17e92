-- wrk script for bench/rest_bench.sh: GET /set of random existing keys (as
-- rest_get.lua) to a value of $REST_BENCH_VALUE_BYTES 'x' bytes (redis-benchmark
-- -d), i.e. random overwrites.
local keys = tonumber(os.getenv("REST_BENCH_KEYS") or "100000")
local value = string.rep("x", tonumber(os.getenv("REST_BENCH_VALUE_BYTES") or "100"))
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

function init(args)
  math.randomseed(seed * 7919 + os.time())
end

function request()
  return wrk.format("GET", string.format("/set?key=key:%012d&value=%s",
                                         math.random(0, keys - 1), value))
end
