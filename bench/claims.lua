-- wrk script: 3-line claims for random seeded people, each with its own idempotency key and
-- external id (thread id + counter keep them unique across threads).
local token = os.getenv("BENCH_TOKEN")
local people = tonumber(os.getenv("BENCH_PEOPLE") or "1000000")
local counter = 0
-- `threads` counts in the main state; `id` and `seed` are set as globals in each thread's state
-- (a chunk-level local would shadow them).
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
  thread:set("seed", threads * 7919 + os.time())
end

function init(args)
  math.randomseed(seed)
end

local template = '{"external_id":"B%d-%d-%d","provider":"bench-cms","beneficiary":{"organization":"bench-mut",'
  .. '"member_number":"M%07d"},"service_date":"2026-06-01","care_level":"health_center","lines":['
  .. '{"code":"CONS","category":"consultation","quantity":1,"unit_price_xof":5000},'
  .. '{"code":"LAB","category":"laboratory","quantity":2,"unit_price_xof":1750},'
  .. '{"code":"PHAR","category":"pharmacy","quantity":3,"unit_price_xof":999}]}'

function request()
  counter = counter + 1
  local key = string.format("%d-%d-%d", id, counter, os.time())
  local headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token,
                    ["Idempotency-Key"] = key }
  local body = string.format(template, id, counter, os.time(), math.random(1, people))
  return wrk.format("POST", "/v1/claims", headers, body)
end

function response(status, headers, body)
  if status ~= 201 then
    io.stderr:write("unexpected status " .. status .. ": " .. body .. "\n")
  end
end
