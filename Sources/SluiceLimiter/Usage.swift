import Foundation
import SluiceCore
import SluiceRedis

/// Days and hours of usage metering: UTC, counted since the Unix epoch, so that no calendar is
/// needed to name a bucket. Hours come from Redis' clock in `gcra.lua`; the day that names the
/// hash holding them from the replica's (a request at midnight may land in the hash of the day
/// before or after: readers take the days around a range, and the hours inside it).
public enum UsageDay {
    public static func today(_ now: Date = Date()) -> Int { Int((now.timeIntervalSince1970 / 86_400).rounded(.down)) }
}

/// Reads usage counts back (`GET /v1/usage`): the script's and the replica's, per hour.
public struct UsageReader: Sendable {
    public let client: any RedisCommands

    public init(client: any RedisCommands) {
        self.client = client
    }

    /// Per hour since the epoch in `hours`, the counts of `tag` under the limiter key `key`
    /// (hashes of the days around the range are read: a hash's day is the replica's, an hour Redis').
    public func counts(key: String, tag: String, hours: Range<Int>) async throws(RedisError) -> [Int: [UsageMeter.Count: Int64]] {
        var result: [Int: [UsageMeter.Count: Int64]] = [:]
        guard !hours.isEmpty else { return result }
        for day in (hours.lowerBound / 24 - 1)...((hours.upperBound - 1) / 24 + 1) {
            let reply = try await client.send(RedisCommand("HGETALL", Keyspace.usage(key, tag: tag, day: day)))
            let items = reply.array ?? []
            for index in stride(from: 0, to: items.count - 1, by: 2) {
                guard let field = items[index].string, let value = items[index + 1].string.flatMap({ Int64($0) }) else { continue }
                let parts = field.split(separator: ":")
                guard parts.count == 2, let hour = Int(parts[0]), hours.contains(hour), let count = UsageMeter.Count(rawValue: String(parts[1])) else { continue }
                result[hour, default: [:]][count, default: 0] += value
            }
        }
        return result
    }
}
