-- wrk script: the readiness probe, one database round trip per request.
function response(status, headers, body)
  if status ~= 200 then
    io.stderr:write("unexpected status " .. status .. "\n")
  end
end
