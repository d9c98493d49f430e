-- Deferred-job queue: record a job's outcome exactly once (idempotent by job id).
--
-- A job may run twice (its worker stalled past the visibility timeout and another reclaimed it);
-- only the first outcome is written, counted and released from the key's depth.
--
--   KEYS[1]  running  sorted set      KEYS[2]  depth  hash      KEYS[3]  stats  hash
--   KEYS[4]  job      hash of the job (same hash tag)
--   ARGV[1]  job id   ARGV[2] outcome: "succeeded" or "failed"   ARGV[3] result JSON or error text
--   ARGV[4]  result lifetime (integer seconds >= 1)             ARGV[5] worker name
-- Reply: 1 when this call wrote the outcome, 0 when it was already written or the job is gone.

if #KEYS ~= 4 or #ARGV ~= 5 then return redis.error_reply('ERR queue: complete takes 4 keys and 5 arguments') end
local outcome = ARGV[2]
if outcome ~= 'succeeded' and outcome ~= 'failed' then
  return redis.error_reply('ERR queue: outcome must be succeeded or failed')
end
local ttl = tonumber(ARGV[4])
if ttl == nil or ttl < 1 or ttl > 315360000 or ttl ~= math.floor(ttl) then
  return redis.error_reply('ERR queue: result lifetime must be whole seconds from 1 to 315360000')
end

local fields = redis.call('HMGET', KEYS[4], 'status', 'key_id')
local status = fields[1]
if not status or status == 'succeeded' or status == 'failed' then
  redis.call('ZREM', KEYS[1], ARGV[1])  -- a finished or expired job has nothing left to run
  return 0
end

local time = redis.call('TIME')
local now = string.format('%.0f', tonumber(time[1]) * 1000000 + tonumber(time[2]))
local field = 'result'
if outcome == 'failed' then field = 'error' end
redis.call('HSET', KEYS[4], 'status', outcome, field, ARGV[3], 'completed_at', now, 'completed_by', ARGV[5])
redis.call('EXPIRE', KEYS[4], ttl)
redis.call('ZREM', KEYS[1], ARGV[1])
local depth = redis.call('HINCRBY', KEYS[2], fields[2], -1)
if depth <= 0 then redis.call('HDEL', KEYS[2], fields[2]) end
redis.call('HINCRBY', KEYS[3], outcome == 'failed' and 'failed' or 'completed', 1)
return 1
