-- Charges back what a replica admitted on its own while Redis was unreachable (degraded mode),
-- so that windows spanning the outage's end still hold across the fleet.
--
-- Contract:
--   KEYS[i]                 limiter key of policy i, i = 1..n (n >= 1), as for gcra.lua
--   ARGV[2i-1], ARGV[2i]    policy i's charge and allowance, integer microseconds in hexadecimal
--                           as for gcra.lua: charge = interval x the requests admitted locally that
--                           elapsed time has not yet paid for (the replica's outstanding local debt
--                           on this policy), allowance = interval x burst
-- Reply: the Redis time of the charge in integer microseconds.
--
-- Unlike gcra.lua this never denies: each TAT advances by the charge from max(TAT, now), but not
-- beyond now + allowance (a full bucket's debt; the GCRA state cannot owe more without refusing
-- for longer than the policy's own window, which no admission pattern within the policy could
-- cause). Same integer-microsecond arithmetic and key expiry as gcra.lua.
local n = #KEYS
if n < 1 or #ARGV ~= 2 * n then return redis.error_reply('ERR gcra_charge: 2 arguments (charge, allowance) per key') end
local MAX = 2251799813685248
local time = redis.call('TIME')
local now = time[1] * 1000000 + time[2]
local plan = {}
for i = 1, n do
  local charge, allowance = tonumber(ARGV[2 * i - 1], 16), tonumber(ARGV[2 * i], 16)
  if not (charge and charge < MAX) then return redis.error_reply('ERR gcra_charge: charge must be a hexadecimal integer number of microseconds below 2^51') end
  if not (allowance and allowance >= 1 and allowance < MAX) then return redis.error_reply('ERR gcra_charge: allowance must be a hexadecimal integer number of microseconds from 1 to 2^51') end
  plan[2 * i - 1], plan[2 * i] = charge, allowance
end
for i = 1, n do
  local charge, allowance = plan[2 * i - 1], plan[2 * i]
  if charge > 0 then
    local tat = now
    local stored = redis.call('GET', KEYS[i])
    if stored then
      tat = tonumber(stored)
      if tat == nil then return redis.error_reply('ERR gcra_charge: key ' .. KEYS[i] .. ' does not hold a GCRA state') end
      if tat < now then tat = now end
    end
    local new_tat = tat + charge
    if new_tat > now + allowance then new_tat = now + allowance end
    if new_tat > tat then
      local text = string.format('%d', new_tat)
      redis.call('SET', KEYS[i], text, 'PXAT', string.sub(text, 1, -4))
    end
  end
end
return now
