-- GCRA (generic cell rate algorithm) rate limiter, all-or-nothing over one or more policies.
--
-- Contract:
--   KEYS[i]              limiter key of policy i, i = 1..n (n >= 1); with usage metering (below),
--                        usage hashes follow them; with "r:" (below), the request's record is last
--   ARGV[2i-1], ARGV[2i] policy i's charge and allowance, integer microseconds in hexadecimal:
--                        charge = emission interval (period / rate) x cost (0 only inspects,
--                        writing nothing); allowance = interval x burst (the GCRA tolerance),
--                        plus the request's horizon when it may be reserved: a request denied now
--                        whose slot comes within the horizon is charged exactly as an admission
--                        and served at its slot, so deferred and immediate work obey one rate.
-- Reply: one string, "<admitted> <seconds> <microseconds> <tat_1> ... <tat_n>" in decimal
--   admitted      1 when admitted or reserved (and charged to every policy), 0 when denied
--   seconds, µs   Redis' TIME at the decision: now = seconds x 10^6 + microseconds
--   tat_i         policy i's theoretical arrival time (TAT) with this request charged, µs on
--                 Redis' clock: what was written when admitted, what would have been when
--                 denied (nothing is written then)
-- Everything else (remaining, retry and reset times, the deciding policy, a reservation's delay)
-- follows from these and the caller's own interval and burst, so the caller computes it
-- (RateLimiter.decode): the script only does what needs the state — read, decide, write.
--
-- A request is admitted only if every policy admits it: max(stored TAT, now) + charge -
-- allowance <= now; then every policy's TAT becomes max(stored TAT, now) + charge.
--
-- Time comes from Redis TIME, never from the caller, so replicas with skewed clocks agree. All
-- arithmetic is in integer microseconds: Lua numbers are doubles, exact for integers below 2^53,
-- and "now" (~1.8e15) plus a stored offset (< allowance < 2^51) plus a charge (< 2^51) stays
-- under that. Each key expires at the millisecond its TAT falls in (PXAT floor(tat / 1000)):
-- Redis counts a key expired only once its time is past that millisecond, when the TAT is past
-- too, and a TAT in the past decides exactly as no key.
--
-- Cost: every admitted request pays this on Redis' single core, so it does little beyond the
-- commands (scripts/bench-lua compares it with a script of the same commands and nothing else).
-- The caller validates each policy once (Policy.validationError) and sends what the decision
-- uses, in hexadecimal because Lua's tonumber(s, 16) is strtoul, a fraction of the strtod that
-- decimal text costs. Each TAT is formatted once, for SET and reply alike; the reply is one
-- string, far cheaper for Redis than an array. The checks below only refuse what could corrupt
-- state or break exactness: tonumber(s, 16) gives nil or a whole number >= 0 (strtoul; a minus
-- sign wraps to above 2^63), so a range check is all that is left.

-- Options (all optional, in any order) follow the pairs; each is "<letter>:<value>" (a ':' second,
-- which no hexadecimal pair has, so a trailing option is told from a pair at a glance):
--   "u:<cost>:<flags>"  usage metering: count the decision in the hashes after the n policy keys,
--       in the same atomic call: per hour of Redis' clock (h = hours since the epoch), field
--       "<h>:a" (admitted requests) and "<h>:e" (their cost beyond one each, when above) when
--       admitted, "<h>:q" when a quota policy (flags: one '1' or '0' per policy, '1' for a daily
--       quota) refused it, else "<h>:r". A hash's first count in an hour sets it to expire 35 days
--       later.
--   "f:<floor_1>:...:<floor_n>"  a lower bound per policy on its TAT (hexadecimal µs, 0: none):
--       what the caller learnt from earlier replies. A stored TAT below its floor lost writes (a
--       Redis Cluster failover promotes a replica that missed the master's last writes); it is
--       repaired to the floor (written even when the request is then denied), so a failover
--       cannot hand out again what the old master had already charged. TATs only grow between
--       administrative changes, so a floor never makes a limit looser.
--   "r:<ttl ms>"  deduplicate this request: the last key is its record. A call whose record
--       exists answers the recorded reply and charges nothing; an admitted call writes its reply
--       there for ttl ms. A caller whose reply was lost (a timeout, a broken connection) can thus
--       retry without being charged twice. Record and charge are written by one script, so they
--       replicate (or are lost in a failover) together.
local n, nargs = #KEYS, #ARGV
local usage, floors, record
local byte = string.byte
while nargs > 0 and byte(ARGV[nargs], 2) == 58 do
  local option, tag = ARGV[nargs], byte(ARGV[nargs], 1)
  if tag == 117 and not usage then usage = option
  elseif tag == 102 and not floors then floors = option
  elseif tag == 114 and not record then record = tonumber(string.sub(option, 3))
    if not (record and record >= 1 and record <= 86400000 and record % 1 == 0) then
      return redis.error_reply('ERR gcra: "r:<ttl ms>" takes a whole number of milliseconds from 1 to 86400000')
    end
  else return redis.error_reply('ERR gcra: unknown or repeated option "' .. string.sub(option, 1, 2) .. '" (u:, f: and r: are known)') end
  nargs = nargs - 1
end
if nargs < 2 or nargs % 2 == 1 then
  return redis.error_reply('ERR gcra: 2 arguments (charge, allowance) per key are required')
end
n = nargs / 2
local extra = #KEYS - n - (record and 1 or 0)
if usage and extra < 1 then
  return redis.error_reply('ERR gcra: usage takes "u:<cost>:<flags>" and one usage key or more after the policy keys')
elseif not usage and extra ~= 0 then
  return redis.error_reply('ERR gcra: 2 arguments (charge, allowance) per key are required')
end
if record then
  local recorded = redis.call('GET', KEYS[#KEYS])
  if recorded then return recorded end
end
local floor
if floors then
  -- One floor per policy, between colons: found with plain find (gmatch costs far more).
  floor = {}
  local pos, find, sub = 3, string.find, string.sub
  for i = 1, n do
    if not pos then return redis.error_reply('ERR gcra: "f:<floor_1>:...:<floor_n>" takes one floor per policy') end
    local stop = find(floors, ':', pos, true)
    local value = tonumber(sub(floors, pos, stop and stop - 1 or -1), 16)
    if not value or value >= 9007199254740992 then
      return redis.error_reply('ERR gcra: a floor must be a hexadecimal integer number of microseconds below 2^53')
    end
    floor[i] = value
    pos = stop and stop + 1
  end
  if pos then return redis.error_reply('ERR gcra: "f:<floor_1>:...:<floor_n>" takes one floor per policy') end
end
-- Bound on every offset in microseconds (2^51), keeping now + offsets exact as doubles (< 2^53).
local MAX = 2251799813685248
local tonumber = tonumber
local time = redis.call('TIME')
local now = time[1] * 1000000 + time[2]

-- Decide over every policy before writing anything (all-or-nothing).
local format = string.format
local tats, admitted, charged, repaired = {}, true, false, nil
for i = 1, n do
  local charge, allowance = tonumber(ARGV[2 * i - 1], 16), tonumber(ARGV[2 * i], 16)
  if not (charge and charge < MAX) then
    return redis.error_reply('ERR gcra: charge must be a hexadecimal integer number of microseconds below 2^51')
  end
  if not (allowance and allowance >= 1 and allowance < MAX) then
    return redis.error_reply('ERR gcra: allowance must be a hexadecimal integer number of microseconds from 1 to 2^51')
  end
  local tat = redis.call('GET', KEYS[i])
  if tat then
    tat = tonumber(tat)
    if not tat then return redis.error_reply('ERR gcra: key ' .. KEYS[i] .. ' does not hold a GCRA state') end
  else
    tat = now
  end
  local lost = floor and floor[i]
  if lost and lost > tat and lost > now then
    if lost - now >= MAX then return redis.error_reply('ERR gcra: a floor must lie within 2^51 microseconds of now') end
    repaired = repaired or {}
    repaired[i] = format('%d', lost)
    tat = lost
  end
  if tat < now then tat = now end
  if charge > 0 then charged = true end
  tat = tat + charge
  if tat - allowance > now then admitted = false end
  tats[i] = tat
end

for i = 1, n do tats[i] = format('%d', tats[i]) end
if admitted and charged then
  local sub = string.sub
  for i = 1, n do
    local text = tats[i]
    redis.call('SET', KEYS[i], text, 'PXAT', sub(text, 1, -4))
  end
elseif repaired then
  for i, text in pairs(repaired) do redis.call('SET', KEYS[i], text, 'PXAT', string.sub(text, 1, -4)) end
end
if usage then
  local cost, flags = string.match(usage, '^u:(%d+):([01]*)$')
  if not cost or #flags ~= n then return redis.error_reply('ERR gcra: usage takes "u:<cost>:<flags>", one flag per policy') end
  local hour = format('%d', math.floor(time[1] / 3600))
  local counts
  if admitted then
    -- "<h>:e" holds only the cost beyond one per request (a batch): a single request writes one field.
    counts = cost == '1' and { hour .. ':a', 1 } or { hour .. ':a', 1, hour .. ':e', tonumber(cost) - 1 }
  else
    local reason = 'r'
    for i = 1, n do
      if string.sub(flags, i, i) == '1' and tonumber(tats[i]) - tonumber(ARGV[2 * i], 16) > now then reason = 'q' end
    end
    counts = { hour .. ':' .. reason, 1 }
  end
  for k = n + 1, n + extra do
    local first = false
    for j = 1, #counts, 2 do
      if redis.call('HINCRBY', KEYS[k], counts[j], counts[j + 1]) == counts[j + 1] then first = true end
    end
    if first then redis.call('PEXPIRE', KEYS[k], 3024000000) end
  end
end
local reply = (admitted and '1 ' or '0 ') .. time[1] .. ' ' .. time[2] .. ' ' .. (n == 1 and tats[1] or table.concat(tats, ' '))
if record and admitted and charged then redis.call('SET', KEYS[#KEYS], reply, 'PX', record) end
return reply
