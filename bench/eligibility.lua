-- wrk script: eligibility checks for random people among the seeded ones.
local token = os.getenv("BENCH_TOKEN")
local people = tonumber(os.getenv("BENCH_PEOPLE") or "1000000")
local template = '{"beneficiary":{"organization":"bench-mut","member_number":"M%07d"},'
  .. '"service_date":"2026-06-01","care_level":"health_center","category":"consultation","amount_xof":10001}'
local headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token }

function setup(thread)
  thread:set("seed", math.random(1, 1000000))
end

function init(args)
  math.randomseed(seed or os.time())
end

function request()
  return wrk.format("POST", "/v1/eligibility-checks", headers, string.format(template, math.random(1, people)))
end

function response(status, headers, body)
  if status ~= 200 then
    io.stderr:write("unexpected status " .. status .. ": " .. body .. "\n")
  end
end
