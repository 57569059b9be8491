-- HTTP/1.1 pipelining: each write carries DEPTH requests back to back; wrk counts every response.
local DEPTH = 16

init = function(args)
   local batch = {}
   for i = 1, DEPTH do
      batch[i] = wrk.format(nil, nil)
   end
   pipelined = table.concat(batch)
end

request = function()
   return pipelined
end
