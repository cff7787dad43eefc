-- Password-reset requests: one fixed-window counter per scope (the client IP, the account), counted together in one
-- atomic step. KEYS: the counters. ARGV[1]: the window in seconds.
-- Returns, for each key in order, its count including this request and its seconds to live.
local result = {}
for _, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then
    redis.call('EXPIRE', key, ARGV[1])
  end
  local ttl = redis.call('TTL', key)
  if ttl < 0 then  -- a counter left without an expiry (a crash between the two calls) must not block forever
    redis.call('EXPIRE', key, ARGV[1])
    ttl = tonumber(ARGV[1])
  end
  result[#result + 1] = count
  result[#result + 1] = ttl
end
return result
