-- Charges back what a replica admitted on its own while Redis was unreachable (degraded mode),
-- so that windows spanning the outage's end still hold across the fleet.
--
-- Contract:
--   KEYS[i]            limiter key of policy i, i = 1..n (n >= 1), as for gcra.lua
--   ARGV[4i-3 .. 4i]   burst (integer >= 1), rate (integer >= 1 per period), period (seconds > 0),
--                      cost (integer >= 0): requests admitted locally that elapsed time has not
--                      yet paid for (the replica's outstanding local debt on this policy)
-- Reply: the Redis time of the charge in integer microseconds (as a string).
--
-- Unlike gcra.lua this never denies: each TAT advances by interval * cost from max(TAT, now), but
-- not beyond now + interval * burst (a full bucket's debt; the GCRA state cannot owe more without
-- refusing for longer than the policy's own window, which no admission pattern within the policy
-- could cause). Same integer-microsecond arithmetic and key expiry as gcra.lua.
local n = #KEYS
if n < 1 or #ARGV ~= 4 * n then return redis.error_reply('ERR gcra_charge: 4 arguments (burst, rate, period, cost) per key') end
local floor, format = math.floor, string.format
local MAX_OFFSET = 2251799813685248
local time = redis.call('TIME')
local now = time[1] * 1000000 + time[2]
local plan = {}
for i = 1, n do
  local a = 4 * i - 4
  local burst, rate, period, cost = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  if burst == nil or not (burst >= 1 and burst < MAX_OFFSET) or burst % 1 ~= 0 then return redis.error_reply('ERR gcra_charge: burst must be an integer >= 1') end
  if rate == nil or not (rate >= 1 and rate < MAX_OFFSET) or rate % 1 ~= 0 then return redis.error_reply('ERR gcra_charge: rate must be an integer >= 1') end
  if period == nil or not (period > 0 and period <= 1e9) then return redis.error_reply('ERR gcra_charge: period must be a number of seconds > 0') end
  if cost == nil or not (cost >= 0 and cost < MAX_OFFSET) or cost % 1 ~= 0 then return redis.error_reply('ERR gcra_charge: cost must be an integer >= 0') end
  local period_us = floor(period * 1000000 + 0.5)
  if period_us < 1 then return redis.error_reply('ERR gcra_charge: period must be at least one microsecond') end
  local interval = period_us / rate
  if interval % 1 ~= 0 then interval = floor(interval) + 1 end
  if interval * burst >= MAX_OFFSET or interval * cost >= MAX_OFFSET then return redis.error_reply('ERR gcra_charge: burst, cost or period out of range') end
  plan[3 * i - 2], plan[3 * i - 1], plan[3 * i] = burst, interval, cost
end
for i = 1, n do
  local burst, interval, cost = plan[3 * i - 2], plan[3 * i - 1], plan[3 * i]
  if cost > 0 then
    local tat = now
    local stored = redis.call('GET', KEYS[i])
    if stored then
      tat = tonumber(stored)
      if tat == nil then return redis.error_reply('ERR gcra_charge: key ' .. KEYS[i] .. ' does not hold a GCRA state') end
      if tat < now then tat = now end
    end
    local new_tat = tat + interval * cost
    if new_tat > now + interval * burst then new_tat = now + interval * burst end
    if new_tat > tat then
      local ttl = (new_tat - now) / 1000000
      if ttl % 1 ~= 0 then ttl = floor(ttl) + 1 end
      redis.call('SET', KEYS[i], format('%.0f', new_tat), 'EX', ttl)
    end
  end
end
return format('%.0f', now)
