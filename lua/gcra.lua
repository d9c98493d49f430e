-- GCRA (generic cell rate algorithm) rate limiter, all-or-nothing over one or more policies.
--
-- Contract (the first key and reply fields match go-redis/redis_rate's allow_n script, so that
-- published test cases of that family apply):
--   KEYS[i]            limiter key of policy i, i = 1..n (n >= 1)
--   ARGV[4i-3 .. 4i]   burst (integer >= 1), rate (integer >= 1 per period),
--                      period (seconds > 0, may be fractional), cost (integer >= 0; 0 only inspects)
--   ARGV[4n+1]         optional horizon (seconds >= 0): a request denied now whose retry time is
--                      within the horizon is not refused but *reserved*: every policy is charged
--                      as if it had been admitted (its TAT advances exactly as for an admission),
--                      and the reply's `delay` says when its slot comes. Deferred and immediate
--                      work therefore obey one rate, across all replicas. Absent or 0: no reservation.
-- Reply:
--   [1] allowed      the cost when admitted, 0 when denied (or when the cost is 0)
--   [2] remaining    requests still allowed now by the deciding policy
--   [3] retry_after  seconds until the request could be admitted, "-1" when admitted
--   [4] reset_after  seconds until the deciding policy is back at full burst
--   [5] decisive     index of the deciding policy: when denied the one with the longest retry_after,
--                    otherwise the one with the fewest remaining
--   [6 ..]           per policy i: remaining_i, retry_after_i, reset_after_i (state after this call)
--   [6+3n]           delay: seconds until the admitted request's slot ("0" when immediate; when
--                    reserved, allowed is the cost and retry_after is "-1", as for an admission)
--   [7+3n]           now: the Redis time of the decision in integer microseconds since the epoch
--                    (as a string), so that now + delay names the slot exactly, on Redis' clock
-- Seconds are returned as strings ("%.6f") because Redis truncates Lua numbers in replies to integers.
--
-- The request is admitted only if every policy admits it, and then it is charged to all of them;
-- a denied request and a cost-0 call write nothing. The key holds the theoretical arrival time
-- (TAT) in integer microseconds and expires ceil(reset_after) seconds after the last write.
--
-- Time comes from Redis TIME, never from the caller, so replicas with skewed clocks agree. All
-- arithmetic is in integer microseconds: Lua numbers are doubles, exact for integers below 2^53,
-- and "now" (~1.8e15 us) plus every offset allowed below stays under that. Float seconds since an
-- epoch, as some scripts of this family keep, lose precision as the offset grows.
--
-- The emission interval (period / rate) is rounded *up* to a whole microsecond, so a rounding error
-- can only make the limit stricter, never admit more (exact whenever 10^6 * period / rate is whole).

local function fail(message)
  return redis.error_reply('ERR gcra: ' .. message)
end

local n = #KEYS
if n < 1 then return fail('at least one key is required') end
if #ARGV < 4 * n then return fail('4 arguments (burst, rate, period, cost) are required per key') end
local horizon_us = 0
if ARGV[4 * n + 1] ~= nil then
  local horizon = tonumber(ARGV[4 * n + 1])
  if horizon == nil or horizon ~= horizon or horizon < 0 or horizon > 1e9 then
    return fail('horizon must be a number of seconds >= 0')
  end
  horizon_us = math.floor(horizon * 1000000 + 0.5)
end

-- Bound on every offset in microseconds, keeping now + offsets exact as doubles (< 2^53).
local MAX_OFFSET = 2 ^ 51

local function whole(value, min)
  local v = tonumber(value)
  if v == nil or v ~= v or v < min or v >= MAX_OFFSET or v ~= math.floor(v) then return nil end
  return v
end

local policies = {}
for i = 1, n do
  local base = 4 * (i - 1)
  local burst = whole(ARGV[base + 1], 1)
  if burst == nil then return fail('burst must be an integer >= 1') end
  local rate = whole(ARGV[base + 2], 1)
  if rate == nil then return fail('rate must be an integer >= 1') end
  local period = tonumber(ARGV[base + 3])
  if period == nil or period ~= period or period <= 0 or period > 1e9 then
    return fail('period must be a number of seconds > 0')
  end
  local cost = whole(ARGV[base + 4], 0)
  if cost == nil then return fail('cost must be an integer >= 0') end

  local period_us = math.floor(period * 1000000 + 0.5)
  if period_us < 1 then return fail('period must be at least one microsecond') end
  local interval = math.ceil(period_us / rate)
  if interval * burst >= MAX_OFFSET or interval * cost >= MAX_OFFSET then
    return fail('burst, cost or period out of range')
  end
  policies[i] = { key = KEYS[i], burst = burst, interval = interval, cost = cost }
end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

local function seconds(us)
  return string.format('%.6f', us / 1000000)
end

-- Evaluate every policy before writing anything (all-or-nothing).
local denied = false
for i = 1, n do
  local p = policies[i]
  local stored = redis.call('GET', p.key)
  local tat = now
  if stored then
    tat = tonumber(stored)
    if tat == nil then return fail('key ' .. p.key .. ' does not hold a GCRA state') end
    if tat < now then tat = now end
  end
  local burst_offset = p.interval * p.burst
  p.tat = tat
  p.new_tat = tat + p.interval * p.cost
  p.diff = now - (p.new_tat - burst_offset)  -- < 0: not enough capacity
  -- remaining before charging, for replies that leave the state untouched
  p.remaining_now = math.floor((now - (tat - burst_offset)) / p.interval)
  if p.diff < 0 then denied = true end
end

local reply = { 0, 0, '-1', '0', 1 }
local decisive = 1
local delay_us = 0

-- A denial within the horizon becomes a reservation: charged like an admission, served later.
if denied and horizon_us > 0 then
  local wait = 0
  for i = 1, n do
    local p = policies[i]
    if p.diff < 0 and -p.diff > wait then wait = -p.diff end
    -- a cost above a policy's burst can never be served, however long it waits
    if p.cost > p.burst then wait = horizon_us + 1 end
  end
  if wait <= horizon_us then
    denied = false
    delay_us = wait
  end
end

if denied then
  local longest = -1
  for i = 1, n do
    local p = policies[i]
    if p.diff < 0 and -p.diff > longest then
      longest = -p.diff
      decisive = i
    end
  end
  local p = policies[decisive]
  reply[1] = 0
  reply[2] = 0
  reply[3] = seconds(-p.diff)
  reply[4] = seconds(p.tat - now)
else
  local fewest = nil
  for i = 1, n do
    local p = policies[i]
    p.remaining = math.max(math.floor(p.diff / p.interval), 0)
    if p.cost > 0 then
      local reset_us = p.new_tat - now
      redis.call('SET', p.key, string.format('%.0f', p.new_tat), 'EX', math.ceil(reset_us / 1000000))
    end
    if fewest == nil or p.remaining < fewest then
      fewest = p.remaining
      decisive = i
    end
  end
  local p = policies[decisive]
  local admitted = p.cost
  reply[1] = admitted
  reply[2] = p.remaining
  reply[3] = '-1'
  reply[4] = seconds(p.new_tat - now)
end
reply[5] = decisive

for i = 1, n do
  local p = policies[i]
  local base = 5 + 3 * (i - 1)
  if denied then
    reply[base + 1] = math.max(p.remaining_now, 0)
    if p.diff < 0 then reply[base + 2] = seconds(-p.diff) else reply[base + 2] = '-1' end
    reply[base + 3] = seconds(p.tat - now)
  else
    reply[base + 1] = p.remaining
    reply[base + 2] = '-1'
    reply[base + 3] = seconds(p.new_tat - now)
  end
end
reply[6 + 3 * n] = seconds(delay_us)
reply[7 + 3 * n] = string.format('%.0f', now)
return reply
