-- HTTP/1.1 pipelining for wrk (bench/load.py, `wrk(..., pipeline=N)`): each connection writes N
-- requests back to back, then reads the N responses. It cuts the load generator's system calls
-- per request, so on a box where it shares the cores with the server it takes less of them.
init = function(args)
  local depth = tonumber(args[1]) or 8
  local batch = {}
  for i = 1, depth do batch[i] = wrk.format(nil) end
  req = table.concat(batch)
end

request = function()
  return req
end
