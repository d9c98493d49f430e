-- Deferred-job queue: enqueue one job whose rate-limit slot was already reserved (gcra.lua with a
-- horizon), unless its key already has max_depth jobs pending.
--
-- Every key of the queue shares the hash tag of KEYS[1] (e.g. "sluice:{jobs}:due"), so the queue is
-- one Redis Cluster slot and its scripts stay atomic there; job hashes are KEYS[3]'s siblings.
--
--   KEYS[1]  due      sorted set: job id -> not_before (us since the epoch, Redis clock)
--   KEYS[2]  depth    hash: key id -> jobs pending (queued or running) for that key
--   KEYS[3]  job      hash of the new job
--   ARGV[1]  job id   ARGV[2] key id   ARGV[3] input (JSON)   ARGV[4] not_before (integer us)
--   ARGV[5]  max_depth (integer >= 1)
-- Reply: {1, depth after} when queued, {0, depth} when the key's queue is full.
-- Errors: "ERR queue: ..." on invalid arguments or a job id already in use; nothing is written.

local function fail(message)
  return redis.error_reply('ERR queue: ' .. message)
end

if #KEYS ~= 3 or #ARGV ~= 5 then return fail('enqueue takes 3 keys and 5 arguments') end

local not_before = tonumber(ARGV[4])
local max_depth = tonumber(ARGV[5])
if ARGV[1] == nil or ARGV[1] == '' or ARGV[2] == nil or ARGV[2] == '' or ARGV[3] == nil then
  return fail('job id, key id and input are required')
end
if not_before == nil or not_before ~= math.floor(not_before) or not_before < 0 or not_before >= 2^53 then
  return fail('not_before must be integer microseconds')
end
-- Written as parsed (tonumber also takes ' 1' or '0x10', which ZADD would refuse after HSET wrote).
local slot = string.format('%.0f', not_before)
if max_depth == nil or max_depth < 1 or max_depth ~= math.floor(max_depth) then
  return fail('max_depth must be an integer >= 1')
end

local depth = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
if depth >= max_depth then return { 0, depth } end
if redis.call('EXISTS', KEYS[3]) == 1 then return fail('job id already in use') end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
redis.call('HSET', KEYS[3],
  'key_id', ARGV[2], 'input', ARGV[3], 'not_before', slot,
  'created_at', string.format('%.0f', now), 'status', 'queued', 'attempts', 0)
redis.call('ZADD', KEYS[1], slot, ARGV[1])
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
return { 1, depth + 1 }
