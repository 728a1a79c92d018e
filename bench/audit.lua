-- wrk script: one audit log query (BENCH_PATH), read by an operator (BENCH_TOKEN).
local token = os.getenv("BENCH_TOKEN")
local path = os.getenv("BENCH_PATH")
local headers = { ["Authorization"] = "Bearer " .. token }

function request()
  return wrk.format("GET", path, headers)
end

function response(status, headers, body)
  if status ~= 200 then
    io.stderr:write("unexpected status " .. status .. "\n")
  end
end
