-- wrk script: every request comes from the next user in a file of "token csrf" lines.
-- Arguments (after `--`): sessions-file method path body origin.
-- Requests are formatted once in init(), so request() only picks the next one.
local prepared = {}
local index = 0

function init(args)
  local method, path, body, origin = args[2], args[3], args[4], args[5]
  if body == nil or body == "" then body = nil end
  for line in io.lines(args[1]) do
    local token, csrf = line:match("^(%S+) (%S+)$")
    if token then
      local headers = { ["Cookie"] = "me_session=" .. token }
      if method ~= "GET" then
        headers["X-CSRF-Token"] = csrf
        headers["Origin"] = origin
        headers["Content-Type"] = "application/json"
      end
      prepared[#prepared + 1] = wrk.format(method, path, headers, body)
    end
  end
  index = math.random(#prepared) - 1
end

function request()
  index = index % #prepared + 1
  return prepared[index]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "socket_errors": %d, "status_errors": %d,'
      .. ' "p50_us": %d, "p99_us": %d, "p999_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
