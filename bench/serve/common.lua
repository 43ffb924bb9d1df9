-- What every bench/serve wrk script shares. The script that loads this sets, first:
--   kind                the bodies to send: BODIES/<kind>.manifest (bench/serve/make_bodies.py)
--   images_per_request  how many images one body holds (images/s = requests/s x this)
--   api                 "kserve": POST /v2/models/MODEL/infer (Open Inference Protocol)
--                       "torchserve": POST /predictions/MODEL (TorchServe's own API)
-- and wrk passes the model name and the bodies folder after "--":
--   wrk -t2 -c16 -d10s --latency -s bench/serve/single_binary_fp32.lua \
--       http://127.0.0.1:8000 -- mnist build/serve-bodies
-- Each connection cycles through the bodies (distinct test images), starting at a random one.
-- done() prints one machine-readable line for bench/serve/run.sh:
--   RESULT kind=... images_per_request=1 requests=N duration_us=D p50_us=.. p99_us=.. ...

local requests, count, next_index = {}, 0, 0

function init(args)
  local model, dir = args[1], args[2]
  if not model or not dir then
    error("usage: wrk ... -s SCRIPT URL -- MODEL BODIES_DIR")
  end
  local path = api == "kserve" and ("/v2/models/" .. model .. "/infer")
      or ("/predictions/" .. model)
  for line in io.lines(dir .. "/" .. kind .. ".manifest") do
    local file, header_length = line:match("^(%S+) (%d+)$")
    local f = assert(io.open(dir .. "/" .. file, "rb"))
    local body = f:read("*a")
    f:close()
    local headers = {}
    if tonumber(header_length) > 0 then
      -- Binary tensor data: the JSON header's length, then the raw tensor bytes.
      headers["Inference-Header-Content-Length"] = header_length
      headers["Content-Type"] = "application/octet-stream"
    elseif body:sub(1, 1) == "{" then
      headers["Content-Type"] = "application/json"
    else
      headers["Content-Type"] = "application/octet-stream"
    end
    count = count + 1
    requests[count] = wrk.format("POST", path, headers, body)
  end
  if count == 0 then error("no bodies in " .. dir .. "/" .. kind .. ".manifest") end
  next_index = math.random(count) - 1
end

function request()
  next_index = next_index % count + 1
  return requests[next_index]
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
      "RESULT kind=%s images_per_request=%d requests=%d duration_us=%d p50_us=%d p90_us=%d " ..
      "p99_us=%d max_us=%d err_connect=%d err_read=%d err_write=%d err_status=%d " ..
      "err_timeout=%d\n",
      kind, images_per_request, summary.requests, summary.duration,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      e.connect, e.read, e.write, e.status, e.timeout))
end
