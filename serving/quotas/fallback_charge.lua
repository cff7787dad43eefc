--[[
Charge one call that a web process served under the fallback while Redis was unreachable, now that Redis answers
again, and append its query-log record: the call counts in every window it fell in (per key and per organization:
minute, hour and day; the month for a billable call), so the counters say what was served and limiting is exact
again at once (the key's windows only where quota.lua keeps them: where the key's limit is below its
organization's). Windows that have ended meanwhile are not touched. The buckets are Redis's, as in quota.lua; the
call's own time (the web process's clock) only says which of them it fell in.

KEYS[1]  the API key's counter prefix        moat:{qN}:k:<key id>
KEYS[2]  the organization's counter prefix   moat:{qN}:o:<organization id>
KEYS[3]  the query-log stream of the shard   moat:{qN}:querylog

ARGV[1]  cost in units
ARGV[2]  "1" if the call is billable (counted against the month)
ARGV[3]  the call's time, epoch seconds
ARGV[4]  the call's month, YYYYMM (UTC)
ARGV[5]  the record to append (JSON)
ARGV[6]  the key's windows quota.lua keeps: a subset of "mhd" (minute, hour, day)
ARGV[7]  the call's request id when its quota script was sent unanswered (QuotaOutcomeUnknownError), else ""

A call whose quota script did run, but whose answer the web process never received (Redis was killed between
writing the script's effects to its append-only file and replying), was served under the fallback all the same: the
script already counted it and appended its record. Such a record is in the stream still, within seconds of the call
(the stream's ids are Redis's clock in milliseconds; a web host's clock may be a few seconds off): charging it again
would count it twice, so it is skipped (returns 0). Only such calls are looked for (ARGV[7]): the stream is scanned
for a handful of records after an outage, never for each of its calls. A record the flusher has already moved to
PostgreSQL is skipped by the caller (fallback_drain).
]]
if ARGV[7] ~= '' then
  local call_ms = math.floor(tonumber(ARGV[3]) * 1000)
  local nearby = redis.call('XRANGE', KEYS[3], call_ms - 5000, call_ms + 5000, 'COUNT', 5000)
  for _, entry in ipairs(nearby) do
    local payload = entry[2][2]
    if payload and string.find(payload, ARGV[7], 1, true) and string.find(payload, '"status":200', 1, true) then
      return 0
    end
  end
end
local now = tonumber(redis.call('TIME')[1])
local at = math.floor(tonumber(ARGV[3]))
local cost = tonumber(ARGV[1])
-- suffix, bucket length, expiry: as quota.lua names and expires them
local windows = {{'m', 60, 120}, {'h', 3600, 7200}, {'d', 86400, 172800}}
for _, w in ipairs(windows) do
  local bucket = math.floor(now / w[2])
  if math.floor(at / w[2]) == bucket then
    local prefixes = {KEYS[2]}
    if string.find(ARGV[6], w[1], 1, true) then
      table.insert(prefixes, KEYS[1])
    end
    for _, prefix in ipairs(prefixes) do
      local counter = prefix .. ':' .. w[1] .. ':' .. bucket
      if redis.call('INCRBY', counter, cost) == cost then
        redis.call('EXPIRE', counter, w[3])
      end
    end
  end
end
-- The month only if its counter exists: a missing one is rebuilt from PostgreSQL by the next decision.
local month_key = KEYS[2] .. ':mo:' .. ARGV[4]
if ARGV[2] == '1' and redis.call('EXISTS', month_key) == 1 then
  redis.call('INCRBY', month_key, cost)
end
redis.call('XADD', KEYS[3], '*', 'r', ARGV[5])
return 1
