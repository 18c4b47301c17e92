-- wrk script for bench/rest_bench.sh: GET /get of random existing keys,
-- "key:" and 12 digits (redis-benchmark's key format), from 0 to
-- $REST_BENCH_KEYS - 1, all preloaded. Each wrk thread has its own seed.
local keys = tonumber(os.getenv("REST_BENCH_KEYS") or "100000")
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("seed", counter)
end

function init(args)
  math.randomseed(seed * 7919 + os.time())
end

function request()
  return wrk.format("GET", string.format("/get?key=key:%012d", math.random(0, keys - 1)))
end
