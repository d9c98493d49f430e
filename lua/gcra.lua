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

-- Cost: every call runs this whole file, so it allocates as little as it can (no closures, one
-- flat state table, one reply table), formats each distinct number once and checks arguments with
-- plain comparisons. Measured with scripts/bench-lua.

local n = #KEYS
local argc = #ARGV
if n < 1 then return redis.error_reply('ERR gcra: at least one key is required') end
if argc < 4 * n then return redis.error_reply('ERR gcra: 4 arguments (burst, rate, period, cost) are required per key') end
local floor, format = math.floor, string.format
-- Bound on every offset in microseconds (2^51), keeping now + offsets exact as doubles (< 2^53).
local MAX_OFFSET = 2251799813685248

local horizon_us = 0
if argc > 4 * n then
  local horizon = tonumber(ARGV[4 * n + 1])
  if horizon == nil or not (horizon >= 0 and horizon <= 1e9) then
    return redis.error_reply('ERR gcra: horizon must be a number of seconds >= 0')
  end
  horizon_us = floor(horizon * 1000000 + 0.5)
end

-- Per policy i, six slots from 6i-5: burst, interval (us), cost, tat, new tat, diff.
-- (`x >= a and x < b` is false for NaN, so every range check below also refuses NaN.)
local st = {}
for i = 1, n do
  local a = 4 * i - 4
  local burst = tonumber(ARGV[a + 1])
  if burst == nil or not (burst >= 1 and burst < MAX_OFFSET) or burst % 1 ~= 0 then
    return redis.error_reply('ERR gcra: burst must be an integer >= 1')
  end
  local rate = tonumber(ARGV[a + 2])
  if rate == nil or not (rate >= 1 and rate < MAX_OFFSET) or rate % 1 ~= 0 then
    return redis.error_reply('ERR gcra: rate must be an integer >= 1')
  end
  local period = tonumber(ARGV[a + 3])
  if period == nil or not (period > 0 and period <= 1e9) then
    return redis.error_reply('ERR gcra: period must be a number of seconds > 0')
  end
  local cost = tonumber(ARGV[a + 4])
  if cost == nil or not (cost >= 0 and cost < MAX_OFFSET) or cost % 1 ~= 0 then
    return redis.error_reply('ERR gcra: cost must be an integer >= 0')
  end
  local period_us = floor(period * 1000000 + 0.5)
  if period_us < 1 then return redis.error_reply('ERR gcra: period must be at least one microsecond') end
  local interval = period_us / rate
  if interval % 1 ~= 0 then interval = floor(interval) + 1 end
  if interval * burst >= MAX_OFFSET or interval * cost >= MAX_OFFSET then
    return redis.error_reply('ERR gcra: burst, cost or period out of range')
  end
  local b = 6 * i - 6
  st[b + 1] = burst
  st[b + 2] = interval
  st[b + 3] = cost
end

local time = redis.call('TIME')
local now = time[1] * 1000000 + time[2]

-- Evaluate every policy before writing anything (all-or-nothing).
local denied = false
for i = 1, n do
  local b = 6 * i - 6
  local tat = now
  local stored = redis.call('GET', KEYS[i])
  if stored then
    tat = tonumber(stored)
    if tat == nil then return redis.error_reply('ERR gcra: key ' .. KEYS[i] .. ' does not hold a GCRA state') end
    if tat < now then tat = now end
  end
  local interval = st[b + 2]
  local new_tat = tat + interval * st[b + 3]
  local diff = now - (new_tat - interval * st[b + 1]) -- < 0: not enough capacity
  st[b + 4] = tat
  st[b + 5] = new_tat
  st[b + 6] = diff
  if diff < 0 then denied = true end
end

local delay_us = 0
-- A denial within the horizon becomes a reservation: charged like an admission, served later.
if denied and horizon_us > 0 then
  local wait = 0
  for i = 1, n do
    local b = 6 * i - 6
    local diff = st[b + 6]
    if diff < 0 and -diff > wait then wait = -diff end
    -- a cost above a policy's burst can never be served, however long it waits
    if st[b + 3] > st[b + 1] then wait = horizon_us + 1 end
  end
  if wait <= horizon_us then
    denied = false
    delay_us = wait
  end
end

-- Per policy: remaining, retry_after, reset_after; the deciding policy's go in front too.
local reply = { 0, 0, '-1', '0', 1 }
local decisive, best = 1, nil
for i = 1, n do
  local b = 6 * i - 6
  local interval, diff = st[b + 2], st[b + 6]
  local remaining, retry, reset
  if denied then
    -- remaining before charging: the state is left untouched
    remaining = floor((now - (st[b + 4] - interval * st[b + 1])) / interval)
    if remaining < 0 then remaining = 0 end
    if diff < 0 then
      retry = format('%.6f', -diff / 1000000)
      if best == nil or -diff > best then best, decisive = -diff, i end
    else
      retry = '-1'
    end
    reset = format('%.6f', (st[b + 4] - now) / 1000000)
  else
    remaining = floor(diff / interval)
    if remaining < 0 then remaining = 0 end
    retry = '-1'
    local reset_us = st[b + 5] - now
    reset = format('%.6f', reset_us / 1000000)
    if st[b + 3] > 0 then
      local ttl = reset_us / 1000000
      if ttl % 1 ~= 0 then ttl = floor(ttl) + 1 end
      redis.call('SET', KEYS[i], format('%.0f', st[b + 5]), 'EX', ttl)
    end
    if best == nil or remaining < best then best, decisive = remaining, i end
  end
  reply[3 * i + 3] = remaining
  reply[3 * i + 4] = retry
  reply[3 * i + 5] = reset
end
local d = 3 * decisive
if denied then
  reply[3] = reply[d + 4]
else
  reply[1] = st[6 * decisive - 3]
  reply[2] = reply[d + 3]
end
reply[4] = reply[d + 5]
reply[5] = decisive
reply[6 + 3 * n] = delay_us == 0 and '0.000000' or format('%.6f', delay_us / 1000000)
reply[7 + 3 * n] = format('%.0f', now)
return reply
