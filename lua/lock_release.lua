-- Releases a lock only while the caller still holds it (compare-and-delete), so that a holder
-- whose lock expired (a slow bootstrap) cannot delete the lock another holder took since.
--   KEYS[1]  the lock key
--   ARGV[1]  the caller's owner token, as written by SET key token NX PX …
-- Reply: 1 when released, 0 when the lock is not (or no longer) the caller's.
if #KEYS ~= 1 or #ARGV ~= 1 then return redis.error_reply('ERR lock: one key and one owner token are required') end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
