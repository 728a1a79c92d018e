-- wrk script: the baseline of bench/webhooks.sh, a POST to the receiver shaped like a delivery
-- (an envelope of about the same size, JSON, a signature header).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Passerelle-Signature"] = "t=1764979200,v1=" .. string.rep("0", 64)
wrk.body = '{"event_id":"bench-evt-1","type":"claim.submitted","created_at":"2026-12-06T08:00:00Z",'
  .. '"organization":"bench-org-1","data":{"n":1}}'
function response(status, headers, body)
  if status ~= 204 then
    io.stderr:write("unexpected status " .. status .. "\n")
  end
end
