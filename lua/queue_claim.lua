-- Deferred-job queue: a worker claims jobs whose slot has come, and jobs whose worker vanished
-- are reclaimed. (A reliable delayed queue: the due set is ordered by slot, so a worker never starts
-- a job before its not_before, and one key's jobs start in the order their slots were reserved.)
--
-- Every key the script touches is declared (Redis Cluster needs that): the caller first reads the
-- candidates — the ids in this claim's token record, the first running ids by deadline, the first
-- due ids by slot — and passes their job hashes. Candidates are re-checked here on Redis' clock; a
-- candidate another worker took meanwhile is skipped.
--
--   KEYS[1]  due      sorted set: job id -> not_before (us)
--   KEYS[2]  running  sorted set: job id -> visibility deadline (us)
--   KEYS[3]  stats    hash: completed, failed, reclaimed (totals over all workers)
--   KEYS[4]  claim    list: the ids this claim token took (kept for one visibility timeout)
--   KEYS[5..] job hashes of the candidates, aligned with ARGV[5..]
--   ARGV[1]  most jobs to claim (integer >= 1)
--   ARGV[2]  visibility timeout (integer us >= 1): a claimed job not completed by then is reclaimed
--   ARGV[3]  worker name (recorded on the job)
--   ARGV[4]  how many of the candidates are reclaim candidates (they come first)
--   ARGV[5..] candidate job ids
-- A claim token makes a retried claim idempotent: when the reply of a claim is lost (a timeout, a
-- broken connection) the worker sends the same token again and gets the same jobs back, rather
-- than leaving them unowned until the visibility timeout.
-- Reply: {now, next_due, reclaimed, id_1, key_id_1, input_1, not_before_1, attempts_1, id_2, ...}
--   now        Redis time (us); next_due: the earliest not_before still queued, or -1 if none
--   reclaimed  jobs moved back from running to due by this call
-- All times are strings of integer microseconds.

local function fail(message)
  return redis.error_reply('ERR queue: ' .. message)
end

if #KEYS < 4 or #ARGV < 4 then return fail('claim takes at least 4 keys and 4 arguments') end
local count = tonumber(ARGV[1])
local visibility = tonumber(ARGV[2])
local reclaim_candidates = tonumber(ARGV[4])
if count == nil or count < 1 or count ~= math.floor(count) then return fail('count must be an integer >= 1') end
if visibility == nil or visibility < 1 or visibility ~= math.floor(visibility) then
  return fail('visibility timeout must be integer microseconds >= 1')
end
if reclaim_candidates == nil or reclaim_candidates < 0 or reclaim_candidates > #KEYS - 4 then
  return fail('reclaim candidates must be an integer within the candidates given')
end
if #ARGV - 4 ~= #KEYS - 4 then return fail('one job key per candidate id') end

local job_key = {}
for i = 5, #KEYS do job_key[ARGV[i]] = KEYS[i] end

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local function terminal(status) return status == 'succeeded' or status == 'failed' end
local reply = { string.format('%.0f', now), '-1', 0 }

local function emit(id, attempts)
  local fields = redis.call('HMGET', job_key[id], 'key_id', 'input', 'not_before')
  for _, value in ipairs({ id, fields[1], fields[2], fields[3], attempts }) do reply[#reply + 1] = value end
end

local function next_due()
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if first[2] then reply[2] = first[2] end
end

-- A retried claim: the same jobs again, those still running for this worker, nothing new.
local previous = redis.call('LRANGE', KEYS[4], 0, -1)
if #previous > 0 then
  for _, id in ipairs(previous) do
    local key = job_key[id]
    if key then
      local fields = redis.call('HMGET', key, 'status', 'worker', 'attempts')
      if fields[1] == 'running' and fields[2] == ARGV[3] then emit(id, tonumber(fields[3])) end
    end
  end
  next_due()
  return reply
end

-- Reclaim: a running job past its deadline goes back to due at its original slot (FIFO intact).
local reclaimed = 0
for i = 5, 4 + reclaim_candidates do
  local id = ARGV[i]
  local deadline = redis.call('ZSCORE', KEYS[2], id)
  if deadline and tonumber(deadline) <= now then
    redis.call('ZREM', KEYS[2], id)
    local fields = redis.call('HMGET', KEYS[i], 'status', 'not_before')
    if fields[1] and not terminal(fields[1]) then
      redis.call('ZADD', KEYS[1], fields[2], id)
      redis.call('HSET', KEYS[i], 'status', 'queued')
      reclaimed = reclaimed + 1
    end
  end
end
if reclaimed > 0 then redis.call('HINCRBY', KEYS[3], 'reclaimed', reclaimed) end
reply[3] = reclaimed

-- Claim: every candidate now due (reclaimed ones included), in slot order, up to count.
local due, seen = {}, {}
for i = 5, #ARGV do
  local id = ARGV[i]
  if not seen[id] then
    seen[id] = true
    local slot = redis.call('ZSCORE', KEYS[1], id)
    if slot and tonumber(slot) <= now then due[#due + 1] = { id = id, slot = tonumber(slot) } end
  end
end
table.sort(due, function(a, b) return a.slot < b.slot or (a.slot == b.slot and a.id < b.id) end)
local claimed = {}
for i = 1, math.min(count, #due) do
  local id = due[i].id
  redis.call('ZREM', KEYS[1], id)
  local status = redis.call('HGET', job_key[id], 'status')
  -- a job already finished (its first run completed after it was reclaimed) or gone is dropped
  if status and not terminal(status) then
    local attempts = redis.call('HINCRBY', job_key[id], 'attempts', 1)
    redis.call('HSET', job_key[id], 'status', 'running', 'worker', ARGV[3], 'started_at', reply[1])
    redis.call('ZADD', KEYS[2], now + visibility, id)
    claimed[#claimed + 1] = id
    emit(id, attempts)
  end
end
if #claimed > 0 then
  redis.call('RPUSH', KEYS[4], unpack(claimed))
  redis.call('PEXPIRE', KEYS[4], math.ceil(visibility / 1000))
end

next_due()
return reply
