-- A replica says it is alive, and learns how many are: the count degraded mode divides limits by.
--
-- Contract:
--   KEYS[1]   the sorted set of replicas (member: replica id, score: last heartbeat, ms, Redis' clock)
--   ARGV[1]   this replica's id (1-128 bytes)
--   ARGV[2]   how long a heartbeat counts, in milliseconds (integer 1..3600000)
-- Reply: the number of replicas whose last heartbeat is within ARGV[2] (this one included).
--
-- Redis' clock, so that replicas with skewed clocks agree on who is alive.
if #KEYS ~= 1 or #ARGV ~= 2 then return redis.error_reply('ERR heartbeat: 1 key and 2 arguments (id, ttl ms) are required') end
local id, ttl = ARGV[1], tonumber(ARGV[2])
if #id < 1 or #id > 128 then return redis.error_reply('ERR heartbeat: id must be 1-128 bytes') end
if ttl == nil or not (ttl >= 1 and ttl <= 3600000) or ttl % 1 ~= 0 then return redis.error_reply('ERR heartbeat: ttl must be 1-3600000 ms') end
local time = redis.call('TIME')
local now = time[1] * 1000 + math.floor(time[2] / 1000)
redis.call('ZADD', KEYS[1], now, id)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[1], ttl * 10)
return redis.call('ZCARD', KEYS[1])
