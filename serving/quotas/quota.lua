--[[
One atomic admission decision for one API call, and its query-log record, in one round trip.

KEYS[1]  the API key's counter prefix        moat:{qN}:k:<key id>
KEYS[2]  the organization's counter prefix   moat:{qN}:o:<organization id>
KEYS[3]  the query-log stream of the shard   moat:{qN}:querylog
All three share the hash tag {qN}, so every key the script touches (the prefixes plus window suffixes built
here from Redis's own clock) lives in one Redis Cluster slot.

ARGV[1]  cost in units (the batch size; 1 for calls without inputs)
ARGV[2]  "1" if the call is billable (counted against the month)
ARGV[3]  "1" if the monthly included amount is a hard stop (free tier)
ARGV[4..6]  per-key limits: minute, hour, day
ARGV[7..9]  per-organization limits: minute, hour, day
ARGV[10] monthly included units
ARGV[11] the record to append when admitted (JSON)
ARGV[12] the record to append when refused (JSON with the placeholder __WINDOW__)

Returns {"capped", ...} for a billable call of an organization at its spend cap; {"seed", "YYYYMM"} when the month's counter is missing (new month, or a Redis restart lost it: the caller rebuilds it
from PostgreSQL and calls again), else {"ok"|"refused", window, limit, remaining, reset_seconds, retry_after}.
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local second = tonumber(time[1])
local cost = tonumber(ARGV[1])
local billable = ARGV[2] == '1'
local hard_monthly = ARGV[3] == '1'

-- Civil date from days since the epoch (H. Hinnant's algorithm), for calendar-month buckets on Redis's clock.
local days = math.floor(second / 86400)
local z = days + 719468
local era = math.floor(z / 146097)
local doe = z - era * 146097
local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
local mp = math.floor((5 * doy + 2) / 153)
local month = mp < 10 and mp + 3 or mp - 9
local year = yoe + era * 400 + (month <= 2 and 1 or 0)
local next_year, next_month = year, month + 1
if next_month == 13 then next_year, next_month = year + 1, 1 end
-- Days from the epoch to the first of next month (inverse of the above).
local function days_from_civil(y, m)
  y = m <= 2 and y - 1 or y
  local e = math.floor(y / 400)
  local ye = y - e * 400
  local mo = m > 2 and m - 3 or m + 9
  local dy = math.floor((153 * mo + 2) / 5)
  local de = ye * 365 + math.floor(ye / 4) - math.floor(ye / 100) + dy
  return e * 146097 + de - 719468
end
local month_end = days_from_civil(next_year, next_month) * 86400
local period = string.format('%04d%02d', year, month)
local month_key = KEYS[2] .. ':mo:' .. period

if redis.call('EXISTS', month_key) == 0 then
  return {'seed', period}
end

-- An organization whose invoice preview reached its spend cap gets no billable call until the period ends or an
-- owner raises the cap (the flag holds the period it was set for, so a new month clears it by itself).
if billable and redis.call('GET', KEYS[2] .. ':capped') == period then
  local capped_record = string.gsub(ARGV[12], '__WINDOW__', 'spend_cap')
  capped_record = string.gsub(capped_record, '"status":429', '"status":402')
  capped_record = string.gsub(capped_record, '"error_code":"rate_limited"', '"error_code":"spend_cap_reached"')
  redis.call('XADD', KEYS[3], '*', 'r', capped_record)
  local until_month_end = math.ceil(month_end - now)
  return {'capped', 'spend_cap', 0, 0, until_month_end, until_month_end}
end

local factor = tonumber(redis.call('GET', KEYS[2] .. ':factor') or '1')
local function scaled(limit)
  return math.floor(tonumber(limit) * factor)
end

local minute, hour, day = math.floor(second / 60), math.floor(second / 3600), math.floor(second / 86400)
local windows = {
  {'organization_minute', KEYS[2] .. ':m:' .. minute, scaled(ARGV[7]), (minute + 1) * 60, 120},
  {'organization_hour', KEYS[2] .. ':h:' .. hour, scaled(ARGV[8]), (hour + 1) * 3600, 7200},
  {'organization_day', KEYS[2] .. ':d:' .. day, scaled(ARGV[9]), (day + 1) * 86400, 172800},
}
-- A key's use never exceeds its organization's, so a per-key window only matters when its limit is lower; where
-- the limits are equal (the seeded tiers) the key's counters are skipped: three reads and writes fewer per call.
local key_windows = {
  {'key_minute', KEYS[1] .. ':m:' .. minute, ARGV[4], ARGV[7], (minute + 1) * 60, 120},
  {'key_hour', KEYS[1] .. ':h:' .. hour, ARGV[5], ARGV[8], (hour + 1) * 3600, 7200},
  {'key_day', KEYS[1] .. ':d:' .. day, ARGV[6], ARGV[9], (day + 1) * 86400, 172800},
}
for _, w in ipairs(key_windows) do
  if tonumber(w[3]) < tonumber(w[4]) then
    table.insert(windows, 1, {w[1], w[2], scaled(w[3]), w[5], w[6]})
  end
end
if billable and hard_monthly then
  -- The month is what the customer bought: the adaptive factor scales the rate windows only.
  table.insert(windows, {'organization_month', month_key, tonumber(ARGV[10]), month_end, 0})
end

-- The tightest window (least remaining) names the headers; a refusal waits for the latest refusing window.
local tight_name, tight_limit, tight_remaining, tight_reset = nil, 0, math.huge, 0
local refused_name, refused_limit, retry_at = nil, 0, 0
for _, w in ipairs(windows) do
  local used = tonumber(redis.call('GET', w[2]) or '0')
  local remaining = w[3] - used
  if remaining < tight_remaining then
    tight_name, tight_limit, tight_remaining, tight_reset = w[1], w[3], remaining, w[4]
  end
  if used + cost > w[3] and w[4] > retry_at then
    refused_name, refused_limit, retry_at = w[1], w[3], w[4]
  end
end

if refused_name then
  local refused_record = string.gsub(ARGV[12], '__WINDOW__', refused_name)
  redis.call('XADD', KEYS[3], '*', 'r', refused_record)
  return {'refused', refused_name, refused_limit, math.max(tight_remaining, 0),
          math.ceil(tight_reset - now), math.ceil(retry_at - now)}
end

for _, w in ipairs(windows) do
  if redis.call('INCRBY', w[2], cost) == cost and w[5] > 0 then
    redis.call('EXPIRE', w[2], w[5])
  end
end
if billable and not hard_monthly then
  redis.call('INCRBY', month_key, cost)  -- paid tiers: the month is counted for overage billing, not enforced
end
redis.call('XADD', KEYS[3], '*', 'r', ARGV[11])
return {'ok', tight_name, tight_limit, math.max(tight_remaining - cost, 0), math.ceil(tight_reset - now), 0}
