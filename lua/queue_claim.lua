-- Deferred-job queue: a worker claims jobs whose slot has come, and jobs whose worker vanished
-- are reclaimed. (A reliable delayed queue: the due set is ordered by slot, so a worker never starts
-- a job before its not_before, and one key's jobs start in the order their slots were reserved.)
--
--   KEYS[1]  due      sorted set: job id -> not_before (us)
--   KEYS[2]  running  sorted set: job id -> visibility deadline (us)
--   KEYS[3]  stats    hash: completed, failed, reclaimed (totals over all workers)
--   ARGV[1]  prefix of job hashes (job key = prefix .. id, same hash tag as KEYS[1])
--   ARGV[2]  most jobs to claim (integer >= 1)
--   ARGV[3]  visibility timeout (integer us >= 1): a claimed job not completed by then is reclaimed
--   ARGV[4]  worker name (recorded on the job)
-- Reply: {now, next_due, reclaimed, id_1, key_id_1, input_1, not_before_1, attempts_1, id_2, ...}
--   now        Redis time (us); next_due: the earliest not_before still queued, or -1 if none
--   reclaimed  jobs moved back from running to due by this call
-- All times are strings of integer microseconds.

local function fail(message)
  return redis.error_reply('ERR queue: ' .. message)
end

local count = tonumber(ARGV[2])
local visibility = tonumber(ARGV[3])
if count == nil or count < 1 or count ~= math.floor(count) then return fail('count must be an integer >= 1') end
if visibility == nil or visibility < 1 or visibility ~= math.floor(visibility) then
  return fail('visibility timeout must be integer microseconds >= 1')
end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local function terminal(status) return status == 'succeeded' or status == 'failed' end

-- Reclaim: a running job past its deadline goes back to due at its original slot (FIFO intact).
local reclaimed = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)) do
  redis.call('ZREM', KEYS[2], id)
  local job = ARGV[1] .. id
  local fields = redis.call('HMGET', job, 'status', 'not_before')
  if fields[1] and not terminal(fields[1]) then
    redis.call('ZADD', KEYS[1], fields[2], id)
    redis.call('HSET', job, 'status', 'queued')
    reclaimed = reclaimed + 1
  end
end
if reclaimed > 0 then redis.call('HINCRBY', KEYS[3], 'reclaimed', reclaimed) end

local reply = { string.format('%.0f', now), '-1', reclaimed }
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, count)) do
  redis.call('ZREM', KEYS[1], id)
  local job = ARGV[1] .. id
  local fields = redis.call('HMGET', job, 'status', 'key_id', 'input', 'not_before')
  -- a job already finished (its first run completed after it was reclaimed) or gone is dropped
  if fields[1] and not terminal(fields[1]) then
    local attempts = redis.call('HINCRBY', job, 'attempts', 1)
    redis.call('HSET', job, 'status', 'running', 'worker', ARGV[4], 'started_at', reply[1])
    redis.call('ZADD', KEYS[2], now + visibility, id)
    for _, value in ipairs({ id, fields[2], fields[3], fields[4], attempts }) do reply[#reply + 1] = value end
  end
end

local next_due = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if next_due[2] then reply[2] = next_due[2] end
return reply
