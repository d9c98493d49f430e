import SluiceCore
import SluiceRedis

/// A key's requests in flight across all replicas, as leases in Redis (`lua/lease_acquire.lua`).
///
/// A lease is taken when a request starts and released when its answer is ready; a replica that
/// dies holding leases cannot release them, so each lease expires after its timeout (on Redis'
/// clock) and then no longer counts. The timeout must therefore exceed the longest request.
public struct ConcurrencyLimiter: Sendable {
    public static let script = RedisScript(name: "lease_acquire", source: PackageResources.lease_acquire_lua)

    /// One request's place among its key's requests in flight.
    public struct Lease: Sendable {
        public let key: String
        public let id: String
    }

    public enum Outcome: Sendable {
        case acquired(Lease, held: Int)
        /// `limit` leases are held; the earliest expires in `earliestExpiry` (if never released).
        case refused(held: Int, earliestExpiry: Duration)
    }

    public let client: any RedisCommands

    public init(client: any RedisCommands) {
        self.client = client
    }

    /// The sorted set of `key`'s leases; hash-tagged like the key's other state (one cluster slot).
    public static func redisKey(_ key: String) -> String { Keyspace.inFlight(key) }

    public func acquire(key: String, limit: Int, timeout: Duration) async throws(RateLimitError) -> Outcome {
        guard limit >= 1 else { throw .invalidArguments("limit must be >= 1") }
        let id = String(UInt64.random(in: .min ... .max), radix: 16) + String(UInt64.random(in: .min ... .max), radix: 16)
        let reply = try await client.evaluate(
            Self.script, keys: [Self.redisKey(key)], arguments: [String(limit), id, String(max(1, timeout.microseconds / 1000))],
            failing: RateLimitError.self)
        let (taken, held, wait): (Int, Int, Int)
        do throws(RedisError) {
            var fields = try ReplyFields(reply, of: "lease_acquire")
            try fields.expect(3)
            (taken, held, wait) = (try fields.int(), try fields.int(), try fields.int())
        } catch {
            throw .redis(error)
        }
        return taken == 1 ? .acquired(Lease(key: key, id: id), held: held) : .refused(held: held, earliestExpiry: .milliseconds(wait))
    }

    /// Gives a lease back; a failure is harmless (the lease expires by itself).
    public func release(_ lease: Lease) async {
        _ = try? await client.send(RedisCommand("ZREM", Self.redisKey(lease.key), lease.id))
    }
}
