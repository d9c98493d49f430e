-- Concurrency limit: takes one lease of a key's in-flight requests, if fewer than the limit are held.
--
-- Contract:
--   KEYS[1]   the sorted set of the key's leases (member: lease id, score: expiry, ms on Redis' clock)
--   ARGV[1]   the limit (integer >= 1)
--   ARGV[2]   this lease's id (1-64 bytes)
--   ARGV[3]   the lease timeout in ms (integer 1..86400000): a lease not released by then (its
--             replica died) no longer counts
-- Reply: { 1 when taken else 0, leases held now (this one included when taken),
--          ms until the earliest held lease expires (0 when taken) }
--
-- Expired leases are dropped first, on Redis' clock, so replicas with skewed clocks agree.
if #KEYS ~= 1 or #ARGV ~= 3 then return redis.error_reply('ERR lease: 1 key and 3 arguments (limit, id, timeout ms) are required') end
local limit, id, timeout = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
if limit == nil or not (limit >= 1 and limit <= 1000000000) or limit % 1 ~= 0 then return redis.error_reply('ERR lease: limit must be an integer >= 1') end
if #id < 1 or #id > 64 then return redis.error_reply('ERR lease: id must be 1-64 bytes') end
if timeout == nil or not (timeout >= 1 and timeout <= 86400000) or timeout % 1 ~= 0 then return redis.error_reply('ERR lease: timeout must be 1-86400000 ms') end
local time = redis.call('TIME')
local now = time[1] * 1000 + math.floor(time[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
if held >= limit then
  local earliest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return { 0, held, tonumber(earliest[2]) - now }
end
redis.call('ZADD', KEYS[1], now + timeout, id)
redis.call('PEXPIRE', KEYS[1], timeout)
return { 1, held + 1, 0 }
